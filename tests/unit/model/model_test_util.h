// Helpers of the model tests: loading a fixture on a CPU backend, running
// prompts through the paged KV cache as a scheduler would (grow, forward,
// decode), and reading goldens.
#pragma once

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "backend/cpu_backend.h"
#include "core/npy.h"
#include "formats/model_source.h"
#include "kvcache/kv_cache.h"
#include "model/llama_model.h"

namespace lserve::testing {

inline std::string SourcePath(const std::string& rel) { return std::string(LSERVE_SOURCE_DIR) + "/" + rel; }
inline std::string FixtureDir(const std::string& model) { return SourcePath("tests/fixtures/models/" + model); }

inline nlohmann::json ReadJson(const std::string& path) {
  std::ifstream f(path);
  std::stringstream ss;
  ss << f.rdbuf();
  return nlohmann::json::parse(ss.str());
}

inline int64_t Argmax(std::span<const float> v) {
  return std::max_element(v.begin(), v.end()) - v.begin();
}

// Natural-log softmax probability of `target`, computed in f64.
inline double Nll(std::span<const float> logits, int64_t target) {
  double m = -INFINITY;
  for (float x : logits) m = std::max<double>(m, x);
  double sum = 0.0;
  for (float x : logits) sum += std::exp(static_cast<double>(x) - m);
  return -(static_cast<double>(logits[static_cast<size_t>(target)]) - m - std::log(sum));
}

// A model on its own CPU backend, with a KV cache manager built from it.
struct LoadedModel {
  std::unique_ptr<CpuBackend> backend;
  std::unique_ptr<LlamaModel> model;
  std::unique_ptr<KvCacheManager> kv;
  int64_t next_seq = 1;

  const ModelConfig& config() const { return model->config(); }
  int64_t vocab() const { return model->config().vocab_size; }
};

inline LoadedModel LoadModel(const std::string& path, CpuMode mode, ModelOptions options = {}, int threads = 2) {
  LoadedModel m;
  auto source = OpenModel(path);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  if (!source.ok()) return m;
  m.backend = std::make_unique<CpuBackend>(CpuBackendOptions{.mode = mode, .threads = threads});
  auto model = LlamaModel::Load(*source, *m.backend, options);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return m;
  m.model = std::move(model).value();
  auto kv = KvCacheManager::Create(m.model->kv_cache_config());
  EXPECT_TRUE(kv.ok()) << kv.status().ToString();
  if (kv.ok()) m.kv = std::make_unique<KvCacheManager>(std::move(kv).value());
  return m;
}

// One sequence's prefill in chunks of `chunk` tokens (0 = one chunk), every
// position's logits. Returns [n, vocab]. The sequence stays in the cache.
inline std::vector<float> PrefillAll(LoadedModel& m, int64_t seq, const std::vector<int32_t>& ids, int64_t chunk = 0,
                                     LogitsWanted wanted = LogitsWanted::kAll) {
  std::vector<float> logits;
  const int64_t n = static_cast<int64_t>(ids.size());
  if (chunk <= 0) chunk = n;
  for (int64_t start = 0; start < n; start += chunk) {
    const int64_t end = std::min(n, start + chunk);
    EXPECT_TRUE(m.kv->Grow(seq, end).ok());
    BatchPlan plan;
    plan.steps.push_back(SequenceStep{.seq_id = seq,
                                      .start_pos = start,
                                      .tokens = std::vector<int32_t>(ids.begin() + start, ids.begin() + end),
                                      .is_decode = false,
                                      .logits = wanted});
    ForwardOutput out;
    const Status st = m.model->Forward(plan, *m.kv, &out);
    EXPECT_TRUE(st.ok()) << st.ToString();
    logits.insert(logits.end(), out.logits.begin(), out.logits.end());
  }
  return logits;
}

// Greedy decoding as transformers' generate() does it: the prompt in one
// pass (or in chunks), then one pass per token over the cache.
inline std::vector<int32_t> Greedy(LoadedModel& m, const std::vector<int32_t>& prompt, int n_tokens,
                                   int64_t chunk = 0) {
  const int64_t seq = m.next_seq++;
  EXPECT_TRUE(m.kv->AddSequence(seq).ok());
  const std::vector<float> last = PrefillAll(m, seq, prompt, chunk, LogitsWanted::kLast);
  std::vector<int32_t> out;
  const int64_t V = m.vocab();
  if (static_cast<int64_t>(last.size()) < V) return out;
  out.push_back(static_cast<int32_t>(Argmax(std::span<const float>(last).subspan(last.size() - V))));
  EXPECT_TRUE(m.kv->BeginDecode(seq).ok());
  int64_t len = static_cast<int64_t>(prompt.size());
  while (static_cast<int>(out.size()) < n_tokens) {
    EXPECT_TRUE(m.kv->Grow(seq, len + 1).ok());
    BatchPlan plan;
    plan.steps.push_back(SequenceStep{
        .seq_id = seq, .start_pos = len, .tokens = {out.back()}, .is_decode = true, .logits = LogitsWanted::kLast});
    ForwardOutput out_logits;
    const Status st = m.model->Forward(plan, *m.kv, &out_logits);
    EXPECT_TRUE(st.ok()) << st.ToString();
    if (!st.ok()) break;
    out.push_back(static_cast<int32_t>(Argmax(out_logits.row(0))));
    ++len;
  }
  EXPECT_TRUE(m.kv->Free(seq).ok());
  return out;
}

// Every position's logits of one prompt in one pass on a fresh sequence.
inline std::vector<float> OneShotLogits(LoadedModel& m, const std::vector<int32_t>& ids, int64_t chunk = 0) {
  const int64_t seq = m.next_seq++;
  EXPECT_TRUE(m.kv->AddSequence(seq).ok());
  std::vector<float> logits = PrefillAll(m, seq, ids, chunk);
  EXPECT_TRUE(m.kv->Free(seq).ok());
  return logits;
}

inline float MaxAbsDiff(std::span<const float> a, std::span<const float> b) {
  EXPECT_EQ(a.size(), b.size());
  float d = 0.0f;
  for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) {
    const float e = std::fabs(a[i] - b[i]);
    if (!(e <= d)) d = e;  // NaN propagates
  }
  return d;
}

inline float MaxAbs(std::span<const float> a) {
  float m = 0.0f;
  for (float x : a) m = std::max(m, std::fabs(x));
  return m;
}

inline std::vector<int32_t> Ids(const nlohmann::json& j) { return j.get<std::vector<int32_t>>(); }

}  // namespace lserve::testing
