// Long-context accuracy tasks behind `lserve eval` (DESIGN.md §6), the
// measurements that show sparse attention keeping dense-level accuracy:
//   passkey    the passkey-retrieval prompt of Landmark Attention / LongLoRA
//              (a 5-digit key hidden in repeated filler sentences);
//   needle     a RULER-style needle in a haystack (a 7-digit "special magic
//              number" hidden among the sentences of a haystack text);
//   perplexity the mean negative log-likelihood of a text's tokens.
// Prompts are built to a target token length with the answer at a chosen
// depth, so accuracy can be tabulated over length x depth as the papers do.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"
#include "tokenizer/tokenizer.h"

namespace lserve {

enum class RetrievalTask { kPasskey, kNeedle };

struct RetrievalCaseSpec {
  int64_t tokens = 4096;  // the prompt's length, BOS included: at most this, within a filler sentence of it
  double depth = 0.5;     // where the answer line sits among the filler: 0 first, 1 after the last
  uint64_t seed = 0;      // draws the answer
};

struct RetrievalCase {
  std::vector<int32_t> ids;  // the encoded prompt (with the tokenizer's special tokens)
  std::string answer;        // the digits the model should produce
  double depth = 0;          // the depth actually used: answer position / filler sentences
};

// The prompt for `task` (`haystack` is the needle task's filler text; it is
// split into sentences and cycled; the passkey task ignores it). Ends with
// the question whose continuation is the answer. InvalidArgument when the
// depth is outside [0, 1], the haystack has no words, or spec.tokens cannot
// hold the instruction, the answer line, one filler sentence and the question.
Result<RetrievalCase> BuildRetrievalCase(RetrievalTask task, const Tokenizer& tokenizer, std::string_view haystack,
                                         const RetrievalCaseSpec& spec);

// The passkey text with `sentences` filler sentences and the key line before
// filler sentence `position` (== sentences: after the last).
std::string PasskeyText(int64_t sentences, int64_t position, uint32_t key);

// Whether `output` contains `answer` as a whole number (no digit right
// before or after it).
bool AnswerFound(std::string_view output, std::string_view answer);

// Mean negative log-likelihood of a text's tokens, scored one logits row at a
// time: row i predicts token i + 1.
struct NllSum {
  double nll = 0;      // summed negative log-likelihood (nats)
  int64_t tokens = 0;  // rows scored
  int64_t top1 = 0;    // rows whose argmax is the next token
};

// -log p(next | one logits row), in f64 with a max-shifted log-sum-exp;
// `next` must lie in [0, row.size()).
double NextTokenNll(std::span<const float> row, int32_t next);

}  // namespace lserve
