// The HTTP server over a scripted Engine: what the routes make of every way
// a request can end (a fault mid-stream, a stream that ends without a
// finish, an abort at shutdown) and of every Submit refusal, without a model
// in the way. The real engine's behaviour is tested in tests/e2e.
#include <gtest/gtest.h>

#include <atomic>
#include <deque>
#include <functional>
#include <mutex>
#include <sstream>

#include <httplib.h>
#include <nlohmann/json.hpp>

#include "../fixture_tokenizer.h"
#include "lserve/engine.h"
#include "server/http_server.h"
#include "tokenizer/tokenizer.h"

namespace lserve {
namespace {

using nlohmann::json;

StreamEvent Tokens(std::vector<int32_t> ids, std::string text) {
  StreamEvent e;
  e.token_ids = std::move(ids);
  e.text = std::move(text);
  return e;
}

StreamEvent Finish(FinishKind kind, std::string error = "") {
  StreamEvent e;
  e.finish = kind;
  e.error = std::move(error);
  e.prompt_tokens = 3;
  return e;
}

// Plays a fixed list of events; an empty list is a stream that ends without
// its finish event.
class ScriptedStream : public RequestStream {
 public:
  ScriptedStream(int64_t id, std::deque<StreamEvent> events) : id_(id), events_(std::move(events)) {}
  int64_t id() const override { return id_; }
  std::optional<StreamEvent> Next(std::chrono::milliseconds) override {
    std::lock_guard<std::mutex> lock(mu_);
    if (events_.empty()) return std::nullopt;
    StreamEvent e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  bool finished() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return events_.empty();
  }
  void Cancel() override { cancelled = true; }

  std::atomic<bool> cancelled{false};

 private:
  const int64_t id_;
  mutable std::mutex mu_;
  std::deque<StreamEvent> events_;
};

class ScriptedEngine : public Engine {
 public:
  explicit ScriptedEngine(Tokenizer tokenizer) : tokenizer_(std::move(tokenizer)) {
    info_.id = "scripted";
    info_.vocab_size = 1000;
    info_.max_model_len = 256;
  }
  const ModelInfo& model_info() const override { return info_; }
  const Tokenizer& tokenizer() const override { return tokenizer_; }
  const ChatTemplate* chat_template() const override { return nullptr; }
  Result<std::shared_ptr<RequestStream>> Submit(GenerateRequest request) override {
    std::lock_guard<std::mutex> lock(mu_);
    const int64_t index = submitted_++;
    if (!refusal.ok()) return refusal;
    auto stream = std::make_shared<ScriptedStream>(index, script(index, request));
    streams.push_back(stream);
    return std::shared_ptr<RequestStream>(stream);
  }
  EngineStats Stats() const override {
    EngineStats s;
    s.ready = true;
    return s;
  }
  void Shutdown(std::chrono::milliseconds) override {}

  // The events of the index-th submitted stream.
  std::function<std::deque<StreamEvent>(int64_t, const GenerateRequest&)> script;
  Status refusal = Status::Ok();
  std::vector<std::shared_ptr<ScriptedStream>> streams;

 private:
  Tokenizer tokenizer_;
  ModelInfo info_;
  std::mutex mu_;
  int64_t submitted_ = 0;
};

class FakeEngineServer : public testing::Test {
 protected:
  void SetUp() override {
    engine_ = std::make_unique<ScriptedEngine>(LoadFixtureTokenizer("gpt2"));
    HttpServerOptions options;
    options.port = 0;
    options.threads = 8;
    server_ = std::make_unique<HttpServer>(options);
    ASSERT_TRUE(server_->Start().ok());
    server_->AttachEngine(engine_.get());
  }
  void TearDown() override { server_->Stop(); }

  httplib::Result Post(const std::string& path, const json& body) {
    httplib::Client client("127.0.0.1", server_->port());
    client.set_read_timeout(10, 0);
    return client.Post(path, body.dump(), "application/json");
  }
  double Metric(const std::string& series) {
    httplib::Client client("127.0.0.1", server_->port());
    auto r = client.Get("/metrics");
    EXPECT_TRUE(r);
    std::istringstream lines(r ? r->body : "");
    for (std::string line; std::getline(lines, line);) {
      if (line.rfind(series + " ", 0) == 0) return std::stod(line.substr(series.size() + 1));
    }
    return -1;
  }

  std::unique_ptr<ScriptedEngine> engine_;
  std::unique_ptr<HttpServer> server_;
};

const json kCompletion = {{"prompt", "hello"}, {"max_tokens", 8}};

TEST_F(FakeEngineServer, FaultMidStreamEndsTheStreamWithAnErrorEventAndNoDone) {
  engine_->script = [](int64_t, const GenerateRequest&) {
    return std::deque<StreamEvent>{Tokens({5}, "Hel"), Tokens({6}, "lo"), Finish(FinishKind::kError, "NaN logits")};
  };
  json body = kCompletion;
  body["stream"] = true;
  auto r = Post("/v1/completions", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200);  // the headers went out before the fault
  const std::string& sse = r->body;
  EXPECT_NE(sse.find("\"text\":\"Hel\""), std::string::npos) << sse;
  EXPECT_NE(sse.find("\"text\":\"lo\""), std::string::npos) << sse;
  const size_t error_at = sse.find("data: {\"error\"");
  ASSERT_NE(error_at, std::string::npos) << sse;
  EXPECT_NE(sse.find("Generation failed: NaN logits", error_at), std::string::npos) << sse;
  EXPECT_EQ(sse.find("[DONE]"), std::string::npos) << sse;
  EXPECT_EQ(Metric("lserve_requests_total{status=\"error\"}"), 1);
}

TEST_F(FakeEngineServer, FaultWithoutStreamingIsA500AndCancelsTheOtherChoices) {
  // n = 3: choice 0 faults; choices 1 and 2 would go on but are cancelled.
  engine_->script = [](int64_t index, const GenerateRequest&) {
    if (index == 0) return std::deque<StreamEvent>{Tokens({5}, "a"), Finish(FinishKind::kError, "bad state")};
    return std::deque<StreamEvent>{Tokens({7}, "x"), Tokens({7}, "x"), Finish(FinishKind::kLength)};
  };
  json body = kCompletion;
  body["n"] = 3;
  auto r = Post("/v1/completions", body);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["error"]["type"], "server_error");
  EXPECT_NE(j["error"]["message"].get<std::string>().find("Generation failed: bad state"), std::string::npos);
  ASSERT_EQ(engine_->streams.size(), 3u);
  EXPECT_TRUE(engine_->streams[1]->cancelled);
  EXPECT_TRUE(engine_->streams[2]->cancelled);
  EXPECT_EQ(Metric("lserve_requests_total{status=\"error\"}"), 1);
}

TEST_F(FakeEngineServer, StreamThatEndsWithoutAFinishIsAnError) {
  engine_->script = [](int64_t, const GenerateRequest&) { return std::deque<StreamEvent>{Tokens({5}, "partial")}; };
  auto r = Post("/v1/completions", kCompletion);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 500) << r->body;
  EXPECT_NE(r->body.find("ended without a result"), std::string::npos) << r->body;
}

TEST_F(FakeEngineServer, AbortAtShutdownFinishesWithAbort) {
  engine_->script = [](int64_t, const GenerateRequest&) {
    return std::deque<StreamEvent>{Tokens({5}, "par"), Finish(FinishKind::kAborted)};
  };
  auto r = Post("/v1/completions", kCompletion);
  ASSERT_TRUE(r);
  EXPECT_EQ(r->status, 200) << r->body;
  const json j = json::parse(r->body);
  EXPECT_EQ(j["choices"][0]["text"], "par");
  EXPECT_EQ(j["choices"][0]["finish_reason"], "abort");
  json body = kCompletion;
  body["stream"] = true;
  auto s = Post("/v1/completions", body);
  ASSERT_TRUE(s);
  EXPECT_NE(s->body.find("\"finish_reason\":\"abort\""), std::string::npos) << s->body;
  EXPECT_NE(s->body.find("data: [DONE]"), std::string::npos) << s->body;
}

TEST_F(FakeEngineServer, SubmitRefusalsMapToTheirStatuses) {
  engine_->script = [](int64_t, const GenerateRequest&) { return std::deque<StreamEvent>{}; };
  struct Case {
    Status refusal;
    int status;
    std::string type;
  };
  const std::vector<Case> cases = {
      {Unavailable("queue full"), 503, "unavailable_error"},
      {ResourceExhausted("never fits"), 400, "invalid_request_error"},
      {InvalidArgument("temperature: bad"), 400, "invalid_request_error"},
      {Internal("broken"), 500, "server_error"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.refusal.ToString());
    engine_->refusal = c.refusal;
    auto r = Post("/v1/completions", kCompletion);
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, c.status) << r->body;
    EXPECT_EQ(json::parse(r->body)["error"]["type"], c.type) << r->body;
    if (c.status == 503) {
      EXPECT_EQ(r->get_header_value("Retry-After"), "1");
    }
  }
  EXPECT_TRUE(engine_->streams.empty());
}

}  // namespace
}  // namespace lserve
