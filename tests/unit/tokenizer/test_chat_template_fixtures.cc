// Golden renders from transformers (tools/fixtures/make_chat_fixtures.py):
// every case must come out byte for byte identical, and fail where jinja2
// fails.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

namespace lserve {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

const fs::path kChatFixtures = fs::path(LSERVE_SOURCE_DIR) / "tests" / "fixtures" / "chat";
constexpr std::time_t kFixedTime = 1700000000;

Json ReadJson(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return Json::parse(buffer.str());
}

// A raise_exception() message must come through exactly; other jinja2
// errors (UndefinedError, TypeError ...) must at least name the same thing.
void ExpectSameFailure(const Json& expected, const Status& status, const std::string& label) {
  const std::string message = expected["error"].get<std::string>();
  if (expected["error_type"] == "TemplateError") {
    EXPECT_EQ(status.message(), message) << label;
  } else if (expected["error_type"] == "UndefinedError") {
    EXPECT_NE(status.message().find(message), std::string::npos) << label << ": " << status.message();
  }
}

TEST(ChatTemplateGoldens, RealCheckpointTemplatesMatchTransformers) {
  int files = 0;
  int cases = 0;
  for (const auto& entry : fs::directory_iterator(kChatFixtures)) {
    if (entry.path().extension() != ".json" || entry.path().filename() == "language.json") continue;
    ++files;
    const Json fixture = ReadJson(entry.path());
    const std::string name = entry.path().stem().string();
    Result<ChatTemplate> tmpl = ChatTemplate::Compile(fixture["template"].get<std::string>());
    ASSERT_TRUE(tmpl.ok()) << name << ": " << tmpl.status().message();
    for (const Json& c : fixture["cases"]) {
      ++cases;
      Json context = Json::object();
      for (const auto& [key, value] : fixture["special_tokens"].items()) {
        if (!value.is_null()) context[key] = value;
      }
      for (const auto& [key, value] : c["context"].items()) context[key] = value;
      const std::string label = name + "/" + c["name"].get<std::string>() +
                                (c["add_generation_prompt"].get<bool>() ? "+prompt" : "");
      Result<std::string> text =
          tmpl->RenderAt(c["messages"], c["add_generation_prompt"].get<bool>(), context, kFixedTime);
      if (c.contains("text")) {
        ASSERT_TRUE(text.ok()) << label << ": " << text.status().message();
        EXPECT_EQ(*text, c["text"].get<std::string>()) << label;
      } else {
        ASSERT_FALSE(text.ok()) << label << " rendered but jinja2 raised: " << c["error"];
        ExpectSameFailure(c, text.status(), label);
      }
    }
  }
  EXPECT_GE(files, 8);
  EXPECT_GE(cases, 8 * 30);
}

TEST(ChatTemplateGoldens, LanguageFeaturesMatchJinja) {
  const Json fixture = ReadJson(kChatFixtures / "language.json");
  int index = 0;
  for (const Json& c : fixture["cases"]) {
    const std::string source = c["template"].get<std::string>();
    const std::string label = "case " + std::to_string(index++) + ": " + source;
    Result<ChatTemplate> tmpl = ChatTemplate::Compile(source);
    Result<std::string> text = tmpl.ok() ? tmpl->RenderAt(fixture["messages"], true, fixture["context"], kFixedTime)
                                         : Result<std::string>(tmpl.status());
    if (c.contains("text")) {
      ASSERT_TRUE(text.ok()) << label << "\n" << text.status().message();
      EXPECT_EQ(*text, c["text"].get<std::string>()) << label;
    } else {
      EXPECT_FALSE(text.ok()) << label << "\nrendered " << (text.ok() ? *text : "") << " but jinja2 raised "
                              << c["error"];
      if (!text.ok()) ExpectSameFailure(c, text.status(), label);
    }
  }
  EXPECT_GE(index, 300);
}

}  // namespace
}  // namespace lserve
