#include "sampling/logits_processors.h"

#include <algorithm>
#include <array>
#include <bit>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
#include <optional>
#include <string>

namespace lserve {
namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// A finite result of arithmetic on a finite logit, kept finite: -inf is
// reserved for masked tokens and +inf would poison the softmax.
float Saturate(double v) {
  if (v > FLT_MAX) return FLT_MAX;
  if (v < -FLT_MAX) return -FLT_MAX;
  return static_cast<float>(v);
}

}  // namespace

Status CheckLogits(std::span<const float> logits) {
  // A branch-free pass first (it vectorizes); positions only on failure.
  unsigned bad = 0;
  unsigned any_finite = 0;
  for (float l : logits) {
    bad |= !(l < std::numeric_limits<float>::infinity());  // NaN or +inf
    any_finite |= l > kNegInf;
  }
  if (!bad && any_finite) return Status::Ok();
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) {
      return Internal(std::string("logits hold ") + (std::isnan(l) ? "NaN" : "+inf") + " at token " +
                      std::to_string(i));
    }
  }
  if (!any_finite) return Internal("logits hold no finite value (vocabulary size " +
                                   std::to_string(logits.size()) + ")");
  return Status::Ok();
}

void ApplyLogitBias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias) {
  for (const auto& [id, b] : bias) {
    float& l = logits[id];
    if (l != kNegInf) l = Saturate(static_cast<double>(l) + b);
  }
}

void ApplyPenalties(std::span<float> logits, const TokenCounts& counts, double repetition, double frequency,
                    double presence) {
  auto repeat = [&](int32_t id) {
    float& l = logits[id];
    if (l == kNegInf) return;
    l = Saturate(l > 0 ? l / repetition : l * repetition);
  };
  if (repetition != 1.0) {
    for (int32_t id : counts.prompt()) repeat(id);
  }
  for (const auto& [id, count] : counts.generated()) {
    // A token in both lists is divided once; the prompt loop did it.
    if (repetition != 1.0 && !counts.prompt().contains(id)) repeat(id);
    float& l = logits[id];
    if (l == kNegInf || count == 0) continue;
    l = Saturate(static_cast<double>(l) - frequency * count - presence);
  }
}

void ApplyTemperature(std::span<float> logits, double temperature) {
  // Float division as vLLM's logits.div_(temperature); a temperature beyond
  // float range divides by FLT_MAX (every logit then rounds to about 0).
  const float t = static_cast<float>(std::min(temperature, static_cast<double>(FLT_MAX)));
  for (float& l : logits) {
    float scaled = l / t;
    scaled = scaled > FLT_MAX ? FLT_MAX : scaled;
    scaled = scaled < -FLT_MAX ? -FLT_MAX : scaled;
    l = l == kNegInf ? l : scaled;
  }
}

int32_t ArgmaxLowestId(std::span<const float> logits) {
  if (logits.empty()) return -1;
  size_t best = 0;
  // Strict '>' keeps the first of equal maxima.
  for (size_t i = 1; i < logits.size(); ++i) {
    if (logits[i] > logits[best]) best = i;
  }
  return static_cast<int32_t>(best);
}

namespace {

// The k-th largest of `values` (1 <= k < values.size()). Small k: one pass
// with a min-heap of the k largest so far (most values fail the first
// comparison); large k: nth_element over a copy.
float KthLargest(std::span<const float> values, size_t k, std::vector<float>* scratch) {
  if (k <= 256) {
    scratch->assign(values.begin(), values.begin() + k);
    std::make_heap(scratch->begin(), scratch->end(), std::greater<float>());
    for (size_t i = k; i < values.size(); ++i) {
      if (values[i] > scratch->front()) {
        std::pop_heap(scratch->begin(), scratch->end(), std::greater<float>());
        scratch->back() = values[i];
        std::push_heap(scratch->begin(), scratch->end(), std::greater<float>());
      }
    }
    return scratch->front();
  }
  scratch->assign(values.begin(), values.end());
  const auto kth = scratch->begin() + (k - 1);
  std::nth_element(scratch->begin(), kth, scratch->end(), std::greater<float>());
  return *kth;
}

// The top_p weight threshold of the header's definition; 0 keeps everything.
// `weights` are in increasing id order (the order Z is summed in).
//
// Only the heaviest tokens need ranking. Their weights are first bucketed by
// binary exponent (one pass); walking the buckets down from the top gives the
// highest power of two 2^e such that the weights >= 2^e hold top_p of the
// mass with a margin far above any rounding difference between summation
// orders. Those weights form an upward-closed set (ties included), so sorted
// they are exactly the head of the global ranking and their running sum
// equals C_m bit for bit; only they are sorted. Should the margin ever fall
// short, the rest is ranked after them, which is still exact.
double TopPThreshold(std::span<const float> weights, double top_p, std::vector<float>* ranked) {
  double total = 0.0;
  for (float w : weights) total += w;
  const double target = top_p * total;
  ranked->assign(weights.begin(), weights.end());

  std::array<double, 256> bucket_mass{};  // by IEEE exponent field; weights are >= 0
  for (float w : *ranked) bucket_mass[std::bit_cast<uint32_t>(w) >> 23] += w;
  const double margin = 1e-9 * total;
  double above = 0.0;
  uint32_t exponent = 255;
  for (; exponent > 0; --exponent) {
    above += bucket_mass[exponent];
    if (above >= target + margin) break;
  }
  const float floor_weight = std::bit_cast<float>(exponent << 23);  // 2^(e-127); 0 for e == 0
  const auto head_end = std::partition(ranked->begin(), ranked->end(), [&](float w) { return w >= floor_weight; });

  double cumulative = 0.0;
  auto scan = [&](std::vector<float>::iterator first, std::vector<float>::iterator last) -> std::optional<float> {
    std::sort(first, last, std::greater<float>());
    for (auto it = first; it != last; ++it) {
      cumulative += *it;
      if (cumulative >= target) return *it;
    }
    return std::nullopt;
  };
  if (std::optional<float> w = scan(ranked->begin(), head_end)) return *w;
  if (std::optional<float> w = scan(head_end, ranked->end())) return *w;
  return 0.0;  // rounding kept C_n below top_p * Z: keep all
}

}  // namespace

void FilterLogits(std::span<float> logits, int64_t top_k, double top_p, double min_p, FilterWorkspace* ws) {
  const size_t n = logits.size();
  if (top_k > 0 && static_cast<uint64_t>(top_k) < n) {
    const float threshold = KthLargest(logits, static_cast<size_t>(top_k), &ws->values);
    for (float& l : logits) {
      l = l < threshold ? kNegInf : l;
    }
  }

  float max_logit = kNegInf;
  for (float l : logits) max_logit = std::max(max_logit, l);
  ws->kept_ids.resize(n);
  ws->kept_weights.resize(n);
  size_t count = 0;
  for (size_t i = 0; i < n; ++i) {
    if (logits[i] == kNegInf) continue;
    ws->kept_ids[count] = static_cast<int32_t>(i);
    ws->kept_weights[count] = std::exp(logits[i] - max_logit);
    ++count;
  }
  ws->kept_ids.resize(count);
  ws->kept_weights.resize(count);

  double threshold = top_p < 1.0 ? TopPThreshold(ws->kept_weights, top_p, &ws->ranked) : 0.0;
  threshold = std::max(threshold, min_p);
  if (threshold <= 0.0) return;  // every kept token has w >= 0
  size_t out = 0;
  for (size_t j = 0; j < count; ++j) {
    if (static_cast<double>(ws->kept_weights[j]) >= threshold) {
      ws->kept_ids[out] = ws->kept_ids[j];
      ws->kept_weights[out] = ws->kept_weights[j];
      ++out;
    } else {
      logits[ws->kept_ids[j]] = kNegInf;
    }
  }
  ws->kept_ids.resize(out);
  ws->kept_weights.resize(out);
}

int32_t DrawKeptToken(const FilterWorkspace& ws, double u) {
  double total = 0.0;
  for (float w : ws.kept_weights) total += w;
  const double target = u * total;
  double cumulative = 0.0;
  int32_t last_positive = -1;
  for (size_t j = 0; j < ws.kept_ids.size(); ++j) {
    const float w = ws.kept_weights[j];
    if (w <= 0.0f) continue;
    cumulative += w;
    if (cumulative > target) return ws.kept_ids[j];
    last_positive = ws.kept_ids[j];
  }
  // u * total rounded up to the full sum: the last token with weight.
  return last_positive;
}

LogprobsResult ComputeLogprobs(std::span<const float> logits, int32_t chosen, int64_t top_n) {
  LogprobsResult result{kNegInf, {}};
  float max_logit = kNegInf;
  for (float l : logits) max_logit = std::max(max_logit, l);
  if (max_logit == kNegInf) {
    // Nothing is possible: every logprob is -inf.
    for (int64_t i = 0; i < top_n && static_cast<size_t>(i) < logits.size(); ++i) {
      result.top.push_back({static_cast<int32_t>(i), kNegInf});
    }
    return result;
  }
  double sum = 0.0;
  for (float l : logits) {
    if (l != kNegInf) sum += std::exp(l - max_logit);
  }
  const double log_normalizer = static_cast<double>(max_logit) + std::log(sum);
  auto logprob = [&](float l) -> float {
    return l == kNegInf ? kNegInf : static_cast<float>(static_cast<double>(l) - log_normalizer);
  };
  if (chosen >= 0 && static_cast<size_t>(chosen) < logits.size()) result.chosen = logprob(logits[chosen]);

  const size_t want = static_cast<size_t>(std::clamp<int64_t>(top_n, 0, static_cast<int64_t>(logits.size())));
  if (want == 0) return result;
  // better(a, b): a ranks before b (larger logit, then lower id). As a heap
  // comparator it keeps the worst kept entry on top.
  auto better = [&](int32_t a, int32_t b) {
    return logits[a] > logits[b] || (logits[a] == logits[b] && a < b);
  };
  std::vector<int32_t> heap;
  heap.reserve(want);
  for (size_t i = 0; i < logits.size(); ++i) {
    const int32_t id = static_cast<int32_t>(i);
    if (heap.size() < want) {
      heap.push_back(id);
      std::push_heap(heap.begin(), heap.end(), better);
    } else if (better(id, heap.front())) {
      std::pop_heap(heap.begin(), heap.end(), better);
      heap.back() = id;
      std::push_heap(heap.begin(), heap.end(), better);
    }
  }
  std::sort(heap.begin(), heap.end(), better);
  result.top.reserve(want);
  for (int32_t id : heap) result.top.push_back({id, logprob(logits[id])});
  return result;
}

}  // namespace lserve
