// What the generating subcommands share: a model loaded on a CPU backend,
// its tokenizer, and the options that choose them.
#pragma once

#include <memory>
#include <optional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "backend/cpu_backend.h"
#include "formats/model_source.h"
#include "model/llama_model.h"
#include "sampling/sampling_params.h"
#include "sparsity/head_roles.h"
#include "tokenizer/tokenizer.h"

namespace lserve::app {

// The LServe attention flags (DESIGN.md §4 defaults). Giving a pattern or a
// ratio selects the lserve attention unless --attention says otherwise.
struct AttentionFlags {
  std::string attention;     // "dense" | "lserve"; empty: lserve when a pattern or ratio is given, else dense
  std::string attn_pattern;  // DuoAttention full_attention_heads.tsv (or its folder)
  std::optional<double> streaming_ratio;  // default 0.5 with a pattern; alone: calibrated on a passkey text
  int64_t prefill_sink = 128, prefill_local = 8192;
  int64_t decode_sink = 128, decode_local = 256;
  int64_t logical_page_size = 16;
  int64_t token_budget = 4096;
  int64_t select_interval = 4;
};
void AddAttentionOptions(CLI::App& cmd, AttentionFlags* flags);
// Head roles from the pattern (and ratio), or calibrated from the ratio alone
// (loading the model densely on `backend`); nullopt when neither is given.
Result<std::optional<HeadRoles>> RolesFromFlags(const AttentionFlags& flags, const ModelSource& source,
                                                const Tokenizer& tokenizer, Backend& backend);

struct EngineFlags {
  std::string model;
  std::string backend = "cpu";  // "cpu" (fast kernels) or "cpu-ref" (the scalar reference)
  int threads = 0;              // 0 = all cores
  int64_t prefill_chunk = 512;
  int64_t page_size = 64;
  // Context extension beyond the trained length (as llama.cpp's --rope-scaling
  // / --rope-scale): replaces the model's rope_scaling with this type and
  // factor, the original context being the model's max_position_embeddings.
  std::string rope_scaling;  // "" (the model's own), "none", "linear", "dynamic", "yarn"
  double rope_factor = 1.0;
  AttentionFlags attention;
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

// {"prefill_blocks_visited", "prefill_blocks_dense", "decode_pages_read", "decode_pages_dense"}.
nlohmann::json SparsityJson(const SparsityStats& stats);

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
