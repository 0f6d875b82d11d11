// ChatTemplate's contract beyond the goldens: how inputs are normalised as
// apply_chat_template does, which context keys are accepted, error shapes.
#include <gtest/gtest.h>

#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

namespace lserve {
namespace {

using Json = nlohmann::ordered_json;

std::string Render(const std::string& source, const Json& messages, const Json& context = Json::object(),
                   bool add_generation_prompt = false) {
  Result<ChatTemplate> t = ChatTemplate::Compile(source);
  EXPECT_TRUE(t.ok()) << t.status().message();
  if (!t.ok()) return "<compile error>";
  Result<std::string> r = t->RenderAt(messages, add_generation_prompt, context, 0);
  EXPECT_TRUE(r.ok()) << r.status().message();
  return r.ok() ? *r : "<render error>";
}

const Json kHello = Json::array({{{"role", "user"}, {"content", "hello"}}});

TEST(ChatTemplateApi, ContextVariablesAndDefaults) {
  EXPECT_EQ(Render("{{ bos_token }}|{{ eos_token }}|{{ tools }}|{{ documents }}|{{ add_generation_prompt }}|"
                   "{{ unk_token is defined }}",
                   kHello, {{"bos_token", "<s>"}, {"eos_token", "</s>"}}, true),
            "<s>|</s>|None|None|True|False");
  EXPECT_EQ(Render("{{ tools | length }}", kHello, {{"tools", Json::array({{{"type", "function"}}})}}), "1");
  EXPECT_EQ(Render("{{ date_string }}", kHello, {{"date_string", "26 Jul 2024"}}), "26 Jul 2024");
}

TEST(ChatTemplateApi, NullMessageKeysAreDroppedLikeApplyChatTemplate) {
  Json messages = Json::array({{{"role", "assistant"}, {"content", nullptr}, {"tool_calls", nullptr}}});
  EXPECT_EQ(Render("{{ 'content' in messages[0] }}{{ messages[0].tool_calls is defined }}{{ messages[0] }}",
                   messages),
            "FalseFalse{'role': 'assistant'}");
}

TEST(ChatTemplateApi, ReasoningIsVisibleUnderTheNamesTemplatesRead) {
  Json messages = Json::array({{{"role", "assistant"}, {"content", "4"}, {"reasoning", "2+2"}}});
  EXPECT_EQ(Render("{{ messages[0] | tojson }}", messages),
            R"({"thinking": "2+2", "role": "assistant", "content": "4", "reasoning": "2+2", "reasoning_content": "2+2"})");
}

TEST(ChatTemplateApi, OrderedJsonKeepsKeyOrderForTojson) {
  const std::string source = "{{ messages[0].tool | tojson }}";
  Json ordered = Json::array({{{"role", "user"}, {"tool", {{"name", "f"}, {"arguments", {{"b", 1}, {"a", 2}}}}}}});
  EXPECT_EQ(Render(source, ordered), R"({"name": "f", "arguments": {"b": 1, "a": 2}})");
  // Plain nlohmann::json sorts keys, so the same input comes out sorted.
  Result<ChatTemplate> t = ChatTemplate::Compile(source);
  ASSERT_TRUE(t.ok());
  nlohmann::json plain = nlohmann::json::parse(ordered.dump());
  Result<std::string> r = t->Render(plain, false, nlohmann::json::object());
  ASSERT_TRUE(r.ok()) << r.status().message();
  EXPECT_EQ(*r, R"({"arguments": {"a": 2, "b": 1}, "name": "f"})");
}

TEST(ChatTemplateApi, RejectsMalformedInput) {
  Result<ChatTemplate> t = ChatTemplate::Compile("{{ messages }}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->RenderAt(Json::array(), false, Json::object(), 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t->RenderAt(Json::object(), false, Json::object(), 0).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(t->RenderAt(Json::array({"text"}), false, Json::object(), 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(t->RenderAt(kHello, false, Json::array(), 0).status().code(), StatusCode::kInvalidArgument);
  // The context cannot override what the caller decides.
  EXPECT_EQ(t->RenderAt(kHello, false, {{"messages", Json::array()}}, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(t->RenderAt(kHello, false, {{"add_generation_prompt", true}}, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(t->RenderAt(kHello, false, {{"big", 18446744073709551615ull}}, 0).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(t->RenderAt(kHello, false, nullptr, 0).ok());
}

TEST(ChatTemplateApi, CompileErrorsNameTheLine) {
  Result<ChatTemplate> t = ChatTemplate::Compile("line one\n{% if x %}\n{{ x | nosuchfilter }}\n{% endif %}");
  EXPECT_TRUE(t.ok());  // unknown filters inside an if fail only when reached, as in jinja2
  for (const auto& [source, line] : std::vector<std::pair<std::string, std::string>>{
           {"a\nb\n{{ x | nosuchfilter }}", "line 3"},
           {"{% for x in y %}\n{{ x }}", "endfor"},
           {"\n\n{{ 1 + }}", "line 3"},
           {"{% if %}{% endif %}", "line 1"},
           {"{{ 'unterminated }}", "line 1"},
           {"{# never closed", "comment"},
           {"{% endfor %}", "endfor"},
           {"{{ x ]}}", "unexpected ']'"},
           {"{% break %}", "outside of a loop"},
           {"{% macro m(a=1, b) %}{% endmacro %}", "non-default argument"},
       }) {
    Result<ChatTemplate> bad = ChatTemplate::Compile(source);
    ASSERT_FALSE(bad.ok()) << source;
    EXPECT_EQ(bad.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(bad.status().message().find(line), std::string::npos) << source << " -> " << bad.status().message();
  }
}

TEST(ChatTemplateApi, RuntimeErrorsNameTheLine) {
  Result<ChatTemplate> t = ChatTemplate::Compile("ok\n{% if x %}{{ x | nosuchfilter }}{% endif %}\n{{ 1 + 'a' }}");
  ASSERT_TRUE(t.ok());
  Result<std::string> r = t->RenderAt(kHello, false, Json::object(), 0);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "chat template error (line 3): unsupported operand type(s) for +: 'int' and 'str'");
  r = t->RenderAt(kHello, false, {{"x", 1}}, 0);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("No filter named 'nosuchfilter'"), std::string::npos) << r.status().message();
}

TEST(ChatTemplateApi, StrftimeNowUsesTheGivenClockInUtc) {
  Result<ChatTemplate> t = ChatTemplate::Compile("{{ strftime_now('%d %b %Y %H:%M') }}");
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(*t->RenderAt(kHello, false, Json::object(), 86400 * 365 + 3600), "01 Jan 1971 01:00");
}

TEST(ChatTemplateApi, GenerationBlocksRenderTheirBody) {
  // transformers' {% generation %} marks assistant text for masks; rendering
  // is unaffected.
  EXPECT_EQ(Render("{% for m in messages %}{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}", kHello),
            "[hello]");
}

TEST(ChatTemplateApi, ReadsTemplatesWithCarriageReturnsAndTrailingNewline) {
  EXPECT_EQ(Render("{% for m in messages %}\r\n{{ m.role }}\r{% endfor %}\n", kHello), "user\n");
}

}  // namespace
}  // namespace lserve
