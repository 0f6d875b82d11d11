// Request validation at the protocol level: every RELIABILITY.md C14-C19 case
// is a 400 naming the offending field, on both generation endpoints where the
// field exists; the valid shapes (four prompt forms, stop string or list,
// content parts, ...) parse into the expected values.
#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <variant>
#include <vector>

#include <nlohmann/json.hpp>

#include "server/openai_protocol.h"

namespace lserve {
namespace {

constexpr int32_t kVocab = 1000;

ProtocolLimits Limits() {
  ProtocolLimits limits;
  limits.vocab_size = kVocab;
  return limits;
}

// The body of a valid completions request with `extra` fields appended
// (",\"n\": 2" style, or empty).
std::string CompletionBody(const std::string& extra) { return "{\"prompt\": \"hello\"" + extra + "}"; }
std::string ChatBody(const std::string& extra) {
  return "{\"messages\": [{\"role\": \"user\", \"content\": \"hello\"}]" + extra + "}";
}

// By value: the argument is usually a temporary.
template <typename T>
ApiError ErrorOf(const ParseResult<T>& r) {
  const ApiError* e = std::get_if<ApiError>(&r);
  return e ? *e : ApiError{0, "", "(parsed)", "", ""};
}

template <typename T>
T ValueOf(ParseResult<T> r) {
  if (const ApiError* e = std::get_if<ApiError>(&r)) {
    ADD_FAILURE() << "unexpected error: " << e->message;
    return T{};
  }
  return std::get<T>(std::move(r));
}

void ExpectBadRequest(const ApiError& e, const std::string& param) {
  EXPECT_EQ(e.http_status, 400) << e.message;
  EXPECT_EQ(e.type, "invalid_request_error");
  EXPECT_EQ(e.param, param) << e.message;
  EXPECT_FALSE(e.message.empty());
}

struct FieldCase {
  const char* extra;  // appended to a valid body
  const char* param;  // the field the 400 must name
};

// C14 (sampling), C15 (max_tokens, n), C17 (token ids in sampling fields),
// C18 (stop), shared by both generation endpoints.
const std::vector<FieldCase>& SharedFieldCases() {
  static const std::vector<FieldCase> cases = {
      {R"(, "temperature": -0.1)", "temperature"},
      {R"(, "temperature": NaN)", "temperature"},
      {R"(, "temperature": Infinity)", "temperature"},
      {R"(, "temperature": -Infinity)", "temperature"},
      {R"(, "temperature": 1e400)", "temperature"},
      {R"(, "temperature": "1")", "temperature"},
      {R"(, "temperature": true)", "temperature"},
      {R"(, "top_p": 0)", "top_p"},
      {R"(, "top_p": 1.01)", "top_p"},
      {R"(, "top_k": -2)", "top_k"},
      {R"(, "top_k": 1.5)", "top_k"},
      {R"(, "top_k": "5")", "top_k"},
      {R"(, "min_p": 1.1)", "min_p"},
      {R"(, "frequency_penalty": 2.01)", "frequency_penalty"},
      {R"(, "frequency_penalty": -2.01)", "frequency_penalty"},
      {R"(, "presence_penalty": 2.01)", "presence_penalty"},
      {R"(, "presence_penalty": -2.01)", "presence_penalty"},
      {R"(, "repetition_penalty": 0)", "repetition_penalty"},
      {R"(, "repetition_penalty": Infinity)", "repetition_penalty"},
      {R"(, "repetition_penalty": 1e999)", "repetition_penalty"},
      {R"(, "seed": -2)", "seed"},
      {R"(, "seed": 1.5)", "seed"},
      {R"(, "seed": "7")", "seed"},
      {R"(, "logit_bias": {"x": 1})", "logit_bias"},
      {R"(, "logit_bias": {"-1": 1})", "logit_bias"},
      {R"(, "logit_bias": {"1000": 1})", "logit_bias"},
      {R"(, "logit_bias": {"5": 1e30})", "logit_bias"},
      {R"(, "logit_bias": {"5": NaN})", "logit_bias"},
      {R"(, "logit_bias": {"5": "1"})", "logit_bias"},
      {R"(, "logit_bias": {" 5": 1})", "logit_bias"},
      {R"(, "logit_bias": {"99999999999999999999": 1})", "logit_bias"},
      {R"(, "logit_bias": [1, 2])", "logit_bias"},
      {R"(, "max_tokens": 0)", "max_tokens"},
      {R"(, "max_tokens": -1)", "max_tokens"},
      {R"(, "max_tokens": 1.5)", "max_tokens"},
      {R"(, "max_tokens": 3.0)", "max_tokens"},
      {R"(, "max_tokens": true)", "max_tokens"},
      {R"(, "max_tokens": "3")", "max_tokens"},
      {R"(, "max_tokens": 2147483648)", "max_tokens"},
      {R"(, "max_tokens": 9223372036854775808)", "max_tokens"},
      {R"(, "max_tokens": 18446744073709551615)", "max_tokens"},
      {R"(, "max_tokens": 1e30)", "max_tokens"},
      {R"(, "n": 0)", "n"},
      {R"(, "n": -1)", "n"},
      {R"(, "n": 17)", "n"},
      {R"(, "n": 1000000000)", "n"},
      {R"(, "n": 2.5)", "n"},
      {R"(, "stop": ["a", "b", "c", "d", "e", "f", "g", "h", "i"])", "stop"},
      {R"(, "stop": "")", "stop"},
      {R"(, "stop": ["ok", ""])", "stop"},
      {R"(, "stop": ["ok", 3])", "stop"},
      {R"(, "stop": 3)", "stop"},
      {R"(, "stop_token_ids": [-1])", "stop_token_ids"},
      {R"(, "stop_token_ids": [1000])", "stop_token_ids"},
      {R"(, "stop_token_ids": [2147483648])", "stop_token_ids"},
      {R"(, "stop_token_ids": [1.5])", "stop_token_ids"},
      {R"(, "stop_token_ids": 5)", "stop_token_ids"},
      {R"(, "allowed_token_ids": [1000])", "allowed_token_ids"},
      {R"(, "allowed_token_ids": [-1])", "allowed_token_ids"},
      {R"(, "allowed_token_ids": [3])", "allowed_token_ids"},
      {R"(, "ignore_eos": 1)", "ignore_eos"},
      {R"(, "stream": "yes")", "stream"},
      {R"(, "stream_options": {"include_usage": true})", "stream_options"},
      {R"(, "stream": true, "stream_options": {"include_usage": 1})", "stream_options.include_usage"},
      {R"(, "stream": true, "stream_options": {"bogus": true})", "stream_options.bogus"},
      {R"(, "stream": true, "stream_options": true)", "stream_options"},
      {R"(, "model": 3)", "model"},
      {R"(, "user": 3)", "user"},
      {R"(, "frobnicate": 1)", "frobnicate"},
      {R"(, "Temperature": 1)", "Temperature"},
  };
  return cases;
}

TEST(CompletionRequestInvalid, EachSharedCaseNamesItsField) {
  for (const FieldCase& c : SharedFieldCases()) {
    SCOPED_TRACE(c.extra);
    ExpectBadRequest(ErrorOf(ParseCompletionRequest(CompletionBody(c.extra), Limits())), c.param);
  }
}

TEST(ChatRequestInvalid, EachSharedCaseNamesItsField) {
  for (const FieldCase& c : SharedFieldCases()) {
    SCOPED_TRACE(c.extra);
    ExpectBadRequest(ErrorOf(ParseChatCompletionRequest(ChatBody(c.extra), Limits())), c.param);
  }
}

TEST(CompletionRequestInvalid, StopOfOneMebibyte) {
  const std::string body = CompletionBody(", \"stop\": \"" + std::string(1 << 20, 'a') + "\"");
  ExpectBadRequest(ErrorOf(ParseCompletionRequest(body, Limits())), "stop");
}

TEST(CompletionRequestInvalid, PromptCases) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"prompt": ""})", "must not be empty"},
      {R"({"prompt": []})", "must not be empty"},
      {R"({"prompt": [[]]})", "empty"},
      {R"({"prompt": ["ok", ""]})", "empty"},
      {R"({"prompt": [[1], []]})", "empty"},
      {R"({"prompt": null})", "null"},
      {R"({"max_tokens": 3})", "required"},
      {R"({"prompt": [-1]})", "out of vocabulary"},
      {R"({"prompt": [1000]})", "out of vocabulary"},
      {R"({"prompt": [2147483648]})", "out of vocabulary"},
      {R"({"prompt": [18446744073709551615]})", "out of vocabulary"},
      {R"({"prompt": [[1, 2], [3, 1000]]})", "out of vocabulary"},
      {R"({"prompt": [1.5]})", "token id"},
      {R"({"prompt": [1, "a"]})", "token id"},
      {R"({"prompt": ["a", 1]})", "strings"},
      {R"({"prompt": [[1], "a"]})", "token-id lists"},
      {R"({"prompt": [true]})", "must be"},
      {R"({"prompt": 5})", "must be"},
      {R"({"prompt": {"text": "a"}})", "must be"},
  };
  for (const auto& [body, words] : cases) {
    SCOPED_TRACE(body);
    const ApiError e = ErrorOf(ParseCompletionRequest(body, Limits()));
    ExpectBadRequest(e, "prompt");
    EXPECT_NE(e.message.find(words), std::string::npos) << e.message;
  }
}

TEST(CompletionRequestInvalid, TooManyPrompts) {
  ProtocolLimits limits = Limits();
  limits.max_prompts = 3;
  ExpectBadRequest(ErrorOf(ParseCompletionRequest(R"({"prompt": ["a", "b", "c", "d"]})", limits)), "prompt");
  EXPECT_TRUE(std::holds_alternative<CompletionRequest>(ParseCompletionRequest(R"({"prompt": ["a", "b", "c"]})", limits)));
}

TEST(CompletionRequestInvalid, CompletionOnlyFields) {
  const std::vector<FieldCase> cases = {
      {R"(, "logprobs": -1)", "logprobs"},
      {R"(, "logprobs": 21)", "logprobs"},
      {R"(, "logprobs": true)", "logprobs"},
      {R"(, "logprobs": 1.5)", "logprobs"},
      {R"(, "echo": true)", "echo"},
      {R"(, "echo": "no")", "echo"},
      {R"(, "suffix": "tail")", "suffix"},
      {R"(, "best_of": 3)", "best_of"},
      {R"(, "messages": [])", "messages"},
      {R"(, "top_logprobs": 2)", "top_logprobs"},
      {R"(, "max_completion_tokens": 2)", "max_completion_tokens"},
  };
  for (const FieldCase& c : cases) {
    SCOPED_TRACE(c.extra);
    const ApiError e = ErrorOf(ParseCompletionRequest(CompletionBody(c.extra), Limits()));
    ExpectBadRequest(e, c.param);
    if (c.param == std::string("logprobs")) {
      EXPECT_EQ(e.message.find("top_logprobs"), std::string::npos) << "the legacy field is logprobs: " << e.message;
    }
  }
}

TEST(ChatRequestInvalid, MessagesCases) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"messages": []})", "messages"},
      {R"({"messages": null})", "messages"},
      {R"({"messages": {}})", "messages"},
      {R"({"messages": "hi"})", "messages"},
      {R"({"model": "m"})", "messages"},
      {R"({"messages": [3]})", "messages[0]"},
      {R"({"messages": [{"content": "hi"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "wizard", "content": "hi"}]})", "messages[0].role"},
      {R"({"messages": [{"role": 1, "content": "hi"}]})", "messages[0].role"},
      {R"({"messages": [{"role": "user", "content": "hi"}, {"role": "user", "content": ""}]})", "messages[1].content"},
      {R"({"messages": [{"role": "user", "content": []}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": null}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user"}]})", "messages[0].content"},
      {R"({"messages": [{"role": "system", "content": 5}]})", "messages[0].content"},
      {R"({"messages": [{"role": "user", "content": [{"type": "image_url", "image_url": {"url": "file:///etc/passwd"}}]}]})",
       "messages[0].content[0].type"},
      {R"({"messages": [{"role": "user", "content": [{"text": "a"}]}]})", "messages[0].content[0].type"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text"}]}]})", "messages[0].content[0].text"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text", "text": 3}]}]})", "messages[0].content[0].text"},
      {R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a", "x": 1}]}]})",
       "messages[0].content[0].x"},
      {R"({"messages": [{"role": "user", "content": ["a"]}]})", "messages[0].content[0]"},
      {R"({"messages": [{"role": "user", "content": "hi", "extra": 1}]})", "messages[0].extra"},
      {R"({"messages": [{"role": "user", "content": "hi", "name": 1}]})", "messages[0].name"},
      {R"({"messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "x"}]}]})",
       "messages[0].tool_calls"},
  };
  for (const auto& [body, param] : cases) {
    SCOPED_TRACE(body);
    ExpectBadRequest(ErrorOf(ParseChatCompletionRequest(body, Limits())), param);
  }
}

TEST(ChatRequestInvalid, ChatOnlyFields) {
  const std::vector<FieldCase> cases = {
      {R"(, "logprobs": true, "top_logprobs": -1)", "top_logprobs"},
      {R"(, "logprobs": true, "top_logprobs": 21)", "top_logprobs"},
      {R"(, "top_logprobs": 3)", "top_logprobs"},
      {R"(, "logprobs": 5)", "logprobs"},
      {R"(, "max_completion_tokens": 0)", "max_completion_tokens"},
      {R"(, "max_completion_tokens": 2147483648)", "max_completion_tokens"},
      {R"(, "max_completion_tokens": 1.5)", "max_completion_tokens"},
      {R"(, "response_format": {"type": "json_object"})", "response_format"},
      {R"(, "tools": [{"type": "function", "function": {"name": "f"}}])", "tools"},
      {R"(, "tool_choice": "required")", "tool_choice"},
      {R"(, "functions": [])", "functions"},
      {R"(, "function_call": "auto")", "function_call"},
      {R"(, "chat_template": "{{ 1 }}")", "chat_template"},
      {R"(, "chat_template_kwargs": {"chat_template": "{{ 1 }}"})", "chat_template_kwargs"},
      {R"(, "chat_template_kwargs": {"messages": []})", "chat_template_kwargs"},
      {R"(, "chat_template_kwargs": {"add_generation_prompt": "no"})", "chat_template_kwargs.add_generation_prompt"},
      {R"(, "chat_template_kwargs": "x")", "chat_template_kwargs"},
      {R"(, "add_generation_prompt": "yes")", "add_generation_prompt"},
      {R"(, "prompt": "x")", "prompt"},
      {R"(, "echo": false)", "echo"},
  };
  for (const FieldCase& c : cases) {
    SCOPED_TRACE(c.extra);
    ExpectBadRequest(ErrorOf(ParseChatCompletionRequest(ChatBody(c.extra), Limits())), c.param);
  }
}

TEST(ChatRequest, TemplateKwargsNeedNoTrust) {
  const auto r = ParseChatCompletionRequest(
      ChatBody(R"(, "chat_template_kwargs": {"enable_thinking": false, "add_generation_prompt": false})"), Limits());
  const ChatCompletionRequest& req = ValueOf(r);
  EXPECT_FALSE(req.chat_template.has_value());
  EXPECT_EQ(req.chat_template_kwargs["enable_thinking"], false);
  EXPECT_EQ(req.chat_template_kwargs["add_generation_prompt"], false);
}

TEST(ChatRequest, TrustedTemplateFieldsAreKept) {
  ProtocolLimits limits = Limits();
  limits.trust_request_chat_template = true;
  const auto r = ParseChatCompletionRequest(
      ChatBody(R"(, "chat_template": "{{ messages[0].content }}", "chat_template_kwargs": {"b": 1, "a": [2]})"), limits);
  const ChatCompletionRequest& req = ValueOf(r);
  ASSERT_TRUE(req.chat_template.has_value());
  EXPECT_EQ(*req.chat_template, "{{ messages[0].content }}");
  EXPECT_EQ(req.chat_template_kwargs["b"], 1);
  EXPECT_EQ(req.chat_template_kwargs["a"][0], 2);
  ExpectBadRequest(ErrorOf(ParseChatCompletionRequest(ChatBody(R"(, "chat_template_kwargs": [1])"), limits)),
                   "chat_template_kwargs");
  ExpectBadRequest(ErrorOf(ParseChatCompletionRequest(ChatBody(R"(, "chat_template": 1)"), limits)), "chat_template");
}

// ---------------------------------------------------------------------------
// Valid requests

TEST(CompletionRequest, DefaultsOfAMinimalBody) {
  const CompletionRequest& r = ValueOf(ParseCompletionRequest(R"({"prompt": "hi"})", Limits()));
  ASSERT_EQ(r.prompts.size(), 1u);
  EXPECT_FALSE(r.prompts[0].is_tokens);
  EXPECT_EQ(r.prompts[0].text, "hi");
  EXPECT_EQ(r.sampling.max_tokens, 16);  // OpenAI's completions default
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.n, 1);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_TRUE(r.skip_special_tokens);
  EXPECT_FALSE(r.logprobs.has_value());
  EXPECT_FALSE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.temperature, 1.0);
  EXPECT_FALSE(r.sampling.seed.has_value());
  EXPECT_TRUE(r.model.empty());
}

TEST(CompletionRequest, FourPromptShapes) {
  {
    const CompletionRequest& r = ValueOf(ParseCompletionRequest(R"({"prompt": "字 é"})", Limits()));
    ASSERT_EQ(r.prompts.size(), 1u);
    EXPECT_EQ(r.prompts[0].text, "字 é");
  }
  {
    const CompletionRequest& r = ValueOf(ParseCompletionRequest(R"({"prompt": [0, 5, 999]})", Limits()));
    ASSERT_EQ(r.prompts.size(), 1u);
    EXPECT_TRUE(r.prompts[0].is_tokens);
    EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{0, 5, 999}));
  }
  {
    const CompletionRequest& r = ValueOf(ParseCompletionRequest(R"({"prompt": ["a", "b c"]})", Limits()));
    ASSERT_EQ(r.prompts.size(), 2u);
    EXPECT_EQ(r.prompts[0].text, "a");
    EXPECT_EQ(r.prompts[1].text, "b c");
  }
  {
    const CompletionRequest& r = ValueOf(ParseCompletionRequest(R"({"prompt": [[1, 2], [3]]})", Limits()));
    ASSERT_EQ(r.prompts.size(), 2u);
    EXPECT_EQ(r.prompts[0].ids, (std::vector<int32_t>{1, 2}));
    EXPECT_EQ(r.prompts[1].ids, (std::vector<int32_t>{3}));
    EXPECT_TRUE(r.prompts[1].is_tokens);
  }
}

TEST(CompletionRequest, RandomTokenPromptsRoundTrip) {
  std::mt19937 rng(std::random_device{}());
  std::uniform_int_distribution<int32_t> id(0, kVocab - 1);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<int32_t> ids(1 + rng() % 300);
    for (int32_t& x : ids) x = id(rng);
    const std::string body = nlohmann::json{{"prompt", ids}}.dump();
    const CompletionRequest& r = ValueOf(ParseCompletionRequest(body, Limits()));
    ASSERT_EQ(r.prompts.size(), 1u);
    EXPECT_EQ(r.prompts[0].ids, ids);
  }
}

TEST(CompletionRequest, EveryFieldIsMapped) {
  const std::string body = R"({
    "model": "demo", "prompt": "hi", "max_tokens": 7, "temperature": 0.5, "top_p": 0.9, "top_k": 40,
    "min_p": 0.05, "repetition_penalty": 1.1, "frequency_penalty": 0.5, "presence_penalty": -0.5,
    "logit_bias": {"5": -100, "7": 2.5}, "seed": 42, "stop": ["\n\n", "END"], "stop_token_ids": [2, 3],
    "ignore_eos": true, "logprobs": 5, "echo": false, "user": "u1", "n": 3, "stream": true,
    "stream_options": {"include_usage": true}, "skip_special_tokens": false, "suffix": null, "best_of": 3})";
  const CompletionRequest& r = ValueOf(ParseCompletionRequest(body, Limits()));
  EXPECT_EQ(r.model, "demo");
  EXPECT_EQ(r.max_tokens, 7);
  EXPECT_EQ(r.sampling.max_tokens, 7);
  EXPECT_EQ(r.sampling.temperature, 0.5);
  EXPECT_EQ(r.sampling.top_p, 0.9);
  EXPECT_EQ(r.sampling.top_k, 40);
  EXPECT_EQ(r.sampling.min_p, 0.05);
  EXPECT_EQ(r.sampling.repetition_penalty, 1.1);
  EXPECT_EQ(r.sampling.frequency_penalty, 0.5);
  EXPECT_EQ(r.sampling.presence_penalty, -0.5);
  EXPECT_EQ(r.sampling.logit_bias, (std::map<int64_t, double>{{5, -100}, {7, 2.5}}));
  EXPECT_EQ(r.sampling.seed, 42u);
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"\n\n", "END"}));
  EXPECT_EQ(r.sampling.stop_token_ids, (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(r.sampling.ignore_eos);
  EXPECT_EQ(r.logprobs, 5);
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 5);
  EXPECT_EQ(r.user, "u1");
  EXPECT_EQ(r.n, 3);
  EXPECT_TRUE(r.stream);
  EXPECT_TRUE(r.include_usage);
  EXPECT_FALSE(r.skip_special_tokens);
}

TEST(CompletionRequest, StopAsStringOrList) {
  EXPECT_EQ(ValueOf(ParseCompletionRequest(CompletionBody(R"(, "stop": "END")"), Limits())).sampling.stop,
            (std::vector<std::string>{"END"}));
  EXPECT_EQ(ValueOf(ParseCompletionRequest(CompletionBody(R"(, "stop": ["a", "字"])"), Limits())).sampling.stop,
            (std::vector<std::string>{"a", "字"}));
  EXPECT_TRUE(ValueOf(ParseCompletionRequest(CompletionBody(R"(, "stop": [])"), Limits())).sampling.stop.empty());
  const std::string eight = R"(, "stop": ["a", "b", "c", "d", "e", "f", "g", ")" + std::string(256, 'h') + "\"]";
  EXPECT_EQ(ValueOf(ParseCompletionRequest(CompletionBody(eight), Limits())).sampling.stop.size(), 8u);
}

TEST(CompletionRequest, BoundaryValuesPass) {
  const std::vector<std::string> extras = {
      R"(, "max_tokens": 1)",           R"(, "max_tokens": 2147483647)",
      R"(, "n": 1)",                    R"(, "n": 16)",
      R"(, "temperature": 0)",          R"(, "temperature": 2)",
      R"(, "top_p": 1)",                R"(, "top_k": -1)",
      R"(, "top_k": 0)",                R"(, "min_p": 1)",
      R"(, "frequency_penalty": -2)",   R"(, "presence_penalty": 2)",
      R"(, "seed": 0)",                 R"(, "seed": 18446744073709551615)",
      R"(, "logit_bias": {"0": -100, "999": 100})",
      R"(, "logprobs": 0)",             R"(, "logprobs": 20)",
      R"(, "temperature": null, "stop": null, "seed": null, "logprobs": null, "user": null)",
      R"(, "stream": false)",           R"(, "echo": false, "suffix": "", "best_of": 1)",
      R"(, "stream_options": null)",    R"(, "temperature": 1e-320)",
  };
  for (const std::string& extra : extras) {
    SCOPED_TRACE(extra);
    const auto r = ParseCompletionRequest(CompletionBody(extra), Limits());
    EXPECT_TRUE(std::holds_alternative<CompletionRequest>(r)) << ErrorOf(r).message;
  }
}

TEST(CompletionRequest, LenientModeIgnoresUnknownFields) {
  ProtocolLimits limits = Limits();
  limits.allow_unknown_fields = true;
  const auto r = ParseCompletionRequest(CompletionBody(R"(, "frobnicate": {"x": 1}, "min_tokens": 4)"), limits);
  EXPECT_TRUE(std::holds_alternative<CompletionRequest>(r)) << ErrorOf(r).message;
  // Known fields are still checked.
  ExpectBadRequest(ErrorOf(ParseCompletionRequest(CompletionBody(R"(, "frobnicate": 1, "n": 0)"), limits)), "n");
}

TEST(CompletionRequest, MaxNComesFromTheLimits) {
  ProtocolLimits limits = Limits();
  limits.max_n = 4;
  ExpectBadRequest(ErrorOf(ParseCompletionRequest(CompletionBody(R"(, "n": 5)"), limits)), "n");
  EXPECT_EQ(ValueOf(ParseCompletionRequest(CompletionBody(R"(, "n": 4)"), limits)).n, 4);
}

TEST(ChatRequest, DefaultsAndMessages) {
  const std::string body = R"({"messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": [{"type": "text", "text": "one"}, {"type": "text", "text": "two"}], "name": "ann"},
      {"role": "assistant", "content": null},
      {"role": "assistant", "content": ""},
      {"role": "tool", "content": "42", "tool_call_id": "call_1"},
      {"role": "developer", "content": "x", "name": null}]})";
  const ChatCompletionRequest& r = ValueOf(ParseChatCompletionRequest(body, Limits()));
  ASSERT_EQ(r.messages.size(), 6u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "Be brief.");
  EXPECT_EQ(r.messages[1].content, "one\ntwo");
  EXPECT_EQ(r.messages[1].name, "ann");
  EXPECT_FALSE(r.messages[2].content.has_value());
  EXPECT_EQ(r.messages[3].content, "");
  EXPECT_EQ(r.messages[4].tool_call_id, "call_1");
  // The template view: role, content, then the optional keys.
  ASSERT_TRUE(r.messages_json.is_array());
  ASSERT_EQ(r.messages_json.size(), 6u);
  EXPECT_EQ(r.messages_json[1].dump(), R"({"role":"user","content":"one\ntwo","name":"ann"})");
  EXPECT_EQ(r.messages_json[2].dump(), R"({"role":"assistant","content":null})");
  EXPECT_EQ(r.messages_json[4].dump(), R"({"role":"tool","content":"42","tool_call_id":"call_1"})");
  EXPECT_EQ(r.messages_json[5].dump(), R"({"role":"developer","content":"x"})");
  // max_tokens absent: the placeholder that FitMaxTokens replaces.
  EXPECT_FALSE(r.max_tokens.has_value());
  EXPECT_EQ(r.sampling.max_tokens, kMaxMaxTokens);
  EXPECT_TRUE(r.add_generation_prompt);
  EXPECT_FALSE(r.chat_template.has_value());
  EXPECT_TRUE(r.chat_template_kwargs.is_null());
}

TEST(ChatRequest, SamplingAndLogprobFields) {
  const ChatCompletionRequest& r = ValueOf(ParseChatCompletionRequest(
      ChatBody(R"(, "max_tokens": 9, "logprobs": true, "top_logprobs": 20, "temperature": 0, "seed": 3,
                  "stop": "x", "n": 2, "stream": true, "stream_options": {"include_usage": false},
                  "response_format": {"type": "text"}, "tools": [], "tool_choice": "none",
                  "parallel_tool_calls": false, "add_generation_prompt": false)"),
      Limits()));
  EXPECT_EQ(r.max_tokens, 9);
  EXPECT_EQ(r.sampling.max_tokens, 9);
  EXPECT_TRUE(r.sampling.logprobs);
  EXPECT_EQ(r.sampling.top_logprobs, 20);
  EXPECT_TRUE(r.sampling.greedy());
  EXPECT_EQ(r.sampling.seed, 3u);
  EXPECT_EQ(r.sampling.stop, (std::vector<std::string>{"x"}));
  EXPECT_EQ(r.n, 2);
  EXPECT_TRUE(r.stream);
  EXPECT_FALSE(r.include_usage);
  EXPECT_FALSE(r.add_generation_prompt);
}

TEST(ChatRequest, MaxCompletionTokensWins) {
  const ChatCompletionRequest& r =
      ValueOf(ParseChatCompletionRequest(ChatBody(R"(, "max_tokens": 100, "max_completion_tokens": 5)"), Limits()));
  EXPECT_EQ(r.max_tokens, 5);
  EXPECT_EQ(r.sampling.max_tokens, 5);
  const ChatCompletionRequest& only =
      ValueOf(ParseChatCompletionRequest(ChatBody(R"(, "max_completion_tokens": 6)"), Limits()));
  EXPECT_EQ(only.sampling.max_tokens, 6);
}

// ---------------------------------------------------------------------------
// C16: context length

TEST(FitMaxTokens, ContextLengthRules) {
  constexpr int64_t kCtx = 100;
  // ctx - 1 prompt tokens + max_tokens 1 fits exactly.
  EXPECT_EQ(std::get<int64_t>(FitMaxTokens(kCtx - 1, 1, kCtx, "prompt")), 1);
  // Absent max_tokens: all the room left.
  EXPECT_EQ(std::get<int64_t>(FitMaxTokens(30, std::nullopt, kCtx, "messages")), 70);
  EXPECT_EQ(std::get<int64_t>(FitMaxTokens(kCtx - 1, std::nullopt, kCtx, "messages")), 1);
  struct Case {
    int64_t prompt;
    std::optional<int64_t> max_tokens;
  };
  for (const Case& c : {Case{kCtx, 1}, Case{kCtx, std::nullopt}, Case{kCtx - 1, 2}, Case{50, 51}, Case{500, 10}}) {
    SCOPED_TRACE(c.prompt);
    const ApiError e = ErrorOf(FitMaxTokens(c.prompt, c.max_tokens, kCtx, "prompt"));
    EXPECT_EQ(e.http_status, 400);
    EXPECT_EQ(e.code, "context_length_exceeded");
    EXPECT_EQ(e.param, "prompt");
    // Both numbers (and the limit) are in the message.
    EXPECT_NE(e.message.find(std::to_string(c.prompt) + " in the prompt"), std::string::npos) << e.message;
    EXPECT_NE(e.message.find(std::to_string(c.max_tokens.value_or(1)) + " in the completion"), std::string::npos)
        << e.message;
    EXPECT_NE(e.message.find("maximum context length is 100 tokens"), std::string::npos) << e.message;
  }
}

// ---------------------------------------------------------------------------
// /tokenize and /detokenize

TEST(TokenizeRequest, PromptAndMessages) {
  const TokenizeRequest& p = ValueOf(ParseTokenizeRequest(R"({"prompt": "a b", "model": "m"})", Limits()));
  EXPECT_FALSE(p.is_chat);
  EXPECT_EQ(p.prompt, "a b");
  EXPECT_EQ(p.model, "m");
  EXPECT_TRUE(p.add_special_tokens);
  EXPECT_FALSE(p.return_token_strs);
  const TokenizeRequest& empty = ValueOf(ParseTokenizeRequest(R"({"prompt": "", "add_special_tokens": false})", Limits()));
  EXPECT_EQ(empty.prompt, "");
  EXPECT_FALSE(empty.add_special_tokens);
  const TokenizeRequest& m = ValueOf(ParseTokenizeRequest(
      R"({"messages": [{"role": "user", "content": "hi"}], "add_generation_prompt": false, "return_token_strs": true})",
      Limits()));
  EXPECT_TRUE(m.is_chat);
  EXPECT_FALSE(m.add_special_tokens);  // vLLM's default for messages
  EXPECT_FALSE(m.add_generation_prompt);
  EXPECT_TRUE(m.return_token_strs);
  ASSERT_EQ(m.messages_json.size(), 1u);
  EXPECT_EQ(m.messages_json[0]["content"], "hi");
}

TEST(TokenizeRequest, Invalid) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "prompt"},
      {R"({"prompt": 3})", "prompt"},
      {R"({"prompt": [1, 2]})", "prompt"},
      {R"({"prompt": "a", "messages": [{"role": "user", "content": "hi"}]})", "messages"},
      {R"({"messages": []})", "messages"},
      {R"({"prompt": "a", "add_special_tokens": 1})", "add_special_tokens"},
      {R"({"prompt": "a", "tokens": [1]})", "tokens"},
      {R"({"messages": [{"role": "user", "content": "hi"}], "chat_template": "x"})", "chat_template"},
  };
  for (const auto& [body, param] : cases) {
    SCOPED_TRACE(body);
    ExpectBadRequest(ErrorOf(ParseTokenizeRequest(body, Limits())), param);
  }
}

TEST(DetokenizeRequest, TokensChecked) {
  EXPECT_EQ(ValueOf(ParseDetokenizeRequest(R"({"tokens": [1, 2, 999]})", Limits())).tokens,
            (std::vector<int32_t>{1, 2, 999}));
  EXPECT_TRUE(ValueOf(ParseDetokenizeRequest(R"({"tokens": []})", Limits())).tokens.empty());
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({})", "tokens"},
      {R"({"tokens": [1000]})", "tokens"},
      {R"({"tokens": [-1]})", "tokens"},
      {R"({"tokens": [2147483648]})", "tokens"},
      {R"({"tokens": "abc"})", "tokens"},
      {R"({"tokens": [1], "prompt": "x"})", "prompt"},
  };
  for (const auto& [body, param] : cases) {
    SCOPED_TRACE(body);
    ExpectBadRequest(ErrorOf(ParseDetokenizeRequest(body, Limits())), param);
  }
  EXPECT_NE(ErrorOf(ParseDetokenizeRequest(R"({"tokens": [1000]})", Limits())).message.find("out of vocabulary"),
            std::string::npos);
}

}  // namespace
}  // namespace lserve
