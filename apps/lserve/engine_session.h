// What the generating subcommands share: a model loaded on a CPU backend,
// its tokenizer, and the options that choose them.
#pragma once

#include <memory>
#include <string>

#include <CLI/CLI.hpp>

#include "backend/cpu_backend.h"
#include "formats/model_source.h"
#include "model/llama_model.h"
#include "sampling/sampling_params.h"
#include "tokenizer/tokenizer.h"

namespace lserve::app {

struct EngineFlags {
  std::string model;
  std::string backend = "cpu";  // "cpu" (fast kernels) or "cpu-ref" (the scalar reference)
  int threads = 0;              // 0 = all cores
  int64_t prefill_chunk = 512;
  int64_t page_size = 64;
};
void AddEngineOptions(CLI::App& cmd, EngineFlags* flags);

struct EngineSession {
  ModelSource source;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<CpuBackend> backend;
  std::unique_ptr<LlamaModel> model;
};

// Opens the model files and the tokenizer (cheap: weights stay mapped).
Result<std::unique_ptr<EngineSession>> OpenEngine(const EngineFlags& flags);
// Places the weights on the backend with KV room for `kv_tokens` tokens.
Status LoadModel(const EngineFlags& flags, int64_t kv_tokens, EngineSession* session);

// Sampling flags; unset ones fall back to the model's generation_config.json
// (do_sample false or absent: greedy), as transformers' generate() does.
struct SamplingFlags {
  std::optional<double> temperature;
  std::optional<int64_t> top_k;
  std::optional<double> top_p;
  std::optional<double> min_p;
  std::optional<double> repetition_penalty;
  std::optional<int64_t> seed;
  int64_t max_tokens = 256;
  std::vector<std::string> stop;
  bool ignore_eos = false;
};
void AddSamplingOptions(CLI::App& cmd, SamplingFlags* flags);
Result<SamplingParams> MakeSamplingParams(const SamplingFlags& flags, const ModelConfig& config);

}  // namespace lserve::app
