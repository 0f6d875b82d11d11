#include "engine_session.h"

#include "commands.h"
#include "tokenizer/model_text.h"

namespace lserve::app {

void AddEngineOptions(CLI::App& cmd, EngineFlags* f) {
  AddModelOption(cmd, &f->model);
  cmd.add_option("--backend", f->backend, "cpu (fast kernels) or cpu-ref (scalar reference kernels)")
      ->check(CLI::IsMember({"cpu", "cpu-ref"}));
  cmd.add_option("--threads", f->threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd.add_option("--prefill-chunk", f->prefill_chunk, "prompt tokens per forward pass")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd.add_option("--page-size", f->page_size, "KV cache page size in tokens (16, 32, 64, 128)")
      ->check(CLI::IsMember({16, 32, 64, 128}));
}

Result<std::unique_ptr<EngineSession>> OpenEngine(const EngineFlags& flags) {
  auto s = std::make_unique<EngineSession>();
  LSERVE_ASSIGN_OR_RETURN(std::string path, ResolveModelPath(flags.model));
  LSERVE_ASSIGN_OR_RETURN(s->source, OpenModel(path));
  LSERVE_ASSIGN_OR_RETURN(Tokenizer tokenizer, LoadTokenizer(s->source));
  s->tokenizer = std::make_unique<Tokenizer>(std::move(tokenizer));
  return s;
}

Status LoadModel(const EngineFlags& flags, int64_t kv_tokens, EngineSession* s) {
  CpuBackendOptions backend_options;
  backend_options.mode = flags.backend == "cpu-ref" ? CpuMode::kReference : CpuMode::kFast;
  backend_options.threads = flags.threads;
  s->backend = std::make_unique<CpuBackend>(backend_options);
  ModelOptions model_options;
  model_options.kv_page_size = flags.page_size;
  model_options.kv_cache_tokens = std::max<int64_t>(kv_tokens, flags.page_size);
  LSERVE_ASSIGN_OR_RETURN(s->model, LlamaModel::Load(s->source, *s->backend, model_options));
  return Status::Ok();
}

void AddSamplingOptions(CLI::App& cmd, SamplingFlags* f) {
  cmd.add_option("--max-tokens", f->max_tokens, "most tokens to generate")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd.add_option("--temperature", f->temperature, "0 = greedy (default: the model's generation config, else greedy)");
  cmd.add_option("--top-k", f->top_k, "keep the k most likely tokens (0 = off)");
  cmd.add_option("--top-p", f->top_p, "nucleus sampling mass (1 = off)");
  cmd.add_option("--min-p", f->min_p, "drop tokens below min_p x the top probability");
  cmd.add_option("--repetition-penalty", f->repetition_penalty, "HF repetition penalty (1 = off)");
  cmd.add_option("--seed", f->seed, "random seed (same seed, same output)");
  cmd.add_option("--stop", f->stop, "stop string (repeatable)");
  cmd.add_flag("--ignore-eos", f->ignore_eos, "keep generating past end-of-sequence tokens");
}

Result<SamplingParams> MakeSamplingParams(const SamplingFlags& f, const ModelConfig& config) {
  const GenerationDefaults& g = config.generation;
  SamplingParams p;
  const bool sample = g.do_sample.value_or(false);
  p.temperature = f.temperature.value_or(sample ? g.temperature.value_or(1.0) : 0.0);
  p.top_k = f.top_k.value_or(sample ? g.top_k.value_or(0) : 0);
  p.top_p = f.top_p.value_or(sample ? g.top_p.value_or(1.0) : 1.0);
  p.min_p = f.min_p.value_or(sample ? g.min_p.value_or(0.0) : 0.0);
  p.repetition_penalty = f.repetition_penalty.value_or(g.repetition_penalty.value_or(1.0));
  if (f.seed) {
    LSERVE_ASSIGN_OR_RETURN(p.seed, SeedFromSigned(*f.seed));
  }
  p.max_tokens = f.max_tokens;
  p.stop = f.stop;
  p.ignore_eos = f.ignore_eos;
  LSERVE_RETURN_IF_ERROR(p.Validate(static_cast<int32_t>(config.vocab_size)));
  return p;
}

}  // namespace lserve::app
