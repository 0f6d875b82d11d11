#include "commands.h"
namespace lserve::app {
Command AddTokenize(CLI::App& app) { return {app.add_subcommand("tokenize"), [] { return 1; }}; }
Command AddDetokenize(CLI::App& app) { return {app.add_subcommand("detokenize"), [] { return 1; }}; }
Command AddRenderChat(CLI::App& app) { return {app.add_subcommand("render-chat"), [] { return 1; }}; }
}
