// The Engine of include/lserve/engine.h: what Create builds, what Submit and
// the engine thread share, and the state the engine thread keeps alone.
//
// Threads. Any thread may call Submit, Stats, Shutdown and the streams'
// methods; one engine thread runs the step loop (engine_loop.cc) and is the
// only user of the model, the KV cache manager, the scheduler and the
// per-request sampling state. The two sides meet in the Mailbox (one mutex):
// new requests, cancelled ids, the shutdown flags and the queue count.
//
// A request's life: Submit validates it (params, vocabulary, model length,
// KV pool, queue cap), creates its Sampler and queues it in the inbox; the
// engine thread moves it into the scheduler at the next step boundary; each
// step that samples for it pushes one StreamEvent; it leaves the scheduler
// (pages freed at once) when it stops, reaches its length, is cancelled,
// fails, or is aborted by the shutdown, and its last event says which.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <span>
#include <string>
#include <thread>
#include <unordered_map>
#include <vector>

#include "backend/cpu_backend.h"
#include "formats/model_source.h"
#include "kvcache/kv_cache.h"
#include "lserve/engine.h"
#include "model/llama_model.h"
#include "runtime/request_stream.h"
#include "sampling/sampler.h"
#include "sampling/stop_checker.h"
#include "scheduler/scheduler.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/tokenizer.h"

namespace lserve {

// A validated request on its way from Submit to the engine thread.
struct PendingRequest {
  int64_t id = 0;
  std::vector<int32_t> prompt;
  SamplingParams params;
  Sampler sampler;
  bool skip_special_tokens = true;
  std::shared_ptr<StreamChannel> channel;
};

// Runs on the engine thread after each forward, before sampling (tests only:
// it may change the logits, e.g. to NaN, block, or return an error that
// stands for a failed step).
using ForwardHook = std::function<Status(const BatchPlan& plan, ForwardOutput& out)>;

struct Mailbox {
  std::mutex mu;
  std::condition_variable wake;     // the engine thread waits here when idle
  std::condition_variable stopped;  // Shutdown waits here for the thread to drain
  std::deque<PendingRequest> inbox;
  std::vector<int64_t> cancelled;  // ids whose streams were cancelled
  bool accepting = true;           // false once Shutdown began
  bool draining = false;           // Shutdown began: exit when nothing is left
  bool abort = false;              // Shutdown's timeout passed: abort what is left and exit
  bool exited = false;             // the engine thread has left its loop
  int64_t scheduler_waiting = 0;   // requests in the scheduler's queue (published by the engine thread)
  ForwardHook forward_hook;
};

class EngineImpl final : public Engine {
 public:
  static Result<std::unique_ptr<EngineImpl>> Create(const EngineConfig& config);
  ~EngineImpl() override;

  const ModelInfo& model_info() const override { return info_; }
  const Tokenizer& tokenizer() const override { return *tokenizer_; }
  const ChatTemplate* chat_template() const override { return chat_template_.get(); }
  Result<std::shared_ptr<RequestStream>> Submit(GenerateRequest request) override;
  EngineStats Stats() const override;
  void Shutdown(std::chrono::milliseconds timeout) override;

  const EngineConfig& config() const { return config_; }
  void SetForwardHookForTesting(ForwardHook hook);

 private:
  // The engine thread's per-request state. The Sampler, the stop checker and
  // the detokenizer outlive preemption: a replayed request continues where
  // it was.
  struct ActiveRequest {
    std::shared_ptr<StreamChannel> channel;
    Sampler sampler;
    StopChecker stop;
    IncrementalDecoder detokenizer;
    bool logprobs = false;
    int64_t prompt_tokens = 0;
    int64_t completion_tokens = 0;
  };

  EngineImpl() = default;

  // --- engine_loop.cc: the engine thread. ---
  void Run();
  // Moves arrivals into the scheduler and applies cancellations.
  void TakeArrivals(std::deque<PendingRequest>& arrivals);
  void ApplyCancellations(const std::vector<int64_t>& ids);
  // One schedule -> forward -> sample step. False when nothing could run.
  bool Step();
  // Samples the request's next token from its logits row and streams it.
  void SampleRow(int64_t seq_id, std::span<float> logits);
  // Removes the request from the scheduler (pages freed) and pushes its last
  // event: `event` (the tokens of this step, if any) with the finish set.
  void EndRequest(int64_t id, FinishKind kind, std::string error, StreamEvent event = {});
  // Every live request and every arrival ends with kAborted.
  void AbortAll(std::deque<PendingRequest>& arrivals);
  void PublishStats();

  EngineConfig config_;
  ModelInfo info_;
  ModelSource source_;
  std::unique_ptr<Tokenizer> tokenizer_;
  std::unique_ptr<ChatTemplate> chat_template_;
  std::unique_ptr<CpuBackend> backend_;
  std::unique_ptr<LlamaModel> model_;
  std::unique_ptr<KvCacheManager> kv_;
  // An empty manager of the same layout: Submit asks it (const, so from any
  // thread) whether a request could ever fit the pools.
  std::unique_ptr<KvCacheManager> fit_checker_;
  std::unique_ptr<Scheduler> scheduler_;
  std::vector<int32_t> eos_ids_;
  int32_t vocab_size_ = 0;

  std::shared_ptr<Mailbox> mailbox_;
  std::atomic<int64_t> next_id_{1};

  // Engine thread only.
  std::unordered_map<int64_t, ActiveRequest> active_;
  ForwardOutput forward_out_;  // reused by every step (its logits buffer keeps its capacity)
  SparsityStats sparsity_;
  int64_t steps_ = 0;
  int64_t prompt_tokens_ = 0;
  int64_t generated_tokens_ = 0;

  mutable std::mutex stats_mu_;
  EngineStats stats_;

  std::mutex shutdown_mu_;  // serialises Shutdown calls (the join)
  std::thread thread_;
};

}  // namespace lserve
