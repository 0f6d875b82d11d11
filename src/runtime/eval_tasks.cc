#include "runtime/eval_tasks.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "sampling/pcg32.h"

namespace lserve {
namespace {

const char* const kPasskeyFiller[] = {"The grass is green. ", "The sky is blue. ", "The sun is yellow. ",
                                      "Here we go. ", "There and back again. "};
constexpr std::string_view kPasskeyIntro =
    "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. "
    "I will quiz you about the important information there. ";
constexpr std::string_view kPasskeyQuestion = "What is the pass key? The pass key is";

constexpr std::string_view kNeedleIntro =
    "A special magic number is hidden within the following text. Make sure to memorize it. "
    "I will quiz you about the number afterwards.\n";
constexpr std::string_view kNeedleQuestion =
    "\nWhat is the special magic number mentioned in the provided text? "
    "The special magic number mentioned in the provided text is";

// A varied default haystack: sentences from a small grammar, so that the
// needle task does not reduce to the passkey task's five repeated lines.
std::vector<std::string> GeneratedHaystack(int64_t count) {
  static const char* const kSubjects[] = {"The old miller", "A young painter", "The harbour master", "Our neighbour",
                                          "The village baker", "A travelling merchant", "The night watchman",
                                          "The schoolteacher", "A quiet gardener", "The ferryman"};
  static const char* const kVerbs[] = {"repaired", "carried", "painted", "counted", "described", "sold",
                                       "remembered", "cleaned", "measured", "borrowed"};
  static const char* const kObjects[] = {"the wooden cart", "a basket of apples", "the broken lantern",
                                         "an old map", "the garden fence", "a pile of letters", "the blue boat",
                                         "a copper kettle", "the stone bridge", "a bundle of firewood"};
  static const char* const kTimes[] = {"before dawn", "after the storm", "on a rainy afternoon", "during the fair",
                                       "late in the evening", "at the end of summer", "while the bells rang"};
  Pcg32 rng(20250213, 7);
  std::vector<std::string> out;
  out.reserve(static_cast<size_t>(count));
  for (int64_t i = 0; i < count; ++i) {
    std::string s = kSubjects[rng.Next() % 10];
    s += ' ';
    s += kVerbs[rng.Next() % 10];
    s += ' ';
    s += kObjects[rng.Next() % 10];
    s += ' ';
    s += kTimes[rng.Next() % 7];
    s += ". ";
    out.push_back(std::move(s));
  }
  return out;
}

// Sentences of `text`: cut after '.', '!' or '?' followed by whitespace, and
// at blank lines; whitespace runs become one space; runs of more than 60
// words are cut into 60-word pieces so that no unit is huge.
std::vector<std::string> SplitSentences(std::string_view text) {
  std::vector<std::string> out;
  std::string cur;
  int words = 0;
  bool in_word = false;
  auto flush = [&] {
    while (!cur.empty() && cur.back() == ' ') cur.pop_back();
    if (!cur.empty()) out.push_back(cur + ' ');
    cur.clear();
    words = 0;
  };
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    const bool space = c == ' ' || c == '\n' || c == '\t' || c == '\r';
    if (space) {
      if (in_word && words >= 60) flush();
      if (!cur.empty() && cur.back() != ' ') cur += ' ';
      in_word = false;
      continue;
    }
    if (!in_word) ++words;
    in_word = true;
    cur += c;
    const bool end = c == '.' || c == '!' || c == '?';
    const bool next_space = i + 1 == text.size() || text[i + 1] == ' ' || text[i + 1] == '\n' ||
                            text[i + 1] == '\t' || text[i + 1] == '\r';
    if (end && next_space) flush();
  }
  flush();
  return out;
}

std::string DigitsKey(uint64_t seed, uint32_t low, uint32_t span) {
  Pcg32 rng(seed, 0x5eed);
  return std::to_string(low + rng.Next() % span);
}

}  // namespace

std::string PasskeyText(int64_t sentences, int64_t position, uint32_t key) {
  const std::string k = std::to_string(key);
  std::string text(kPasskeyIntro);
  for (int64_t i = 0; i <= sentences; ++i) {
    if (i == position) text += "The pass key is " + k + ". Remember it. " + k + " is the pass key. ";
    if (i < sentences) text += kPasskeyFiller[i % 5];
  }
  text += kPasskeyQuestion;
  return text;
}

Result<RetrievalCase> BuildRetrievalCase(RetrievalTask task, const Tokenizer& tokenizer, std::string_view haystack,
                                         const RetrievalCaseSpec& spec) {
  if (!(spec.depth >= 0.0 && spec.depth <= 1.0)) {
    return InvalidArgument("depth " + std::to_string(spec.depth) + " is outside [0, 1]");
  }
  RetrievalCase out;
  std::function<std::string(int64_t, int64_t)> text_of;
  std::vector<std::string> units;
  if (task == RetrievalTask::kPasskey) {
    out.answer = DigitsKey(spec.seed, 10000, 90000);
    const uint32_t key = static_cast<uint32_t>(std::stoul(out.answer));
    text_of = [key](int64_t n, int64_t pos) { return PasskeyText(n, pos, key); };
  } else {
    out.answer = DigitsKey(spec.seed, 1000000, 9000000);
    units = haystack.empty() ? GeneratedHaystack(4096) : SplitSentences(haystack);
    if (units.empty()) return InvalidArgument("the haystack text has no words");
    const std::string needle = "The special magic number is " + out.answer + ". ";
    text_of = [&units, needle](int64_t n, int64_t pos) {
      std::string text(kNeedleIntro);
      for (int64_t i = 0; i <= n; ++i) {
        if (i == pos) text += needle;
        if (i < n) text += units[static_cast<size_t>(i) % units.size()];
      }
      text += kNeedleQuestion;
      return text;
    };
  }
  auto position = [&](int64_t n) { return static_cast<int64_t>(std::llround(spec.depth * static_cast<double>(n))); };
  auto tokens_of = [&](int64_t n) -> Result<std::vector<int32_t>> {
    return tokenizer.Encode(text_of(n, position(n)), /*add_special_tokens=*/true);
  };

  // The largest filler count whose prompt fits: a linear estimate from two
  // probes, then a bisection around it (tokenization is not exactly linear).
  LSERVE_ASSIGN_OR_RETURN(std::vector<int32_t> one, tokens_of(1));
  const auto len = [](const std::vector<int32_t>& v) { return static_cast<int64_t>(v.size()); };
  if (len(one) > spec.tokens) {
    return InvalidArgument("a prompt of " + std::to_string(spec.tokens) + " tokens cannot hold the task (" +
                           std::to_string(len(one)) + " tokens with one filler sentence)");
  }
  LSERVE_ASSIGN_OR_RETURN(std::vector<int32_t> probe, tokens_of(65));
  const double per_unit = std::max(1.0, static_cast<double>(len(probe) - len(one)) / 64.0);
  const int64_t estimate = 1 + static_cast<int64_t>(static_cast<double>(spec.tokens - len(one)) / per_unit);
  int64_t lo = std::max<int64_t>(1, estimate * 4 / 5);  // fits
  int64_t hi = estimate * 5 / 4 + 2;                    // does not fit
  std::vector<int32_t> best = std::move(one);
  int64_t best_n = 1;
  LSERVE_ASSIGN_OR_RETURN(std::vector<int32_t> at_lo, tokens_of(lo));
  if (len(at_lo) <= spec.tokens) {
    best = std::move(at_lo);
    best_n = lo;
  } else {
    hi = lo;
    lo = 1;
  }
  for (;;) {
    LSERVE_ASSIGN_OR_RETURN(std::vector<int32_t> at_hi, tokens_of(hi));
    if (len(at_hi) > spec.tokens) break;
    best = std::move(at_hi);
    best_n = lo = hi;
    hi *= 2;
  }
  lo = best_n;
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    LSERVE_ASSIGN_OR_RETURN(std::vector<int32_t> at_mid, tokens_of(mid));
    if (len(at_mid) <= spec.tokens) {
      best = std::move(at_mid);
      lo = best_n = mid;
    } else {
      hi = mid;
    }
  }
  out.ids = std::move(best);
  out.depth = static_cast<double>(position(best_n)) / static_cast<double>(best_n);
  return out;
}

bool AnswerFound(std::string_view output, std::string_view answer) {
  if (answer.empty()) return false;
  const auto digit = [](char c) { return c >= '0' && c <= '9'; };
  for (size_t at = output.find(answer); at != std::string_view::npos; at = output.find(answer, at + 1)) {
    const bool left = at == 0 || !digit(output[at - 1]);
    const size_t end = at + answer.size();
    const bool right = end == output.size() || !digit(output[end]);
    if (left && right) return true;
  }
  return false;
}

double NextTokenNll(std::span<const float> row, int32_t next) {
  const double m = *std::max_element(row.begin(), row.end());
  double sum = 0;
  for (float v : row) sum += std::exp(static_cast<double>(v) - m);
  return m + std::log(sum) - static_cast<double>(row[static_cast<size_t>(next)]);
}

}  // namespace lserve
