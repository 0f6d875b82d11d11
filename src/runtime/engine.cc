// Engine: creation, submission, statistics and shutdown (the calls of any
// thread). The step loop of the engine thread is in engine_loop.cc.
#include <algorithm>
#include <filesystem>

#include "runtime/engine_impl.h"
#include "runtime/engine_setup.h"
#include "tokenizer/model_text.h"

namespace lserve {

const char* FinishKindName(FinishKind kind) {
  switch (kind) {
    case FinishKind::kStop:
      return "stop";
    case FinishKind::kLength:
      return "length";
    case FinishKind::kCancelled:
      return "cancelled";
    case FinishKind::kAborted:
      return "abort";
    case FinishKind::kError:
      return "error";
  }
  return "unknown";
}

Result<std::unique_ptr<Engine>> Engine::Create(const EngineConfig& config) {
  LSERVE_ASSIGN_OR_RETURN(std::unique_ptr<EngineImpl> engine, EngineImpl::Create(config));
  return std::unique_ptr<Engine>(std::move(engine));
}

namespace {

// The model's name: the file or folder name of its path.
std::string ModelId(const std::string& path) {
  std::filesystem::path p(path);
  while (!p.empty() && !p.has_filename() && p.has_parent_path() && p != p.parent_path()) p = p.parent_path();
  std::string name = p.filename().string();
  return name.empty() ? path : name;
}

// The longest request (prompt + generated tokens) the pools could ever hold
// alone: a binary search on CheckCanEverFit, which grows with the length.
int64_t PoolTokenCapacity(const KvCacheManager& kv) {
  int64_t lo = 0, hi = KvCacheManager::kMaxSequenceTokens;  // fits(lo) holds (0 tokens need no page)
  if (kv.CheckCanEverFit(hi).ok()) return hi;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (kv.CheckCanEverFit(mid).ok() ? lo : hi) = mid;
  }
  return lo;
}

}  // namespace

Result<std::unique_ptr<EngineImpl>> EngineImpl::Create(const EngineConfig& config) {
  LSERVE_RETURN_IF_ERROR(ValidateEngineConfig(config));
  std::unique_ptr<EngineImpl> e(new EngineImpl());
  e->config_ = config;
  std::string path = config.model_path;
  if (path.empty()) {
    LSERVE_ASSIGN_OR_RETURN(path, DefaultModelPath());
  }
  LSERVE_ASSIGN_OR_RETURN(e->source_, OpenModel(path));
  LSERVE_RETURN_IF_ERROR(OverrideRopeScaling(config.rope_scaling, config.rope_factor, &e->source_.config));
  LSERVE_ASSIGN_OR_RETURN(Tokenizer tokenizer, LoadTokenizer(e->source_));
  e->tokenizer_ = std::make_unique<Tokenizer>(std::move(tokenizer));
  auto chat_template = LoadChatTemplate(e->source_);
  if (chat_template.ok()) {
    e->chat_template_ = std::make_unique<ChatTemplate>(std::move(chat_template).value());
  } else if (chat_template.status().code() != StatusCode::kNotFound) {
    return chat_template.status().Annotate("chat template");
  }

  CpuBackendOptions backend_options;
  backend_options.mode = config.backend == "cpu-ref" ? CpuMode::kReference : CpuMode::kFast;
  backend_options.threads = config.threads;
  e->backend_ = std::make_unique<CpuBackend>(backend_options);

  ModelOptions options;
  options.kv_page_size = config.page_size;
  options.kv_logical_page_size = config.logical_page_size;
  options.kv_cache_tokens = config.kv_cache_tokens;
  options.max_sequences = config.max_running;
  options.prefill_chunk = config.prefill_chunk;
  LSERVE_ASSIGN_OR_RETURN(options.attention, MakeAttentionOptions(AttentionSettingsOf(config), e->source_,
                                                                  *e->tokenizer_, *e->backend_));
  LSERVE_ASSIGN_OR_RETURN(e->model_, LlamaModel::Load(e->source_, *e->backend_, options));

  LSERVE_ASSIGN_OR_RETURN(KvCacheManager kv, KvCacheManager::Create(e->model_->kv_cache_config()));
  e->kv_ = std::make_unique<KvCacheManager>(std::move(kv));
  LSERVE_ASSIGN_OR_RETURN(KvCacheManager fit, KvCacheManager::Create(e->model_->kv_cache_config()));
  e->fit_checker_ = std::make_unique<KvCacheManager>(std::move(fit));
  SchedulerConfig sc;
  sc.max_running = config.max_running;
  sc.max_step_tokens = config.max_step_tokens;
  sc.prefill_chunk = config.prefill_chunk;
  LSERVE_ASSIGN_OR_RETURN(Scheduler scheduler, Scheduler::Create(sc, e->kv_.get()));
  e->scheduler_ = std::make_unique<Scheduler>(std::move(scheduler));

  const ModelConfig& mc = e->model_->config();
  e->vocab_size_ = static_cast<int32_t>(mc.vocab_size);
  e->eos_ids_ = ModelEosIds(mc, *e->tokenizer_);
  const int64_t context =
      ModelContextLength(mc) > 0 ? ModelContextLength(mc) : KvCacheManager::kMaxSequenceTokens;
  int64_t max_model_len = config.max_model_len;
  if (max_model_len == 0) {
    max_model_len = std::min(context, PoolTokenCapacity(*e->fit_checker_));
  } else if (max_model_len > context) {
    return InvalidArgument("max_model_len " + std::to_string(max_model_len) +
                           " exceeds the model's context length " + std::to_string(context));
  }
  e->info_.id = ModelId(path);
  e->info_.vocab_size = mc.vocab_size;
  e->info_.max_model_len = max_model_len;
  e->info_.eos_ids = e->eos_ids_;

  e->mailbox_ = std::make_shared<Mailbox>();
  e->PublishStats();
  e->thread_ = std::thread([engine = e.get()] { engine->Run(); });
  return e;
}

EngineImpl::~EngineImpl() { Shutdown(std::chrono::milliseconds(0)); }

Result<std::shared_ptr<RequestStream>> EngineImpl::Submit(GenerateRequest request) {
  {
    std::lock_guard lock(mailbox_->mu);
    if (!mailbox_->accepting) return Unavailable("the engine is shutting down");
  }
  const int64_t prompt_tokens = static_cast<int64_t>(request.prompt.size());
  if (prompt_tokens == 0) return InvalidArgument("prompt is empty");
  for (const int32_t id : request.prompt) {
    if (id < 0 || id >= vocab_size_) {
      return InvalidArgument("prompt token id " + std::to_string(id) + " is out of vocabulary (size " +
                             std::to_string(vocab_size_) + ")");
    }
  }
  if (auto error = request.params.FindInvalid(vocab_size_)) return InvalidArgument(error->message);
  const int64_t max_tokens = request.params.max_tokens;
  const int64_t max_model_len = info_.max_model_len;
  if (prompt_tokens > max_model_len || max_tokens > max_model_len - prompt_tokens) {
    return OutOfRange("prompt (" + std::to_string(prompt_tokens) + " tokens) + max_tokens (" +
                      std::to_string(max_tokens) + ") exceeds the model length of " + std::to_string(max_model_len) +
                      " tokens");
  }
  const Status fits = fit_checker_->CheckCanEverFit(prompt_tokens + max_tokens);
  if (!fits.ok()) {
    return ResourceExhausted("prompt (" + std::to_string(prompt_tokens) + " tokens) + max_tokens (" +
                             std::to_string(max_tokens) + ") can never fit the KV cache: " + fits.message());
  }
  LSERVE_ASSIGN_OR_RETURN(Sampler sampler,
                          Sampler::Create(request.params, vocab_size_, request.prompt, request.sampler_stream));

  const int64_t id = next_id_.fetch_add(1);
  std::weak_ptr<Mailbox> weak_mailbox = mailbox_;
  auto channel = std::make_shared<StreamChannel>(id, [weak_mailbox, id] {
    if (auto mailbox = weak_mailbox.lock()) {
      {
        std::lock_guard lock(mailbox->mu);
        mailbox->cancelled.push_back(id);
      }
      mailbox->wake.notify_one();
    }
  });
  {
    std::lock_guard lock(mailbox_->mu);
    if (!mailbox_->accepting) return Unavailable("the engine is shutting down");
    const int64_t queued = static_cast<int64_t>(mailbox_->inbox.size()) + mailbox_->scheduler_waiting;
    if (queued >= config_.max_queued) {
      return Unavailable("the queue is full (" + std::to_string(queued) + " requests waiting)");
    }
    mailbox_->inbox.push_back(PendingRequest{id, std::move(request.prompt), std::move(request.params),
                                             std::move(sampler), request.skip_special_tokens, channel});
  }
  mailbox_->wake.notify_one();
  return std::shared_ptr<RequestStream>(std::make_shared<StreamHandle>(std::move(channel)));
}

EngineStats EngineImpl::Stats() const {
  EngineStats stats;
  {
    std::lock_guard lock(stats_mu_);
    stats = stats_;
  }
  std::lock_guard lock(mailbox_->mu);
  stats.ready = mailbox_->accepting && !mailbox_->exited;
  stats.queue_depth = static_cast<int64_t>(mailbox_->inbox.size()) + mailbox_->scheduler_waiting;
  return stats;
}

void EngineImpl::SetForwardHookForTesting(ForwardHook hook) {
  std::lock_guard lock(mailbox_->mu);
  mailbox_->forward_hook = std::move(hook);
}

void EngineImpl::Shutdown(std::chrono::milliseconds timeout) {
  std::lock_guard shutdown_lock(shutdown_mu_);
  if (!thread_.joinable()) return;
  {
    std::unique_lock lock(mailbox_->mu);
    mailbox_->accepting = false;
    mailbox_->draining = true;
    mailbox_->wake.notify_one();
    const auto exited = [&] { return mailbox_->exited; };
    if (timeout >= std::chrono::hours(24 * 365)) {
      mailbox_->stopped.wait(lock, exited);  // "no timeout": now() + timeout could overflow
    } else if (timeout > std::chrono::milliseconds(0)) {
      mailbox_->stopped.wait_for(lock, timeout, exited);
    }
    if (!mailbox_->exited) {
      mailbox_->abort = true;
      mailbox_->wake.notify_one();
    }
  }
  thread_.join();
}

}  // namespace lserve
