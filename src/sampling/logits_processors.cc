#include "sampling/logits_processors.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>
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
  bool any_finite = false;
  for (size_t i = 0; i < logits.size(); ++i) {
    const float l = logits[i];
    if (std::isnan(l) || l == std::numeric_limits<float>::infinity()) {
      return Internal(std::string("logits hold ") + (std::isnan(l) ? "NaN" : "+inf") + " at token " +
                      std::to_string(i));
    }
    any_finite |= l != kNegInf;
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
  for (float& l : logits) {
    if (l != kNegInf) l = Saturate(l / temperature);
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

void FilterLogits(std::span<float> logits, int64_t top_k, double top_p, double min_p, FilterWorkspace* ws) {
  const size_t n = logits.size();
  if (top_k > 0 && static_cast<uint64_t>(top_k) < n) {
    ws->values.assign(logits.begin(), logits.end());
    const auto kth = ws->values.begin() + (top_k - 1);
    std::nth_element(ws->values.begin(), kth, ws->values.end(), std::greater<float>());
    const float threshold = *kth;
    for (float& l : logits) {
      if (l < threshold) l = kNegInf;
    }
  }

  float max_logit = kNegInf;
  for (float l : logits) max_logit = std::max(max_logit, l);
  ws->kept_ids.clear();
  ws->kept_weights.clear();
  for (size_t i = 0; i < n; ++i) {
    if (logits[i] == kNegInf) continue;
    ws->kept_ids.push_back(static_cast<int32_t>(i));
    ws->kept_weights.push_back(std::exp(logits[i] - max_logit));
  }

  // Every kept token has w >= 0, so 0 keeps them all.
  double threshold = 0.0;
  if (top_p < 1.0) {
    double total = 0.0;
    for (float w : ws->kept_weights) total += w;
    const double target = top_p * total;
    ws->ranked.resize(ws->kept_ids.size());
    for (size_t j = 0; j < ws->kept_ids.size(); ++j) ws->ranked[j] = {ws->kept_weights[j], ws->kept_ids[j]};
    auto heavier = [](const FilterWorkspace::Ranked& a, const FilterWorkspace::Ranked& b) {
      return a.weight > b.weight;
    };
    // ranked[0, begin) holds the `begin` largest weights in decreasing order
    // and `cumulative` their sum, accumulated in that order.
    const auto first = ws->ranked.begin();
    const size_t count = ws->ranked.size();
    size_t begin = 0;
    size_t chunk = 64;
    double cumulative = 0.0;
    bool reached = false;
    while (begin < count && !reached) {
      const size_t end = std::min(count, begin + chunk);
      if (end < count) std::nth_element(first + begin, first + end, ws->ranked.end(), heavier);
      std::sort(first + begin, first + end, heavier);
      for (size_t j = begin; j < end; ++j) {
        cumulative += ws->ranked[j].weight;
        if (cumulative >= target) {
          threshold = ws->ranked[j].weight;
          reached = true;
          break;
        }
      }
      begin = end;
      chunk *= 4;
    }
  }
  threshold = std::max(threshold, min_p);

  if (threshold > 0.0) {
    size_t out = 0;
    for (size_t j = 0; j < ws->kept_ids.size(); ++j) {
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
