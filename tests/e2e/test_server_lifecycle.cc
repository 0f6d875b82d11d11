// `lserve serve` from start to exit: readiness while loading, API keys on
// every non-public route (RELIABILITY.md C24), graceful shutdown on SIGTERM
// (D31), exit codes for bad flags and models, and the official `openai`
// Python client against it.
#include <gtest/gtest.h>

#include <cstdlib>

#include "server_client.h"

namespace lserve::e2e {
namespace {

constexpr const char* kModel = "qwen2_tied";

TEST(ServerLifecycle, HealthIs503WhileLoadingThen200) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--load-delay-ms", "1000"}, /*wait_ready=*/false))
      << server.Stderr();
  const HttpResponse loading = Get(server.port(), "/health");
  EXPECT_EQ(loading.status, 503) << loading.body;
  EXPECT_EQ(loading.json()["error"]["type"], "unavailable_error");
  EXPECT_EQ(loading.header("retry-after"), "1");
  EXPECT_EQ(Get(server.port(), "/v1/models").status, 503);
  EXPECT_EQ(Post(server.port(), "/v1/completions", {{"prompt", "x"}}).status, 503);
  EXPECT_EQ(Get(server.port(), "/metrics").status, 200);
  int status = 0;
  for (int attempt = 0; attempt < 1000 && status != 200; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    status = Get(server.port(), "/health").status;
  }
  EXPECT_EQ(status, 200);
  EXPECT_NE(server.Stderr().find(std::string("lserve: serving ") + kModel + " on http://127.0.0.1:"),
            std::string::npos)
      << server.Stderr();
  EXPECT_EQ(Post(server.port(), "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}).status, 200);
}

TEST(ServerLifecycle, TrustedRequestChatTemplatesRenderInTheSandbox) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--trust-request-chat-template"})) << server.Stderr();
  const int port = server.port();
  const Json messages = {{{"role", "user"}, {"content", "hi there"}}};
  const Json plain = Post(port, "/tokenize", {{"prompt", "<<hi there>>"}, {"add_special_tokens", false}}).json();
  const std::string source = "{% for m in messages %}<<{{ m.content }}>>{% endfor %}{{ suffix | default('') }}";
  const Json own =
      Post(port, "/tokenize", {{"messages", messages}, {"chat_template", source}, {"add_special_tokens", false}}).json();
  EXPECT_EQ(own["tokens"], plain["tokens"]) << own;
  // The template may come in chat_template_kwargs too, and read the other variables.
  const Json with_suffix =
      Post(port, "/tokenize",
           {{"messages", messages}, {"chat_template_kwargs", {{"chat_template", source}, {"suffix", "!"}}},
            {"add_special_tokens", false}})
          .json();
  const Json plain_suffix = Post(port, "/tokenize", {{"prompt", "<<hi there>>!"}, {"add_special_tokens", false}}).json();
  EXPECT_EQ(with_suffix["tokens"], plain_suffix["tokens"]) << with_suffix;
  // Generation uses it: a template that renders no text has nothing to prompt with.
  const HttpResponse empty =
      Post(port, "/v1/chat/completions", {{"messages", messages}, {"chat_template", "{% if false %}x{% endif %}"}});
  EXPECT_EQ(empty.status, 400) << empty.body;
  const HttpResponse chat = Post(port, "/v1/chat/completions",
                                 {{"messages", messages}, {"chat_template", source}, {"max_tokens", 2}});
  EXPECT_EQ(chat.status, 200) << chat.body;
  // Broken templates are a 400 naming the field; the sandbox holds.
  for (const auto& [bad, param] : std::vector<std::pair<std::string, std::string>>{
           {"{% for %}", "chat_template"},
           {"{% include 'x' %}", "chat_template"},
           {"{{ raise_exception('no thanks') }}", "messages"},
           {"{% for i in range(100000000) %}{{ i }}{% endfor %}", ""}}) {
    const HttpResponse r = Post(port, "/tokenize", {{"messages", messages}, {"chat_template", bad}});
    EXPECT_TRUE(r.status == 400) << bad << " -> " << r.status << " " << r.body;
    if (!param.empty()) {
      EXPECT_EQ(r.json()["error"]["param"], param) << r.body;
    }
  }
  EXPECT_EQ(Get(port, "/health").status, 200);
}

TEST(ServerLifecycle, ApiKeyGuardsEveryNonPublicRoute) {
  const std::string key = "sk-test-Key_0123456789";
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--api-key", key})) << server.Stderr();
  const int port = server.port();
  const std::vector<std::pair<std::string, std::string>> routes = {
      {"GET", "/v1/models"},        {"POST", "/v1/completions"}, {"POST", "/v1/chat/completions"},
      {"POST", "/tokenize"},        {"POST", "/detokenize"},     {"GET", std::string("/v1/models/") + kModel},
      {"GET", "//v1/models"},       {"GET", "/v1/../v1/models"}, {"GET", "/%2Fv1/models"},
      {"GET", "/v1/models/"},       {"GET", "/nothing"},         {"DELETE", "/v1/models"}};
  std::string upper = key;
  for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  const std::vector<std::vector<std::pair<std::string, std::string>>> wrong = {
      {},
      {{"Authorization", "Bearer "}},
      {{"Authorization", "Bearer wrong"}},
      {{"Authorization", "Bearer " + upper}},
      {{"Authorization", "Bearer " + key.substr(0, key.size() - 1)}},
      {{"Authorization", "Bearer " + key + "x"}},
      {{"Authorization", "Basic " + key}},
      {{"Authorization", key}},
      {{"X-Api-Key", key}},
      {{"Authorization", "Bearer " + key}, {"Authorization", "Bearer " + key}},
  };
  for (const auto& [method, path] : routes) {
    for (const auto& headers : wrong) {
      const HttpResponse r = Request(port, method, path, method == "POST" ? "{}" : "", headers);
      EXPECT_EQ(r.status, 401) << method << " " << path << " " << (headers.empty() ? "" : headers[0].second);
      EXPECT_EQ(r.json()["error"]["type"], "authentication_error") << r.body;
    }
  }
  // The public allowlist answers without a key; the right key opens the rest.
  EXPECT_EQ(Get(port, "/health").status, 200);
  EXPECT_EQ(Get(port, "/metrics").status, 200);
  const std::vector<std::pair<std::string, std::string>> auth = {{"Authorization", "Bearer " + key}};
  EXPECT_EQ(Get(port, "/v1/models", auth).status, 200);
  EXPECT_EQ(Get(port, "/v1/models", {{"Authorization", "bearer  " + key}}).status, 200);
  EXPECT_EQ(Post(port, "/v1/completions", {{"prompt", "x"}, {"max_tokens", 2}}, auth).status, 200);
  EXPECT_EQ(Get(port, "//v1/models", auth).status, 404);
}

// The first event of a long stream, then the signal.
struct LongStream {
  explicit LongStream(int port) : connection(port) {
    const Json body = {{"prompt", "Tell a very long story"}, {"max_tokens", 800}, {"temperature", 0},
                       {"ignore_eos", true}, {"stream", true}};
    connection.SendRequest("POST", "/v1/completions", body.dump());
    HttpResponse head;
    started = connection.ReadHead(&head) && head.status == 200 && connection.NextSseData().has_value();
  }
  // Reads to the end: the finish reason, and whether [DONE] came.
  std::pair<std::string, bool> Finish() {
    std::string finish;
    bool done = false;
    while (std::optional<std::string> data = connection.NextSseData()) {
      if (*data == "[DONE]") {
        done = true;
        continue;
      }
      const Json chunk = Json::parse(*data, nullptr, false);
      if (chunk.is_discarded()) return {"bad event", false};
      for (const Json& c : chunk["choices"]) {
        if (c["finish_reason"].is_string()) finish = c["finish_reason"];
      }
    }
    return {finish, done};
  }
  HttpConnection connection;
  bool started = false;
};

TEST(ServerLifecycle, SigtermDrainsInFlightRequestsThenExitsZero) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--max-model-len", "2048", "--shutdown-timeout", "60"}))
      << server.Stderr();
  const int port = server.port();
  LongStream stream(port);
  ASSERT_TRUE(stream.started);
  server.Signal(SIGTERM);
  // Readiness goes off at once and new requests are turned away...
  int health = 0;
  for (int attempt = 0; attempt < 300 && health != 503; ++attempt) {
    health = Get(port, "/health").status;
    if (health != 503) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(health, 503);
  const HttpResponse refused = Post(port, "/v1/completions", {{"prompt", "late"}, {"max_tokens", 2}});
  EXPECT_EQ(refused.status, 503) << refused.body;
  EXPECT_EQ(refused.header("retry-after"), "1");
  // ...while the request in flight runs to its end.
  const auto [finish, done] = stream.Finish();
  EXPECT_EQ(finish, "length");
  EXPECT_TRUE(done);
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(20)), 0) << server.Stderr();
}

TEST(ServerLifecycle, SigtermWithZeroTimeoutAbortsInFlight) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--max-model-len", "2048", "--shutdown-timeout", "0"}))
      << server.Stderr();
  LongStream stream(server.port());
  ASSERT_TRUE(stream.started);
  const auto signalled = std::chrono::steady_clock::now();
  server.Signal(SIGTERM);
  const auto [finish, done] = stream.Finish();
  EXPECT_EQ(finish, "abort");
  EXPECT_TRUE(done);
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(10)), 0) << server.Stderr();
  EXPECT_LT(std::chrono::steady_clock::now() - signalled, std::chrono::seconds(8));
}

TEST(ServerLifecycle, IdleServerExitsZeroOnSigint) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel)})) << server.Stderr();
  server.Signal(SIGINT);
  EXPECT_EQ(server.WaitExit(std::chrono::seconds(10)), 0) << server.Stderr();
}

TEST(ServerLifecycle, BadFlagsAndModelsExitTwo) {
  const std::string model = FixtureModel(kModel);
  for (const std::vector<std::string>& args : std::vector<std::vector<std::string>>{
           {"--model", "/nonexistent/model"},
           {"--model", model, "--port", "70000"},
           {"--model", model, "--page-size", "20"},
           {"--model", model, "--attention", "sparse"},
           {"--model", model, "--max-model-len", "100000000"},
           {"--model", model, "--host", "256.1.1.1"},
           {"--model", model, "--unknown-flag"}}) {
    std::vector<std::string> full = {"serve", "--port", "0"};
    full.insert(full.end(), args.begin(), args.end());
    const CliResult r = RunLserve(full);
    EXPECT_EQ(r.exit_code, 2) << args.back() << "\n" << r.err;
  }
  // A port in use.
  ServerProcess first;
  ASSERT_TRUE(first.Start({"--model", model})) << first.Stderr();
  const CliResult taken = RunLserve({"serve", "--model", model, "--port", std::to_string(first.port())});
  EXPECT_EQ(taken.exit_code, 2) << taken.err;
}

TEST(ServerLifecycle, OpenAiPythonClient) {
  if (std::system("python3 -c 'import openai' >/dev/null 2>&1") != 0) {
    GTEST_SKIP() << "python3 with the openai package is not installed";
  }
  const std::string key = "sk-python";
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--api-key", key})) << server.Stderr();
  const std::string out = TempPath("openai_check.txt");
  const std::string command = "python3 " + SourcePath("tests/e2e/openai_client_check.py") + " http://127.0.0.1:" +
                              std::to_string(server.port()) + "/v1 " + kModel + " " + key + " > " + out + " 2>&1";
  const int rc = std::system(command.c_str());
  EXPECT_EQ(rc, 0) << ReadFile(out);
  ::unlink(out.c_str());
}

}  // namespace
}  // namespace lserve::e2e
