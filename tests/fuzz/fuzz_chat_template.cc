// libFuzzer target: a chat template's source (tokenizer/chat_template.h),
// compiled and rendered over a fixed conversation under the default limits.
// Any source must compile or fail, and render or fail, within the limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include <nlohmann/json.hpp>

#include "tokenizer/chat_template.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const nlohmann::ordered_json kMessages = nlohmann::ordered_json::parse(R"([
    {"role": "system", "content": "You are terse."},
    {"role": "user", "content": "hi \u00e9 \u5b57"},
    {"role": "assistant", "content": null, "tool_calls": [{"type": "function",
      "function": {"name": "f", "arguments": {"x": [1, 2.5, true, null]}}}]},
    {"role": "tool", "content": "42", "tool_call_id": "c1"},
    {"role": "user", "content": [{"type": "text", "text": "again"}]}])");
  static const nlohmann::ordered_json kContext = {{"bos_token", "<s>"}, {"eos_token", "</s>"}};
  const std::string_view source(reinterpret_cast<const char*>(data), size);
  auto compiled = lserve::ChatTemplate::Compile(source);
  if (!compiled.ok()) return 0;
  auto rendered = compiled->RenderAt(kMessages, /*add_generation_prompt=*/true, kContext, /*now=*/0);
  (void)rendered;
  return 0;
}
