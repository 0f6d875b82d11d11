// The public C++ API of the serving engine: load a model, submit requests
// from any thread, receive their tokens as a stream. One engine thread runs
// the step loop (schedule -> forward -> sample -> detokenize -> stream) with
// continuous batching, chunked prefill mixed with decoding and preemption by
// recompute; the HTTP server (src/server) and embedders use only this header.
//
//   auto engine = lserve::Engine::Create(config);            // loads, starts the loop
//   auto stream = (*engine)->Submit(request);                 // validated, queued
//   while (auto event = (*stream)->Next()) { ... }            // deltas, then the finish
//   (*engine)->Shutdown(std::chrono::seconds(30));            // drains, then stops
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/status.h"
#include "sampling/sampling_params.h"

namespace lserve {

class Tokenizer;
class ChatTemplate;

struct EngineConfig {
  std::string model_path;        // model folder or .gguf file (empty: the demo model)
  std::string backend = "cpu";   // "cpu" (fast kernels) or "cpu-ref"
  int threads = 0;               // CPU threads, 0 = all cores
  // KV cache and batching.
  int64_t page_size = 64;
  int64_t logical_page_size = 16;
  int64_t kv_cache_tokens = 16384;  // retrieval pool capacity in tokens
  int64_t max_model_len = 0;        // prompt + generated tokens of one request; 0 = the model's context length
  int64_t max_running = 16;         // sequences in the running batch
  int64_t max_queued = 64;          // waiting requests beyond which Submit answers Unavailable
  int64_t max_step_tokens = 2048;   // tokens of one forward step (prefill chunks + decodes)
  int64_t prefill_chunk = 512;      // tokens of one sequence's prefill chunk
  // Attention (DESIGN.md §4): "dense" or "lserve".
  std::string attention = "lserve";
  std::string attn_pattern;               // DuoAttention full_attention_heads.tsv (or its folder)
  std::optional<double> streaming_ratio;  // with a pattern: default 0.5; alone: calibrated on a passkey text
  int64_t prefill_sink = 128, prefill_local = 8192;
  int64_t decode_sink = 128, decode_local = 256;
  int64_t token_budget = 4096;
  int64_t select_interval = 4;
  // Context extension (as llama.cpp's --rope-scaling / --rope-scale): "" keeps
  // the model's RoPE scaling; "none", "linear", "dynamic" or "yarn" replaces
  // it with this factor over the model's trained context.
  std::string rope_scaling;
  double rope_factor = 1.0;
};

struct GenerateRequest {
  std::vector<int32_t> prompt;  // token ids (the server tokenizes text and renders chats)
  SamplingParams params;        // validated by Submit
  uint64_t sampler_stream = 0;  // Sampler stream (the choice index when n > 1 share a seed)
  bool skip_special_tokens = true;  // leave special tokens' text out of StreamEvent::text
};

// Why a request ended.
enum class FinishKind : uint8_t {
  kStop,       // EOS, a stop token or a stop string
  kLength,     // max_tokens or the model length
  kCancelled,  // Cancel() or the client went away
  kAborted,    // shutdown before it finished
  kError,      // a fault of this request (e.g. NaN logits); `error` says what
};
const char* FinishKindName(FinishKind kind);  // "stop", "length", "cancelled", "abort", "error"

struct StreamTopLogprob {
  int32_t token_id = 0;
  float logprob = 0.0f;
};

// One event of a request's stream: new tokens and their final text, and, on
// the last event, the finish.
struct StreamEvent {
  std::vector<int32_t> token_ids;  // tokens sampled since the last event
  std::string text;                // text that became final (stop strings cut; valid UTF-8)
  // When params.logprobs: per token of token_ids, its logprob and top list.
  std::vector<float> logprobs;
  std::vector<std::vector<StreamTopLogprob>> top_logprobs;
  std::optional<FinishKind> finish;  // set on the last event only
  std::string error;                 // FinishKind::kError: the message
  // Counts, filled on the last event.
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
};

// The receiving end of one request. Thread-safe.
class RequestStream {
 public:
  virtual ~RequestStream() = default;
  virtual int64_t id() const = 0;
  // Blocks until the next event; nullopt after the last one was taken, or
  // when `timeout` passes first (check finished() to tell apart).
  virtual std::optional<StreamEvent> Next(std::chrono::milliseconds timeout = std::chrono::hours(24)) = 0;
  virtual bool finished() const = 0;
  // Cancels the request: its pages are freed by the engine thread at its next
  // step boundary; the stream ends with FinishKind::kCancelled. Idempotent.
  // Dropping the last reference to a stream that has not finished cancels
  // its request too (nobody would read it).
  virtual void Cancel() = 0;
};

// A snapshot for /metrics and /health.
struct EngineStats {
  bool ready = false;
  int64_t queue_depth = 0;
  int64_t running = 0;
  int64_t kv_pages_used_retrieval = 0, kv_pages_total_retrieval = 0;
  int64_t kv_pages_used_streaming = 0, kv_pages_total_streaming = 0;
  int64_t preemptions = 0;
  int64_t steps = 0;
  int64_t prompt_tokens = 0, generated_tokens = 0;
  int64_t prefill_blocks_visited = 0, prefill_blocks_dense = 0;
  int64_t decode_pages_read = 0, decode_pages_dense = 0;
};

struct ModelInfo {
  std::string id;           // the model's name (file or folder name)
  int64_t vocab_size = 0;
  int64_t max_model_len = 0;
  std::vector<int32_t> eos_ids;
};

class Engine {
 public:
  // Loads the model and the tokenizer, calibrates head roles if asked, and
  // starts the engine thread. InvalidArgument / NotFound for bad config or
  // model files (the CLI maps them to exit code 2).
  static Result<std::unique_ptr<Engine>> Create(const EngineConfig& config);
  virtual ~Engine() = default;  // stops the loop (as Shutdown(0)) if still running

  virtual const ModelInfo& model_info() const = 0;
  virtual const Tokenizer& tokenizer() const = 0;
  // The model's chat template, or nullptr when it has none.
  virtual const ChatTemplate* chat_template() const = 0;

  // Validates and queues. InvalidArgument: empty prompt, ids out of vocabulary,
  // bad params (SamplingParams::FindInvalid names the field); OutOfRange:
  // prompt + max_tokens beyond max_model_len (the message holds both numbers);
  // ResourceExhausted: the request could never fit the KV cache (400);
  // Unavailable: the queue is full or the engine is shutting down (503).
  virtual Result<std::shared_ptr<RequestStream>> Submit(GenerateRequest request) = 0;

  virtual EngineStats Stats() const = 0;

  // Stops admitting (Submit answers Unavailable), lets running and queued
  // requests finish for up to `timeout`, then aborts the rest (their streams
  // end with kAborted) and joins the engine thread. Idempotent.
  virtual void Shutdown(std::chrono::milliseconds timeout) = 0;
};

}  // namespace lserve
