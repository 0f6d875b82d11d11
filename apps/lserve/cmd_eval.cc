// eval: long-context accuracy, sparse vs dense (runtime/eval_tasks.h).
// passkey / needle: greedy answers to retrieval prompts over lengths x depths;
// perplexity: a text's next-token likelihood, its tail fed as decode steps so
// that the decode path (page selection, streaming windows) is what is scored.
// With LServe attention the dense model runs the same cases as the baseline.
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>

#include "commands.h"
#include "core/mapped_file.h"
#include "engine_session.h"
#include "runtime/eval_tasks.h"
#include "runtime/generator.h"

namespace lserve::app {
namespace {

struct EvalFlags {
  EngineFlags engine;
  std::string task = "passkey";
  std::vector<int64_t> lengths = {2048, 4096};
  std::vector<double> depths = {0.0, 0.25, 0.5, 0.75, 1.0};
  int64_t trials = 1;
  uint64_t seed = 0;
  std::string haystack;  // needle: the filler text file (default: generated sentences)
  std::string text;      // perplexity: the text file
  int64_t max_length = 0;       // perplexity: tokens of the text scored (0 = all)
  int64_t decode_tokens = 256;  // perplexity: the last tokens fed one decode step at a time
  int64_t answer_tokens = 12;
  bool no_baseline = false;
  bool quiet = false;
};

double SecondsSince(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

// The attention runs: the configured one (LServe with half the heads
// streaming, calibrated, when no attention flag is given), then dense as the
// baseline unless the configured one is dense or --no-baseline.
std::vector<EngineFlags> RunsOf(const EvalFlags& f) {
  EngineFlags main = f.engine;
  AttentionFlags& a = main.attention;
  if (a.attention.empty() && a.attn_pattern.empty() && !a.streaming_ratio) a.attention = "lserve";
  if (a.attention == "lserve" && a.attn_pattern.empty() && !a.streaming_ratio) a.streaming_ratio = 0.5;
  std::vector<EngineFlags> runs = {main};
  if (a.attention != "dense" && !f.no_baseline) {
    EngineFlags dense = f.engine;
    dense.attention = AttentionFlags{};
    dense.attention.attention = "dense";
    runs.push_back(dense);
  }
  return runs;
}

Result<std::unique_ptr<EngineSession>> LoadRun(const EngineFlags& flags, int64_t kv_tokens) {
  LSERVE_ASSIGN_OR_RETURN(std::unique_ptr<EngineSession> s, OpenEngine(flags));
  LSERVE_RETURN_IF_ERROR(LoadModel(flags, kv_tokens, s.get()));
  return s;
}

// A text file, or a folder's files (sorted by name, separated by a blank
// line) as the Needle-in-a-Haystack benchmark reads its essay folder.
Result<std::string> ReadTextOrFolder(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return ReadTextFile(path);
  std::vector<std::filesystem::path> files;
  for (const auto& entry : std::filesystem::directory_iterator(path, ec)) {
    if (entry.is_regular_file(ec)) files.push_back(entry.path());
  }
  if (ec) return IoError("cannot list " + path + ": " + ec.message());
  std::sort(files.begin(), files.end());
  std::string text;
  for (const auto& file : files) {
    LSERVE_ASSIGN_OR_RETURN(std::string part, ReadTextFile(file.string()));
    if (!text.empty()) text += "\n\n";
    text += part;
  }
  if (text.empty()) return InvalidArgument(path + " holds no text files");
  return text;
}

void Progress(const EvalFlags& f, const std::string& line) {
  if (!f.quiet) std::fprintf(stderr, "%s\n", line.c_str());
}

int RunRetrieval(const EvalFlags& f, RetrievalTask task) {
  auto opened = OpenEngine(f.engine);
  if (!opened.ok()) return Fail(opened.status());
  std::string haystack;
  if (task == RetrievalTask::kNeedle && !f.haystack.empty()) {
    auto read = ReadTextOrFolder(f.haystack);
    if (!read.ok()) return Fail(read.status());
    haystack = std::move(*read);
  }
  // The cases, shared by every run.
  std::vector<RetrievalCase> cases;
  std::vector<int64_t> case_length;
  uint64_t index = 0;
  int64_t longest = 0;
  for (int64_t length : f.lengths) {
    for (double depth : f.depths) {
      for (int64_t t = 0; t < f.trials; ++t) {
        auto c = BuildRetrievalCase(task, *(*opened)->tokenizer, haystack,
                                    {.tokens = length, .depth = depth, .seed = f.seed * 1000003u + index++});
        if (!c.ok()) return Fail(c.status());
        longest = std::max<int64_t>(longest, static_cast<int64_t>(c->ids.size()));
        cases.push_back(std::move(*c));
        case_length.push_back(length);
      }
    }
  }
  nlohmann::json runs = nlohmann::json::array();
  std::vector<std::string> first_outputs;
  for (const EngineFlags& flags : RunsOf(f)) {
    auto s = LoadRun(flags, longest + f.answer_tokens);
    if (!s.ok()) return Fail(s.status());
    const std::string mode = AttentionModeName((*s)->model->attention().mode);
    auto generator = Generator::Create(*(*s)->model, *(*s)->tokenizer, {.prefill_chunk = flags.prefill_chunk});
    if (!generator.ok()) return Fail(generator.status());
    SamplingParams greedy;
    greedy.temperature = 0;
    greedy.max_tokens = f.answer_tokens;
    nlohmann::json results = nlohmann::json::array();
    std::map<int64_t, std::pair<int64_t, int64_t>> by_length;  // length -> (correct, cases)
    int64_t correct = 0, same = 0;
    SparsityStats sparsity;
    const auto t0 = std::chrono::steady_clock::now();
    for (size_t i = 0; i < cases.size(); ++i) {
      auto r = generator->Generate(cases[i].ids, greedy);
      if (!r.ok()) return Fail(r.status());
      sparsity += r->sparsity;
      const bool ok = AnswerFound(r->text, cases[i].answer);
      correct += ok ? 1 : 0;
      auto& [c, n] = by_length[case_length[i]];
      c += ok ? 1 : 0;
      ++n;
      if (first_outputs.size() < cases.size()) {
        first_outputs.push_back(r->text);
      } else {
        same += first_outputs[i] == r->text ? 1 : 0;
      }
      results.push_back({{"length", case_length[i]},
                         {"tokens", cases[i].ids.size()},
                         {"depth", cases[i].depth},
                         {"answer", cases[i].answer},
                         {"output", r->text},
                         {"correct", ok}});
      Progress(f, mode + " " + std::to_string(cases[i].ids.size()) + " tokens, depth " +
                      std::to_string(cases[i].depth).substr(0, 4) + ": " + (ok ? "correct" : "wrong"));
    }
    nlohmann::json lengths = nlohmann::json::object();
    for (const auto& [length, cn] : by_length) {
      lengths[std::to_string(length)] = static_cast<double>(cn.first) / static_cast<double>(cn.second);
    }
    nlohmann::json run = {{"attention", mode},
                          {"accuracy", static_cast<double>(correct) / static_cast<double>(cases.size())},
                          {"accuracy_by_length", lengths},
                          {"seconds", SecondsSince(t0)},
                          {"sparsity", SparsityJson(sparsity)},
                          {"cases", results}};
    if (!runs.empty()) run["same_output_as_first"] = static_cast<double>(same) / static_cast<double>(cases.size());
    runs.push_back(std::move(run));
  }
  return PrintJson({{"task", task == RetrievalTask::kPasskey ? "passkey" : "needle"},
                    {"lengths", f.lengths},
                    {"depths", f.depths},
                    {"trials", f.trials},
                    {"runs", runs}});
}

int RunPerplexity(const EvalFlags& f) {
  if (f.text.empty()) return Fail(InvalidArgument("--task perplexity needs --text FILE"));
  auto opened = OpenEngine(f.engine);
  if (!opened.ok()) return Fail(opened.status());
  auto text = ReadTextOrFolder(f.text);
  if (!text.ok()) return Fail(text.status());
  auto encoded = (*opened)->tokenizer->Encode(*text, /*add_special_tokens=*/true);
  if (!encoded.ok()) return Fail(encoded.status());
  std::vector<int32_t> ids = std::move(*encoded);
  if (f.max_length > 0 && static_cast<int64_t>(ids.size()) > f.max_length) ids.resize(static_cast<size_t>(f.max_length));
  const int64_t n = static_cast<int64_t>(ids.size());
  if (n < 2) return Fail(InvalidArgument("the text encodes to " + std::to_string(n) + " tokens; at least 2 are scored"));
  // Rows [0, decode_from) come from prefill, [decode_from, n - 1) from decode steps.
  const int64_t decode_from = std::max<int64_t>(1, n - 1 - f.decode_tokens);

  nlohmann::json runs = nlohmann::json::array();
  std::vector<int32_t> first_argmax;
  for (const EngineFlags& flags : RunsOf(f)) {
    auto s = LoadRun(flags, n);
    if (!s.ok()) return Fail(s.status());
    const std::string mode = AttentionModeName((*s)->model->attention().mode);
    auto generator = Generator::Create(*(*s)->model, *(*s)->tokenizer, {.prefill_chunk = flags.prefill_chunk});
    if (!generator.ok()) return Fail(generator.status());
    NllSum prefill, decode;
    std::vector<int32_t> argmax;
    argmax.reserve(static_cast<size_t>(n));
    SparsityStats sparsity;
    const auto t0 = std::chrono::steady_clock::now();
    Status st = generator->ForEachPromptLogits(
        ids, decode_from,
        [&](int64_t row, std::span<const float> logits) -> Status {
          argmax.push_back(static_cast<int32_t>(std::max_element(logits.begin(), logits.end()) - logits.begin()));
          if (row + 1 >= n) return Status::Ok();  // the last row predicts past the text
          const int32_t next = ids[static_cast<size_t>(row + 1)];
          NllSum& part = row < decode_from ? prefill : decode;
          part.nll += NextTokenNll(logits, next);
          part.tokens += 1;
          part.top1 += argmax.back() == next ? 1 : 0;
          return Status::Ok();
        },
        &sparsity);
    if (!st.ok()) return Fail(st);
    auto part_json = [](const NllSum& p) {
      const double mean = p.tokens > 0 ? p.nll / static_cast<double>(p.tokens) : 0.0;
      return nlohmann::json{{"tokens", p.tokens},
                            {"nll", mean},
                            {"perplexity", std::exp(mean)},
                            {"top1", p.tokens > 0 ? static_cast<double>(p.top1) / static_cast<double>(p.tokens) : 0.0}};
    };
    NllSum all{prefill.nll + decode.nll, prefill.tokens + decode.tokens, prefill.top1 + decode.top1};
    nlohmann::json run = {{"attention", mode},
                          {"all", part_json(all)},
                          {"prefill", part_json(prefill)},
                          {"decode", part_json(decode)},
                          {"seconds", SecondsSince(t0)},
                          {"sparsity", SparsityJson(sparsity)}};
    if (first_argmax.empty()) {
      first_argmax = std::move(argmax);
    } else {
      int64_t agree = 0, agree_decode = 0;
      for (int64_t i = 0; i + 1 < n; ++i) {
        const bool same = first_argmax[static_cast<size_t>(i)] == argmax[static_cast<size_t>(i)];
        agree += same ? 1 : 0;
        agree_decode += same && i >= decode_from ? 1 : 0;
      }
      run["argmax_agreement_with_first"] = static_cast<double>(agree) / static_cast<double>(n - 1);
      if (decode.tokens > 0) {
        run["decode_argmax_agreement_with_first"] =
            static_cast<double>(agree_decode) / static_cast<double>(decode.tokens);
      }
    }
    Progress(f, mode + ": perplexity " + std::to_string(std::exp(all.nll / static_cast<double>(all.tokens))));
    runs.push_back(std::move(run));
  }
  return PrintJson({{"task", "perplexity"}, {"tokens", n}, {"decode_from", decode_from}, {"runs", runs}});
}

int RunEval(const EvalFlags& f) {
  if (f.task == "passkey") return RunRetrieval(f, RetrievalTask::kPasskey);
  if (f.task == "needle") return RunRetrieval(f, RetrievalTask::kNeedle);
  return RunPerplexity(f);
}

}  // namespace

Command AddEval(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "eval", "long-context accuracy, sparse vs dense: passkey retrieval, needle in a haystack, perplexity");
  auto f = std::make_shared<EvalFlags>();
  AddEngineOptions(*cmd, &f->engine);
  cmd->add_option("--task", f->task, "passkey | needle | perplexity")
      ->check(CLI::IsMember({"passkey", "needle", "perplexity"}))
      ->capture_default_str();
  cmd->add_option("--lengths", f->lengths, "prompt lengths in tokens (passkey, needle)")
      ->delimiter(',')
      ->check(CLI::Range(int64_t{16}, int64_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--depths", f->depths, "answer depths in [0, 1] (passkey, needle)")
      ->delimiter(',')
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--trials", f->trials, "cases per length and depth, each with its own answer")
      ->check(CLI::Range(int64_t{1}, int64_t{1000}))
      ->capture_default_str();
  cmd->add_option("--seed", f->seed, "draws the answers")->capture_default_str();
  cmd->add_option("--haystack", f->haystack,
                  "needle: filler text file or folder of them, e.g. ../shared/data/haystack (default: generated "
                  "sentences)");
  cmd->add_option("--text", f->text, "perplexity: the text file, or a folder of them");
  cmd->add_option("--max-length", f->max_length, "perplexity: score at most this many tokens (0 = all)")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24));
  cmd->add_option("--decode-tokens", f->decode_tokens,
                  "perplexity: feed the text's last N tokens as decode steps")
      ->check(CLI::Range(int64_t{0}, int64_t{1} << 24))
      ->capture_default_str();
  cmd->add_option("--answer-tokens", f->answer_tokens, "passkey, needle: tokens generated for the answer")
      ->check(CLI::Range(int64_t{1}, int64_t{256}))
      ->capture_default_str();
  cmd->add_flag("--no-baseline", f->no_baseline, "with LServe attention, do not also run dense");
  cmd->add_flag("--quiet", f->quiet, "no progress lines on stderr");
  return {cmd, [f] { return RunEval(*f); }};
}

}  // namespace lserve::app
