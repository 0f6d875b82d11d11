#include "cli_runner.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include <gtest/gtest.h>

extern char** environ;

namespace lserve::e2e {

std::string SourcePath(const std::string& relative) { return std::string(LSERVE_SOURCE_DIR) + "/" + relative; }

std::string DemoModelPath() { return SourcePath("models/SmolLM2-135M-Instruct.Q4_1.gguf"); }

std::string TempPath(const std::string& name) {
  static std::atomic<int> counter{0};
  return testing::TempDir() + "/lserve_e2e_" + std::to_string(::getpid()) + "_" +
         std::to_string(counter++) + "_" + name;
}

void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream f(path, std::ios::binary | std::ios::trunc);
  f.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  if (!f) throw std::runtime_error("cannot write " + path);
}

std::string ReadFile(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::stringstream ss;
  ss << f.rdbuf();
  return ss.str();
}

pid_t SpawnLserve(const std::vector<std::string>& args, const std::string& stdin_path, const std::string& stdout_path,
                  const std::string& stderr_path) {
  std::vector<std::string> argv_s = {LSERVE_BINARY};
  argv_s.insert(argv_s.end(), args.begin(), args.end());
  std::vector<char*> argv;
  for (auto& a : argv_s) argv.push_back(a.data());
  argv.push_back(nullptr);
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, stdin_path.c_str(), O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, 1, stdout_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, 2, stderr_path.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
  pid_t pid = -1;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  return rc == 0 ? pid : -1;
}

CliResult RunLserve(const std::vector<std::string>& args, const std::string& stdin_path) {
  const std::string out_path = TempPath("stdout");
  const std::string err_path = TempPath("stderr");
  CliResult r;
  const pid_t pid = SpawnLserve(args, stdin_path, out_path, err_path);
  if (pid < 0) {
    r.err = "posix_spawn failed";
    return r;
  }
  int status = 0;
  while (waitpid(pid, &status, 0) < 0) {
  }
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  r.out = ReadFile(out_path);
  r.err = ReadFile(err_path);
  ::unlink(out_path.c_str());
  ::unlink(err_path.c_str());
  return r;
}

}  // namespace lserve::e2e
