// What the route handlers of the HTTP server share (internal to
// src/server): the context they read, the replies they build, and the probe
// that tells whether the client of a request is still connected.
//
// Every handler runs on the connection's own thread (one httplib worker per
// connection) and either fills the Response with a whole body or installs a
// chunked content provider (SSE) that httplib calls on the same thread after
// the handler returns.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include <httplib.h>

#include "lserve/engine.h"

#include "server/api_error.h"
#include "server/metrics.h"
#include "server/openai_protocol.h"
#include "tokenizer/model_text.h"

namespace lserve::http {

// Read-only while requests run (the engine pointer is set once, before the
// first request is routed to a handler that reads it).
struct RouteContext {
  Engine* engine = nullptr;
  ProtocolLimits limits;  // vocab_size from the engine's model
  metrics::ServerMetrics* metrics = nullptr;
  int64_t created = 0;           // Unix seconds at startup: /v1/models "created"
  int retry_after_seconds = 1;   // Retry-After of 503 answers
};

// Keeps the server's count of requests in flight up while it lives; a
// streaming handler moves it into its content provider so that the request
// counts until its last byte is written.
using InFlightToken = std::shared_ptr<void>;

// The socket of the connection that carried a request. httplib 0.11 gives a
// handler no way to it, so it is found once by its local and remote
// addresses among the process's sockets; the connection cannot close while
// its own handler runs, so the descriptor stays the request's.
class ClientConnection {
 public:
  explicit ClientConnection(const httplib::Request& request);
  // False once the client has closed or reset the connection (pending
  // pipelined bytes count as alive). True when the socket was not found.
  bool Alive() const;

 private:
  int fd_ = -1;
};

// Shuts down (without closing: their threads still own the descriptors)
// every accepted connection on `local_port`, so that threads waiting for a
// next request on an idle keep-alive connection return at once.
void ShutdownConnections(int local_port);

// Replies.
inline constexpr const char* kJsonContentType = "application/json";
void SetJson(httplib::Response& response, int status, std::string body);
// The OpenAI error body; 503 answers carry Retry-After.
void SetError(httplib::Response& response, const ApiError& error, int retry_after_seconds = 1);
// As SetError, then closes the connection after the body: for answers given
// before the request body was read, whose bytes must not be parsed as a next
// request on the same connection.
void SetErrorAndClose(httplib::Response& response, const ApiError& error, int retry_after_seconds = 1);

// A 404 model_not_found unless `model` is empty or the served model's id.
// A request never names a path: the model is never opened from it.
std::optional<ApiError> CheckModel(const std::string& model, const ModelInfo& info);

// A chat request's messages rendered and encoded (tokenizer/model_text.h
// RenderChat): with the request's own template when it brought one (in
// chat_template or chat_template_kwargs.chat_template; the parser admits one
// only when the server trusts request templates), else the model's; the
// other chat_template_kwargs are template variables. A 400 naming the field
// at fault otherwise.
ParseResult<RenderedChat> RenderRequestChat(const Engine& engine, const nlohmann::ordered_json& messages,
                                            bool add_generation_prompt,
                                            const std::optional<std::string>& chat_template,
                                            const nlohmann::ordered_json& chat_template_kwargs);

// Route handlers: `body` is the request body, already read within the size
// cap. They answer with SetJson / SetError or a stream.
void HandleCompletions(const RouteContext& context, const httplib::Request& request, const std::string& body,
                       InFlightToken in_flight, httplib::Response& response);
void HandleChatCompletions(const RouteContext& context, const httplib::Request& request, const std::string& body,
                           InFlightToken in_flight, httplib::Response& response);
void HandleTokenize(const RouteContext& context, const std::string& body, httplib::Response& response);
void HandleDetokenize(const RouteContext& context, const std::string& body, httplib::Response& response);
void HandleModels(const RouteContext& context, httplib::Response& response);
// GET /v1/models/{id}.
void HandleModel(const RouteContext& context, std::string_view id, httplib::Response& response);
// Copies the engine's counters (when there is an engine) into the metric
// series and renders them.
void HandleMetrics(metrics::ServerMetrics& metrics, const Engine* engine, httplib::Response& response);

}  // namespace lserve::http
