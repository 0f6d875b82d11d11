// HttpServer: the httplib server, the checks made before a body is read,
// body reading under the size cap, dispatch to the route handlers, and the
// lifecycle (loading -> ready -> draining -> stopped).
#include "server/http_server.h"

#include <sys/socket.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <mutex>
#include <optional>
#include <string_view>
#include <thread>
#include <utility>

#include "server/http_routes.h"
#include "server/request_json.h"

namespace lserve {
namespace {

using http::InFlightToken;
using http::SetError;
using http::SetErrorAndClose;
using http::SetJson;

enum class ServerState { kLoading, kReady, kDraining, kStopped };

enum class RouteId { kCompletions, kChatCompletions, kModels, kModel, kTokenize, kDetokenize, kHealth, kMetrics };

struct Route {
  RouteId id;
  std::string_view method;  // "GET" routes answer HEAD too
  // Answered without an API key (RELIABILITY.md C24: an explicit allowlist).
  bool is_public = false;
  // Counted in lserve_requests_total.
  bool is_generation = false;
};

// Exact paths only: "/v1/models/" (trailing slash), "//v1/models" or
// "/v1/../v1/models" are no route (and need the API key like any other path).
std::optional<Route> FindRoute(std::string_view path) {
  if (path == "/v1/completions") return Route{RouteId::kCompletions, "POST", false, true};
  if (path == "/v1/chat/completions") return Route{RouteId::kChatCompletions, "POST", false, true};
  if (path == "/v1/models") return Route{RouteId::kModels, "GET", false, false};
  if (path == "/tokenize") return Route{RouteId::kTokenize, "POST", false, false};
  if (path == "/detokenize") return Route{RouteId::kDetokenize, "POST", false, false};
  if (path == "/health") return Route{RouteId::kHealth, "GET", true, false};
  if (path == "/metrics") return Route{RouteId::kMetrics, "GET", true, false};
  constexpr std::string_view kModelPrefix = "/v1/models/";
  if (path.size() > kModelPrefix.size() && path.substr(0, kModelPrefix.size()) == kModelPrefix) {
    return Route{RouteId::kModel, "GET", false, false};
  }
  return std::nullopt;
}

bool MethodAllowed(const Route& route, std::string_view method) {
  return method == route.method || (route.method == "GET" && method == "HEAD");
}

std::string_view Trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// Compares without an early exit: the time taken depends on the length of
// `given` only, never on how much of the key it matches (or on the key's
// length).
bool KeyMatches(std::string_view given, std::string_view key) {
  if (key.empty()) return false;
  unsigned diff = given.size() != key.size() ? 1u : 0u;
  for (size_t i = 0; i < given.size(); ++i) {
    diff |= static_cast<unsigned char>(given[i]) ^ static_cast<unsigned char>(key[i % key.size()]);
  }
  return diff == 0;
}

// "Authorization: Bearer <key>" (the scheme is case-insensitive, the key is not).
bool Authorized(const httplib::Request& request, const std::string& api_key) {
  if (request.get_header_value_count("Authorization") != 1) return false;
  const std::string value = request.get_header_value("Authorization");
  std::string_view v = Trim(value);
  constexpr std::string_view kScheme = "bearer ";
  if (v.size() <= kScheme.size() || Lower(v.substr(0, kScheme.size())) != kScheme) return false;
  return KeyMatches(Trim(v.substr(kScheme.size())), api_key);
}

ApiError Make(int status, std::string_view message, std::string_view code) {
  return ApiError{status, "invalid_request_error", std::string(message), "", std::string(code)};
}

// The header lines the client sent (httplib adds REMOTE_ADDR, REMOTE_PORT,
// LOCAL_ADDR and LOCAL_PORT to the map before routing).
bool AddedByHttplib(const std::string& key) {
  return key == "REMOTE_ADDR" || key == "REMOTE_PORT" || key == "LOCAL_ADDR" || key == "LOCAL_PORT";
}

// A request whose body is on the wire; an answer given before reading it
// must close the connection.
bool HasBody(const httplib::Request& request) {
  if (request.has_header("Transfer-Encoding")) return true;
  const std::string length = request.get_header_value("Content-Length");
  return !length.empty() && length != "0";
}

// Content-Length as digits only (httplib would read "abc" as 0 and "-1" as
// 2^64 - 1).
std::optional<uint64_t> ParseContentLength(std::string_view text) {
  text = Trim(text);
  if (text.empty() || text.size() > 19) return std::nullopt;
  uint64_t value = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    value = value * 10 + static_cast<uint64_t>(c - '0');
  }
  return value;
}

// Checks of a POST body's framing and type, before it is read.
std::optional<ApiError> CheckBodyHeaders(const httplib::Request& request, size_t max_body_bytes) {
  if (request.get_header_value_count("Content-Type") > 1) {
    return Make(400, "Content-Type is given more than once.", "");
  }
  if (request.has_header("Content-Type")) {
    const std::string type = request.get_header_value("Content-Type");
    const std::string media = Lower(Trim(std::string_view(type).substr(0, type.find(';'))));
    if (media != "application/json") return UnsupportedMediaType(type);
  }
  if (request.has_header("Content-Encoding")) {
    const std::string encoding = Lower(Trim(request.get_header_value("Content-Encoding")));
    if (encoding != "identity" && encoding != "gzip" && encoding != "deflate" && encoding != "br") {
      return Make(415, "Content-Encoding '" + encoding.substr(0, 64) + "' is not supported.",
                  "unsupported_media_type");
    }
  }
  const bool chunked = request.has_header("Transfer-Encoding");
  const size_t lengths = request.get_header_value_count("Content-Length");
  if (chunked) {
    if (Lower(Trim(request.get_header_value("Transfer-Encoding"))) != "chunked" ||
        request.get_header_value_count("Transfer-Encoding") != 1) {
      return Make(400, "Transfer-Encoding must be 'chunked'.", "");
    }
    if (lengths != 0) return Make(400, "A request may not carry both Content-Length and Transfer-Encoding.", "");
    return std::nullopt;  // counted while read
  }
  if (lengths == 0) return Make(411, "A request body needs a Content-Length (or chunked encoding).", "length_required");
  if (lengths > 1) return Make(400, "Content-Length is given more than once.", "");
  const std::optional<uint64_t> length = ParseContentLength(request.get_header_value("Content-Length"));
  if (!length) return Make(400, "Content-Length must be a non-negative integer.", "");
  if (*length > max_body_bytes) return PayloadTooLarge(static_cast<int64_t>(max_body_bytes));
  return std::nullopt;
}

// httplib's ThreadPool listens with a backlog of 5; a burst of clients
// would wait out SYN retransmissions. listen() on a listening socket only
// updates its backlog.
class ListeningServer : public httplib::Server {
 public:
  void WidenBacklog(int backlog) {
    const auto sock = svr_sock_.load();
    if (sock != INVALID_SOCKET) ::listen(sock, backlog);
  }
};

}  // namespace

struct HttpServer::Impl {
  explicit Impl(HttpServerOptions o) : options(std::move(o)) {}

  HttpServerOptions options;
  ListeningServer server;
  std::thread listener;
  std::atomic<bool> listener_done{false};
  std::atomic<ServerState> state{ServerState::kLoading};
  int bound_port = 0;
  metrics::ServerMetrics server_metrics;
  http::RouteContext context;

  std::mutex in_flight_mutex;
  std::condition_variable in_flight_changed;
  int64_t in_flight = 0;

  InFlightToken EnterRequest() {
    {
      std::lock_guard<std::mutex> lock(in_flight_mutex);
      ++in_flight;
    }
    return InFlightToken(static_cast<void*>(this), [](void* self) {
      Impl* impl = static_cast<Impl*>(self);
      std::lock_guard<std::mutex> lock(impl->in_flight_mutex);
      if (--impl->in_flight == 0) impl->in_flight_changed.notify_all();
    });
  }

  void CountRejected(const Route& route) {
    if (route.is_generation) server_metrics.requests(metrics::RequestOutcome::kRejected).Inc();
  }

  // Everything decided from the request line and headers. Handled: the
  // answer is set (and the body, if any, left unread).
  httplib::Server::HandlerResponse PreRoute(const httplib::Request& request, httplib::Response& response) {
    using HR = httplib::Server::HandlerResponse;
    const int retry = options.retry_after_seconds;
    auto reject = [&](const ApiError& error) {
      if (HasBody(request)) {
        SetErrorAndClose(response, error, retry);
      } else {
        SetError(response, error, retry);
      }
      return HR::Handled;
    };

    size_t header_count = 0, header_bytes = 0;
    for (const auto& [key, value] : request.headers) {
      if (AddedByHttplib(key)) continue;
      ++header_count;
      header_bytes += key.size() + value.size() + 4;
    }
    if (header_count > options.max_header_count || header_bytes > options.max_header_bytes) {
      return reject(HeadersTooLarge("Request headers are too large (at most " +
                                    std::to_string(options.max_header_count) + " headers and " +
                                    std::to_string(options.max_header_bytes) + " bytes)."));
    }

    const std::optional<Route> route = FindRoute(request.path);
    const bool is_public = route && route->is_public;
    if (!options.api_key.empty() && !is_public && !Authorized(request, options.api_key)) {
      if (route) CountRejected(*route);
      response.set_header("WWW-Authenticate", "Bearer");
      return reject(Unauthorized("Invalid or missing API key (Authorization: Bearer <key>)."));
    }
    if (!route) {
      return reject(NotFoundError("", "No route for " + std::string(request.method) + " " +
                                          request_json::Printable(request.path) + "."));
    }
    if (!MethodAllowed(*route, request.method)) {
      CountRejected(*route);
      response.set_header("Allow", route->method == "GET" ? "GET, HEAD" : std::string(route->method));
      return reject(Make(405, "Method " + request_json::Printable(request.method) + " is not allowed on " +
                                  request.path + "; use " + std::string(route->method) + ".",
                         "method_not_allowed"));
    }
    if (!is_public) {
      const ServerState s = state.load();
      if (s == ServerState::kLoading) {
        CountRejected(*route);
        return reject(ServiceUnavailable("The model is loading."));
      }
      if (s != ServerState::kReady) {
        CountRejected(*route);
        return reject(ServiceUnavailable("The server is shutting down."));
      }
    }
    if (route->method == "POST") {
      if (std::optional<ApiError> error = CheckBodyHeaders(request, options.max_body_bytes)) {
        CountRejected(*route);
        return reject(*error);
      }
    }
    return HR::Unhandled;
  }

  void ServeGet(const httplib::Request& request, httplib::Response& response) {
    const std::optional<Route> route = FindRoute(request.path);
    if (!route) return;  // PreRoute answered
    const InFlightToken token = EnterRequest();
    switch (route->id) {
      case RouteId::kHealth:
        ServeHealth(response);
        return;
      case RouteId::kMetrics:
        // Public, so it also answers while loading: the engine pointer is
        // read only once the state says it was set.
        http::HandleMetrics(server_metrics, state.load() == ServerState::kLoading ? nullptr : context.engine, response);
        return;
      case RouteId::kModels:
        http::HandleModels(context, response);
        return;
      case RouteId::kModel:
        http::HandleModel(context, std::string_view(request.path).substr(std::strlen("/v1/models/")), response);
        return;
      default:
        return;
    }
  }

  void ServePost(const httplib::Request& request, httplib::Response& response,
                 const httplib::ContentReader& content_reader) {
    const std::optional<Route> route = FindRoute(request.path);
    if (!route) return;
    InFlightToken token = EnterRequest();
    std::string body;
    bool too_large = false;
    const bool read = content_reader([&](const char* data, size_t size) {
      if (body.size() + size > options.max_body_bytes) {
        too_large = true;
        return false;
      }
      body.append(data, size);
      return true;
    });
    if (too_large || !read) {
      CountRejected(*route);
      SetErrorAndClose(response,
                       too_large ? PayloadTooLarge(static_cast<int64_t>(options.max_body_bytes))
                                 : Make(400, "The request body could not be read (framing or encoding).", ""),
                       options.retry_after_seconds);
      return;
    }
    switch (route->id) {
      case RouteId::kCompletions:
        http::HandleCompletions(context, request, body, std::move(token), response);
        return;
      case RouteId::kChatCompletions:
        http::HandleChatCompletions(context, request, body, std::move(token), response);
        return;
      case RouteId::kTokenize:
        http::HandleTokenize(context, body, response);
        return;
      case RouteId::kDetokenize:
        http::HandleDetokenize(context, body, response);
        return;
      default:
        return;
    }
  }

  // Readiness: 200 only while serving and while the engine says it can.
  void ServeHealth(httplib::Response& response) {
    const ServerState s = state.load();
    if (s == ServerState::kLoading) return SetError(response, ServiceUnavailable("The model is loading."));
    if (s != ServerState::kReady) return SetError(response, ServiceUnavailable("The server is shutting down."));
    if (!context.engine->Stats().ready) return SetError(response, ServiceUnavailable("The engine is not running."));
    SetJson(response, 200, "{\"status\":\"ok\"}");
  }
};

HttpServer::HttpServer(HttpServerOptions options) : impl_(std::make_unique<Impl>(std::move(options))) {
  impl_->context.metrics = &impl_->server_metrics;
  impl_->context.created = UnixSeconds();
  impl_->context.retry_after_seconds = impl_->options.retry_after_seconds;
  impl_->context.limits.allow_unknown_fields = impl_->options.allow_unknown_fields;
  impl_->context.limits.trust_request_chat_template = impl_->options.trust_request_chat_template;
}

HttpServer::~HttpServer() { Stop(); }

Status HttpServer::Start() {
  Impl& s = *impl_;
  httplib::Server& server = s.server;
  const int threads = std::max(4, s.options.threads);
  server.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<size_t>(threads)); };
  server.set_keep_alive_max_count(1000);
  // httplib's default also sets SO_REUSEPORT, which would let a second
  // server bind the same port and silently share its connections.
  server.set_socket_options([](int sock) {
    int yes = 1;
    setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
  });
  server.set_payload_max_length(s.options.max_body_bytes);
  server.set_pre_routing_handler(
      [&s](const httplib::Request& request, httplib::Response& response) { return s.PreRoute(request, response); });
  // "Expect: 100-continue": the same checks decide before the client sends
  // its body (httplib would otherwise say 100 Continue first).
  server.set_expect_100_continue_handler([&s](const httplib::Request& request, httplib::Response& response) {
    return s.PreRoute(request, response) == httplib::Server::HandlerResponse::Handled ? response.status : 100;
  });
  server.Get(".*", [&s](const httplib::Request& request, httplib::Response& response) { s.ServeGet(request, response); });
  server.Post(".*", [&s](const httplib::Request& request, httplib::Response& response,
                         const httplib::ContentReader& reader) { s.ServePost(request, response, reader); });
  // Answers httplib makes itself (malformed request line, URI too long, ...)
  // get an OpenAI body too.
  const httplib::Server::HandlerWithResponse error_handler = [](const httplib::Request&, httplib::Response& response) {
    if (!response.body.empty() || response.has_header("Content-Type")) {
      return httplib::Server::HandlerResponse::Unhandled;
    }
    const int status = response.status;
    const std::string message = "The request could not be served (HTTP " + std::to_string(status) + ").";
    SetError(response, status == 404 ? NotFoundError("", message)
                                     : ApiError{status, status >= 500 ? "server_error" : "invalid_request_error",
                                                message, "", ""});
    return httplib::Server::HandlerResponse::Handled;
  };
  server.set_error_handler(error_handler);
  server.set_exception_handler([](const httplib::Request&, httplib::Response& response, std::exception_ptr) {
    SetError(response, InternalServerError("The request failed with an internal error."));
  });

  errno = 0;
  if (s.options.port == 0) {
    s.bound_port = server.bind_to_any_port(s.options.host);
    if (s.bound_port < 0) s.bound_port = 0;
  } else if (server.bind_to_port(s.options.host, s.options.port)) {
    s.bound_port = s.options.port;
  }
  if (s.bound_port == 0) {
    const int err = errno;
    return InvalidArgument("cannot listen on " + s.options.host + ":" + std::to_string(s.options.port) +
                           (err != 0 ? std::string(": ") + std::strerror(err) : std::string()));
  }
  s.server.WidenBacklog(1024);
  s.listener = std::thread([&s] {
    s.server.listen_after_bind();
    s.listener_done.store(true);
  });
  return Status::Ok();
}

int HttpServer::port() const { return impl_->bound_port; }

void HttpServer::AttachEngine(Engine* engine) {
  Impl& s = *impl_;
  s.context.engine = engine;
  s.context.limits.vocab_size = static_cast<int32_t>(engine->model_info().vocab_size);
  ServerState loading = ServerState::kLoading;
  s.state.compare_exchange_strong(loading, ServerState::kReady);
}

void HttpServer::BeginDrain() {
  ServerState s = impl_->state.load();
  while (s == ServerState::kLoading || s == ServerState::kReady) {
    if (impl_->state.compare_exchange_weak(s, ServerState::kDraining)) break;
  }
}

bool HttpServer::WaitIdle(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(impl_->in_flight_mutex);
  return impl_->in_flight_changed.wait_for(lock, timeout, [this] { return impl_->in_flight == 0; });
}

void HttpServer::Stop() {
  Impl& s = *impl_;
  s.state.store(ServerState::kStopped);
  if (!s.listener.joinable()) return;
  // listen_after_bind may not have marked itself running yet: stop() only
  // acts on a running server.
  while (!s.server.is_running() && !s.listener_done.load()) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  s.server.stop();
  // Requests are done (WaitIdle); what is left are idle keep-alive
  // connections, whose threads would otherwise wait out their timeout.
  http::ShutdownConnections(s.bound_port);
  s.listener.join();
}

metrics::ServerMetrics& HttpServer::metrics() { return impl_->server_metrics; }

}  // namespace lserve
