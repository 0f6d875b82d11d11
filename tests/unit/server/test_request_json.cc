// Malformed bodies (RELIABILITY.md C20): each a 400 with an OpenAI error and,
// where a field is at fault, its name; deep nesting is refused by the scan
// before the recursive-descent consumers could overflow the stack.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <variant>

#include "server/openai_protocol.h"
#include "server/request_json.h"

namespace lserve {
namespace {

ProtocolLimits Limits() {
  ProtocolLimits limits;
  limits.vocab_size = 1000;
  return limits;
}

const ApiError* CompletionError(const std::string& body) {
  static ParseResult<CompletionRequest> last = ApiError{};
  last = ParseCompletionRequest(body, Limits());
  return std::get_if<ApiError>(&last);
}

TEST(MalformedBody, EachIsABadRequest) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"", ""},
      {"   ", ""},
      {"{", ""},
      {R"({"prompt": "hi")", ""},
      {R"({"prompt": "hi",})", ""},
      {R"({"prompt": "h)", ""},
      {R"({prompt: "hi"})", ""},
      {R"({'prompt': 'hi'})", ""},
      {R"(["prompt", "hi"])", ""},
      {R"("prompt")", ""},
      {"42", ""},
      {"null", ""},
      {R"({"prompt": "hi"} {"prompt": "x"})", ""},
      {std::string("{\"prompt\": \"a\xff\"}"), ""},       // invalid UTF-8 byte in a string
      {std::string("{\"prompt\": \"\xc3\x28\"}"), ""},    // bad continuation byte
      {std::string("{\"prompt\": \"\xed\xa0\x80\"}"), ""},  // UTF-8-encoded surrogate
      {R"({"prompt": "\ud800"})", ""},                    // lone surrogate escape
      {R"({"prompt": "\udc00x"})", ""},
      {R"({"prompt": "\u12"})", ""},
      {std::string("{\"prompt\": \"a\0b\"}", 17), ""},  // raw NUL inside a string
      {std::string("{\"prompt\": \"ab\"}\0", 17), ""},  // NUL after the object
      {std::string("{\"prompt\": \"ab\"}\0{\"x", 21), ""},
      {std::string("{\"prompt\":\t\"a\nb\"}"), ""},     // raw control character in a string
      {R"({"prompt": "hi", "max_tokens": 1e400})", "max_tokens"},
      {R"({"prompt": "hi", "max_tokens": -1e400})", "max_tokens"},
      {R"({"prompt": "hi", "temperature": NaN})", "temperature"},
      {R"({"temperature": Infinity, "prompt": "hi"})", "temperature"},
      {R"({"prompt": "hi", "logit_bias": {"1": -Infinity}})", "logit_bias"},
      {"{\"prompt\": \"hi\", \"top_p\": 1" + std::string(400, '0') + "}", "top_p"},
      {R"({"prompt": "hi", "unknown_field": 1})", "unknown_field"},
      {R"({"prompt": "hi", "": 1})", ""},
  };
  for (const auto& [body, param] : cases) {
    SCOPED_TRACE(body.substr(0, 80));
    const ApiError* e = CompletionError(body);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->http_status, 400);
    EXPECT_EQ(e->type, "invalid_request_error");
    EXPECT_EQ(e->param, param) << e->message;
    // The error body itself is valid JSON whatever the message quotes.
    const nlohmann::json parsed = nlohmann::json::parse(ApiErrorBody(*e), nullptr, false);
    EXPECT_FALSE(parsed.is_discarded()) << ApiErrorBody(*e);
  }
}

TEST(MalformedBody, DeepNestingIsRefusedByTheScan) {
  for (const std::string& opener : {std::string("["), std::string("{\"a\":")}) {
    const std::string body = "{\"prompt\": " + [&] {
      std::string s;
      for (int i = 0; i < 100000; ++i) s += opener;
      return s;
    }();
    const ApiError* e = CompletionError(body);
    ASSERT_NE(e, nullptr);
    EXPECT_NE(e->message.find("deeper than 64"), std::string::npos) << e->message;
  }
  // Balanced and deep: still refused, before the parser builds it.
  std::string balanced = "{\"prompt\": " + std::string(100000, '[') + std::string(100000, ']') + "}";
  const ApiError* e = CompletionError(balanced);
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->message.find("deeper than"), std::string::npos);
}

TEST(MalformedBody, NestingAtTheCapIsParsed) {
  // 64 levels in all: the body object plus 63 arrays.
  std::string deep = "{\"prompt\": \"x\", \"user\": " + std::string(63, '[') + std::string(63, ']') + "}";
  const ApiError* e = CompletionError(deep);
  ASSERT_NE(e, nullptr);  // parsed, then refused for its type, not its depth
  EXPECT_EQ(e->param, "user");
  deep = "{\"prompt\": \"x\", \"user\": " + std::string(64, '[') + std::string(64, ']') + "}";
  e = CompletionError(deep);
  ASSERT_NE(e, nullptr);
  EXPECT_NE(e->message.find("deeper than"), std::string::npos);
}

TEST(MalformedBody, BracketsInsideStringsDoNotCount) {
  const std::string text = std::string(5000, '[') + "\\\"" + std::string(5000, '{') + "NaN Infinity 1e999";
  const std::string body = "{\"prompt\": \"" + text + "\"}";
  const auto r = ParseCompletionRequest(body, Limits());
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r)) << std::get<ApiError>(r).message;
  EXPECT_EQ(std::get<CompletionRequest>(r).prompts[0].text.size(), 10000u + 1 + 18);
}

TEST(MalformedBody, LargeButFiniteNumbersPass) {
  for (const char* value : {"1e308", "1.7976931348623157e308", "0.0001e310", "-0.5e-999", "1e-400", "123.5E+2",
                            "0.000000000000000000000000000000000000000001"}) {
    SCOPED_TRACE(value);
    const auto r = ParseCompletionRequest(std::string(R"({"prompt": "x", "temperature": )") + value + "}", Limits());
    // Parsed: any error is about the range of temperature, not the number.
    if (const ApiError* e = std::get_if<ApiError>(&r)) {
      EXPECT_EQ(e->param, "temperature");
      EXPECT_EQ(e->message.find("finite numbers"), std::string::npos) << e->message;
    }
  }
  for (const char* value : {"1e309", "-2e308", "17976931348623159e292", "0.1e310"}) {
    SCOPED_TRACE(value);
    const auto r = ParseCompletionRequest(std::string(R"({"prompt": "x", "temperature": )") + value + "}", Limits());
    const ApiError* e = std::get_if<ApiError>(&r);
    ASSERT_NE(e, nullptr);
    EXPECT_EQ(e->param, "temperature");
    EXPECT_NE(e->message.find("finite numbers"), std::string::npos) << e->message;
  }
}

TEST(MalformedBody, EscapedNulAndValidSurrogatePairsAreText) {
  const auto r = ParseCompletionRequest(R"({"prompt": "a\u0000b \ud83d\ude00"})", Limits());
  ASSERT_TRUE(std::holds_alternative<CompletionRequest>(r)) << std::get<ApiError>(r).message;
  EXPECT_EQ(std::get<CompletionRequest>(r).prompts[0].text, std::string("a\0b \xF0\x9F\x98\x80", 8));
}

TEST(MalformedBody, LongFieldNamesAreCutInErrors) {
  const std::string name(100000, 'k');
  const ApiError* e = CompletionError("{\"prompt\": \"x\", \"" + name + "\": 1}");
  ASSERT_NE(e, nullptr);
  EXPECT_EQ(e->param, std::string(64, 'k'));
  EXPECT_LT(e->message.size(), 200u);
}

TEST(MalformedBody, RandomBytesNeverCrash) {
  // Fresh random mutations of a valid body: any outcome but a crash is fine,
  // and every error is a 400 with a JSON-serializable body.
  std::mt19937 rng(std::random_device{}());
  const std::string base =
      R"({"prompt": [[1, 2], [3]], "max_tokens": 5, "stop": ["a"], "logit_bias": {"3": 1.5}, "n": 2})";
  for (int trial = 0; trial < 2000; ++trial) {
    std::string body = base;
    const int edits = 1 + rng() % 4;
    for (int k = 0; k < edits; ++k) {
      const size_t at = rng() % body.size();
      switch (rng() % 3) {
        case 0: body[at] = static_cast<char>(rng() % 256); break;
        case 1: body.erase(at, 1); break;
        default: body.insert(at, 1, "[{\"]}:,\\0e-"[rng() % 11]); break;
      }
    }
    const auto r = ParseCompletionRequest(body, Limits());
    if (const ApiError* e = std::get_if<ApiError>(&r)) {
      ASSERT_EQ(e->http_status, 400);
      ASSERT_FALSE(nlohmann::json::parse(ApiErrorBody(*e), nullptr, false).is_discarded());
    }
  }
}

TEST(RequestJson, TypedReads) {
  using request_json::Json;
  int64_t i = 0;
  EXPECT_FALSE(request_json::ReadInt64(Json(5), "x", &i));
  EXPECT_EQ(i, 5);
  EXPECT_FALSE(request_json::ReadInt64(Json(INT64_MIN), "x", &i));
  EXPECT_EQ(i, INT64_MIN);
  EXPECT_TRUE(request_json::ReadInt64(Json(uint64_t{1} << 63), "x", &i));
  EXPECT_TRUE(request_json::ReadInt64(Json(2.0), "x", &i));
  EXPECT_TRUE(request_json::ReadInt64(Json(true), "x", &i));
  double d = 0;
  EXPECT_FALSE(request_json::ReadNumber(Json(3), "x", &d));
  EXPECT_EQ(d, 3.0);
  EXPECT_TRUE(request_json::ReadNumber(Json("3"), "x", &d));
  int32_t id = 0;
  EXPECT_FALSE(request_json::ReadTokenId(Json(999), "x", 1000, &id));
  EXPECT_EQ(id, 999);
  EXPECT_TRUE(request_json::ReadTokenId(Json(1000), "x", 1000, &id));
  EXPECT_TRUE(request_json::ReadTokenId(Json(uint64_t{1} << 63), "x", 1000, &id));
  EXPECT_TRUE(request_json::ReadTokenId(Json(-1), "x", 1000, &id));
  const auto e = request_json::TypeError("temperature", "a number", Json("1"));
  EXPECT_EQ(e.message, "temperature must be a number, got a string");
}

}  // namespace
}  // namespace lserve
