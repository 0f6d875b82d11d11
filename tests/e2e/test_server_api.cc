// `lserve serve` endpoint by endpoint: outputs against `lserve generate`,
// streaming against non-streaming, parameters, and the API validation table
// of RELIABILITY.md C14-C21 (each a 400 naming the field, server healthy
// after).
#include <gtest/gtest.h>

#include <cstdlib>
#include <random>
#include <set>

#include "core/utf8.h"
#include "server_client.h"

namespace lserve::e2e {
namespace {

constexpr const char* kModel = "qwen2_tied";
constexpr int64_t kMaxModelLen = 512;

class ServerApi : public testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess();
    ASSERT_TRUE(server_->Start({"--model", FixtureModel(kModel), "--max-model-len", std::to_string(kMaxModelLen),
                                "--page-size", "16", "--max-body-bytes", "1048576"}))
        << server_->Stderr();
    vocab_size_ = Json::parse(ReadFile(FixtureModel(kModel) + "/config.json"))["vocab_size"].get<int64_t>();
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->Stop(), 0) << server_->Stderr();
    delete server_;
    server_ = nullptr;
  }
  void TearDown() override {
    // Whatever a test sent, the server still answers.
    EXPECT_EQ(Get(port(), "/health").status, 200);
  }

  static int port() { return server_->port(); }
  static Json Completion(Json body) {
    body["temperature"] = body.value("temperature", 0.0);
    const HttpResponse r = Post(port(), "/v1/completions", body);
    EXPECT_EQ(r.status, 200) << r.body;
    return r.json();
  }
  // Streams `body` and returns the parsed chunks (every event checked to be
  // valid UTF-8 JSON, the last one [DONE]).
  static std::vector<Json> Stream(const std::string& path, Json body) {
    body["stream"] = true;
    const HttpResponse r = Post(port(), path, body);
    EXPECT_EQ(r.status, 200) << r.body;
    EXPECT_EQ(r.header("content-type"), "text/event-stream");
    const std::vector<std::string> events = SseData(r.body);
    EXPECT_FALSE(events.empty());
    EXPECT_EQ(events.empty() ? "" : events.back(), "[DONE]");
    std::vector<Json> chunks;
    for (size_t i = 0; i + 1 < events.size(); ++i) {
      EXPECT_TRUE(utf8::IsValid(events[i])) << events[i];
      Json j = Json::parse(events[i], nullptr, false);
      EXPECT_FALSE(j.is_discarded()) << events[i];
      if (!j.is_discarded()) chunks.push_back(std::move(j));
    }
    return chunks;
  }
  static void ExpectError(const HttpResponse& r, int status, const std::string& param, const std::string& what) {
    SCOPED_TRACE(what);
    EXPECT_EQ(r.status, status) << r.body;
    const Json j = r.json();
    ASSERT_TRUE(j.contains("error")) << r.body;
    EXPECT_TRUE(j["error"]["message"].is_string());
    EXPECT_TRUE(j["error"]["type"].is_string());
    if (!param.empty()) {
      EXPECT_EQ(j["error"]["param"], param) << r.body;
    }
  }

  static ServerProcess* server_;
  static int64_t vocab_size_;
};

ServerProcess* ServerApi::server_ = nullptr;
int64_t ServerApi::vocab_size_ = 0;

TEST_F(ServerApi, HealthModelsMetrics) {
  const HttpResponse health = Get(port(), "/health");
  EXPECT_EQ(health.status, 200);
  const Json models = Get(port(), "/v1/models").json();
  ASSERT_EQ(models["data"].size(), 1u);
  EXPECT_EQ(models["object"], "list");
  EXPECT_EQ(models["data"][0]["id"], kModel);
  EXPECT_EQ(models["data"][0]["max_model_len"], kMaxModelLen);
  const Json one = Get(port(), std::string("/v1/models/") + kModel).json();
  EXPECT_EQ(one["id"], kModel);
  ExpectError(Get(port(), "/v1/models/other"), 404, "model", "unknown model id");

  const HttpResponse metrics = Get(port(), "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_EQ(metrics.header("content-type").rfind("text/plain; version=0.0.4", 0), 0u);
  for (const char* series : {"lserve_requests_total{status=\"ok\"}", "lserve_queue_depth", "lserve_running_sequences",
                             "lserve_kv_pages_used{pool=\"retrieval\"}", "lserve_kv_pages_total{pool=\"retrieval\"}",
                             "lserve_preemptions_total", "lserve_time_to_first_token_seconds_count"}) {
    EXPECT_TRUE(MetricValue(metrics.body, series).has_value()) << series;
  }
  EXPECT_GT(*MetricValue(metrics.body, "lserve_kv_pages_total{pool=\"retrieval\"}"), 0);
}

TEST_F(ServerApi, TokenizeDetokenizeRoundTrip) {
  const std::string text = "Hello world, héllo 字!";
  const Json t = Post(port(), "/tokenize", {{"prompt", text}, {"return_token_strs", true}}).json();
  ASSERT_TRUE(t["tokens"].is_array()) << t;
  EXPECT_EQ(t["count"], t["tokens"].size());
  EXPECT_EQ(t["max_model_len"], kMaxModelLen);
  EXPECT_EQ(t["token_strs"].size(), t["tokens"].size());
  const Json d = Post(port(), "/detokenize", {{"tokens", t["tokens"]}}).json();
  EXPECT_EQ(d["prompt"], text);
  // Chat messages render with the model's template.
  const Json chat = Post(port(), "/tokenize", {{"messages", {{{"role", "user"}, {"content", "hi"}}}}}).json();
  EXPECT_GT(chat["count"].get<int64_t>(), t["count"].get<int64_t>() / 4);
  ExpectError(Post(port(), "/detokenize", {{"tokens", {vocab_size_}}}), 400, "tokens", "detokenize out of vocab");
  ExpectError(Post(port(), "/tokenize", {{"prompt", "x"}, {"model", "../../etc/passwd"}}), 404, "model",
              "tokenize foreign model");
}

TEST_F(ServerApi, ChatTemplateKwargsAreTemplateVariables) {
  const Json messages = {{{"role", "user"}, {"content", "hi"}}};
  const Json with_prompt = Post(port(), "/tokenize", {{"messages", messages}}).json();
  const Json without = Post(port(), "/tokenize", {{"messages", messages}, {"add_generation_prompt", false}}).json();
  ASSERT_LT(without["count"].get<int64_t>(), with_prompt["count"].get<int64_t>()) << with_prompt << without;
  // add_generation_prompt given as a template variable wins, as in vLLM.
  const Json kwargs =
      Post(port(), "/tokenize", {{"messages", messages}, {"chat_template_kwargs", {{"add_generation_prompt", false}}}})
          .json();
  EXPECT_EQ(kwargs["tokens"], without["tokens"]);
  // Variables the template does not read change nothing; chat accepts them too.
  const Json unused =
      Post(port(), "/tokenize", {{"messages", messages}, {"chat_template_kwargs", {{"enable_thinking", false}}}})
          .json();
  EXPECT_EQ(unused["tokens"], with_prompt["tokens"]);
  const HttpResponse chat = Post(port(), "/v1/chat/completions",
                                 {{"messages", messages},
                                  {"max_tokens", 3},
                                  {"chat_template_kwargs", {{"enable_thinking", false}, {"tools", nullptr}}}});
  EXPECT_EQ(chat.status, 200) << chat.body;
  // Not the messages, not a template (this server does not trust them), not a
  // non-boolean add_generation_prompt.
  ExpectError(Post(port(), "/tokenize", {{"messages", messages}, {"chat_template_kwargs", {{"messages", Json::array()}}}}),
              400, "chat_template_kwargs", "kwargs messages");
  ExpectError(Post(port(), "/v1/chat/completions",
                   {{"messages", messages}, {"chat_template_kwargs", {{"chat_template", "{{ 'x' }}"}}}}),
              400, "chat_template_kwargs", "kwargs template untrusted");
  ExpectError(Post(port(), "/v1/chat/completions", {{"messages", messages}, {"chat_template", "{{ 'x' }}"}}), 400,
              "chat_template", "template untrusted");
  ExpectError(Post(port(), "/tokenize", {{"messages", messages}, {"chat_template_kwargs", {{"add_generation_prompt", 1}}}}),
              400, "chat_template_kwargs.add_generation_prompt", "kwargs add_generation_prompt type");
}

TEST_F(ServerApi, GreedyCompletionEqualsGenerate) {
  for (const std::string prompt : {"The capital of France is", "1 2 3 4 5", "héllo wörld 字"}) {
    SCOPED_TRACE(prompt);
    const CliResult g = RunLserve({"generate", "--model", FixtureModel(kModel), "--prompt", prompt, "--max-tokens", "24",
                                   "--temperature", "0", "--repetition-penalty", "1", "--ignore-eos", "--json"});
    ASSERT_EQ(g.exit_code, 0) << g.err;
    const Json want = Json::parse(g.out);
    const Json got = Completion({{"prompt", prompt}, {"max_tokens", 24}, {"ignore_eos", true}, {"model", kModel}});
    ASSERT_EQ(got["choices"].size(), 1u) << got;
    EXPECT_EQ(got["choices"][0]["text"], want["text"]);
    EXPECT_EQ(got["choices"][0]["finish_reason"], "length");
    EXPECT_EQ(got["usage"]["completion_tokens"], 24);
    EXPECT_EQ(got["usage"]["prompt_tokens"], want["timings"]["prompt_tokens"]);
    EXPECT_EQ(got["object"], "text_completion");
    EXPECT_EQ(got["model"], kModel);
    // The same prompt given as token ids.
    const Json ids = Post(port(), "/tokenize", {{"prompt", prompt}}).json()["tokens"];
    const Json by_ids = Completion({{"prompt", ids}, {"max_tokens", 24}, {"ignore_eos", true}});
    EXPECT_EQ(by_ids["choices"][0]["text"], want["text"]);
    // The generated ids, through logprobs' tokens, detokenize to the text.
    const Json with_logprobs = Completion({{"prompt", ids}, {"max_tokens", 24}, {"ignore_eos", true}, {"logprobs", 2}});
    const Json& lp = with_logprobs["choices"][0]["logprobs"];
    ASSERT_EQ(lp["tokens"].size(), 24u) << with_logprobs;
    for (size_t i = 0; i < 24; ++i) {
      EXPECT_LE(lp["token_logprobs"][i].get<double>(), 0.0);
      // {token text: logprob}: alternatives that decode alike share a key.
      EXPECT_GE(lp["top_logprobs"][i].size(), 1u);
      EXPECT_LE(lp["top_logprobs"][i].size(), 2u);
    }
  }
}

TEST_F(ServerApi, StreamedTextEqualsNonStreamed) {
  std::mt19937 rng(std::random_device{}());
  for (int round = 0; round < 3; ++round) {
    const int max_tokens = 8 + static_cast<int>(rng() % 40);
    const Json body = {{"prompt", "Once upon a time " + std::to_string(rng() % 1000)},
                       {"max_tokens", max_tokens},
                       {"ignore_eos", true},
                       {"temperature", 0}};
    const Json whole = Completion(body);
    std::string streamed;
    std::string finish;
    for (const Json& chunk : Stream("/v1/completions", body)) {
      EXPECT_EQ(chunk["object"], "text_completion");
      EXPECT_EQ(chunk["id"].get<std::string>().rfind("cmpl-", 0), 0u);
      for (const Json& c : chunk["choices"]) {
        streamed += c["text"].get<std::string>();
        if (c["finish_reason"].is_string()) finish = c["finish_reason"];
      }
    }
    EXPECT_EQ(streamed, whole["choices"][0]["text"]);
    EXPECT_EQ(finish, "length");
  }
}

TEST_F(ServerApi, ChatCompletionStreamAndNot) {
  const Json body = {{"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi!"}}}},
                     {"max_tokens", 20},
                     {"temperature", 0},
                     {"ignore_eos", true}};
  const HttpResponse r = Post(port(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json whole = r.json();
  EXPECT_EQ(whole["object"], "chat.completion");
  EXPECT_EQ(whole["choices"][0]["message"]["role"], "assistant");
  EXPECT_EQ(whole["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(whole["usage"]["completion_tokens"], 20);
  const int64_t prompt_tokens = whole["usage"]["prompt_tokens"];
  EXPECT_EQ(whole["usage"]["total_tokens"], prompt_tokens + 20);

  Json streamed_body = body;
  streamed_body["stream_options"] = {{"include_usage", true}};
  std::string text;
  int roles = 0;
  Json usage;
  for (const Json& chunk : Stream("/v1/chat/completions", streamed_body)) {
    EXPECT_EQ(chunk["object"], "chat.completion.chunk");
    EXPECT_TRUE(chunk.contains("usage"));
    if (!chunk["usage"].is_null()) usage = chunk["usage"];
    for (const Json& c : chunk["choices"]) {
      if (c["delta"].contains("role")) ++roles;
      if (c["delta"].contains("content")) text += c["delta"]["content"].get<std::string>();
    }
  }
  EXPECT_EQ(roles, 1);
  EXPECT_EQ(text, whole["choices"][0]["message"]["content"]);
  EXPECT_EQ(usage["completion_tokens"], 20);
  EXPECT_EQ(usage["prompt_tokens"], prompt_tokens);
}

TEST_F(ServerApi, SeveralChoicesAndPrompts) {
  // n = 3 with a seed: choices differ from each other and repeat exactly.
  const Json body = {{"prompt", "Random words:"}, {"max_tokens", 16}, {"n", 3}, {"seed", 1234},
                     {"temperature", 1.0}, {"ignore_eos", true}};
  const Json a = Completion(body);
  const Json b = Completion(body);
  ASSERT_EQ(a["choices"].size(), 3u);
  std::set<std::string> texts;
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(a["choices"][i]["index"], i);
    EXPECT_EQ(a["choices"][i]["text"], b["choices"][i]["text"]);
    texts.insert(a["choices"][i]["text"].get<std::string>());
  }
  EXPECT_EQ(texts.size(), 3u);
  EXPECT_EQ(a["usage"]["completion_tokens"], 48);
  // Streamed, each choice's pieces add up to the same text.
  Json streamed_body = body;
  std::vector<std::string> streamed(3);
  for (const Json& chunk : Stream("/v1/completions", streamed_body)) {
    for (const Json& c : chunk["choices"]) streamed[c["index"].get<size_t>()] += c["text"].get<std::string>();
  }
  for (int i = 0; i < 3; ++i) EXPECT_EQ(streamed[i], a["choices"][i]["text"]);

  // Two prompts, n = 2: choice 2p + j answers prompt p; greedy choices agree.
  const Json two = Completion({{"prompt", {"alpha beta", "gamma delta"}}, {"max_tokens", 6}, {"n", 2}, {"ignore_eos", true}});
  ASSERT_EQ(two["choices"].size(), 4u);
  EXPECT_EQ(two["choices"][0]["text"], two["choices"][1]["text"]);
  EXPECT_EQ(two["choices"][2]["text"], two["choices"][3]["text"]);
  const Json gamma = Completion({{"prompt", "gamma delta"}, {"max_tokens", 6}, {"ignore_eos", true}});
  EXPECT_EQ(two["choices"][2]["text"], gamma["choices"][0]["text"]);
}

TEST_F(ServerApi, StopStringsCutOutputInStreamAndNot) {
  const Json free_run = Completion({{"prompt", "Counting: one two"}, {"max_tokens", 40}, {"ignore_eos", true}});
  const std::string text = free_run["choices"][0]["text"];
  ASSERT_GT(text.size(), 12u);
  // A stop string from the middle of the greedy output (possibly spanning
  // tokens): the output ends right before its first occurrence.
  // Whole UTF-8 characters only (the model's output may hold any).
  size_t begin = text.size() / 2, end = begin + 3;
  while (begin > 0 && (static_cast<unsigned char>(text[begin]) & 0xC0) == 0x80) --begin;
  while (end < text.size() && (static_cast<unsigned char>(text[end]) & 0xC0) == 0x80) ++end;
  const std::string stop = text.substr(begin, end - begin);
  const std::string want = text.substr(0, text.find(stop));
  const Json body = {{"prompt", "Counting: one two"}, {"max_tokens", 40}, {"ignore_eos", true}, {"temperature", 0},
                     {"stop", {stop}}};
  const Json cut = Completion(body);
  EXPECT_EQ(cut["choices"][0]["text"], want);
  EXPECT_EQ(cut["choices"][0]["finish_reason"], "stop");
  std::string streamed;
  std::string finish;
  for (const Json& chunk : Stream("/v1/completions", body)) {
    for (const Json& c : chunk["choices"]) {
      streamed += c["text"].get<std::string>();
      EXPECT_EQ(streamed.find(stop), std::string::npos) << "stop bytes streamed";
      if (c["finish_reason"].is_string()) finish = c["finish_reason"];
    }
  }
  EXPECT_EQ(streamed, want);
  EXPECT_EQ(finish, "stop");
}

TEST_F(ServerApi, ChatTopLogprobs) {
  const Json body = {{"messages", {{{"role", "user"}, {"content", "Name a color."}}}},
                     {"max_tokens", 5}, {"temperature", 0}, {"ignore_eos", true},
                     {"logprobs", true}, {"top_logprobs", 20}};
  const HttpResponse r = Post(port(), "/v1/chat/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const Json content = r.json()["choices"][0]["logprobs"]["content"];
  ASSERT_EQ(content.size(), 5u);
  for (const Json& t : content) {
    ASSERT_EQ(t["top_logprobs"].size(), 20u);
    for (const Json& alt : t["top_logprobs"]) EXPECT_LE(alt["logprob"].get<double>(), 0.0);
    // Greedy: the sampled token is the most likely one.
    EXPECT_EQ(t["top_logprobs"][0]["token"], t["token"]);
    EXPECT_DOUBLE_EQ(t["top_logprobs"][0]["logprob"].get<double>(), t["logprob"].get<double>());
  }
}

TEST_F(ServerApi, ContextLength) {
  // Prompts of exactly n tokens: token ids of one ordinary token repeated.
  const Json one = Post(port(), "/tokenize", {{"prompt", "a"}, {"add_special_tokens", false}}).json()["tokens"];
  ASSERT_EQ(one.size(), 1u);
  auto prompt_of = [&](int64_t n) { return Json(std::vector<int64_t>(static_cast<size_t>(n), one[0].get<int64_t>())); };
  EXPECT_EQ(Post(port(), "/v1/completions", {{"prompt", prompt_of(kMaxModelLen - 1)}, {"max_tokens", 1}}).status, 200);
  for (const auto& [n, max_tokens] : std::vector<std::pair<int64_t, int64_t>>{{kMaxModelLen, 1}, {kMaxModelLen - 10, 11}}) {
    const HttpResponse r = Post(port(), "/v1/completions", {{"prompt", prompt_of(n)}, {"max_tokens", max_tokens}});
    ExpectError(r, 400, "prompt", "context " + std::to_string(n));
    const Json e = r.json()["error"];
    EXPECT_EQ(e["code"], "context_length_exceeded");
    const std::string message = e["message"];
    EXPECT_NE(message.find(std::to_string(kMaxModelLen)), std::string::npos) << message;
    EXPECT_NE(message.find(std::to_string(n)), std::string::npos) << message;
  }
  // Chat without max_tokens takes the room left.
  const HttpResponse chat = Post(port(), "/v1/chat/completions",
                                 {{"messages", {{{"role", "user"}, {"content", "hi"}}}}, {"temperature", 0},
                                  {"ignore_eos", true}});
  ASSERT_EQ(chat.status, 200) << chat.body;
  const Json usage = chat.json()["usage"];
  EXPECT_EQ(usage["total_tokens"], kMaxModelLen);
}

// RELIABILITY.md C14-C19: each invalid field is a 400 naming it.
TEST_F(ServerApi, InvalidParametersNameTheField) {
  const std::string vocab = std::to_string(vocab_size_);
  struct Case {
    std::string fields;  // JSON members added to a valid completions body
    std::string param;
  };
  const std::vector<Case> cases = {
      {R"("temperature": -0.1)", "temperature"}, {R"("temperature": NaN)", "temperature"},
      {R"("temperature": Infinity)", "temperature"}, {R"("temperature": "1")", "temperature"},
      {R"("temperature": 1e400)", "temperature"}, {R"("top_p": 0)", "top_p"}, {R"("top_p": 1.01)", "top_p"},
      {R"("top_k": -2)", "top_k"}, {R"("top_k": 1.5)", "top_k"}, {R"("min_p": 1.1)", "min_p"},
      {R"("frequency_penalty": 2.01)", "frequency_penalty"}, {R"("presence_penalty": -2.01)", "presence_penalty"},
      {R"("repetition_penalty": 0)", "repetition_penalty"}, {R"("repetition_penalty": 1e400)", "repetition_penalty"},
      {R"("seed": -2)", "seed"}, {R"("logit_bias": {"x": 1})", "logit_bias"},
      {R"("logit_bias": {"-1": 1})", "logit_bias"}, {R"("logit_bias": {")" + vocab + R"(": 1})", "logit_bias"},
      {R"("logit_bias": {"5": 1e30})", "logit_bias"},
      {R"("max_tokens": 0)", "max_tokens"}, {R"("max_tokens": -1)", "max_tokens"},
      {R"("max_tokens": 1.5)", "max_tokens"}, {R"("max_tokens": true)", "max_tokens"},
      {R"("max_tokens": 2147483648)", "max_tokens"}, {R"("max_tokens": 9223372036854775808)", "max_tokens"},
      {R"("n": 0)", "n"}, {R"("n": -1)", "n"}, {R"("n": 17)", "n"}, {R"("n": 1000000000)", "n"},
      {R"("stop": ["a","b","c","d","e","f","g","h","i"])", "stop"}, {R"("stop": "")", "stop"},
      {R"("stop": ")" + std::string(1 << 16, 'x') + R"(")", "stop"},
      {R"("stop_token_ids": [)" + vocab + "]", "stop_token_ids"},
      {R"("allowed_token_ids": [)" + vocab + "]", "allowed_token_ids"},
      {R"("logprobs": 21)", "logprobs"}, {R"("logprobs": -1)", "logprobs"},
      {R"("unknown_field": 1)", "unknown_field"}, {R"("model": "../../x")", "model"},
  };
  for (const Case& c : cases) {
    const std::string body = R"({"prompt": "hello", "max_tokens": 4, )" + c.fields + "}";
    const auto start = std::chrono::steady_clock::now();
    const HttpResponse r = Request(port(), "POST", "/v1/completions", body);
    ExpectError(r, c.param == "model" ? 404 : 400, c.param, c.fields.substr(0, 80));
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(2));
  }
  // Chat: top_logprobs out of range, bad messages.
  const std::vector<Case> chat_cases = {
      {R"("messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": -1)", "top_logprobs"},
      {R"("messages": [{"role": "user", "content": "x"}], "logprobs": true, "top_logprobs": 21)", "top_logprobs"},
      {R"("messages": [])", "messages"}, {R"("messages": null)", "messages"},
      {R"("messages": [{"role": "user", "content": ""}])", "messages[0].content"},
      {R"("messages": [{"role": "wizard", "content": "x"}])", "messages[0].role"},
  };
  for (const Case& c : chat_cases) {
    ExpectError(Request(port(), "POST", "/v1/chat/completions", "{" + c.fields + "}"), 400, c.param, c.fields);
  }
}

// RELIABILITY.md C17: empty and out-of-vocabulary prompts.
TEST_F(ServerApi, InvalidPrompts) {
  for (const std::string prompt : std::vector<std::string>{R"("")", "[]", "[[]]", "null", "[-1]", "[" + std::to_string(vocab_size_) + "]",
                                   "[2147483648]", R"([["a"]])", "{}"}) {
    const HttpResponse r = Request(port(), "POST", "/v1/completions", R"({"prompt": )" + prompt + "}");
    ExpectError(r, 400, "prompt", prompt);
  }
  const HttpResponse oov = Request(port(), "POST", "/v1/completions", R"({"prompt": [)" + std::to_string(vocab_size_) + "]}");
  EXPECT_NE(oov.json()["error"]["message"].get<std::string>().find("out of vocabulary"), std::string::npos) << oov.body;
  ExpectError(Request(port(), "POST", "/v1/completions", R"({"max_tokens": 3})"), 400, "prompt", "missing prompt");
}

// RELIABILITY.md C20-C21: malformed bodies and framing.
TEST_F(ServerApi, MalformedBodies) {
  const std::vector<std::string> bodies = {
      R"({"prompt": "x")", "[1, 2]", std::string(100000, '['), "\"just a string\"",
      std::string("{\"prompt\": \"a\xff\xfe\"}"), R"({"prompt": "\ud800"})", std::string("{\"prompt\": \"a\0b\"}", 17),
      "", "{} {}"};
  for (const std::string& body : bodies) {
    const auto start = std::chrono::steady_clock::now();
    const HttpResponse r = Request(port(), "POST", "/v1/completions", body);
    EXPECT_EQ(r.status, 400) << body.substr(0, 40) << " -> " << r.body;
    EXPECT_TRUE(r.json().contains("error")) << r.body;
    EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(1));
  }
  // Wrong or missing framing.
  {
    HttpConnection c(port());
    c.SendRequest("POST", "/v1/completions", R"({"prompt": "x"})", {}, /*content_type_json=*/false);
    EXPECT_EQ(c.ReadResponse().status, 200);  // no Content-Type: taken as JSON
  }
  for (const char* type : {"text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"}) {
    HttpConnection c(port());
    c.SendRequest("POST", "/v1/completions", R"({"prompt": "x"})", {{"Content-Type", type}}, /*content_type_json=*/false);
    ExpectError(c.ReadResponse(), 415, "", type);
  }
  // Two Content-Types (which one would count?).
  ExpectError(Request(port(), "POST", "/v1/completions", R"({"prompt": "x"})", {{"Content-Type", "text/plain"}}), 400,
              "", "two content types");
  for (const char* length : {"-1", "abc", "1e3", "+5"}) {
    HttpConnection c(port());
    c.Send(std::string("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: ") +
           length + "\r\n\r\n{}");
    EXPECT_EQ(c.ReadResponse().status, 400) << length;
  }
  {
    HttpConnection c(port());
    c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\r\n");
    EXPECT_EQ(c.ReadResponse().status, 411);
  }
}

TEST_F(ServerApi, BodyLimit) {
  constexpr size_t kLimit = 1048576;  // --max-body-bytes of this suite
  const std::string head = R"({"prompt": "x", "max_tokens": 1)";
  auto padded = [&](size_t size) { return head + std::string(size - head.size() - 1, ' ') + "}"; };
  EXPECT_EQ(Request(port(), "POST", "/v1/completions", padded(kLimit)).status, 200);
  {
    // One byte over, declared: answered before the body is sent.
    HttpConnection c(port());
    c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(kLimit + 1) + "\r\n\r\n");
    const HttpResponse r = c.ReadResponse();
    ExpectError(r, 413, "", "content-length over");
  }
  {
    // With "Expect: 100-continue" the answer comes instead of the go-ahead.
    HttpConnection c(port());
    c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
           "Content-Length: " + std::to_string(kLimit + 1) + "\r\n\r\n");
    ExpectError(c.ReadResponse(), 413, "", "expect 100-continue, over");
  }
  {
    HttpConnection c(port());
    const std::string body = padded(1000);
    c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nExpect: 100-continue\r\n"
           "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n");
    EXPECT_EQ(c.ReadResponse().status, 100);
    c.Send(body);
    EXPECT_EQ(c.ReadResponse().status, 200);
  }
  {
    // Chunked: cut once the count passes the limit.
    HttpConnection c(port());
    c.Send("POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n");
    const std::string body = padded(kLimit + 1);
    for (size_t pos = 0; pos < body.size(); pos += 65536) {
      const std::string piece = body.substr(pos, 65536);
      char size[32];
      std::snprintf(size, sizeof(size), "%zx\r\n", piece.size());
      if (!c.Send(size + piece + "\r\n")) break;
    }
    c.Send("0\r\n\r\n");
    ExpectError(c.ReadResponse(), 413, "", "chunked over");
  }
  if (std::system("gzip --version >/dev/null 2>&1") == 0) {
    // Compressed bodies count after decompression: a small gzip of a body
    // over the limit is a 413; one under it is served.
    auto gzipped = [](const std::string& bytes) {
      const std::string path = TempPath("body.json");
      WriteFile(path, bytes);
      EXPECT_EQ(std::system(("gzip -f " + path).c_str()), 0);
      const std::string out = ReadFile(path + ".gz");
      ::unlink((path + ".gz").c_str());
      return out;
    };
    const std::vector<std::pair<std::string, std::string>> gzip = {{"Content-Encoding", "gzip"}};
    const std::string bomb = gzipped(padded(kLimit + 1));
    EXPECT_LT(bomb.size(), kLimit / 100);
    ExpectError(Request(port(), "POST", "/v1/completions", bomb, gzip), 413, "", "gzip over");
    EXPECT_EQ(Request(port(), "POST", "/v1/completions", gzipped(padded(5000)), gzip).status, 200);
    ExpectError(Request(port(), "POST", "/v1/completions", "{}", {{"Content-Encoding", "zstd"}}), 415, "", "zstd");
  }
  {
    // Many one-byte chunks under the limit are fine.
    HttpConnection c(port());
    std::string wire = "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\n\r\n";
    const std::string body = padded(200000);
    for (char ch : body) wire += std::string("1\r\n") + ch + "\r\n";
    wire += "0\r\n\r\n";
    c.Send(wire);
    EXPECT_EQ(c.ReadResponse().status, 200);
  }
  {
    // Too many headers.
    std::vector<std::pair<std::string, std::string>> headers;
    for (int i = 0; i < 1000; ++i) headers.push_back({"X-H" + std::to_string(i), "v"});
    EXPECT_EQ(Request(port(), "GET", "/v1/models", "", headers).status, 431);
  }
}

TEST_F(ServerApi, RoutesAndMethods) {
  ExpectError(Get(port(), "/v1/nothing"), 404, "", "unknown route");
  ExpectError(Get(port(), "/v1/models/"), 404, "", "trailing slash");
  ExpectError(Request(port(), "GET", "/v1/completions"), 405, "", "GET on a POST route");
  ExpectError(Request(port(), "POST", "/health", "{}"), 405, "", "POST on a GET route");
  ExpectError(Request(port(), "DELETE", "/v1/models"), 405, "", "DELETE");
  const HttpResponse r = Request(port(), "GET", "/v1/completions");
  EXPECT_EQ(r.header("allow"), "POST");
  // Keep-alive: several requests on one connection.
  HttpConnection c(port());
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(c.SendRequest("GET", "/health", ""));
    EXPECT_EQ(c.ReadResponse().status, 200);
  }
}

}  // namespace
}  // namespace lserve::e2e
