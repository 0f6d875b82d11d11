// calibrate: training-free streaming-head identification (runtime/calibration.h),
// written as a DuoAttention full_attention_heads.tsv.
#include <fstream>

#include "commands.h"
#include "engine_session.h"
#include "core/mapped_file.h"
#include "runtime/calibration.h"

namespace lserve::app {
namespace {

struct CalibrateFlags {
  EngineFlags engine;
  std::string text;  // calibration text file; empty: a synthetic passkey text
  int64_t words = 1200;
  uint64_t seed = 0;
  int64_t sink = 128;
  int64_t local = 256;
  std::string out;
};

int RunCalibrate(const CalibrateFlags& f) {
  auto session = OpenEngine(f.engine);
  if (!session.ok()) return Fail(session.status());
  EngineSession& s = **session;
  std::string text;
  if (f.text.empty()) {
    text = SyntheticPasskeyText(f.words, f.seed);
  } else {
    auto read = ReadTextFile(f.text);
    if (!read.ok()) return Fail(read.status());
    text = std::move(*read);
  }
  auto ids = s.tokenizer->Encode(text, /*add_special_tokens=*/true);
  if (!ids.ok()) return Fail(ids.status());
  EngineFlags dense = f.engine;
  dense.attention = AttentionFlags{};
  dense.attention.attention = "dense";
  Status loaded = LoadModel(dense, static_cast<int64_t>(ids->size()), &s);
  if (!loaded.ok()) return Fail(loaded);
  auto pattern = CalibrateAttentionPattern(
      *s.model, *ids, CalibrationOptions{.sink = f.sink, .local = f.local, .prefill_chunk = f.engine.prefill_chunk});
  if (!pattern.ok()) return Fail(pattern.status());
  const std::string tsv = FormatAttentionPattern(*pattern);
  std::ofstream out(f.out, std::ios::binary | std::ios::trunc);
  out << tsv;
  out.close();
  if (!out) return Fail(IoError("cannot write " + f.out));
  return PrintJson({{"out", f.out},
                    {"tokens", ids->size()},
                    {"layers", pattern->num_layers},
                    {"kv_heads", pattern->num_kv_heads},
                    {"gates", pattern->gates}});
}

}  // namespace

Command AddCalibrate(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "calibrate", "measure how much attention each head keeps in a sink + local window; write the pattern TSV");
  auto f = std::make_shared<CalibrateFlags>();
  AddModelOption(*cmd, &f->engine.model);
  cmd->add_option("--backend", f->engine.backend, "cpu or cpu-ref")->check(CLI::IsMember({"cpu", "cpu-ref"}));
  cmd->add_option("--threads", f->engine.threads, "CPU threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--prefill-chunk", f->engine.prefill_chunk, "tokens per forward pass")
      ->check(CLI::Range(int64_t{1}, int64_t{1} << 20));
  cmd->add_option("--text", f->text, "calibration text file (default: a synthetic passkey-retrieval text)");
  cmd->add_option("--words", f->words, "words of the synthetic text")->check(CLI::Range(int64_t{64}, int64_t{1} << 20));
  cmd->add_option("--seed", f->seed, "where the synthetic text hides its pass key");
  cmd->add_option("--sink", f->sink, "sink tokens of the window")->check(CLI::Range(int64_t{0}, int64_t{1} << 30));
  cmd->add_option("--local", f->local, "local tokens of the window")->check(CLI::Range(int64_t{1}, int64_t{1} << 30));
  cmd->add_option("--out", f->out, "output full_attention_heads.tsv")->required();
  return {cmd, [f] { return RunCalibrate(*f); }};
}

}  // namespace lserve::app
