// lserve: one binary, thin subcommands. See commands.h for exit codes.
#include <cstdio>
#include <exception>
#include <vector>

#include "commands.h"

int main(int argc, char** argv) {
  CLI::App app{"lserve: long-context LLM serving with LServe sparse attention"};
  app.require_subcommand(1);
  app.set_version_flag("--version", "lserve 0.1.0");

  const std::vector<lserve::app::Command> commands = {
      lserve::app::AddInspect(app),
      lserve::app::AddTokenize(app),
      lserve::app::AddDetokenize(app),
      lserve::app::AddRenderChat(app),
      lserve::app::AddGenerate(app),
      lserve::app::AddChat(app),
      lserve::app::AddLogits(app),
      lserve::app::AddCalibrate(app),
      lserve::app::AddEval(app),
      lserve::app::AddServe(app),
  };

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    app.exit(e);
    return 2;
  }
  try {
    for (const auto& c : commands)
      if (c.cli->parsed()) return c.run();
  } catch (const std::exception& e) {
    std::fprintf(stderr, "lserve: internal error: %s\n", e.what());
    return 1;
  }
  return 2;
}
