// StopChecker: stop strings cut exactly whatever the chunking (spanning
// chunks, overlapping, at the very start, never found), against a brute-force
// reference; stop tokens, EOS, ignore_eos and max_tokens through Step().
#include <gtest/gtest.h>

#include <cstdio>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/utf8.h"
#include "sampling/stop_checker.h"

namespace lserve {
namespace {

std::mt19937_64 FreshRng() {
  std::random_device device;
  const uint64_t seed = (uint64_t{device()} << 32) | device();
  std::printf("[ seed %llu ]\n", static_cast<unsigned long long>(seed));
  return std::mt19937_64(seed);
}

SamplingParams WithStops(std::vector<std::string> stops, int64_t max_tokens = 1000) {
  SamplingParams p;
  p.stop = std::move(stops);
  p.max_tokens = max_tokens;
  return p;
}

struct Feed {
  std::string text;  // all emitted chunks, concatenated
  std::vector<std::string> chunks;
  std::optional<FinishReason> reason;
  std::optional<size_t> stop_string;
};

// Feeds `chunks` through AppendText, then ends the stream with "length".
Feed FeedChunks(const std::vector<std::string>& stops, const std::vector<std::string>& chunks) {
  StopChecker checker(WithStops(stops), {});
  Feed f;
  for (const std::string& c : chunks) {
    StopUpdate u = checker.AppendText(c);
    f.text += u.text;
    f.chunks.push_back(u.text);
    if (u.finished()) {
      f.reason = u.finish_reason;
      f.stop_string = u.stop_string;
      return f;
    }
  }
  StopUpdate u = checker.EndText("", FinishReason::kLength);
  f.text += u.text;
  f.chunks.push_back(u.text);
  f.reason = u.finish_reason;
  f.stop_string = u.stop_string;
  return f;
}

// Brute force: the first end position where any stop completes; the longest
// (then lowest-index) stop ending there is cut.
struct Expected {
  std::string text;
  std::optional<size_t> stop_string;
};
Expected ReferenceCut(const std::vector<std::string>& stops, const std::string& text) {
  for (size_t end = 1; end <= text.size(); ++end) {
    std::optional<size_t> best;
    for (size_t k = 0; k < stops.size(); ++k) {
      const std::string& s = stops[k];
      if (s.size() <= end && text.compare(end - s.size(), s.size(), s) == 0 &&
          (!best || s.size() > stops[*best].size())) {
        best = k;
      }
    }
    if (best) return {text.substr(0, end - stops[*best].size()), best};
  }
  return {text, std::nullopt};
}

TEST(StopChecker, StopSpanningChunksIsHeldThenCut) {
  StopChecker checker(WithStops({"STOP"}), {});
  EXPECT_EQ(checker.AppendText("ab").text, "ab");  // nothing can start a stop
  EXPECT_EQ(checker.AppendText("cS").text, "c");   // "S" held
  EXPECT_EQ(checker.held_bytes(), 1u);
  EXPECT_EQ(checker.AppendText("TO").text, "");
  EXPECT_EQ(checker.held_bytes(), 3u);
  StopUpdate u = checker.AppendText("Pxyz");
  EXPECT_EQ(u.text, "");
  EXPECT_EQ(u.finish_reason, FinishReason::kStop);
  EXPECT_EQ(u.stop_string, 0u);
  // After the end nothing more comes out.
  EXPECT_EQ(checker.AppendText("more").text, "");
  EXPECT_TRUE(checker.finished());
}

TEST(StopChecker, HeldPrefixReleasedWhenItDoesNotComplete) {
  StopChecker checker(WithStops({"STOP"}), {});
  EXPECT_EQ(checker.AppendText("xST").text, "x");
  EXPECT_EQ(checker.AppendText("OR").text, "STOR");
  EXPECT_EQ(checker.AppendText("STO").text, "");
  StopUpdate end = checker.EndText("", FinishReason::kLength);
  EXPECT_EQ(end.text, "STO");
  EXPECT_EQ(end.finish_reason, FinishReason::kLength);
  EXPECT_FALSE(end.stop_string.has_value());
}

TEST(StopChecker, HandPickedCases) {
  struct Case {
    std::vector<std::string> stops;
    std::vector<std::string> chunks;
    std::string text;
    std::optional<size_t> stop_string;
  };
  const Case cases[] = {
      {{"STOP"}, {"STOP and more"}, "", 0},                // at the very start
      {{"STOP"}, {"S", "T", "O", "P"}, "", 0},             // at the start, byte by byte
      {{"STOP"}, {"no stop here"}, "no stop here", {}},    // never found
      {{"abcd", "bc"}, {"abcd"}, "a", 1},                  // "bc" completes first
      {{"abcd", "bc"}, {"ab", "cd"}, "a", 1},
      {{"xyz", "yz"}, {"wxyz"}, "w", 0},                   // same end: the longer one
      {{"yz", "xyz"}, {"wx", "yz"}, "w", 1},
      {{"aab"}, {"a", "a", "a", "b"}, "a", 0},             // KMP fallback inside the hold
      {{"abab"}, {"aba", "bab"}, "", 0},                   // self-overlapping
      {{"abab"}, {"ababx"}, "", 0},
      {{"ab", "ab"}, {"cab"}, "c", 0},                     // duplicates: the first
      {{"\n\n"}, {"line\n", "\n", "next"}, "line", 0},
      {{"字"}, {"漢字"}, "漢", 0},                          // multi-byte
      {{"é!"}, {"caf", "é", "?", "é", "!"}, "café?", 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(testing::Message() << "chunks[0] '" << c.chunks[0] << "'");
    const Feed f = FeedChunks(c.stops, c.chunks);
    EXPECT_EQ(f.text, c.text);
    EXPECT_EQ(f.stop_string, c.stop_string);
    EXPECT_EQ(f.reason, c.stop_string ? FinishReason::kStop : FinishReason::kLength);
  }
}

TEST(StopChecker, WithoutStopsTextPassesStraightThrough) {
  StopChecker checker(WithStops({}), {});
  EXPECT_EQ(checker.AppendText("anything at all").text, "anything at all");
  EXPECT_EQ(checker.held_bytes(), 0u);
}

// Random texts over a small alphabet (ASCII and multi-byte characters) and
// random stop strings over the same alphabet, so that stops overlap, repeat
// and span chunks; random chunkings at character boundaries.
TEST(StopChecker, EveryChunkingGivesTheReferenceCut) {
  std::mt19937_64 rng = FreshRng();
  const std::vector<std::string> alphabet = {"a", "b", "c", "\xC3\xA9" /* é */, "\xE5\xAD\x97" /* 字 */};
  auto pick = [&](size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng); };
  for (int iter = 0; iter < 3000; ++iter) {
    std::vector<std::string> stops(1 + pick(4));
    for (std::string& s : stops) {
      const size_t len = 1 + pick(4);
      for (size_t i = 0; i < len; ++i) s += alphabet[pick(iter % 2 ? 2 : alphabet.size())];
    }
    std::vector<std::string> chars(pick(40));
    for (std::string& ch : chars) ch = alphabet[pick(iter % 2 ? 2 : alphabet.size())];
    std::string text;
    for (const std::string& ch : chars) text += ch;
    const Expected expected = ReferenceCut(stops, text);

    for (int chunking = 0; chunking < 4; ++chunking) {
      std::vector<std::string> chunks;
      std::string current;
      for (const std::string& ch : chars) {
        current += ch;
        if (pick(3) == 0) chunks.push_back(std::move(current)), current.clear();
      }
      chunks.push_back(current);
      if (chunking == 0) chunks = {text};  // one chunk
      SCOPED_TRACE(testing::Message() << "iter " << iter << " text '" << text << "' stop[0] '" << stops[0] << "'");
      const Feed f = FeedChunks(stops, chunks);
      ASSERT_EQ(f.text, expected.text);
      ASSERT_EQ(f.stop_string, expected.stop_string);
      ASSERT_EQ(f.reason, expected.stop_string ? FinishReason::kStop : FinishReason::kLength);
      for (const std::string& c : f.chunks) ASSERT_TRUE(utf8::IsValid(c)) << c;
    }
  }
}

// A stand-in for IncrementalDecoder: each token's text, and a tail that
// Flush returns once (text the decoder was still holding).
struct FakeDetokenizer {
  std::map<int32_t, std::string> pieces;
  std::string tail;
  std::vector<int32_t> pushed;
  int flushes = 0;

  std::string Push(int32_t id) {
    pushed.push_back(id);
    return pieces.at(id);
  }
  std::string Flush() {
    ++flushes;
    return std::exchange(tail, "");
  }
};

FakeDetokenizer Vocabulary() {
  FakeDetokenizer d;
  d.pieces = {{0, "Hel"}, {1, "lo"},      {2, " wor"}, {3, "ld"}, {4, "</s>"},
              {5, "<|end|>"}, {6, "\n"}, {7, "EN"},   {8, "D"}};
  return d;
}

struct StepRun {
  std::string text;
  StopUpdate last;
  int steps = 0;
};

StepRun RunTokens(StopChecker& checker, FakeDetokenizer& detok, const std::vector<int32_t>& tokens) {
  StepRun r;
  for (int32_t t : tokens) {
    StopUpdate u = checker.Step(t, detok);
    ++r.steps;
    r.text += u.text;
    r.last = u;
    if (u.finished()) break;
  }
  return r;
}

TEST(StopCheckerStep, EosFinishesWithStopAndIsNotEmitted) {
  const std::vector<int32_t> eos = {4};
  StopChecker checker(WithStops({"END"}), eos);
  FakeDetokenizer detok = Vocabulary();
  detok.tail = "\xEF\xBF\xBD";  // what the detokenizer still held
  const StepRun r = RunTokens(checker, detok, {0, 1, 7, 4, 2});
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.text, "HelloEN\xEF\xBF\xBD");  // held "EN" and the flushed tail released
  EXPECT_EQ(r.last.finish_reason, FinishReason::kStop);
  EXPECT_FALSE(r.last.stop_token_id.has_value());
  EXPECT_FALSE(r.last.stop_string.has_value());
  EXPECT_EQ(detok.pushed, (std::vector<int32_t>{0, 1, 7}));  // the EOS was never decoded
  EXPECT_EQ(detok.flushes, 1);
  EXPECT_EQ(checker.num_tokens(), 4);
  // Finished: later steps emit nothing and keep the reason.
  StopUpdate after = checker.Step(0, detok);
  EXPECT_EQ(after.text, "");
  EXPECT_EQ(after.finish_reason, FinishReason::kStop);
}

TEST(StopCheckerStep, IgnoreEosEmitsItsTextAndContinues) {
  SamplingParams p = WithStops({}, 3);
  p.ignore_eos = true;
  const std::vector<int32_t> eos = {4};
  StopChecker checker(p, eos);
  FakeDetokenizer detok = Vocabulary();
  const StepRun r = RunTokens(checker, detok, {0, 4, 1, 2});
  EXPECT_EQ(r.steps, 3);
  EXPECT_EQ(r.text, "Hel</s>lo");
  EXPECT_EQ(r.last.finish_reason, FinishReason::kLength);
}

TEST(StopCheckerStep, StopTokenIdsAreReported) {
  SamplingParams p = WithStops({});
  p.stop_token_ids = {5, 6};
  const std::vector<int32_t> eos = {4};
  StopChecker checker(p, eos);
  FakeDetokenizer detok = Vocabulary();
  const StepRun r = RunTokens(checker, detok, {0, 1, 6, 2});
  EXPECT_EQ(r.text, "Hello");
  EXPECT_EQ(r.last.finish_reason, FinishReason::kStop);
  EXPECT_EQ(r.last.stop_token_id, 6);
}

TEST(StopCheckerStep, MaxTokensFinishesWithLengthAndFlushes) {
  StopChecker checker(WithStops({"ld!"}, 4), {});
  FakeDetokenizer detok = Vocabulary();
  detok.tail = "?";
  const StepRun r = RunTokens(checker, detok, {0, 1, 2, 3, 0, 0});
  EXPECT_EQ(r.steps, 4);
  EXPECT_EQ(r.text, "Hello world?");  // "ld" was held until the end
  EXPECT_EQ(r.last.finish_reason, FinishReason::kLength);
}

TEST(StopCheckerStep, StopBeatsLengthOnTheLastToken) {
  {
    // A stop string completing in the max_tokens-th token.
    StopChecker checker(WithStops({"END"}, 3), {});
    FakeDetokenizer detok = Vocabulary();
    const StepRun r = RunTokens(checker, detok, {0, 7, 8});
    EXPECT_EQ(r.text, "Hel");
    EXPECT_EQ(r.last.finish_reason, FinishReason::kStop);
    EXPECT_EQ(r.last.stop_string, 0u);
  }
  {
    // A stop string completed by the detokenizer's flushed tail.
    StopChecker checker(WithStops({"ld!"}, 4), {});
    FakeDetokenizer detok = Vocabulary();
    detok.tail = "!";
    const StepRun r = RunTokens(checker, detok, {0, 1, 2, 3});
    EXPECT_EQ(r.text, "Hello wor");
    EXPECT_EQ(r.last.finish_reason, FinishReason::kStop);
  }
  {
    // EOS as the max_tokens-th token.
    const std::vector<int32_t> eos = {4};
    StopChecker checker(WithStops({}, 2), eos);
    FakeDetokenizer detok = Vocabulary();
    const StepRun r = RunTokens(checker, detok, {0, 4});
    EXPECT_EQ(r.text, "Hel");
    EXPECT_EQ(r.last.finish_reason, FinishReason::kStop);
  }
}

TEST(StopCheckerStep, MaxTokensOne) {
  StopChecker checker(WithStops({}, 1), {});
  FakeDetokenizer detok = Vocabulary();
  const StepRun r = RunTokens(checker, detok, {2, 3});
  EXPECT_EQ(r.steps, 1);
  EXPECT_EQ(r.text, " wor");
  EXPECT_EQ(r.last.finish_reason, FinishReason::kLength);
  EXPECT_EQ(FinishReasonName(*r.last.finish_reason), "length");
  EXPECT_EQ(FinishReasonName(FinishReason::kStop), "stop");
}

}  // namespace
}  // namespace lserve
