// serve: the OpenAI-compatible HTTP server over the Engine.
//
// Startup binds the port first, so that /health answers 503 while the model
// loads, then prints "lserve: serving <model> on http://host:port" to stderr
// once requests are served. SIGTERM or SIGINT drains: /health and new
// requests answer 503, requests in flight get up to --shutdown-timeout to
// finish (then end with finish_reason "abort"), and the process exits 0. A
// second signal exits at once (code 1).
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <mutex>
#include <thread>

#include "commands.h"
#include "engine_session.h"
#include "lserve/engine.h"
#include "server/http_server.h"

namespace lserve::app {
namespace {

// Engine knobs default to EngineConfig's.
const EngineConfig kEngineDefaults;

struct ServeFlags {
  EngineFlags engine;
  std::string host = "127.0.0.1";
  int port = 8000;
  std::string api_key;
  int64_t max_running = kEngineDefaults.max_running;
  int64_t max_queued = kEngineDefaults.max_queued;
  int64_t kv_cache_tokens = kEngineDefaults.kv_cache_tokens;
  int64_t max_model_len = kEngineDefaults.max_model_len;
  int64_t max_step_tokens = kEngineDefaults.max_step_tokens;
  double shutdown_timeout_s = 30;
  int64_t max_body_bytes = int64_t{8} << 20;
  bool allow_unknown_fields = false;
  bool trust_request_chat_template = false;
  int64_t load_delay_ms = 0;
};

// SIGINT and SIGTERM through a self-pipe: the handler (any thread may run
// it; libraries start threads of their own, so masking cannot route the
// signals to one) only writes a byte, and a watcher thread turns the bytes
// into a condition the main thread waits on.
int g_signal_pipe[2] = {-1, -1};

extern "C" void OnShutdownSignal(int) {
  const int saved = errno;
  const char byte = 1;
  [[maybe_unused]] const ssize_t n = write(g_signal_pipe[1], &byte, 1);
  errno = saved;
}

class ShutdownSignals {
 public:
  ShutdownSignals() {
    if (pipe2(g_signal_pipe, O_CLOEXEC | O_NONBLOCK) != 0) return;
    struct sigaction action {};
    action.sa_handler = OnShutdownSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART;
    sigaction(SIGINT, &action, nullptr);
    sigaction(SIGTERM, &action, nullptr);
    watcher_ = std::thread([this] { Watch(); });
  }
  ~ShutdownSignals() {
    stop_.store(true);
    if (watcher_.joinable()) watcher_.join();
  }

  // Blocks until the first signal (or `timeout`); true when one came.
  bool WaitFor(std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mutex_);
    return received_cv_.wait_for(lock, timeout, [this] { return received_ > 0; });
  }
  void Wait() {
    std::unique_lock<std::mutex> lock(mutex_);
    received_cv_.wait(lock, [this] { return received_ > 0; });
  }
  bool received() {
    std::lock_guard<std::mutex> lock(mutex_);
    return received_ > 0;
  }

 private:
  void Watch() {
    while (!stop_.load()) {
      pollfd p{g_signal_pipe[0], POLLIN, 0};
      if (poll(&p, 1, 100) <= 0) continue;
      char bytes[16];
      const ssize_t n = read(g_signal_pipe[0], bytes, sizeof(bytes));
      if (n <= 0) continue;
      std::lock_guard<std::mutex> lock(mutex_);
      received_ += static_cast<int>(n);
      if (received_ > 1) {
        std::fprintf(stderr, "lserve: second signal, exiting now\n");
        std::fflush(stderr);
        std::_Exit(1);
      }
      received_cv_.notify_all();
    }
  }

  std::thread watcher_;
  std::atomic<bool> stop_{false};
  std::mutex mutex_;
  std::condition_variable received_cv_;
  int received_ = 0;
};

std::string UrlHost(const std::string& host) {
  return host.find(':') != std::string::npos ? "[" + host + "]" : host;
}

EngineConfig MakeEngineConfig(const ServeFlags& f, const std::string& model_path) {
  EngineConfig c;
  c.model_path = model_path;
  c.backend = f.engine.backend;
  c.threads = f.engine.threads;
  c.page_size = f.engine.page_size;
  c.prefill_chunk = f.engine.prefill_chunk;
  c.kv_cache_tokens = f.kv_cache_tokens;
  c.max_model_len = f.max_model_len;
  c.max_running = f.max_running;
  c.max_queued = f.max_queued;
  c.max_step_tokens = f.max_step_tokens;
  const AttentionFlags& a = f.engine.attention;
  c.attention = a.attention.empty() ? "lserve" : a.attention;
  c.attn_pattern = a.attn_pattern;
  c.streaming_ratio = a.streaming_ratio;
  // LServe on by default: without a pattern or a ratio, half the KV heads
  // become streaming heads, calibrated at startup on a passkey text.
  if (c.attention == "lserve" && c.attn_pattern.empty() && !c.streaming_ratio) c.streaming_ratio = 0.5;
  c.logical_page_size = a.logical_page_size;
  c.prefill_sink = a.prefill_sink;
  c.prefill_local = a.prefill_local;
  c.decode_sink = a.decode_sink;
  c.decode_local = a.decode_local;
  c.token_budget = a.token_budget;
  c.select_interval = a.select_interval;
  c.rope_scaling = f.engine.rope_scaling;
  c.rope_factor = f.engine.rope_factor;
  return c;
}

int RunServe(const ServeFlags& f) {
  Result<std::string> model_path = ResolveModelPath(f.engine.model);
  if (!model_path.ok()) return Fail(model_path.status());
  const EngineConfig config = MakeEngineConfig(f, *model_path);

  ShutdownSignals signals;
  // A client that goes away mid-write must be an error return, not a signal.
  std::signal(SIGPIPE, SIG_IGN);

  HttpServerOptions options;
  options.host = f.host;
  options.port = f.port;
  options.api_key = f.api_key;
  options.max_body_bytes = static_cast<size_t>(f.max_body_bytes);
  options.allow_unknown_fields = f.allow_unknown_fields;
  options.trust_request_chat_template = f.trust_request_chat_template;
  // A streaming request holds a connection thread for its whole life: room
  // for every admitted request, plus some for /health, /metrics and the
  // answers that turn requests away.
  options.threads = static_cast<int>(std::min<int64_t>(f.max_running + f.max_queued + 16, 4096));
  HttpServer server(options);
  if (Status started = server.Start(); !started.ok()) return Fail(started);
  std::fprintf(stderr, "lserve: listening on http://%s:%d, loading %s\n", UrlHost(f.host).c_str(), server.port(),
               model_path->c_str());

  if (f.load_delay_ms > 0) signals.WaitFor(std::chrono::milliseconds(f.load_delay_ms));
  Result<std::unique_ptr<Engine>> engine = Engine::Create(config);
  if (!engine.ok()) {
    server.Stop();
    return Fail(engine.status());
  }
  const auto shutdown_timeout = std::chrono::milliseconds(static_cast<int64_t>(f.shutdown_timeout_s * 1000));
  if (!signals.received()) {
    server.AttachEngine(engine->get());
    std::fprintf(stderr, "lserve: serving %s on http://%s:%d\n", (*engine)->model_info().id.c_str(),
                 UrlHost(f.host).c_str(), server.port());
    signals.Wait();
    std::fprintf(stderr, "lserve: shutting down; requests in flight have %gs to finish\n", f.shutdown_timeout_s);
  }
  server.BeginDrain();
  (*engine)->Shutdown(shutdown_timeout);
  // Every stream has its last event now; give the handlers time to write it.
  server.WaitIdle(std::chrono::seconds(5));
  server.Stop();
  engine->reset();
  std::fprintf(stderr, "lserve: stopped\n");
  return 0;
}

}  // namespace

Command AddServe(CLI::App& app) {
  auto* cmd = app.add_subcommand("serve", "OpenAI-compatible HTTP server (default: the demo model on 127.0.0.1:8000)");
  auto f = std::make_shared<ServeFlags>();
  AddEngineOptions(*cmd, &f->engine);
  cmd->get_option("--attention")
      ->description("dense, or lserve (streaming heads, block-sparse prefill, page selection in decode); "
                    "default: lserve, with --streaming-ratio 0.5 calibrated at startup when no pattern or "
                    "ratio is given");
  const auto positive = CLI::Range(int64_t{1}, int64_t{1} << 40);
  cmd->add_option("--host", f->host, "address to listen on");
  cmd->add_option("--port", f->port, "port to listen on (0: any free port, printed at startup)")
      ->check(CLI::Range(0, 65535));
  cmd->add_option("--api-key", f->api_key, "require 'Authorization: Bearer <key>' on every route but /health and /metrics")
      ->envname("LSERVE_API_KEY");
  cmd->add_option("--max-running", f->max_running, "sequences in the running batch")->check(positive);
  cmd->add_option("--max-queued", f->max_queued, "waiting requests beyond which new ones get 503 + Retry-After")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 20));
  cmd->add_option("--kv-cache-tokens", f->kv_cache_tokens, "KV cache capacity in tokens (retrieval pool)")
      ->check(positive);
  cmd->add_option("--max-model-len", f->max_model_len, "prompt + generated tokens of one request (0: the model's context, capped by the KV cache)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 40));
  cmd->add_option("--max-step-tokens", f->max_step_tokens, "tokens of one forward step (prefill chunks + decodes)")
      ->check(positive);
  cmd->add_option("--shutdown-timeout", f->shutdown_timeout_s,
                  "seconds requests in flight get to finish after SIGTERM/SIGINT")
      ->check(CLI::Range(0.0, 86400.0));
  cmd->add_option("--max-body-bytes", f->max_body_bytes, "largest request body (413 above)")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 32));
  cmd->add_flag("--allow-unknown-fields", f->allow_unknown_fields,
                "ignore request fields outside the OpenAI / vLLM set instead of answering 400");
  cmd->add_flag("--trust-request-chat-template", f->trust_request_chat_template,
                "accept a chat_template in chat requests (rendered in the sandboxed template engine)");
  // For tests of the loading phase: wait before loading the model.
  cmd->add_option("--load-delay-ms", f->load_delay_ms)->group("")->check(CLI::Range(int64_t{0}, int64_t{600000}));
  return {cmd, [f] { return RunServe(*f); }};
}

}  // namespace lserve::app
