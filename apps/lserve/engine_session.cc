#include "engine_session.h"

#include "commands.h"
#include "runtime/engine_setup.h"
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
  cmd.add_option("--rope-scaling", f->rope_scaling,
                 "replace the model's RoPE scaling: none, linear, dynamic or yarn (with --rope-factor)")
      ->check(CLI::IsMember({"none", "linear", "dynamic", "yarn"}));
  cmd.add_option("--rope-factor", f->rope_factor, "RoPE scaling factor (context = factor x trained context)")
      ->check(CLI::Range(1.0, 1024.0));
  AddAttentionOptions(cmd, &f->attention);
}

void AddAttentionOptions(CLI::App& cmd, AttentionFlags* f) {
  const auto window = CLI::Range(int64_t{0}, int64_t{1} << 30);
  cmd.add_option("--attention", f->attention,
                 "dense, or lserve (streaming heads, block-sparse prefill, page selection in decode); "
                 "default: lserve when --attn-pattern or --streaming-ratio is given, else dense")
      ->check(CLI::IsMember({"dense", "lserve"}));
  cmd.add_option("--attn-pattern", f->attn_pattern, "DuoAttention full_attention_heads.tsv (or its folder)");
  cmd.add_option("--streaming-ratio", f->streaming_ratio,
                 "share of KV heads made streaming, one global quantile (default 0.5 with a pattern; "
                 "alone: heads calibrated on a synthetic passkey text)")
      ->check(CLI::Range(0.0, 1.0));
  cmd.add_option("--prefill-sink", f->prefill_sink, "streaming heads' sink tokens in prefill")->check(window);
  cmd.add_option("--prefill-local", f->prefill_local, "streaming heads' local window in prefill")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd.add_option("--decode-sink", f->decode_sink, "streaming heads' sink tokens in decode")->check(window);
  cmd.add_option("--decode-local", f->decode_local, "streaming heads' local window in decode")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd.add_option("--logical-page-size", f->logical_page_size, "tokens per key-statistics page (divides --page-size)")
      ->check(CLI::IsMember({1, 2, 4, 8, 16, 32, 64, 128}));
  cmd.add_option("--token-budget", f->token_budget, "decode: retrieval heads read this many tokens' pages")
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 30));
  cmd.add_option("--select-interval", f->select_interval, "decode steps between page selections")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
}

Result<std::optional<HeadRoles>> RolesFromFlags(const AttentionFlags& f, const ModelSource& source,
                                                const Tokenizer& tokenizer, Backend& backend) {
  return HeadRolesFromSettings(f.attn_pattern, f.streaming_ratio, source, tokenizer, backend);
}

Result<std::unique_ptr<EngineSession>> OpenEngine(const EngineFlags& flags) {
  auto s = std::make_unique<EngineSession>();
  LSERVE_ASSIGN_OR_RETURN(std::string path, ResolveModelPath(flags.model));
  LSERVE_ASSIGN_OR_RETURN(s->source, OpenModel(path));
  LSERVE_RETURN_IF_ERROR(OverrideRopeScaling(flags.rope_scaling, flags.rope_factor, &s->source.config));
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
  model_options.prefill_chunk = flags.prefill_chunk;
  const AttentionFlags& af = flags.attention;
  const bool wants_roles = !af.attn_pattern.empty() || af.streaming_ratio.has_value();
  const bool lserve = af.attention == "lserve" || (af.attention.empty() && wants_roles);
  if (!lserve && wants_roles) {
    return InvalidArgument("--attn-pattern / --streaming-ratio need --attention lserve");
  }
  if (flags.page_size % af.logical_page_size != 0) {
    return InvalidArgument("--logical-page-size " + std::to_string(af.logical_page_size) +
                           " does not divide --page-size " + std::to_string(flags.page_size));
  }
  model_options.kv_logical_page_size = af.logical_page_size;
  AttentionOptions& a = model_options.attention;
  a.mode = lserve ? AttentionMode::kLServe : AttentionMode::kDense;
  a.prefill_sink = af.prefill_sink;
  a.prefill_local = af.prefill_local;
  a.decode_sink = af.decode_sink;
  a.decode_local = af.decode_local;
  a.token_budget = af.token_budget;
  a.select_interval = af.select_interval;
  if (lserve) {
    LSERVE_ASSIGN_OR_RETURN(std::optional<HeadRoles> roles, RolesFromFlags(af, s->source, *s->tokenizer, *s->backend));
    if (roles) a.head_roles = roles->roles;
  }
  LSERVE_ASSIGN_OR_RETURN(s->model, LlamaModel::Load(s->source, *s->backend, model_options));
  return Status::Ok();
}

nlohmann::json SparsityJson(const SparsityStats& s) {
  return {{"prefill_blocks_visited", s.prefill_blocks_visited},
          {"prefill_blocks_dense", s.prefill_blocks_dense},
          {"decode_pages_read", s.decode_pages_read},
          {"decode_pages_dense", s.decode_pages_dense}};
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
