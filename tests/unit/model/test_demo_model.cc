// The real demo model (SmolLM2-135M-Instruct, Q4_1 GGUF with a Q8_0
// embedding table, tied embeddings) against transformers' f32 logits of the
// dequantized weights (tests/fixtures/demo). Skipped when the model file is
// absent (it is fetched by the README's set-up, not committed).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <string>
#include <vector>

#include "formats/gguf.h"
#include "model_test_util.h"

namespace lserve {
namespace {

using testing::Ids;
using testing::LoadedModel;
using testing::LoadModel;
using testing::MaxAbs;
using testing::MaxAbsDiff;

const std::string kDemoPath = std::string(LSERVE_SOURCE_DIR) + "/models/SmolLM2-135M-Instruct.Q4_1.gguf";

bool DemoPresent() {
  std::FILE* f = std::fopen(kDemoPath.c_str(), "rb");
  if (f == nullptr) return false;
  std::fclose(f);
  return true;
}

// Our f32 forward and transformers' differ in summation order over 30
// layers (k up to 1536): measured max |logit difference| 5e-5 (fast) and
// 1.1e-4 (reference, sequential sums) on logits of magnitude up to 28, NLLs
// within 2e-5.
constexpr float kDemoLogitsTolerance = 2e-5f;  // relative to the largest |logit|
constexpr double kDemoNllTolerance = 1e-3;

ModelOptions DemoOptions() {
  ModelOptions o;
  o.kv_cache_tokens = 1024;
  return o;
}

class DemoModel : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!DemoPresent()) GTEST_SKIP() << kDemoPath << " is absent";
    golden_ = testing::ReadJson(testing::SourcePath("tests/fixtures/demo/golden.json"));
  }
  nlohmann::json golden_;
};

void CheckShortPrompt(LoadedModel& m, const nlohmann::json& golden) {
  const std::vector<int32_t> ids = Ids(golden["short"]["ids"]);
  const int64_t V = m.vocab();
  const std::vector<float> logits = testing::OneShotLogits(m, ids);
  auto npy = ReadNpyF32(testing::SourcePath("tests/fixtures/demo/logits_short.npy"));
  ASSERT_TRUE(npy.ok());
  ASSERT_EQ(logits.size(), npy->data.size());
  const float scale = MaxAbs(npy->data);
  EXPECT_LE(MaxAbsDiff(logits, npy->data), kDemoLogitsTolerance * scale);
  const auto nll = golden["short"]["nll"].get<std::vector<double>>();
  const auto argmax = golden["short"]["argmax"].get<std::vector<int64_t>>();
  const auto margin = golden["short"]["argmax_margin"].get<std::vector<double>>();
  for (size_t t = 0; t < ids.size(); ++t) {
    std::span<const float> row(logits.data() + t * V, V);
    if (t + 1 < ids.size()) {
      EXPECT_NEAR(testing::Nll(row, ids[t + 1]), nll[t], kDemoNllTolerance) << t;
    }
    if (margin[t] > 2 * kDemoLogitsTolerance * scale) {
      EXPECT_EQ(testing::Argmax(row), argmax[t]) << t;
    }
  }
}

TEST_F(DemoModel, ShortPromptLogitsMatchTransformersOnTheFastBackend) {
  LoadedModel m = LoadModel(kDemoPath, CpuMode::kFast, DemoOptions());
  ASSERT_NE(m.model, nullptr);
  CheckShortPrompt(m, golden_);
}

TEST_F(DemoModel, ShortPromptLogitsMatchTransformersOnTheReferenceBackend) {
  LoadedModel m = LoadModel(kDemoPath, CpuMode::kReference, DemoOptions());
  ASSERT_NE(m.model, nullptr);
  CheckShortPrompt(m, golden_);
}

TEST_F(DemoModel, AnswersParisForTheCapitalOfFrance) {
  LoadedModel m = LoadModel(kDemoPath, CpuMode::kFast, DemoOptions());
  ASSERT_NE(m.model, nullptr);
  const std::vector<int32_t> prompt = Ids(golden_["france"]["ids"]);
  // Last-position logits of the chat prompt.
  const int64_t seq = m.next_seq++;
  ASSERT_TRUE(m.kv->AddSequence(seq).ok());
  const std::vector<float> last = testing::PrefillAll(m, seq, prompt, 0, LogitsWanted::kLast);
  ASSERT_TRUE(m.kv->Free(seq).ok());
  auto npy = ReadNpyF32(testing::SourcePath("tests/fixtures/demo/logits_france_last.npy"));
  ASSERT_TRUE(npy.ok());
  EXPECT_LE(MaxAbsDiff(last, npy->data), kDemoLogitsTolerance * MaxAbs(npy->data));

  // The greedy answer: transformers' ids up to the end of the turn, and the
  // text of those tokens names Paris.
  const std::vector<int32_t> want = Ids(golden_["france"]["greedy"]);
  const int n = 8;  // "The capital of France is Paris." <|im_end|>
  const std::vector<int32_t> got = testing::Greedy(m, prompt, n);
  EXPECT_EQ(got, std::vector<int32_t>(want.begin(), want.begin() + n));
  auto gguf = GgufFile::Open(kDemoPath);
  ASSERT_TRUE(gguf.ok());
  auto vocab = (*gguf)->GetStringArray("tokenizer.ggml.tokens");
  ASSERT_TRUE(vocab.ok());
  std::string text;
  for (int32_t id : got) text += std::string((*vocab)[static_cast<size_t>(id)]);
  EXPECT_NE(text.find("Paris"), std::string::npos) << text;
}

// Not tests: timings of the forward on each backend (run with
// --gtest_also_run_disabled_tests --gtest_filter='*Timing*').
void TimeDemoForward(CpuMode mode, int decode_steps) {
  LoadedModel m = LoadModel(kDemoPath, mode, DemoOptions());
  ASSERT_NE(m.model, nullptr);
  std::vector<int32_t> prompt(512);
  for (size_t i = 0; i < prompt.size(); ++i) prompt[i] = static_cast<int32_t>((i * 7919) % 49152);
  const int64_t seq = m.next_seq++;
  ASSERT_TRUE(m.kv->AddSequence(seq).ok());
  auto t0 = std::chrono::steady_clock::now();
  testing::PrefillAll(m, seq, prompt, 0, LogitsWanted::kLast);
  auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(m.kv->BeginDecode(seq).ok());
  for (int i = 0; i < decode_steps; ++i) {
    const int64_t len = 512 + i;
    ASSERT_TRUE(m.kv->Grow(seq, len + 1).ok());
    BatchPlan plan;
    plan.steps.push_back({.seq_id = seq, .start_pos = len, .tokens = {42}, .is_decode = true,
                          .logits = LogitsWanted::kLast});
    ForwardOutput out;
    ASSERT_TRUE(m.model->Forward(plan, *m.kv, &out).ok());
  }
  auto t2 = std::chrono::steady_clock::now();
  const double prefill_s = std::chrono::duration<double>(t1 - t0).count();
  const double decode_s = std::chrono::duration<double>(t2 - t1).count() / decode_steps;
  std::printf("%s: prefill 512 tokens %.3f s (%.1f tok/s), decode at 512 %.1f ms/token (%.1f tok/s)\n",
              m.backend->Info().name.c_str(), prefill_s, 512 / prefill_s, decode_s * 1e3, 1.0 / decode_s);
}

TEST_F(DemoModel, DISABLED_TimingFast) { TimeDemoForward(CpuMode::kFast, 32); }
TEST_F(DemoModel, DISABLED_TimingReference) { TimeDemoForward(CpuMode::kReference, 2); }

}  // namespace
}  // namespace lserve
