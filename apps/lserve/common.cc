#include <charconv>
#include <cstdio>
#include <iostream>

#include "commands.h"
#include "core/utf8.h"
#include "formats/model_source.h"

namespace lserve::app {

int Fail(const Status& status) {
  std::fprintf(stderr, "lserve: error: %s\n", status.message().c_str());
  return status.code() == StatusCode::kInternal ? 1 : 2;
}

int PrintJson(const nlohmann::json& j) {
  std::cout << j.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace) << std::endl;
  return 0;
}

void AddModelOption(CLI::App& cmd, std::string* path) {
  cmd.add_option("--model,-m", *path,
                 "model folder (Hugging Face) or .gguf file; default: the demo model");
}

Result<std::string> ResolveModelPath(const std::string& flag_value) {
  if (!flag_value.empty()) return flag_value;
  return DefaultModelPath();
}

// "1,2, 3" -> {1, 2, 3}; every id must lie in [0, num_tokens).
Result<std::vector<int32_t>> ParseIds(const std::string& text, int32_t num_tokens) {
  std::vector<int32_t> ids;
  size_t pos = 0;
  while (pos <= text.size()) {
    size_t end = text.find(',', pos);
    if (end == std::string::npos) end = text.size();
    std::string_view item(text.data() + pos, end - pos);
    auto space = [](char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; };
    while (!item.empty() && space(item.front())) item.remove_prefix(1);
    while (!item.empty() && space(item.back())) item.remove_suffix(1);
    if (item.empty()) {
      if (end == text.size() && ids.empty() && text.find_first_not_of(" \n\r\t") == std::string::npos) break;
      if (end == text.size() && !ids.empty()) break;  // a trailing comma or newline
      return InvalidArgument("--ids: empty item at character " + std::to_string(pos));
    }
    int64_t v = 0;
    auto [p, ec] = std::from_chars(item.data(), item.data() + item.size(), v);
    if (ec != std::errc() || p != item.data() + item.size())
      return InvalidArgument("--ids: '" + std::string(item) + "' is not an integer");
    if (v < 0 || v >= num_tokens)
      return InvalidArgument("--ids: token id " + std::string(item) + " is out of vocabulary (size " +
                             std::to_string(num_tokens) + ")");
    ids.push_back(static_cast<int32_t>(v));
    pos = end + 1;
  }
  return ids;
}

}  // namespace lserve::app
