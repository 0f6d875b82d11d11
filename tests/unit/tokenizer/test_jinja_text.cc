// Python-compatible text and value helpers of the template engine.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <random>
#include <string>

#include "tokenizer/jinja_json.h"
#include "tokenizer/jinja_lexer.h"
#include "tokenizer/jinja_text.h"
#include "tokenizer/jinja_value.h"

namespace lserve::jinja {
namespace {

TEST(JinjaText, FloatReprMatchesPython) {
  const std::pair<double, const char*> cases[] = {
      {1.0, "1.0"},           {0.1, "0.1"},       {0.1 + 0.2, "0.30000000000000004"},
      {1e16, "1e+16"},        {1e15, "1000000000000000.0"}, {1e-4, "0.0001"},
      {1e-5, "1e-05"},        {-0.0, "-0.0"},     {123456789012345678.0, "1.2345678901234568e+17"},
      {2.5e-300, "2.5e-300"}, {1.5, "1.5"},       {100.0, "100.0"},
      {std::numeric_limits<double>::infinity(), "inf"}, {-std::numeric_limits<double>::infinity(), "-inf"},
      {std::nan(""), "nan"},  {5e-324, "5e-324"}, {1.7976931348623157e308, "1.7976931348623157e+308"},
  };
  for (const auto& [value, text] : cases) EXPECT_EQ(PyFloatRepr(value), text);
}

TEST(JinjaText, FloatReprRoundTrips) {
  std::mt19937_64 rng(std::random_device{}());
  for (int i = 0; i < 20000; ++i) {
    uint64_t bits = rng();
    double v;
    std::memcpy(&v, &bits, sizeof(v));
    if (!std::isfinite(v)) continue;
    std::string text = PyFloatRepr(v);
    EXPECT_EQ(std::strtod(text.c_str(), nullptr), v) << text;
    EXPECT_TRUE(text.find_first_of(".en") != std::string::npos) << text;  // never looks like an int
  }
}

TEST(JinjaText, StrReprPicksQuotesAndEscapesLikePython) {
  EXPECT_EQ(PyStrRepr("abc"), "'abc'");
  EXPECT_EQ(PyStrRepr("it's"), "\"it's\"");
  EXPECT_EQ(PyStrRepr("a'b\"c"), "'a\\'b\"c'");
  EXPECT_EQ(PyStrRepr("tab\tnl\ncr\r\\"), "'tab\\tnl\\ncr\\r\\\\'");
  EXPECT_EQ(PyStrRepr(std::string("\x00\x7f", 2)), "'\\x00\\x7f'");
  EXPECT_EQ(PyStrRepr("\u00a0é\u2028🤖"), "'\\xa0é\\u2028🤖'");
}

TEST(JinjaText, StripAndSplitUsePythonWhitespace) {
  EXPECT_EQ(PyStrip("\u00a0 \t x y \u3000\n", StripSide::kBoth, nullptr), "x y");
  EXPECT_EQ(PyStrip("  x  ", StripSide::kLeft, nullptr), "x  ");
  EXPECT_EQ(PyStrip("  x  ", StripSide::kRight, nullptr), "  x");
  const std::string chars = "xé";
  EXPECT_EQ(PyStrip("éxaéx", StripSide::kBoth, &chars), "a");
  EXPECT_EQ(PySplitWhitespace("  a b\u2003c  ", -1), (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(PySplitWhitespace("  a b  c  ", 1), (std::vector<std::string>{"a", "b  c  "}));
  EXPECT_EQ(PyRSplitWhitespace("  a b  c  ", 1), (std::vector<std::string>{"  a b", "c"}));
  EXPECT_EQ(PySplitLines("a\nb\r\nc\rd\u2028e\n"), (std::vector<std::string>{"a", "b", "c", "d", "e"}));
  EXPECT_TRUE(PySplitLines("").empty());
}

TEST(JinjaText, CaseMappingCoversCommonScripts) {
  EXPECT_EQ(PyUpper("straße ÿ ı"), "STRASSE Ÿ I");
  EXPECT_EQ(PyLower("ÀÉÎÕÜ ΑΒΓ АБВ Ω"), "àéîõü αβγ абв ω");
  EXPECT_EQ(PyTitle("hello wORLD 1st"), "Hello World 1St");
  EXPECT_EQ(PyCapitalize("hELLO World"), "Hello world");
  EXPECT_EQ(PyUpper("你好 🤖"), "你好 🤖");
}

TEST(JinjaText, CodePointsOfMalformedUtf8) {
  EXPECT_EQ(CodePointCount("héllo"), 5u);
  EXPECT_EQ(CodePointCount(std::string("a\xff" "b", 3)), 3u);
  EXPECT_EQ(CodePointOffsets("aé").back(), 3u);
}

TEST(JinjaValue, EqualityAndHashingFollowPython) {
  EXPECT_TRUE(PyEquals(Value::Int(1), Value::Float(1.0)));
  EXPECT_TRUE(PyEquals(Value::Bool(true), Value::Int(1)));
  EXPECT_FALSE(PyEquals(Value::Int(1), Value::String("1")));
  EXPECT_FALSE(PyEquals(Value::List({Value::Int(1)}), Value::Tuple({Value::Int(1)})));
  EXPECT_EQ(HashKey(Value::Int(1)), HashKey(Value::Float(1.0)));
  EXPECT_EQ(HashKey(Value::Int(1)), HashKey(Value::Bool(true)));
  EXPECT_FALSE(HashKey(Value::List({})).has_value());
  Dict d;
  ASSERT_TRUE(d.Set(Value::Int(1), Value::String("a")).ok());
  ASSERT_TRUE(d.Set(Value::Float(1.0), Value::String("b")).ok());
  EXPECT_EQ(d.size(), 1u);
  EXPECT_EQ(d.Find(Value::Bool(true))->str(), "b");
  EXPECT_FALSE(d.Set(Value::List({}), Value::None()).ok());
  EXPECT_FALSE(PyLess(Value::Int(1), Value::String("a")).ok());
}

TEST(JinjaValue, StrAndReprOfContainers) {
  Dict d;
  ASSERT_TRUE(d.Set(Value::String("k"), Value::List({Value::Int(1), Value::None(), Value::Bool(false)})).ok());
  EXPECT_EQ(PyStr(Value::FromDict(d)), "{'k': [1, None, False]}");
  EXPECT_EQ(PyStr(Value::Tuple({Value::Float(2.0)})), "(2.0,)");
  EXPECT_EQ(PyStr(Value()), "");
  EXPECT_EQ(PyRepr(Value::String("x")), "'x'");
}

TEST(JinjaJson, DumpsLikePythonJson) {
  Dict d;
  ASSERT_TRUE(d.Set(Value::String("b"), Value::String("é\n\"")).ok());
  ASSERT_TRUE(d.Set(Value::String("a"), Value::List({Value::Int(1), Value::Float(0.5), Value::None()})).ok());
  Value v = Value::FromDict(d);
  std::string out;
  ASSERT_TRUE(AppendPythonJson(v, {}, &out).ok());
  EXPECT_EQ(out, "{\"b\": \"é\\n\\\"\", \"a\": [1, 0.5, null]}");
  JsonDumpOptions pretty;
  pretty.indent = "  ";
  pretty.item_separator = ",";
  pretty.sort_keys = true;
  pretty.ensure_ascii = true;
  out.clear();
  ASSERT_TRUE(AppendPythonJson(v, pretty, &out).ok());
  EXPECT_EQ(out, "{\n  \"a\": [\n    1,\n    0.5,\n    null\n  ],\n  \"b\": \"\\u00e9\\n\\\"\"\n}");
  out.clear();
  EXPECT_FALSE(AppendPythonJson(Value(), {}, &out).ok());
  out.clear();
  ASSERT_TRUE(AppendPythonJson(Value::Float(std::nan("")), {}, &out).ok());
  EXPECT_EQ(out, "NaN");
}

TEST(JinjaLexer, WhitespaceControlAsTransformersConfiguresJinja) {
  auto data = [](const std::string& source) {
    Result<std::vector<Token>> tokens = Tokenize(source);
    EXPECT_TRUE(tokens.ok()) << tokens.status().message();
    std::string text;
    if (!tokens.ok()) return text;
    for (const Token& t : *tokens) {
      if (t.type == TokenType::kData) text += t.text;
    }
    return text;
  };
  EXPECT_EQ(data("a\n  {% if x %}\n  b\n  {% endif %}\nc\n"), "a\n  b\nc");  // lstrip + trim, final \n dropped
  EXPECT_EQ(data("a  {%- if x -%}  b"), "ab");
  EXPECT_EQ(data("a\n  {%+ if x %}\nb"), "a\n  b");  // + keeps the indentation
  EXPECT_EQ(data("a\n  {{ x }}\nb"), "a\n  \nb");    // variables are never stripped
  EXPECT_EQ(data("a {# c #}\n  {# d #}\nb"), "a b");
  EXPECT_EQ(data("x{% raw %} {{ y }} {% endraw %}z"), "x {{ y }} z");
  EXPECT_EQ(data("a\r\nb\rc"), "a\nb\nc");
}

}  // namespace
}  // namespace lserve::jinja
