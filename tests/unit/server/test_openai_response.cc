// Response bodies, stream chunks, SSE framing and error bodies: each parses
// back as JSON with OpenAI's fields, and is valid UTF-8 whatever bytes the
// model produced.
#include <gtest/gtest.h>

#include <random>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/utf8.h"
#include "server/api_error.h"
#include "server/openai_protocol.h"

namespace lserve {
namespace {

using nlohmann::json;

const ResponseHeader kHeader{"cmpl-abc", 1700000000, "demo"};

// Serializes as the server would, checks UTF-8, parses back.
json RoundTrip(const nlohmann::ordered_json& value) {
  const std::string text = JsonText(value);
  EXPECT_TRUE(utf8::IsValid(text));
  EXPECT_EQ(text.find('\n'), std::string::npos);
  const json parsed = json::parse(text, nullptr, false);
  EXPECT_FALSE(parsed.is_discarded()) << text;
  return parsed;
}

TEST(ApiErrorBody, Shape) {
  const json e = json::parse(ApiErrorBody(InvalidRequest("temperature", "temperature must be >= 0")));
  ASSERT_TRUE(e.contains("error"));
  EXPECT_EQ(e["error"]["message"], "temperature must be >= 0");
  EXPECT_EQ(e["error"]["type"], "invalid_request_error");
  EXPECT_EQ(e["error"]["param"], "temperature");
  EXPECT_TRUE(e["error"]["code"].is_null());
  const json u = json::parse(ApiErrorBody(Unauthorized("bad key")));
  EXPECT_TRUE(u["error"]["param"].is_null());
  EXPECT_EQ(u["error"]["type"], "authentication_error");
  EXPECT_EQ(u["error"]["code"], "invalid_api_key");
  // Invalid bytes in a message never break the body.
  const std::string body = ApiErrorBody(InvalidRequest("", "bad \xff\xfe bytes"));
  EXPECT_TRUE(utf8::IsValid(body));
  EXPECT_EQ(json::parse(body)["error"]["message"], "bad \xEF\xBF\xBD\xEF\xBF\xBD bytes");
}

TEST(ApiErrorBody, MakersFixStatusAndType) {
  EXPECT_EQ(InvalidRequest("x", "m").http_status, 400);
  EXPECT_EQ(NotFoundError("model", "m").http_status, 404);
  EXPECT_EQ(NotFoundError("model", "m").code, "model_not_found");
  EXPECT_EQ(Unauthorized("m").http_status, 401);
  EXPECT_EQ(PayloadTooLarge(8 << 20).http_status, 413);
  EXPECT_NE(PayloadTooLarge(8 << 20).message.find("8388608"), std::string::npos);
  EXPECT_EQ(UnsupportedMediaType("text/plain").http_status, 415);
  EXPECT_EQ(ServiceUnavailable("loading").http_status, 503);
  EXPECT_EQ(ServiceUnavailable("loading").type, "unavailable_error");
  EXPECT_EQ(Overloaded("full").http_status, 503);
  EXPECT_EQ(Overloaded("full").code, "overloaded");
  EXPECT_EQ(InternalServerError("x").http_status, 500);
  EXPECT_EQ(RateLimited("slow down").http_status, 429);
  EXPECT_EQ(HeadersTooLarge("too many headers").http_status, 431);
  const ApiError c = ContextLengthExceeded("messages", 90, 20, 100);
  EXPECT_EQ(c.http_status, 400);
  EXPECT_EQ(c.code, "context_length_exceeded");
  EXPECT_EQ(c.param, "messages");
}

TEST(ApiErrorBody, FromStatus) {
  const ApiError bad = ApiErrorFromStatus(InvalidArgument("chat template error (line 3): boom"), "messages");
  EXPECT_EQ(bad.http_status, 400);
  EXPECT_EQ(bad.param, "messages");
  EXPECT_EQ(bad.message, "chat template error (line 3): boom");
  EXPECT_EQ(ApiErrorFromStatus(ResourceExhausted("render budget")).http_status, 400);
  EXPECT_EQ(ApiErrorFromStatus(OutOfRange("x")).http_status, 400);
  EXPECT_EQ(ApiErrorFromStatus(NotFound("no model"), "model").http_status, 404);
  EXPECT_EQ(ApiErrorFromStatus(Internal("bug")).http_status, 500);
  EXPECT_EQ(ApiErrorFromStatus(IoError("disk")).type, "server_error");
  EXPECT_EQ(ApiErrorFromStatus(Unavailable("shutting down")).http_status, 503);
}

TEST(CompletionResponse, Shape) {
  std::vector<ChoiceOutput> choices(2);
  choices[0].index = 0;
  choices[0].text = "Hello";
  choices[0].finish_reason = "length";
  choices[1].index = 1;
  choices[1].text = "Hi";
  choices[1].finish_reason = "stop";
  const json r = RoundTrip(CompletionResponse(kHeader, choices, Usage{7, 3}));
  EXPECT_EQ(r["id"], "cmpl-abc");
  EXPECT_EQ(r["object"], "text_completion");
  EXPECT_EQ(r["created"], 1700000000);
  EXPECT_EQ(r["model"], "demo");
  ASSERT_EQ(r["choices"].size(), 2u);
  EXPECT_EQ(r["choices"][0]["index"], 0);
  EXPECT_EQ(r["choices"][0]["text"], "Hello");
  EXPECT_TRUE(r["choices"][0]["logprobs"].is_null());
  EXPECT_EQ(r["choices"][0]["finish_reason"], "length");
  EXPECT_EQ(r["choices"][1]["finish_reason"], "stop");
  EXPECT_EQ(r["usage"]["prompt_tokens"], 7);
  EXPECT_EQ(r["usage"]["completion_tokens"], 3);
  EXPECT_EQ(r["usage"]["total_tokens"], 10);
}

TEST(CompletionResponse, LegacyLogprobs) {
  ChoiceOutput c;
  c.text = "a字";
  c.finish_reason = "stop";
  c.logprobs = std::vector<TokenLogprob>{
      {"a", -0.25f, {{"a", -0.25f}, {"b", -1.5f}}},
      {"字", -0.1f, {{"字", -0.1f}}},
  };
  const json r = RoundTrip(CompletionResponse(kHeader, {c}, Usage{1, 2}));
  const json& lp = r["choices"][0]["logprobs"];
  EXPECT_EQ(lp["tokens"], json({"a", "字"}));
  EXPECT_EQ(lp["token_logprobs"][0], -0.25);
  EXPECT_EQ(lp["token_logprobs"][1], -0.1);  // the float's shortest form, not -0.10000000149...
  EXPECT_EQ(lp["top_logprobs"][0]["b"], -1.5);
  EXPECT_EQ(lp["top_logprobs"][1].size(), 1u);
  EXPECT_EQ(lp["text_offset"], json({0, 1}));  // code points
}

TEST(ChatCompletionResponse, ShapeAndLogprobs) {
  ChoiceOutput c;
  c.text = "ok";
  c.finish_reason = "stop";
  c.logprobs = std::vector<TokenLogprob>{{"ok", -0.5f, {{"ok", -0.5f}, {"no", -2.0f}}}};
  const json r = RoundTrip(ChatCompletionResponse({"chatcmpl-x", 5, "demo"}, {c}, Usage{4, 1}));
  EXPECT_EQ(r["object"], "chat.completion");
  EXPECT_EQ(r["id"], "chatcmpl-x");
  const json& choice = r["choices"][0];
  EXPECT_EQ(choice["message"]["role"], "assistant");
  EXPECT_EQ(choice["message"]["content"], "ok");
  EXPECT_EQ(choice["finish_reason"], "stop");
  const json& token = choice["logprobs"]["content"][0];
  EXPECT_EQ(token["token"], "ok");
  EXPECT_EQ(token["logprob"], -0.5);
  EXPECT_EQ(token["bytes"], json({111, 107}));
  ASSERT_EQ(token["top_logprobs"].size(), 2u);
  EXPECT_EQ(token["top_logprobs"][1]["token"], "no");
  EXPECT_EQ(token["top_logprobs"][1]["bytes"], json({110, 111}));
  EXPECT_EQ(r["usage"]["total_tokens"], 5);
}

TEST(ChatCompletionResponse, InvalidUtf8IsReplacedAndBytesKept) {
  ChoiceOutput c;
  c.text = "bad \xe5\xad then \xff end";  // a cut character and a stray byte
  c.finish_reason = "length";
  // A token holding the first two bytes of 字 (byte-fallback split), and -inf.
  c.logprobs = std::vector<TokenLogprob>{{"\xe5\xad", -INFINITY, {{"\xe5\xad", -INFINITY}, {"\x80", NAN}}}};
  const json r = RoundTrip(ChatCompletionResponse(kHeader, {c}, Usage{}));
  EXPECT_EQ(r["choices"][0]["message"]["content"], "bad \xEF\xBF\xBD then \xEF\xBF\xBD end");
  const json& token = r["choices"][0]["logprobs"]["content"][0];
  EXPECT_EQ(token["token"], "\xEF\xBF\xBD");
  EXPECT_EQ(token["bytes"], json({0xe5, 0xad}));
  EXPECT_EQ(token["logprob"], kMinJsonLogprob);
  EXPECT_EQ(token["top_logprobs"][1]["logprob"], kMinJsonLogprob);
  EXPECT_EQ(token["top_logprobs"][1]["bytes"], json({0x80}));
}

TEST(ResponseBuilders, RandomBytesAlwaysGiveValidJson) {
  std::mt19937 rng(std::random_device{}());
  for (int trial = 0; trial < 200; ++trial) {
    auto random_bytes = [&] {
      std::string s(rng() % 12, '\0');
      for (char& ch : s) ch = static_cast<char>(rng() % 256);
      return s;
    };
    ChoiceOutput c;
    c.text = random_bytes();
    c.logprobs = std::vector<TokenLogprob>{{random_bytes(), -1.0f, {{random_bytes(), -2.0f}}}};
    const json chat = RoundTrip(ChatCompletionResponse(kHeader, {c}, Usage{}));
    EXPECT_EQ(chat["choices"][0]["message"]["content"], utf8::Sanitize(c.text));
    const json& bytes = chat["choices"][0]["logprobs"]["content"][0]["bytes"];
    std::string back;
    for (const json& b : bytes) back += static_cast<char>(b.get<int>());
    EXPECT_EQ(back, (*c.logprobs)[0].token);
    RoundTrip(CompletionResponse(kHeader, {c}, Usage{}));
    RoundTrip(CompletionChunk(kHeader, c, true));
    RoundTrip(ChatContentChunk(kHeader, c, false));
  }
}

TEST(StreamChunks, CompletionChunks) {
  ChoiceOutput delta;
  delta.index = 1;
  delta.text = "lo";
  const json chunk = RoundTrip(CompletionChunk(kHeader, delta, false));
  EXPECT_EQ(chunk["object"], "text_completion");
  EXPECT_EQ(chunk["id"], "cmpl-abc");
  ASSERT_EQ(chunk["choices"].size(), 1u);
  EXPECT_EQ(chunk["choices"][0]["index"], 1);
  EXPECT_EQ(chunk["choices"][0]["text"], "lo");
  EXPECT_TRUE(chunk["choices"][0]["finish_reason"].is_null());
  EXPECT_FALSE(chunk.contains("usage"));
  delta.text.clear();
  delta.finish_reason = "stop";
  const json last = RoundTrip(CompletionChunk(kHeader, delta, true));
  EXPECT_EQ(last["choices"][0]["finish_reason"], "stop");
  EXPECT_TRUE(last.contains("usage"));
  EXPECT_TRUE(last["usage"].is_null());
  // Logprobs in a stream continue the text offsets.
  delta.logprobs = std::vector<TokenLogprob>{{"xy", -1.0f, {}}, {"z", -2.0f, {}}};
  delta.text_offset = 10;
  const json with_lp = RoundTrip(CompletionChunk(kHeader, delta, false));
  EXPECT_EQ(with_lp["choices"][0]["logprobs"]["text_offset"], json({10, 12}));
}

TEST(StreamChunks, ChatChunks) {
  const ResponseHeader header{"chatcmpl-1", 9, "demo"};
  const json role = RoundTrip(ChatRoleChunk(header, 0, false));
  EXPECT_EQ(role["object"], "chat.completion.chunk");
  EXPECT_EQ(role["choices"][0]["delta"], json({{"role", "assistant"}, {"content", ""}}));
  EXPECT_TRUE(role["choices"][0]["finish_reason"].is_null());

  ChoiceOutput delta;
  delta.text = "Hel";
  const json content = RoundTrip(ChatContentChunk(header, delta, true));
  EXPECT_EQ(content["choices"][0]["delta"], json({{"content", "Hel"}}));
  EXPECT_TRUE(content["choices"][0]["logprobs"].is_null());
  EXPECT_TRUE(content["usage"].is_null());

  delta.text.clear();
  delta.finish_reason = "length";
  const json finish = RoundTrip(ChatContentChunk(header, delta, false));
  EXPECT_TRUE(finish["choices"][0]["delta"].is_object());
  EXPECT_TRUE(finish["choices"][0]["delta"].empty());
  EXPECT_EQ(finish["choices"][0]["finish_reason"], "length");

  const json usage = RoundTrip(UsageChunk(header, "chat.completion.chunk", Usage{3, 4}));
  EXPECT_TRUE(usage["choices"].is_array());
  EXPECT_TRUE(usage["choices"].empty());
  EXPECT_EQ(usage["usage"]["total_tokens"], 7);
  EXPECT_EQ(usage["object"], "chat.completion.chunk");
}

TEST(Sse, Framing) {
  EXPECT_EQ(SseEvent("{\"a\":1}"), "data: {\"a\":1}\n\n");
  EXPECT_EQ(kSseDone, "data: [DONE]\n\n");
  const std::string error = SseErrorEvent(InternalServerError("engine fault"));
  ASSERT_EQ(error.rfind("data: ", 0), 0u);
  ASSERT_EQ(error.substr(error.size() - 2), "\n\n");
  const json body = json::parse(error.substr(6, error.size() - 8));
  EXPECT_EQ(body["error"]["message"], "engine fault");
  // Text with newlines stays on one data line.
  ChoiceOutput c;
  c.text = "line1\nline2\r\n";
  const std::string event = SseEvent(JsonText(CompletionChunk(kHeader, c, false)));
  EXPECT_EQ(event.find('\n'), event.size() - 2);
  EXPECT_EQ(event.find('\r'), std::string::npos);
}

TEST(Ids, PrefixAndUniqueness) {
  std::set<std::string> seen;
  for (int i = 0; i < 1000; ++i) {
    const std::string id = MakeResponseId("chatcmpl");
    ASSERT_EQ(id.size(), 9u + 32u);
    ASSERT_EQ(id.rfind("chatcmpl-", 0), 0u);
    ASSERT_EQ(id.find_first_not_of("0123456789abcdef", 9), std::string::npos);
    seen.insert(id);
  }
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_GT(UnixSeconds(), 1700000000);
}

TEST(TokenizeResponses, Shapes) {
  const json t = RoundTrip(TokenizeResponse({1, 2, 3}, 4096, nullptr));
  EXPECT_EQ(t["tokens"], json({1, 2, 3}));
  EXPECT_EQ(t["count"], 3);
  EXPECT_EQ(t["max_model_len"], 4096);
  EXPECT_TRUE(t["token_strs"].is_null());
  const std::vector<std::string> strs = {"a", "\xe5"};
  const json s = RoundTrip(TokenizeResponse({1, 2}, 10, &strs));
  EXPECT_EQ(s["token_strs"], json({"a", "\xEF\xBF\xBD"}));
  EXPECT_EQ(RoundTrip(DetokenizeResponse("hi \xff"))["prompt"], "hi \xEF\xBF\xBD");
  const json m = RoundTrip(ModelsResponse("demo", 12, 2048));
  EXPECT_EQ(m["object"], "list");
  ASSERT_EQ(m["data"].size(), 1u);
  EXPECT_EQ(m["data"][0]["id"], "demo");
  EXPECT_EQ(m["data"][0]["object"], "model");
  EXPECT_EQ(m["data"][0]["max_model_len"], 2048);
}

}  // namespace
}  // namespace lserve
