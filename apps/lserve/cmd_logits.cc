// logits: the next-token logits at every position of one forward pass.
#include <climits>

#include "commands.h"
#include "core/npy.h"
#include "engine_session.h"
#include "runtime/generator.h"

namespace lserve::app {
namespace {

struct LogitsFlags {
  EngineFlags engine;
  std::string ids;
  std::string out;
  int64_t decode_from = INT64_MAX;
};

int RunLogits(const LogitsFlags& f) {
  auto session = OpenEngine(f.engine);
  if (!session.ok()) return Fail(session.status());
  EngineSession& s = **session;
  auto ids = ParseIds(f.ids, static_cast<int32_t>(s.source.config.vocab_size));
  if (!ids.ok()) return Fail(ids.status());
  if (ids->empty()) return Fail(InvalidArgument("--ids is empty"));
  Status loaded = LoadModel(f.engine, static_cast<int64_t>(ids->size()), &s);
  if (!loaded.ok()) return Fail(loaded);
  auto generator = Generator::Create(*s.model, *s.tokenizer, {.prefill_chunk = f.engine.prefill_chunk});
  if (!generator.ok()) return Fail(generator.status());
  SparsityStats sparsity;
  auto logits = generator->PromptLogits(*ids, f.decode_from, &sparsity);
  if (!logits.ok()) return Fail(logits.status());
  const int64_t shape[2] = {static_cast<int64_t>(ids->size()), s.source.config.vocab_size};
  Status written = WriteNpyF32(f.out, *logits, shape);
  if (!written.ok()) return Fail(written);
  return PrintJson({{"out", f.out},
                    {"shape", shape},
                    {"attention", AttentionModeName(s.model->attention().mode)},
                    {"sparsity", SparsityJson(sparsity)}});
}

}  // namespace

Command AddLogits(CLI::App& app) {
  auto* cmd = app.add_subcommand("logits", "write the logits at every position of --ids to a float32 .npy [n, vocab]");
  auto f = std::make_shared<LogitsFlags>();
  AddEngineOptions(*cmd, &f->engine);
  cmd->add_option("--ids", f->ids, "comma-separated token ids")->required();
  cmd->add_option("--out", f->out, "output .npy file")->required();
  cmd->add_option("--decode-from", f->decode_from,
                  "prefill ids before position N, then feed each later id as one decode step")
      ->check(CLI::Range(int64_t{1}, INT64_MAX));
  return {cmd, [f] { return RunLogits(*f); }};
}

}  // namespace lserve::app
