// Sampler: greedy tie-breaking, seeded determinism, sampled frequencies
// against the processed distribution, penalties over a sequence, logprobs
// modes, and faults in the logits.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdio>
#include <limits>
#include <random>
#include <vector>

#include "sampling/pcg32.h"
#include "sampling/sampler.h"

namespace lserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::mt19937_64 FreshRng() {
  std::random_device device;
  const uint64_t seed = (uint64_t{device()} << 32) | device();
  std::printf("[ seed %llu ]\n", static_cast<unsigned long long>(seed));
  return std::mt19937_64(seed);
}

std::vector<float> NormalLogits(std::mt19937_64& rng, size_t n, float scale) {
  std::normal_distribution<float> normal(0.0f, scale);
  std::vector<float> l(n);
  for (float& v : l) v = normal(rng);
  return l;
}

Sampler MakeSampler(const SamplingParams& params, int32_t vocab, std::vector<int32_t> prompt = {},
                    uint64_t stream = 0) {
  Result<Sampler> s = Sampler::Create(params, vocab, prompt, stream);
  EXPECT_TRUE(s.ok()) << s.status().ToString();
  return std::move(s).value();
}

int32_t SampleCopy(Sampler& s, std::vector<float> logits) {
  Result<SampledToken> t = s.Sample(logits);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? t->token_id : -1;
}

TEST(Pcg32, MatchesTheReferenceImplementation) {
  // pcg32-demo's first round: pcg32_srandom_r(&rng, 42, 54).
  Pcg32 rng(42, 54);
  const uint32_t expected[] = {0xa15c02b7, 0x7b47f409, 0xba1d3330, 0x83d2f293, 0xbfa4784b, 0xcbed606e};
  for (uint32_t e : expected) EXPECT_EQ(rng.Next(), e);
  Pcg32 a(7, 0);
  for (int i = 0; i < 1000; ++i) {
    const double u = a.NextDouble();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
  }
}

TEST(Sampler, GreedyTakesTheLowestIdAmongTiedMaxima) {
  SamplingParams p;
  p.temperature = 0;
  p.top_k = 1;  // ignored under greedy
  p.top_p = 0.1;
  Sampler s = MakeSampler(p, 5);
  EXPECT_EQ(SampleCopy(s, {1, 3, 3, 2, 3}), 1);
  EXPECT_EQ(SampleCopy(s, {kNegInf, 0, 0, 0, 0}), 1);
  EXPECT_EQ(SampleCopy(s, {7, 7, 7, 7, 7}), 0);
  p.temperature = 0.5 * kGreedyTemperature;
  Sampler tiny = MakeSampler(p, 5);
  EXPECT_EQ(SampleCopy(tiny, {0, 2, 1, 2, 0}), 1);
  EXPECT_EQ(s.num_generated(), 3);
}

TEST(Sampler, SameSeedSameTokensDifferentSeedsOrStreamsDiffer) {
  std::mt19937_64 rng = FreshRng();
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.95;
  p.seed = rng();
  Sampler a = MakeSampler(p, 1000);
  Sampler b = MakeSampler(p, 1000);
  Sampler other_stream = MakeSampler(p, 1000, {}, 1);
  p.seed = *p.seed + 1;
  Sampler other_seed = MakeSampler(p, 1000);
  p.seed.reset();
  Sampler unseeded1 = MakeSampler(p, 1000);
  Sampler unseeded2 = MakeSampler(p, 1000);
  EXPECT_NE(unseeded1.seed(), unseeded2.seed());

  std::vector<int32_t> ta, tb, tc, td, tu1, tu2;
  for (int step = 0; step < 200; ++step) {
    const std::vector<float> logits = NormalLogits(rng, 1000, 0.5f);  // wide distribution
    ta.push_back(SampleCopy(a, logits));
    tb.push_back(SampleCopy(b, logits));
    tc.push_back(SampleCopy(other_stream, logits));
    td.push_back(SampleCopy(other_seed, logits));
    tu1.push_back(SampleCopy(unseeded1, logits));
    tu2.push_back(SampleCopy(unseeded2, logits));
  }
  EXPECT_EQ(ta, tb);
  EXPECT_NE(ta, tc);
  EXPECT_NE(ta, td);
  EXPECT_NE(tu1, tu2);
}

TEST(Sampler, FixedSeedGivesAPinnedSequence) {
  // Pins the whole path (Pcg32, 53-bit draw, inverse CDF) across builds.
  SamplingParams p;
  p.seed = 1234;
  Sampler s = MakeSampler(p, 4);
  std::vector<int32_t> got;
  for (int i = 0; i < 16; ++i) got.push_back(SampleCopy(s, {0.0f, 0.0f, 0.0f, 0.0f}));
  // Uniform over 4 tokens: token = floor(4u) for the successive draws u.
  Pcg32 rng(1234, 0);
  std::vector<int32_t> expected;
  for (int i = 0; i < 16; ++i) expected.push_back(static_cast<int32_t>(4.0 * rng.NextDouble()));
  EXPECT_EQ(got, expected);
  // And the literal values, so a change of the stream or the draw shows.
  EXPECT_EQ(got, (std::vector<int32_t>{1, 3, 2, 1, 0, 1, 0, 1, 1, 2, 1, 2, 0, 1, 2, 2}));

  p.seed = 42;
  p.temperature = 0.7;
  p.top_p = 0.9;
  Sampler filtered = MakeSampler(p, 8);
  got.clear();
  for (int i = 0; i < 16; ++i) got.push_back(SampleCopy(filtered, {0.1f, 0.5f, -0.3f, 1.2f, 0.9f, -1, 0, 0.4f}));
  EXPECT_EQ(got, (std::vector<int32_t>{1, 4, 7, 4, 3, 1, 3, 1, 4, 4, 4, 6, 1, 7, 3, 3}));
}

// Expected probabilities of the processed distribution, computed by sorting
// (temperature, then top_k, top_p, min_p as logits_processors.h defines them).
std::vector<double> ReferenceDistribution(std::vector<float> l, double temperature, int64_t top_k, double top_p,
                                          double min_p) {
  for (float& v : l) v /= static_cast<float>(temperature);
  const size_t n = l.size();
  if (top_k > 0 && static_cast<size_t>(top_k) < n) {
    std::vector<float> sorted = l;
    std::sort(sorted.rbegin(), sorted.rend());
    for (float& v : l) {
      if (v < sorted[top_k - 1]) v = kNegInf;
    }
  }
  const float m = *std::max_element(l.begin(), l.end());
  std::vector<double> w(n, 0.0);
  double total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (l[i] != kNegInf) total += (w[i] = std::exp(l[i] - m));
  }
  std::vector<double> sorted = w;
  std::sort(sorted.rbegin(), sorted.rend());
  double threshold = 0, cumulative = 0;
  if (top_p < 1) {
    for (double v : sorted) {
      if ((cumulative += v) >= top_p * total) {
        threshold = v;
        break;
      }
    }
  }
  threshold = std::max(threshold, min_p);
  double kept_total = 0;
  for (size_t i = 0; i < n; ++i) {
    if (l[i] == kNegInf || w[i] < threshold) w[i] = 0;
    kept_total += w[i];
  }
  for (double& v : w) v /= kept_total;
  return w;
}

TEST(Sampler, FrequenciesMatchTheProcessedDistribution) {
  std::mt19937_64 rng = FreshRng();
  struct Config {
    double temperature;
    int64_t top_k;
    double top_p;
    double min_p;
  };
  const Config configs[] = {{1.0, 0, 1.0, 0.0}, {0.7, 6, 1.0, 0.0}, {1.3, 0, 0.8, 0.0},
                            {1.0, 0, 1.0, 0.1}, {0.8, 7, 0.9, 0.02}};
  constexpr int kDraws = 20000;
  constexpr int32_t kVocab = 10;
  for (const Config& c : configs) {
    SCOPED_TRACE(testing::Message() << "T " << c.temperature << " k " << c.top_k << " p " << c.top_p << " min_p "
                                    << c.min_p);
    const std::vector<float> logits = NormalLogits(rng, kVocab, 1.5f);
    const std::vector<double> expected = ReferenceDistribution(logits, c.temperature, c.top_k, c.top_p, c.min_p);
    SamplingParams p;
    p.temperature = c.temperature;
    p.top_k = c.top_k;
    p.top_p = c.top_p;
    p.min_p = c.min_p;
    Sampler s = MakeSampler(p, kVocab);
    std::vector<int> counts(kVocab, 0);
    for (int i = 0; i < kDraws; ++i) ++counts[SampleCopy(s, logits)];
    double chi2 = 0;
    int cells = 0;
    for (int32_t t = 0; t < kVocab; ++t) {
      if (expected[t] == 0) {
        EXPECT_EQ(counts[t], 0) << "filtered token " << t << " was drawn";
        continue;
      }
      const double e = expected[t] * kDraws;
      chi2 += (counts[t] - e) * (counts[t] - e) / e;
      ++cells;
    }
    // At most 9 degrees of freedom: P(chi2 > 45) < 1e-6.
    EXPECT_LT(chi2, 45.0) << cells << " cells";
  }
}

TEST(Sampler, ProcessedLogitsInPlaceFollowTheDocumentedOrder) {
  // prompt {0, 1, 0, 3}; generated 2, 2, 1 (forced below); bias {0: +3}.
  // Step 4 logits [2, -1, 0.5, -3, 1, 0]:
  //   0: (2 + 3) / 2 = 2.5        bias before the penalty
  //   1: -1 * 2 - 0.5 - 0.25 = -2.75
  //   2: 0.5 / 2 - 1 - 0.25 = -1
  //   3: -3 * 2 = -6 (in the prompt)
  //   4, 5: untouched
  SamplingParams p;
  p.repetition_penalty = 2;
  p.frequency_penalty = 0.5;
  p.presence_penalty = 0.25;
  p.logit_bias = {{0, 3}};
  const std::vector<float> expected = {2.5f, -2.75f, -1, -6, 1, 0};
  for (double temperature : {0.0, 2.0}) {
    SCOPED_TRACE(temperature);
    p.temperature = temperature;
    Sampler s = MakeSampler(p, 6, {0, 1, 0, 3});
    for (int32_t forced : {2, 2, 1}) {
      std::vector<float> row(6, 0.0f);
      row[forced] = 1000;
      ASSERT_EQ(SampleCopy(s, row), forced);
    }
    std::vector<float> l = {2, -1, 0.5f, -3, 1, 0};
    ASSERT_TRUE(s.Sample(l).ok());
    for (size_t i = 0; i < l.size(); ++i) {
      EXPECT_FLOAT_EQ(l[i], expected[i] / (temperature == 0 ? 1.0f : 2.0f)) << "token " << i;
    }
  }
}

TEST(Sampler, PenaltiesCountAcrossSteps) {
  const std::vector<float> row = {5.0f, 4.9f, 4.8f, 4.7f};
  SamplingParams p;
  p.temperature = 0;
  // Presence: each token once, then the penalised 0 (4) beats the
  // penalised rest forever.
  p.presence_penalty = 1;
  Sampler presence = MakeSampler(p, 4);
  std::vector<int32_t> got;
  for (int i = 0; i < 8; ++i) got.push_back(SampleCopy(presence, row));
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2, 3, 0, 0, 0, 0}));
  // Frequency: the penalty grows with the count, so the tokens cycle.
  p.presence_penalty = 0;
  p.frequency_penalty = 1;
  Sampler frequency = MakeSampler(p, 4);
  got.clear();
  for (int i = 0; i < 8; ++i) got.push_back(SampleCopy(frequency, row));
  EXPECT_EQ(got, (std::vector<int32_t>{0, 1, 2, 3, 0, 1, 2, 3}));
  // Repetition penalty counts the prompt: token 0 (in it) is halved to 2.5,
  // so 1 wins; then 1 is halved too (2.45) and 2 wins.
  p.frequency_penalty = 0;
  p.repetition_penalty = 2;
  Sampler repetition = MakeSampler(p, 4, {0});
  EXPECT_EQ(SampleCopy(repetition, row), 1);
  EXPECT_EQ(SampleCopy(repetition, row), 2);
}

TEST(Sampler, RawAndProcessedLogprobs) {
  const std::vector<float> raw = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  SamplingParams p;
  p.temperature = 0.5;
  p.top_k = 2;
  p.logprobs = true;
  p.top_logprobs = 3;
  p.seed = 5;

  p.logprobs_mode = LogprobsMode::kRaw;
  Sampler s_raw = MakeSampler(p, 4);
  std::vector<float> l = raw;
  Result<SampledToken> t = s_raw.Sample(l);
  ASSERT_TRUE(t.ok());
  ASSERT_TRUE(t->token_id == 2 || t->token_id == 3);
  EXPECT_NEAR(t->logprob, std::log(t->token_id == 2 ? 0.3 : 0.4), 1e-6);
  ASSERT_EQ(t->top_logprobs.size(), 3u);
  EXPECT_EQ(t->top_logprobs[0].token_id, 3);
  EXPECT_EQ(t->top_logprobs[1].token_id, 2);
  EXPECT_EQ(t->top_logprobs[2].token_id, 1);
  EXPECT_NEAR(t->top_logprobs[2].logprob, std::log(0.2), 1e-6);

  // Processed: temperature 0.5 squares the probabilities, top_k 2 keeps
  // 0.3^2 and 0.4^2: 0.36 and 0.64; the rest are -inf (lowest id first).
  p.logprobs_mode = LogprobsMode::kProcessed;
  Sampler s_proc = MakeSampler(p, 4);
  l = raw;
  t = s_proc.Sample(l);
  ASSERT_TRUE(t.ok());
  EXPECT_NEAR(t->logprob, std::log(t->token_id == 2 ? 0.36 : 0.64), 1e-6);
  ASSERT_EQ(t->top_logprobs.size(), 3u);
  EXPECT_EQ(t->top_logprobs[0].token_id, 3);
  EXPECT_NEAR(t->top_logprobs[0].logprob, std::log(0.64), 1e-6);
  EXPECT_EQ(t->top_logprobs[1].token_id, 2);
  EXPECT_EQ(t->top_logprobs[2].token_id, 0);
  EXPECT_EQ(t->top_logprobs[2].logprob, kNegInf);

  // Processed under greedy: after bias/penalties only, no temperature.
  p.temperature = 0;
  Sampler s_greedy = MakeSampler(p, 4);
  l = raw;
  t = s_greedy.Sample(l);
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->token_id, 3);
  EXPECT_NEAR(t->logprob, std::log(0.4), 1e-6);
}

TEST(Sampler, TwentyTopLogprobsOnALargeVocabulary) {
  // RELIABILITY.md C19: 20 entries, all <= 0, the sampled token's logprob
  // reported (and listed when it is among the top 20).
  std::mt19937_64 rng = FreshRng();
  SamplingParams p;
  p.logprobs = true;
  p.top_logprobs = 20;
  p.top_k = 5;
  Sampler s = MakeSampler(p, 5000);
  for (int step = 0; step < 20; ++step) {
    std::vector<float> l = NormalLogits(rng, 5000, 3.0f);
    Result<SampledToken> t = s.Sample(l);
    ASSERT_TRUE(t.ok());
    ASSERT_EQ(t->top_logprobs.size(), 20u);
    bool listed = false;
    for (size_t j = 0; j < 20; ++j) {
      EXPECT_LE(t->top_logprobs[j].logprob, 0.0f);
      EXPECT_TRUE(std::isfinite(t->top_logprobs[j].logprob));
      if (j > 0) {
        EXPECT_GE(t->top_logprobs[j - 1].logprob, t->top_logprobs[j].logprob);
      }
      if (t->top_logprobs[j].token_id == t->token_id) {
        listed = true;
        EXPECT_EQ(t->top_logprobs[j].logprob, t->logprob);
      }
    }
    EXPECT_TRUE(listed);  // top_k 5 draws among the 5 most likely
  }
}

TEST(Sampler, FaultyLogitsAreErrorsOfThisSequenceOnly) {
  SamplingParams p;
  p.frequency_penalty = 1;
  Sampler s = MakeSampler(p, 3);
  std::vector<float> nan = {0, std::nanf(""), 1};
  Result<SampledToken> r = s.Sample(nan);
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
  std::vector<float> inf = {0, INFINITY, 1};
  EXPECT_EQ(s.Sample(inf).status().code(), StatusCode::kInternal);
  std::vector<float> masked = {kNegInf, kNegInf, kNegInf};
  EXPECT_EQ(s.Sample(masked).status().code(), StatusCode::kInternal);
  std::vector<float> narrow = {0, 1};
  EXPECT_EQ(s.Sample(narrow).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.num_generated(), 0);
  EXPECT_GE(SampleCopy(s, {0, 1, 2}), 0);
  EXPECT_EQ(s.num_generated(), 1);
}

TEST(Sampler, ExtremeButValidParametersStayFinite) {
  SamplingParams p;
  p.temperature = kGreedyTemperature;
  p.repetition_penalty = 1e-300;
  p.logit_bias = {{1, 100}};
  Sampler s = MakeSampler(p, 4, {0, 1, 2, 3});
  std::vector<float> l = {3e38f, 1e30f, -3e38f, 0};
  Result<SampledToken> t = s.Sample(l);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  for (float v : l) EXPECT_FALSE(std::isnan(v) || v == INFINITY);
}

TEST(Sampler, CreateRejectsBadParametersAndPrompts) {
  SamplingParams p;
  p.top_p = 0;
  Result<Sampler> r = Sampler::Create(p, 10, {});
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message().rfind("top_p", 0), 0u);
  p = {};
  const std::vector<int32_t> bad_prompt = {1, 10};
  EXPECT_EQ(Sampler::Create(p, 10, bad_prompt).status().code(), StatusCode::kInvalidArgument);
  const std::vector<int32_t> negative_prompt = {-1};
  EXPECT_EQ(Sampler::Create(p, 10, negative_prompt).status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(Sampler::Create(p, 0, {}).status().code(), StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace lserve
