// The small routes (/v1/models, /tokenize, /detokenize, /metrics), the
// reply helpers and the client-connection probe.
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <mutex>

#include "server/http_routes.h"
#include "server/request_json.h"
#include "tokenizer/model_text.h"

namespace lserve::http {
namespace {

// "a.b.c.d" / IPv6 text and port of a socket address, as httplib writes
// them into Request::remote_addr / local_addr.
bool AddressOf(const sockaddr_storage& addr, std::string* host, int* port) {
  char text[INET6_ADDRSTRLEN] = {};
  if (addr.ss_family == AF_INET) {
    const auto* in = reinterpret_cast<const sockaddr_in*>(&addr);
    if (inet_ntop(AF_INET, &in->sin_addr, text, sizeof(text)) == nullptr) return false;
    *port = ntohs(in->sin_port);
  } else if (addr.ss_family == AF_INET6) {
    const auto* in6 = reinterpret_cast<const sockaddr_in6*>(&addr);
    if (inet_ntop(AF_INET6, &in6->sin6_addr, text, sizeof(text)) == nullptr) return false;
    *port = ntohs(in6->sin6_port);
  } else {
    return false;
  }
  *host = text;
  return true;
}

bool SocketMatches(int fd, const httplib::Request& request) {
  sockaddr_storage local{}, peer{};
  socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return false;
  if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) return false;
  std::string local_host, peer_host;
  int local_port = -1, peer_port = -1;
  if (!AddressOf(local, &local_host, &local_port) || !AddressOf(peer, &peer_host, &peer_port)) return false;
  return local_port == request.local_port && peer_port == request.remote_port && peer_host == request.remote_addr &&
         local_host == request.local_addr;
}

// Calls `visit` with each socket descriptor the process holds, until it
// returns false.
template <typename Visit>
void ForEachSocket(Visit visit) {
  DIR* dir = opendir("/proc/self/fd");
  if (dir == nullptr) return;
  while (const dirent* entry = readdir(dir)) {
    char* end = nullptr;
    const long fd = std::strtol(entry->d_name, &end, 10);
    if (end == entry->d_name || *end != '\0' || fd == dirfd(dir)) continue;
    struct stat st {};
    if (fstat(static_cast<int>(fd), &st) != 0 || !S_ISSOCK(st.st_mode)) continue;
    if (!visit(static_cast<int>(fd))) break;
  }
  closedir(dir);
}

}  // namespace

ClientConnection::ClientConnection(const httplib::Request& request) {
  if (request.remote_port < 0 || request.local_port < 0) return;
  ForEachSocket([&](int fd) {
    if (!SocketMatches(fd, request)) return true;
    fd_ = fd;
    return false;
  });
}

bool ClientConnection::Alive() const {
  if (fd_ < 0) return true;
  pollfd p{fd_, POLLIN, 0};
  const int ready = poll(&p, 1, 0);
  if (ready <= 0) return ready == 0 || errno == EINTR;
  if ((p.revents & (POLLERR | POLLNVAL)) != 0) return false;
  char byte = 0;
  const ssize_t n = recv(fd_, &byte, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return true;  // the client sent more (a pipelined request)
  if (n == 0) return false;  // orderly close
  return errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR;
}

void ShutdownConnections(int local_port) {
  ForEachSocket([local_port](int fd) {
    sockaddr_storage local{}, peer{};
    socklen_t local_len = sizeof(local), peer_len = sizeof(peer);
    // Accepted connections have a peer; the listening socket has none.
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &local_len) != 0) return true;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &peer_len) != 0) return true;
    std::string host;
    int port = -1;
    if (AddressOf(local, &host, &port) && port == local_port) shutdown(fd, SHUT_RDWR);
    return true;
  });
}

void SetJson(httplib::Response& response, int status, std::string body) {
  response.status = status;
  response.set_content(std::move(body), kJsonContentType);
}

void SetError(httplib::Response& response, const ApiError& error, int retry_after_seconds) {
  if (error.http_status == 503) response.set_header("Retry-After", std::to_string(retry_after_seconds));
  SetJson(response, error.http_status, ApiErrorBody(error));
}

void SetErrorAndClose(httplib::Response& response, const ApiError& error, int retry_after_seconds) {
  if (error.http_status == 503) response.set_header("Retry-After", std::to_string(retry_after_seconds));
  response.status = error.http_status;
  response.set_header("Connection", "close");
  auto body = std::make_shared<const std::string>(ApiErrorBody(error));
  // A provider that fails after writing the whole body makes httplib end
  // the connection instead of reading the unread request body as the next
  // request.
  response.set_content_provider(body->size(), kJsonContentType,
                                [body](size_t offset, size_t length, httplib::DataSink& sink) {
                                  sink.write(body->data() + offset, length);
                                  return false;
                                });
}

std::optional<ApiError> CheckModel(const std::string& model, const ModelInfo& info) {
  if (model.empty() || model == info.id) return std::nullopt;
  return NotFoundError("model", "The model '" + request_json::Printable(model) + "' does not exist; this server serves '" +
                                    info.id + "'.");
}

void HandleModels(const RouteContext& context, httplib::Response& response) {
  const ModelInfo& info = context.engine->model_info();
  SetJson(response, 200, JsonText(ModelsResponse(info.id, context.created, info.max_model_len)));
}

void HandleModel(const RouteContext& context, std::string_view id, httplib::Response& response) {
  const ModelInfo& info = context.engine->model_info();
  if (std::optional<ApiError> error = CheckModel(std::string(id), info)) return SetError(response, *error);
  nlohmann::ordered_json list = ModelsResponse(info.id, context.created, info.max_model_len);
  SetJson(response, 200, JsonText(list["data"][0]));
}

ParseResult<RenderedChat> RenderRequestChat(const Engine& engine, const nlohmann::ordered_json& messages,
                                            bool add_generation_prompt,
                                            const std::optional<std::string>& chat_template,
                                            const nlohmann::ordered_json& chat_template_kwargs) {
  nlohmann::ordered_json variables = chat_template_kwargs;
  std::optional<std::string> source = chat_template;
  if (variables.is_object() && variables.contains("chat_template")) {
    const auto& given = variables["chat_template"];
    if (!given.is_string()) {
      return InvalidRequest("chat_template_kwargs", "chat_template_kwargs.chat_template must be a string");
    }
    if (!source) source = given.get<std::string>();
    variables.erase("chat_template");
  }
  const ChatTemplate* model_template = engine.chat_template();
  std::optional<ChatTemplate> own;
  if (source) {
    Result<ChatTemplate> compiled =
        ChatTemplate::Compile(*source, model_template != nullptr ? model_template->limits() : ChatTemplateLimits{});
    if (!compiled.ok()) return ApiErrorFromStatus(compiled.status(), "chat_template");
    own = std::move(*compiled);
  }
  const ChatTemplate* use = own ? &*own : model_template;
  if (use == nullptr) {
    return InvalidRequest("messages", "This model has no chat template; send a prompt instead of messages.");
  }
  Result<RenderedChat> rendered = RenderChat(*use, engine.tokenizer(), messages, add_generation_prompt, variables);
  if (!rendered.ok()) return ApiErrorFromStatus(rendered.status(), "messages");
  return std::move(*rendered);
}

void HandleTokenize(const RouteContext& context, const std::string& body, httplib::Response& response) {
  ParseResult<TokenizeRequest> parsed = ParseTokenizeRequest(body, context.limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) return SetError(response, *error);
  const TokenizeRequest& request = std::get<TokenizeRequest>(parsed);
  const Engine& engine = *context.engine;
  if (std::optional<ApiError> error = CheckModel(request.model, engine.model_info())) {
    return SetError(response, *error);
  }
  const Tokenizer& tokenizer = engine.tokenizer();
  std::vector<int32_t> ids;
  if (request.is_chat) {
    ParseResult<RenderedChat> rendered =
        RenderRequestChat(engine, request.messages_json, request.add_generation_prompt, request.chat_template,
                          request.chat_template_kwargs);
    if (auto* error = std::get_if<ApiError>(&rendered)) return SetError(response, *error);
    RenderedChat& chat = std::get<RenderedChat>(rendered);
    if (request.add_special_tokens) {
      Result<std::vector<int32_t>> encoded = tokenizer.Encode(chat.text, true);
      if (!encoded.ok()) return SetError(response, ApiErrorFromStatus(encoded.status(), "messages"));
      ids = std::move(*encoded);
    } else {
      ids = std::move(chat.ids);
    }
  } else {
    Result<std::vector<int32_t>> encoded = tokenizer.Encode(request.prompt, request.add_special_tokens);
    if (!encoded.ok()) return SetError(response, ApiErrorFromStatus(encoded.status(), "prompt"));
    ids = std::move(*encoded);
  }
  std::vector<std::string> token_strs;
  if (request.return_token_strs) {
    token_strs.reserve(ids.size());
    for (int32_t id : ids) token_strs.push_back(tokenizer.IdToToken(id).value_or(""));
  }
  SetJson(response, 200,
          JsonText(TokenizeResponse(ids, engine.model_info().max_model_len,
                                    request.return_token_strs ? &token_strs : nullptr)));
}

void HandleDetokenize(const RouteContext& context, const std::string& body, httplib::Response& response) {
  ParseResult<DetokenizeRequest> parsed = ParseDetokenizeRequest(body, context.limits);
  if (auto* error = std::get_if<ApiError>(&parsed)) return SetError(response, *error);
  const DetokenizeRequest& request = std::get<DetokenizeRequest>(parsed);
  if (std::optional<ApiError> error = CheckModel(request.model, context.engine->model_info())) {
    return SetError(response, *error);
  }
  SetJson(response, 200, JsonText(DetokenizeResponse(context.engine->tokenizer().Decode(request.tokens))));
}

void HandleMetrics(metrics::ServerMetrics& m, const Engine* engine, httplib::Response& response) {
  if (engine != nullptr) {
    const EngineStats stats = engine->Stats();
    m.queue_depth().Set(static_cast<double>(stats.queue_depth));
    m.running_sequences().Set(static_cast<double>(stats.running));
    using metrics::KvPool;
    m.kv_pages_used(KvPool::kRetrieval).Set(static_cast<double>(stats.kv_pages_used_retrieval));
    m.kv_pages_total(KvPool::kRetrieval).Set(static_cast<double>(stats.kv_pages_total_retrieval));
    m.kv_pages_used(KvPool::kStreaming).Set(static_cast<double>(stats.kv_pages_used_streaming));
    m.kv_pages_total(KvPool::kStreaming).Set(static_cast<double>(stats.kv_pages_total_streaming));
    // The engine's totals only grow; the counters catch up to them. One
    // lock so that two scrapes at once cannot both add the same difference.
    static std::mutex catch_up_mutex;
    std::lock_guard<std::mutex> lock(catch_up_mutex);
    auto catch_up = [](metrics::Counter& counter, int64_t total) {
      const double gap = static_cast<double>(total) - counter.Value();
      if (gap > 0) counter.Inc(gap);
    };
    using metrics::AttentionPhase;
    catch_up(m.preemptions(), stats.preemptions);
    catch_up(m.sparse_blocks_visited(AttentionPhase::kPrefill), stats.prefill_blocks_visited);
    catch_up(m.sparse_blocks_dense(AttentionPhase::kPrefill), stats.prefill_blocks_dense);
    catch_up(m.sparse_blocks_visited(AttentionPhase::kDecode), stats.decode_pages_read);
    catch_up(m.sparse_blocks_dense(AttentionPhase::kDecode), stats.decode_pages_dense);
  }
  response.status = 200;
  response.set_content(m.Render(), std::string(metrics::kContentType));
}

}  // namespace lserve::http
