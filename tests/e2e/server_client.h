// What the server tests use: `lserve serve` started as a child process on a
// free port, and a small HTTP/1.1 client over raw sockets (so that tests can
// send malformed requests, read SSE events as they arrive and close a
// connection mid-stream).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "cli_runner.h"

namespace lserve::e2e {

using Json = nlohmann::json;

struct HttpResponse {
  int status = 0;  // 0: no response (connection failed or closed early)
  std::map<std::string, std::string> headers;  // names lowercased
  std::string body;                            // de-chunked

  std::string header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? "" : it->second;
  }
  // The body as JSON; null when it does not parse.
  Json json() const {
    Json j = Json::parse(body, nullptr, /*allow_exceptions=*/false);
    return j.is_discarded() ? Json() : j;
  }
};

// One client connection. Reads wait at most `timeout` for each piece.
class HttpConnection {
 public:
  explicit HttpConnection(int port, std::chrono::milliseconds timeout = std::chrono::seconds(60))
      : timeout_(timeout) {
    fd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(static_cast<uint16_t>(port));
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd_ >= 0 && ::connect(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) Close();
    if (fd_ >= 0) {
      int one = 1;
      setsockopt(fd_, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    }
  }
  ~HttpConnection() { Close(); }
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  bool connected() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

  bool Send(const std::string& bytes) {
    size_t sent = 0;
    while (fd_ >= 0 && sent < bytes.size()) {
      const ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
      if (n <= 0) return false;
      sent += static_cast<size_t>(n);
    }
    return fd_ >= 0;
  }

  // A request with a Content-Length body (or none when `body` is empty and
  // the method is GET).
  bool SendRequest(const std::string& method, const std::string& path, const std::string& body,
                   const std::vector<std::pair<std::string, std::string>>& headers = {},
                   bool content_type_json = true) {
    std::string head = method + " " + path + " HTTP/1.1\r\nHost: 127.0.0.1\r\n";
    if (content_type_json && method == "POST") head += "Content-Type: application/json\r\n";
    for (const auto& [k, v] : headers) head += k + ": " + v + "\r\n";
    if (method != "GET" || !body.empty()) head += "Content-Length: " + std::to_string(body.size()) + "\r\n";
    head += "\r\n";
    return Send(head + body);
  }

  // Status line and headers; false when the connection closed first.
  bool ReadHead(HttpResponse* r) {
    size_t end;
    while ((end = buffer_.find("\r\n\r\n")) == std::string::npos) {
      if (!Fill()) return false;
    }
    const std::string head = buffer_.substr(0, end);
    buffer_.erase(0, end + 4);
    size_t line_end = head.find("\r\n");
    const std::string status_line = head.substr(0, line_end);
    if (status_line.size() < 12) return false;
    r->status = std::atoi(status_line.c_str() + 9);
    while (line_end != std::string::npos) {
      const size_t start = line_end + 2;
      line_end = head.find("\r\n", start);
      const std::string line = head.substr(start, line_end == std::string::npos ? std::string::npos : line_end - start);
      const size_t colon = line.find(':');
      if (colon == std::string::npos) continue;
      std::string name = line.substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = colon + 1;
      while (v < line.size() && line[v] == ' ') ++v;
      r->headers[name] = line.substr(v);
    }
    chunked_ = r->header("transfer-encoding") == "chunked";
    remaining_ = chunked_ || r->header("content-length").empty() ? -1 : std::stoll(r->header("content-length"));
    if (r->status < 200 || r->status == 204 || r->status == 304) remaining_ = 0;  // no body
    return true;
  }

  // The next piece of body: a chunk (chunked) or what arrived; nullopt at
  // the end of the body.
  std::optional<std::string> ReadBodyPiece() {
    if (chunked_) {
      size_t eol;
      while ((eol = buffer_.find("\r\n")) == std::string::npos) {
        if (!Fill()) return std::nullopt;
      }
      const size_t size = std::stoul(buffer_.substr(0, eol), nullptr, 16);
      while (buffer_.size() < eol + 2 + size + 2) {
        if (!Fill()) return std::nullopt;
      }
      std::string data = buffer_.substr(eol + 2, size);
      buffer_.erase(0, eol + 2 + size + 2);
      if (size == 0) return std::nullopt;
      return data;
    }
    if (remaining_ == 0) return std::nullopt;
    if (buffer_.empty() && !Fill()) return std::nullopt;
    std::string data = remaining_ < 0 ? buffer_ : buffer_.substr(0, static_cast<size_t>(remaining_));
    buffer_.erase(0, data.size());
    if (remaining_ > 0) remaining_ -= static_cast<int64_t>(data.size());
    return data;
  }

  HttpResponse ReadResponse() {
    HttpResponse r;
    if (!ReadHead(&r)) return HttpResponse{};
    while (auto piece = ReadBodyPiece()) r.body += *piece;
    return r;
  }

  // The data of the next server-sent event ("data: ..." lines joined);
  // nullopt when the body ended. Comment lines are skipped.
  std::optional<std::string> NextSseData() {
    while (true) {
      const size_t end = sse_.find("\n\n");
      if (end != std::string::npos) {
        const std::string event = sse_.substr(0, end);
        sse_.erase(0, end + 2);
        std::string data;
        size_t pos = 0;
        while (pos <= event.size()) {
          size_t eol = event.find('\n', pos);
          if (eol == std::string::npos) eol = event.size();
          const std::string line = event.substr(pos, eol - pos);
          if (line.rfind("data: ", 0) == 0) data += (data.empty() ? "" : "\n") + line.substr(6);
          pos = eol + 1;
        }
        if (!data.empty()) return data;
        continue;
      }
      std::optional<std::string> piece = ReadBodyPiece();
      if (!piece) {
        sse_trailing_ = sse_;
        return std::nullopt;
      }
      sse_ += *piece;
    }
  }
  // Bytes after the last complete event when the body ended (should be none).
  const std::string& sse_trailing() const { return sse_trailing_; }

 private:
  bool Fill() {
    if (fd_ < 0) return false;
    pollfd p{fd_, POLLIN, 0};
    if (::poll(&p, 1, static_cast<int>(timeout_.count())) <= 0) return false;
    char buf[65536];
    const ssize_t n = ::recv(fd_, buf, sizeof(buf), 0);
    if (n <= 0) return false;
    buffer_.append(buf, static_cast<size_t>(n));
    return true;
  }

  int fd_ = -1;
  std::chrono::milliseconds timeout_;
  std::string buffer_;
  std::string sse_;
  std::string sse_trailing_;
  bool chunked_ = false;
  int64_t remaining_ = -1;
};

inline HttpResponse Request(int port, const std::string& method, const std::string& path, const std::string& body = "",
                            const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  HttpConnection c(port);
  if (!c.SendRequest(method, path, body, headers)) return HttpResponse{};
  return c.ReadResponse();
}
inline HttpResponse Get(int port, const std::string& path,
                        const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return Request(port, "GET", path, "", headers);
}
inline HttpResponse Post(int port, const std::string& path, const Json& body,
                         const std::vector<std::pair<std::string, std::string>>& headers = {}) {
  return Request(port, "POST", path, body.dump(), headers);
}

// The data payloads of an SSE body, in order.
inline std::vector<std::string> SseData(const std::string& body) {
  std::vector<std::string> out;
  size_t pos = 0;
  while (pos < body.size()) {
    size_t end = body.find("\n\n", pos);
    if (end == std::string::npos) end = body.size();
    const std::string event = body.substr(pos, end - pos);
    if (event.rfind("data: ", 0) == 0) out.push_back(event.substr(6));
    pos = end + 2;
  }
  return out;
}

// A Prometheus sample value (the first line that starts with `series`
// followed by a space); nullopt when absent.
inline std::optional<double> MetricValue(const std::string& text, const std::string& series) {
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    const std::string line = text.substr(pos, eol - pos);
    if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    pos = eol + 1;
  }
  return std::nullopt;
}

// `lserve serve --port 0 ...` as a child process; stderr goes to a file
// that Start reads for the port and the ready line.
class ServerProcess {
 public:
  ServerProcess() = default;
  ~ServerProcess() {
    if (pid_ > 0 && Stop() < 0) {
      ::kill(pid_, SIGKILL);
      int status = 0;
      ::waitpid(pid_, &status, 0);
    }
    if (!stderr_path_.empty()) ::unlink(stderr_path_.c_str());
  }
  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Spawns the server. With `wait_ready`, returns once it serves (true) or
  // has exited (false); otherwise once it listens.
  bool Start(const std::vector<std::string>& args, bool wait_ready = true) {
    stderr_path_ = TempPath("serve_stderr");
    std::vector<std::string> argv = {"serve", "--port", "0"};
    argv.insert(argv.end(), args.begin(), args.end());
    pid_ = SpawnLserve(argv, "/dev/null", "/dev/null", stderr_path_);
    if (pid_ < 0) return false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (std::chrono::steady_clock::now() < deadline) {
      const std::string err = Stderr();
      if (port_ == 0) {
        const size_t at = err.find("listening on http://127.0.0.1:");
        if (at != std::string::npos) port_ = std::atoi(err.c_str() + at + std::strlen("listening on http://127.0.0.1:"));
      }
      if (port_ != 0 && (!wait_ready || err.find("lserve: serving ") != std::string::npos)) return true;
      if (Exited()) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return false;
  }

  int port() const { return port_; }
  std::string Stderr() const { return ReadFile(stderr_path_); }
  void Signal(int sig) { ::kill(pid_, sig); }

  // True once the process has ended (its exit code is then exit_code()).
  bool Exited() {
    if (pid_ <= 0) return true;
    int status = 0;
    if (::waitpid(pid_, &status, WNOHANG) != pid_) return false;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    pid_ = -1;
    return true;
  }
  // Waits up to `timeout` for the exit; the code, or -1 when still running.
  int WaitExit(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (!Exited()) {
      if (std::chrono::steady_clock::now() > deadline) return -1;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return exit_code_;
  }
  int exit_code() const { return exit_code_; }
  // SIGTERM, then the exit code (0 for a clean shutdown; under the
  // sanitizers, not 0 when they found something); -1 when still running.
  int Stop(std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    if (pid_ <= 0) return exit_code_;
    Signal(SIGTERM);
    return WaitExit(timeout);
  }

 private:
  pid_t pid_ = -1;
  int port_ = 0;
  int exit_code_ = -1;
  std::string stderr_path_;
};

inline std::string FixtureModel(const std::string& name) { return SourcePath("tests/fixtures/models/" + name); }

}  // namespace lserve::e2e
