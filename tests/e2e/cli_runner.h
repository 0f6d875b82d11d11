// Runs the lserve binary as a user would and captures what it prints.
#pragma once

#include <sys/types.h>

#include <string>
#include <vector>

namespace lserve::e2e {

struct CliResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};

// Runs LSERVE_BINARY with `args` (each passed as one argument, no shell
// interpretation) and waits for it.
CliResult RunLserve(const std::vector<std::string>& args, const std::string& stdin_path = "/dev/null");

// Starts LSERVE_BINARY with `args` (no shell) and its stdin, stdout and
// stderr opened on the given paths (the last two created or truncated).
// Returns the child's pid, or -1 when it could not be started.
pid_t SpawnLserve(const std::vector<std::string>& args, const std::string& stdin_path, const std::string& stdout_path,
                  const std::string& stderr_path);

std::string SourcePath(const std::string& relative);  // LSERVE_SOURCE_DIR/relative
std::string DemoModelPath();                          // models/SmolLM2-135M-Instruct.Q4_1.gguf
std::string TempPath(const std::string& name);        // a fresh path in the test temp dir
void WriteFile(const std::string& path, const std::string& bytes);
std::string ReadFile(const std::string& path);

}  // namespace lserve::e2e
