// The lserve subcommands. Each registers its options on the CLI11 app and
// runs as a function returning the process exit code:
// 0 success, 2 invalid input (flags, model files, requests), 1 internal error.
#pragma once

#include <functional>
#include <string>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "core/status.h"

namespace lserve::app {

// A registered subcommand and what to run when it was chosen.
struct Command {
  CLI::App* cli = nullptr;
  std::function<int()> run;
};

Command AddInspect(CLI::App& app);
Command AddTokenize(CLI::App& app);
Command AddDetokenize(CLI::App& app);
Command AddRenderChat(CLI::App& app);
Command AddGenerate(CLI::App& app);
Command AddChat(CLI::App& app);
Command AddLogits(CLI::App& app);
Command AddCalibrate(CLI::App& app);
Command AddEval(CLI::App& app);
Command AddServe(CLI::App& app);

// Prints "lserve: error: <message>" to stderr and returns the exit code for
// the status (1 for internal errors, 2 otherwise).
int Fail(const Status& status);

// Prints `j` as one line of JSON on stdout (UTF-8, not escaped; invalid UTF-8
// is replaced with U+FFFD). Returns 0.
int PrintJson(const nlohmann::json& j);

// "1,2, 3" -> {1, 2, 3}; every id must lie in [0, num_tokens).
Result<std::vector<int32_t>> ParseIds(const std::string& text, int32_t num_tokens);

// --model PATH, defaulting to the demo model.
void AddModelOption(CLI::App& cmd, std::string* path);
Result<std::string> ResolveModelPath(const std::string& flag_value);

}  // namespace lserve::app
