// The long-context eval tasks: prompts of the asked length with the answer
// at the asked depth, answer matching, and the per-row likelihood.
#include "runtime/eval_tasks.h"

#include <gtest/gtest.h>

#include <cmath>
#include <set>

#include "../fixture_tokenizer.h"
#include "runtime/calibration.h"

namespace lserve {
namespace {

// Tokens of one filler sentence, an upper bound on how far under the target a
// prompt may stop.
int64_t SentenceTokens(const Tokenizer& tok, const std::string& sentence) {
  return static_cast<int64_t>(tok.Encode(sentence, false)->size()) + 2;
}

TEST(EvalTasks, PasskeyPromptHasTheLengthDepthAndAnswer) {
  const Tokenizer tok = LoadFixtureTokenizer("llama3");
  for (int64_t tokens : {300, 777, 2048}) {
    for (double depth : {0.0, 0.3, 0.5, 1.0}) {
      SCOPED_TRACE(std::to_string(tokens) + " tokens, depth " + std::to_string(depth));
      auto c = BuildRetrievalCase(RetrievalTask::kPasskey, tok, "", {.tokens = tokens, .depth = depth, .seed = 7});
      ASSERT_TRUE(c.ok()) << c.status().ToString();
      const auto n = static_cast<int64_t>(c->ids.size());
      EXPECT_LE(n, tokens);
      EXPECT_GT(n, tokens - SentenceTokens(tok, "There and back again. "));
      EXPECT_EQ(c->answer.size(), 5u);
      EXPECT_NEAR(c->depth, depth, 0.03);  // whole sentences: at 300 tokens 1 in 25
      const std::string text = tok.Decode(c->ids, /*skip_special_tokens=*/true);
      const std::string line = "The pass key is " + c->answer + ". Remember it. " + c->answer + " is the pass key.";
      const size_t at = text.find(line);
      ASSERT_NE(at, std::string::npos);
      EXPECT_EQ(text.find(line, at + 1), std::string::npos);
      EXPECT_TRUE(text.ends_with("What is the pass key? The pass key is"));
      // The key line sits at the asked fraction of the filler text.
      const size_t intro = text.find("The grass is green.");
      const size_t question = text.size() - std::string("What is the pass key? The pass key is").size();
      const double filler = static_cast<double>(question - intro - line.size() - 1);
      EXPECT_NEAR(static_cast<double>(at - std::min(at, intro)) / filler, depth, 0.03);
    }
  }
}

TEST(EvalTasks, NeedlePromptCyclesTheHaystackSentences) {
  const Tokenizer tok = LoadFixtureTokenizer("gpt2");
  const std::string haystack = "Alpha beta gamma.  Delta   epsilon!\n\nZeta eta theta? Iota";
  auto c = BuildRetrievalCase(RetrievalTask::kNeedle, tok, haystack, {.tokens = 400, .depth = 0.5, .seed = 3});
  ASSERT_TRUE(c.ok()) << c.status().ToString();
  EXPECT_LE(c->ids.size(), 400u);
  EXPECT_EQ(c->answer.size(), 7u);
  const std::string text = tok.Decode(c->ids, true);
  EXPECT_NE(text.find("Alpha beta gamma. Delta epsilon! Zeta eta theta? Iota Alpha beta gamma."), std::string::npos);
  EXPECT_NE(text.find("The special magic number is " + c->answer + "."), std::string::npos);
  EXPECT_TRUE(text.ends_with("The special magic number mentioned in the provided text is"));
  // The default haystack is generated sentences, not the passkey filler.
  auto generated = BuildRetrievalCase(RetrievalTask::kNeedle, tok, "", {.tokens = 300, .depth = 0, .seed = 3});
  ASSERT_TRUE(generated.ok());
  const std::string gtext = tok.Decode(generated->ids, true);
  EXPECT_EQ(gtext.find("The grass is green."), std::string::npos);
  EXPECT_NE(gtext.find("The special magic number is " + generated->answer + ". "), std::string::npos);
}

TEST(EvalTasks, SeedsDrawAnswersAndCasesAreDeterministic) {
  const Tokenizer tok = LoadFixtureTokenizer("llama3");
  std::set<std::string> answers;
  for (uint64_t seed = 0; seed < 20; ++seed) {
    auto a = BuildRetrievalCase(RetrievalTask::kPasskey, tok, "", {.tokens = 200, .depth = 0.5, .seed = seed});
    auto b = BuildRetrievalCase(RetrievalTask::kPasskey, tok, "", {.tokens = 200, .depth = 0.5, .seed = seed});
    ASSERT_TRUE(a.ok() && b.ok());
    EXPECT_EQ(a->ids, b->ids);
    answers.insert(a->answer);
  }
  EXPECT_GE(answers.size(), 18u);
}

TEST(EvalTasks, BadSpecsAreErrors) {
  const Tokenizer tok = LoadFixtureTokenizer("llama3");
  EXPECT_EQ(BuildRetrievalCase(RetrievalTask::kPasskey, tok, "", {.tokens = 20}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildRetrievalCase(RetrievalTask::kPasskey, tok, "", {.tokens = 500, .depth = 1.5}).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildRetrievalCase(RetrievalTask::kPasskey, tok, "", {.tokens = 500, .depth = std::nan("")})
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(BuildRetrievalCase(RetrievalTask::kNeedle, tok, " \n\t ", {.tokens = 500}).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(EvalTasks, CalibrationTextIsThePasskeyText) {
  // SyntheticPasskeyText(words, seed) is PasskeyText with words / 4 sentences.
  const std::string t = SyntheticPasskeyText(400, 5);
  EXPECT_TRUE(t.starts_with("There is an important info hidden"));
  EXPECT_TRUE(t.ends_with("What is the pass key? The pass key is"));
  size_t fillers = 0;
  for (const char* s : {"The grass is green. ", "The sky is blue. ", "The sun is yellow. ", "Here we go. ",
                        "There and back again. "}) {
    for (size_t at = t.find(s); at != std::string::npos; at = t.find(s, at + 1)) ++fillers;
  }
  EXPECT_EQ(fillers, 100u);
  EXPECT_EQ(PasskeyText(2, 2, 12345),
            "There is an important info hidden inside a lot of irrelevant text. Find it and memorize it. I will "
            "quiz you about the important information there. The grass is green. The sky is blue. The pass key is "
            "12345. Remember it. 12345 is the pass key. What is the pass key? The pass key is");
}

TEST(EvalTasks, AnswerFoundNeedsTheWholeNumber) {
  EXPECT_TRUE(AnswerFound(" 12345. Remember", "12345"));
  EXPECT_TRUE(AnswerFound("12345", "12345"));
  EXPECT_TRUE(AnswerFound("key:12345abc", "12345"));
  EXPECT_TRUE(AnswerFound("112345 then 12345", "12345"));
  EXPECT_FALSE(AnswerFound(" 123456", "12345"));
  EXPECT_FALSE(AnswerFound("012345", "12345"));
  EXPECT_FALSE(AnswerFound("1234", "12345"));
  EXPECT_FALSE(AnswerFound("", "12345"));
  EXPECT_FALSE(AnswerFound("anything", ""));
}

TEST(EvalTasks, NextTokenNllIsTheLogSoftmax) {
  const std::vector<float> uniform(1000, 3.5f);
  EXPECT_NEAR(NextTokenNll(uniform, 17), std::log(1000.0), 1e-12);
  // Large logits do not overflow.
  const std::vector<float> peaked = {1000.f, 0.f, -1000.f};
  EXPECT_NEAR(NextTokenNll(peaked, 0), 0.0, 1e-12);
  EXPECT_NEAR(NextTokenNll(peaked, 1), 1000.0, 1e-9);
  // Against the f64 formula on a mixed row.
  std::vector<float> row = {0.25f, -1.5f, 2.0f, 0.0f, 3.25f};
  double z = 0;
  for (float v : row) z += std::exp(static_cast<double>(v));
  for (int32_t k = 0; k < 5; ++k) EXPECT_NEAR(NextTokenNll(row, k), std::log(z) - row[k], 1e-12);
}

}  // namespace
}  // namespace lserve
