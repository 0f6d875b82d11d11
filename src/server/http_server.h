// HttpServer: the OpenAI-compatible HTTP front of an Engine (cpp-httplib).
//
// Routes: POST /v1/completions, POST /v1/chat/completions (both streaming as
// SSE when asked), GET /v1/models, GET /v1/models/{id}, POST /tokenize,
// POST /detokenize, GET /health, GET /metrics. Every failure is an OpenAI
// error body (api_error.h).
//
// Lifecycle, as `lserve serve` drives it:
//   HttpServer server(options);
//   server.Start();                    // bound and answering: /health 503, /v1/* 503
//   auto engine = Engine::Create(..);  // slow: loads the model
//   server.AttachEngine(engine.get()); // ready: /health 200
//   ... SIGTERM ...
//   server.BeginDrain();               // /health 503, new requests 503
//   engine->Shutdown(timeout);         // in-flight requests finish (or abort)
//   server.WaitIdle(..);               // their last bytes are written
//   server.Stop();                     // listening socket closed, threads joined
//
// Checks made before a request body is read (RELIABILITY.md C20-C21, C24):
// header count and size (431), the API key on every route but the public
// allowlist {/health, /metrics} (401, constant-time compare), the route
// (404) and method (405), readiness (503), Content-Type (415), and
// Content-Length (400 when malformed, 411 when absent without chunked
// encoding, 413 over the cap). Chunked and compressed bodies are counted as
// they are read (after decompression) and cut at the cap with a 413.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"
#include "server/metrics.h"

namespace lserve {

class Engine;

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  int port = 8000;          // 0: any free port (see HttpServer::port)
  std::string api_key;      // empty: no authentication
  size_t max_body_bytes = size_t{8} << 20;
  size_t max_header_bytes = size_t{64} << 10;  // all header lines together
  size_t max_header_count = 100;
  // Connection threads. A streaming request holds one for its whole life,
  // so this should exceed running + queued requests.
  int threads = 96;
  int retry_after_seconds = 1;  // Retry-After of 503 answers
  // Accept fields outside the OpenAI / vLLM set instead of a 400.
  bool allow_unknown_fields = false;
  // Accept a request's own chat_template (rendered in the sandboxed template
  // engine under the model template's limits) instead of a 400.
  bool trust_request_chat_template = false;
};

class HttpServer {
 public:
  explicit HttpServer(HttpServerOptions options);
  ~HttpServer();  // Stop()
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds the listening socket and starts serving on background threads.
  // Until AttachEngine, /health and every API route answer 503 (loading).
  // InvalidArgument when the address cannot be bound.
  Status Start();
  // The bound port (the chosen one when options.port was 0); 0 before Start.
  int port() const;

  // The engine is loaded: requests are served. `engine` must outlive Stop().
  void AttachEngine(Engine* engine);
  // Readiness goes off: /health and new requests answer 503; requests in
  // flight go on.
  void BeginDrain();
  // Blocks until no request is in flight (its last byte written) or
  // `timeout` passes; true when idle.
  bool WaitIdle(std::chrono::milliseconds timeout);
  // Closes the listening socket and joins the server threads (up to the
  // keep-alive timeout for idle connections). Streams still open are cut.
  // Idempotent.
  void Stop();

  metrics::ServerMetrics& metrics();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lserve
