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

}  // namespace lserve::app
