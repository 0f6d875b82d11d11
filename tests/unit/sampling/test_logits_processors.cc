// The per-step logits processors against hand-computed values and against a
// straightforward sort-based reference of the definitions in
// logits_processors.h, on fresh random logits with many ties.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
#include <random>
#include <vector>

#include "sampling/logits_processors.h"

namespace lserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

std::mt19937_64 FreshRng() {
  std::random_device device;
  const uint64_t seed = (uint64_t{device()} << 32) | device();
  std::printf("[ seed %llu ]\n", static_cast<unsigned long long>(seed));
  return std::mt19937_64(seed);
}

// The kept set of top_k -> top_p -> min_p, computed by sorting everything.
std::vector<bool> ReferenceKept(std::vector<float> l, int64_t top_k, double top_p, double min_p) {
  const size_t n = l.size();
  if (top_k > 0 && static_cast<size_t>(top_k) < n) {
    std::vector<float> sorted = l;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    const float kth = sorted[top_k - 1];
    for (float& v : l) {
      if (v < kth) v = kNegInf;
    }
  }
  const float max_logit = *std::max_element(l.begin(), l.end());
  std::vector<float> w(n, 0.0f);
  double total = 0.0;
  for (size_t i = 0; i < n; ++i) {
    if (l[i] == kNegInf) continue;
    w[i] = std::exp(l[i] - max_logit);
    total += w[i];
  }
  double threshold = 0.0;
  if (top_p < 1.0) {
    std::vector<float> sorted;
    for (size_t i = 0; i < n; ++i) {
      if (l[i] != kNegInf) sorted.push_back(w[i]);
    }
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    double cumulative = 0.0;
    for (float v : sorted) {
      cumulative += v;
      if (cumulative >= top_p * total) {
        threshold = v;
        break;
      }
    }
  }
  threshold = std::max(threshold, min_p);
  std::vector<bool> kept(n);
  for (size_t i = 0; i < n; ++i) kept[i] = l[i] != kNegInf && static_cast<double>(w[i]) >= threshold;
  return kept;
}

std::vector<bool> FiniteSet(const std::vector<float>& l) {
  std::vector<bool> s(l.size());
  for (size_t i = 0; i < l.size(); ++i) s[i] = l[i] != kNegInf;
  return s;
}

// Random logits in one of several shapes; most have ties.
std::vector<float> RandomLogits(std::mt19937_64& rng, size_t n) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> shape_dist(0, 5);
  std::vector<float> l(n);
  const int shape = shape_dist(rng);
  for (float& v : l) {
    switch (shape) {
      case 0: v = 3.0f * normal(rng); break;                        // continuous
      case 1: v = std::round(2.0f * normal(rng)) / 2.0f; break;     // few levels: ties
      case 2: v = std::round(normal(rng)); break;                   // very few levels
      case 3: v = 0.0f; break;                                      // flat
      case 4: v = 20.0f * normal(rng); break;                       // peaked
      default: v = 0.01f * normal(rng); break;                      // near-flat
    }
  }
  // Some already-masked tokens, but never all of them.
  std::bernoulli_distribution masked(0.1);
  for (float& v : l) {
    if (masked(rng)) v = kNegInf;
  }
  l[std::uniform_int_distribution<size_t>(0, n - 1)(rng)] = 1.0f;
  return l;
}

// A top_p that lands exactly on a cumulative sum (C_m == top_p * Z in
// double), where ">=" and ">" keep different sets; 1 when none is found.
double ExactBoundaryTopP(std::vector<float> l, int64_t top_k, std::mt19937_64& rng) {
  if (top_k > 0 && static_cast<size_t>(top_k) < l.size()) {
    std::vector<float> sorted = l;
    std::sort(sorted.begin(), sorted.end(), std::greater<float>());
    for (float& v : l) {
      if (v < sorted[top_k - 1]) v = kNegInf;
    }
  }
  const float max_logit = *std::max_element(l.begin(), l.end());
  std::vector<float> w;
  double total = 0.0;
  for (float v : l) {
    if (v == kNegInf) continue;
    w.push_back(std::exp(v - max_logit));
    total += w.back();
  }
  std::sort(w.begin(), w.end(), std::greater<float>());
  std::vector<double> cumulative;
  double c = 0.0;
  for (float v : w) cumulative.push_back(c += v);
  for (int attempt = 0; attempt < 20; ++attempt) {
    const double cm = cumulative[std::uniform_int_distribution<size_t>(0, cumulative.size() - 1)(rng)];
    const double top_p = cm / total;
    if (top_p > 0 && top_p < 1 && top_p * total == cm) return top_p;
  }
  return 1.0;
}

TEST(FilterLogits, KeepsExactlyTheReferenceSetsOnRandomLogits) {
  std::mt19937_64 rng = FreshRng();
  const size_t sizes[] = {1, 2, 3, 5, 17, 64, 65, 100, 300, 1000, 5000};
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  FilterWorkspace ws;
  for (int iter = 0; iter < 1500; ++iter) {
    const size_t n = sizes[iter % std::size(sizes)];
    std::vector<float> logits = RandomLogits(rng, n);
    int64_t top_k = 0;
    switch (iter % 5) {
      case 0: top_k = 0; break;
      case 1: top_k = -1; break;
      case 2: top_k = 1; break;
      default: top_k = std::uniform_int_distribution<int64_t>(1, static_cast<int64_t>(n) + 2)(rng);
    }
    double top_p = 1.0;
    switch ((iter / 5) % 6) {
      case 0: top_p = 1.0; break;
      case 1: top_p = 1e-6; break;
      case 2: top_p = 0.999999; break;
      case 3: top_p = 0.5; break;
      default: top_p = std::max(1e-9, unit(rng));
    }
    double min_p = 0.0;
    switch ((iter / 30) % 4) {
      case 0: min_p = 0.0; break;
      case 1: min_p = 1.0; break;
      default: min_p = unit(rng) * unit(rng);
    }
    if (iter % 7 == 6) top_p = ExactBoundaryTopP(logits, top_k, rng);
    SCOPED_TRACE(testing::Message() << "iter " << iter << " n " << n << " top_k " << top_k << " top_p " << top_p
                                    << " min_p " << min_p);
    const std::vector<bool> expected = ReferenceKept(logits, top_k, top_p, min_p);
    std::vector<float> filtered = logits;
    FilterLogits(filtered, top_k, top_p, min_p, &ws);
    ASSERT_EQ(FiniteSet(filtered), expected);
    // Kept logits are untouched; the workspace lists exactly them, in id order.
    std::vector<int32_t> ids;
    for (size_t i = 0; i < n; ++i) {
      if (expected[i]) {
        ids.push_back(static_cast<int32_t>(i));
        EXPECT_EQ(filtered[i], logits[i]);
      }
    }
    ASSERT_EQ(ws.kept_ids, ids);
    ASSERT_EQ(ws.kept_weights.size(), ids.size());
    // The largest logit always survives.
    const auto max_it = std::max_element(logits.begin(), logits.end());
    EXPECT_TRUE(expected[max_it - logits.begin()]);
  }
}

TEST(FilterLogits, TopKKeepsEveryTieAtTheBoundary) {
  FilterWorkspace ws;
  std::vector<float> l = {1, 3, 3, 2, 3, kNegInf};
  FilterLogits(l, 2, 1.0, 0.0, &ws);
  EXPECT_EQ(FiniteSet(l), (std::vector<bool>{false, true, true, false, true, false}));
  l = {1, 3, 2, 2, 0};
  FilterLogits(l, 2, 1.0, 0.0, &ws);
  EXPECT_EQ(FiniteSet(l), (std::vector<bool>{false, true, true, true, false}));
  l = {1, 3, 2, 2, 0};
  FilterLogits(l, 5, 1.0, 0.0, &ws);  // k == vocab: off
  EXPECT_EQ(FiniteSet(l), std::vector<bool>(5, true));
}

TEST(FilterLogits, TopPHandComputed) {
  FilterWorkspace ws;
  // Probabilities 0.5, 0.3, 0.2 (token order shuffled).
  const std::vector<float> base = {std::log(0.2f), std::log(0.5f), std::log(0.3f)};
  struct Case {
    double top_p;
    std::vector<bool> kept;
  };
  for (const Case& c : {Case{0.45, {false, true, false}}, Case{0.6, {false, true, true}},
                        Case{0.85, {true, true, true}}, Case{1e-9, {false, true, false}}}) {
    std::vector<float> l = base;
    FilterLogits(l, 0, c.top_p, 0.0, &ws);
    EXPECT_EQ(FiniteSet(l), c.kept) << "top_p " << c.top_p;
  }
  // Uniform: any top_p keeps every tied token.
  std::vector<float> flat(10, 0.5f);
  FilterLogits(flat, 0, 0.05, 0.0, &ws);
  EXPECT_EQ(FiniteSet(flat), std::vector<bool>(10, true));
}

TEST(FilterLogits, MinPHandComputed) {
  FilterWorkspace ws;
  // Weights relative to the max: 1, 0.5, 0.1, 0.25.
  std::vector<float> l = {0.0f, std::log(0.5f), std::log(0.1f), std::log(0.25f)};
  FilterLogits(l, 0, 1.0, 0.2, &ws);
  EXPECT_EQ(FiniteSet(l), (std::vector<bool>{true, true, false, true}));
  l = {2.0f, 2.0f, 1.0f};
  FilterLogits(l, 0, 1.0, 1.0, &ws);  // only the tied maxima
  EXPECT_EQ(FiniteSet(l), (std::vector<bool>{true, true, false}));
}

TEST(FilterLogits, LargeFlatVocabularyRanksMostTokens) {
  // 50,000 nearly equal weights (all in one exponent bucket) and top_p 0.9:
  // most of the vocabulary is ranked.
  std::mt19937_64 rng = FreshRng();
  std::uniform_real_distribution<float> jitter(0.0f, 0.001f);
  std::vector<float> l(50000);
  for (float& v : l) v = jitter(rng);
  const std::vector<bool> expected = ReferenceKept(l, 0, 0.9, 0.0);
  FilterWorkspace ws;
  FilterLogits(l, 0, 0.9, 0.0, &ws);
  EXPECT_EQ(FiniteSet(l), expected);
  const size_t kept = std::count(expected.begin(), expected.end(), true);
  EXPECT_GT(kept, 40000u);
  EXPECT_LT(kept, 50000u);
}

TEST(DrawKeptToken, InverseCdfOverKeptWeights) {
  FilterWorkspace ws;
  ws.kept_ids = {2, 5, 9};
  ws.kept_weights = {1.0f, 2.0f, 1.0f};  // CDF boundaries at 0.25, 0.75
  EXPECT_EQ(DrawKeptToken(ws, 0.0), 2);
  EXPECT_EQ(DrawKeptToken(ws, 0.2499), 2);
  EXPECT_EQ(DrawKeptToken(ws, 0.25), 5);
  EXPECT_EQ(DrawKeptToken(ws, 0.7499), 5);
  EXPECT_EQ(DrawKeptToken(ws, 0.75), 9);
  EXPECT_EQ(DrawKeptToken(ws, std::nextafter(1.0, 0.0)), 9);
  // Zero weights are never drawn.
  ws.kept_weights = {1.0f, 0.0f, 0.0f};
  EXPECT_EQ(DrawKeptToken(ws, std::nextafter(1.0, 0.0)), 2);
}

TEST(Penalties, HandComputed) {
  // logits   [2, -1, 0.5, -3, 1, 0]; prompt {0, 1, 0, 5}; generated 2, 2, 1.
  // repetition 2 over prompt + generated (divide positives, multiply the
  // rest), then frequency 0.5 * count and presence 0.25 over generated only:
  //   0: 2 / 2 = 1                    (prompt only)
  //   1: -1 * 2 - 0.5 * 1 - 0.25     = -2.75
  //   2: 0.5 / 2 - 0.5 * 2 - 0.25    = -1
  //   3, 4: untouched; 5: 0 * 2 = 0
  TokenCounts counts;
  const std::vector<int32_t> prompt = {0, 1, 0, 5};
  counts.AddPrompt(prompt);
  for (int32_t id : {2, 2, 1}) counts.AddGenerated(id);
  std::vector<float> l = {2, -1, 0.5f, -3, 1, 0};
  ApplyPenalties(l, counts, 2.0, 0.5, 0.25);
  EXPECT_EQ(l, (std::vector<float>{1, -2.75f, -1, -3, 1, 0}));

  // Negative penalties reward instead.
  std::vector<float> r = {2, -1, 0.5f, -3, 1, 0};
  ApplyPenalties(r, counts, 0.5, -1.0, -2.0);
  //   0: 2 / 0.5 = 4;  1: -1 * 0.5 + 1 + 2 = 2.5;  2: 0.5 / 0.5 + 2 + 2 = 5
  EXPECT_EQ(r, (std::vector<float>{4, 2.5f, 5, -3, 1, 0}));
}

TEST(Penalties, SaturateAndKeepMaskedTokens) {
  TokenCounts counts;
  const std::vector<int32_t> prompt = {0, 1, 2};
  counts.AddPrompt(prompt);
  std::vector<float> l = {1e30f, -1e30f, kNegInf};
  ApplyPenalties(l, counts, 1e-300, 0, 0);
  EXPECT_EQ(l[0], FLT_MAX);
  EXPECT_EQ(l[1], -0.0f);  // -1e30 * 1e-300 underflows to -0
  EXPECT_EQ(l[2], kNegInf);
  l = {1e30f, -1e30f, kNegInf};
  ApplyPenalties(l, counts, 1e300, 0, 0);
  EXPECT_EQ(l[1], -FLT_MAX);
  EXPECT_EQ(l[2], kNegInf);
}

TEST(LogitBiasAndTemperature, HandComputed) {
  std::vector<float> l = {1, 2, kNegInf, -3};
  const std::vector<std::pair<int32_t, float>> bias = {{0, 100}, {2, 5}, {3, -0.5f}};
  ApplyLogitBias(l, bias);
  EXPECT_EQ(l, (std::vector<float>{101, 2, kNegInf, -3.5f}));
  ApplyTemperature(l, 0.5);
  EXPECT_EQ(l, (std::vector<float>{202, 4, kNegInf, -7}));
  std::vector<float> big = {3e38f, -3e38f};
  ApplyTemperature(big, 1e-5);
  EXPECT_EQ(big, (std::vector<float>{FLT_MAX, -FLT_MAX}));
}

TEST(ArgmaxLowestId, TiesGoToTheLowestId) {
  EXPECT_EQ(ArgmaxLowestId(std::vector<float>{1, 3, 3, 2}), 1);
  EXPECT_EQ(ArgmaxLowestId(std::vector<float>{kNegInf, kNegInf, 0}), 2);
  EXPECT_EQ(ArgmaxLowestId(std::vector<float>{5}), 0);
  EXPECT_EQ(ArgmaxLowestId(std::vector<float>{}), -1);
  std::mt19937_64 rng = FreshRng();
  for (int iter = 0; iter < 200; ++iter) {
    std::vector<float> l = RandomLogits(rng, 1 + iter % 50);
    const float m = *std::max_element(l.begin(), l.end());
    EXPECT_EQ(ArgmaxLowestId(l), std::find(l.begin(), l.end(), m) - l.begin());
  }
}

TEST(CheckLogits, RejectsNanInfAndAllMasked) {
  EXPECT_TRUE(CheckLogits(std::vector<float>{0, kNegInf, -1e30f}).ok());
  const Status nan = CheckLogits(std::vector<float>{0, std::nanf(""), 1});
  EXPECT_EQ(nan.code(), StatusCode::kInternal);
  EXPECT_NE(nan.message().find("NaN at token 1"), std::string::npos) << nan.message();
  EXPECT_EQ(CheckLogits(std::vector<float>{0, INFINITY}).code(), StatusCode::kInternal);
  EXPECT_EQ(CheckLogits(std::vector<float>{kNegInf, kNegInf}).code(), StatusCode::kInternal);
  EXPECT_EQ(CheckLogits(std::vector<float>{}).code(), StatusCode::kInternal);
}

TEST(ComputeLogprobs, HandComputed) {
  const std::vector<float> l = {std::log(0.1f), std::log(0.2f), std::log(0.3f), std::log(0.4f)};
  LogprobsResult r = ComputeLogprobs(l, 1, 2);
  EXPECT_NEAR(r.chosen, std::log(0.2), 1e-6);
  ASSERT_EQ(r.top.size(), 2u);
  EXPECT_EQ(r.top[0].token_id, 3);
  EXPECT_NEAR(r.top[0].logprob, std::log(0.4), 1e-6);
  EXPECT_EQ(r.top[1].token_id, 2);
  EXPECT_NEAR(r.top[1].logprob, std::log(0.3), 1e-6);

  // Ties: lowest id first; -inf entries last with -inf; top_n beyond the
  // vocabulary gives the whole vocabulary.
  r = ComputeLogprobs(std::vector<float>{0, kNegInf, 0, 0}, 1, 20);
  EXPECT_EQ(r.chosen, kNegInf);
  ASSERT_EQ(r.top.size(), 4u);
  EXPECT_EQ(r.top[0].token_id, 0);
  EXPECT_EQ(r.top[1].token_id, 2);
  EXPECT_EQ(r.top[2].token_id, 3);
  EXPECT_EQ(r.top[3].token_id, 1);
  EXPECT_NEAR(r.top[0].logprob, -std::log(3.0), 1e-6);
  EXPECT_EQ(r.top[3].logprob, kNegInf);
  EXPECT_TRUE(ComputeLogprobs(l, 0, 0).top.empty());
}

TEST(ComputeLogprobs, MatchesADoubleReferenceOnRandomLogits) {
  std::mt19937_64 rng = FreshRng();
  for (int iter = 0; iter < 100; ++iter) {
    const size_t n = 1 + iter * 37 % 2000;
    const std::vector<float> l = RandomLogits(rng, n);
    const int64_t top_n = iter % 22;
    const int32_t chosen = static_cast<int32_t>(iter % n);
    double m = -INFINITY;
    for (float v : l) m = std::max(m, static_cast<double>(v));
    double s = 0;
    for (float v : l) s += std::exp(static_cast<double>(v) - m);
    const double lse = m + std::log(s);
    std::vector<int32_t> order(n);
    for (size_t i = 0; i < n; ++i) order[i] = static_cast<int32_t>(i);
    std::stable_sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });

    const LogprobsResult r = ComputeLogprobs(l, chosen, top_n);
    auto expect_logprob = [&](float got, int32_t id) {
      if (l[id] == kNegInf) {
        EXPECT_EQ(got, kNegInf);
      } else {
        EXPECT_NEAR(got, l[id] - lse, 1e-5 * (1 + std::fabs(l[id] - lse)));
      }
    };
    expect_logprob(r.chosen, chosen);
    ASSERT_EQ(r.top.size(), std::min<size_t>(top_n, n));
    for (size_t j = 0; j < r.top.size(); ++j) {
      EXPECT_EQ(r.top[j].token_id, order[j]) << "rank " << j;
      expect_logprob(r.top[j].logprob, order[j]);
      EXPECT_LE(r.top[j].logprob, 0.0f);
    }
  }
}

}  // namespace
}  // namespace lserve
