// What the Engine tests share: configs over the tiny fixture models, random
// prompts, draining a stream into one result, solo reference runs through
// the offline Generator, and a forward hook that holds the engine thread.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <unistd.h>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <condition_variable>
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "backend/cpu_backend.h"
#include "formats/model_source.h"
#include "lserve/engine.h"
#include "model/llama_model.h"
#include "runtime/engine_impl.h"
#include "runtime/engine_setup.h"
#include "runtime/generator.h"
#include "tokenizer/model_text.h"

namespace lserve::testing {

inline std::string FixtureDir(const std::string& model) {
  return std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/models/" + model;
}

// llama3_gqa: 3 layers, 4 query heads over 2 KV heads, vocab 1113.
inline constexpr const char* kGqaModel = "llama3_gqa";

// A small engine over a fixture: pages of 16 tokens, chunks of 32, a step
// budget that never cuts a chunk short (so that chunk boundaries are those
// of a solo run).
inline EngineConfig SmallConfig(const std::string& model = kGqaModel) {
  EngineConfig c;
  c.model_path = FixtureDir(model);
  c.threads = 2;
  c.page_size = 16;
  c.logical_page_size = 16;
  c.kv_cache_tokens = 8192;
  c.max_running = 32;
  c.max_queued = 64;
  c.prefill_chunk = 32;
  c.max_step_tokens = 32 * 32 + 32;
  c.attention = "dense";
  return c;
}

// A pattern for llama3_gqa (3 layers x 2 KV heads) with three heads clearly
// below the others, and LServe windows small enough that the streaming heads
// and the page selection matter for prompts of a hundred tokens.
inline EngineConfig LServeConfig(const std::string& pattern_path) {
  EngineConfig c = SmallConfig();
  c.attention = "lserve";
  c.attn_pattern = pattern_path;
  c.streaming_ratio = 0.5;
  c.prefill_sink = 4;
  c.prefill_local = 24;
  c.decode_sink = 4;
  c.decode_local = 20;
  c.token_budget = 64;
  c.select_interval = 3;
  return c;
}

// A temporary folder of this test binary, removed when it exits.
inline const std::filesystem::path& TestTempDir() {
  struct Dir {
    std::filesystem::path path;
    ~Dir() {
      std::error_code ignored;
      std::filesystem::remove_all(path, ignored);
    }
  };
  static const Dir dir{[] {
    const auto path = std::filesystem::temp_directory_path() /
                      ("lserve_engine_test_" + std::to_string(::getpid()) + "_" + std::to_string(std::random_device{}()));
    std::filesystem::create_directories(path);
    return path;
  }()};
  return dir.path;
}

// Writes the pattern into the temporary folder; returns the file's path.
inline std::string WriteGqaPattern() {
  const auto path = TestTempDir() / "full_attention_heads.tsv";
  std::ofstream(path) << "0.9\t0.1\n0.2\t0.8\n0.05\t0.7\n";
  return path.string();
}

inline SamplingParams Greedy(int64_t max_tokens, bool ignore_eos = true) {
  SamplingParams p;
  p.temperature = 0.0;
  p.max_tokens = max_tokens;
  p.ignore_eos = ignore_eos;
  return p;
}

// Fresh random inputs each run; the seed is printed with any failure.
class Rng {
 public:
  Rng() : seed_(std::random_device{}()), gen_(seed_) {}
  uint32_t seed() const { return seed_; }
  int64_t Uniform(int64_t lo, int64_t hi) { return std::uniform_int_distribution<int64_t>(lo, hi)(gen_); }
  // Random ids below the special tokens of the fixtures (ids >= 1100).
  std::vector<int32_t> Prompt(int64_t length) {
    std::vector<int32_t> ids(static_cast<size_t>(length));
    for (int32_t& id : ids) id = static_cast<int32_t>(Uniform(3, 1099));
    return ids;
  }

 private:
  uint32_t seed_;
  std::mt19937_64 gen_;
};

// Everything one stream delivered.
struct StreamResult {
  std::vector<int32_t> ids;
  std::string text;
  std::vector<float> logprobs;
  std::vector<std::vector<StreamTopLogprob>> top_logprobs;
  std::optional<FinishKind> finish;
  std::string error;
  int64_t events = 0;
  int64_t prompt_tokens = 0;
  int64_t completion_tokens = 0;
  bool timed_out = false;
};

inline void Absorb(StreamResult& r, StreamEvent& e) {
  ++r.events;
  r.ids.insert(r.ids.end(), e.token_ids.begin(), e.token_ids.end());
  r.text += e.text;
  r.logprobs.insert(r.logprobs.end(), e.logprobs.begin(), e.logprobs.end());
  for (auto& top : e.top_logprobs) r.top_logprobs.push_back(std::move(top));
  if (e.finish) {
    r.finish = e.finish;
    r.error = e.error;
    r.prompt_tokens = e.prompt_tokens;
    r.completion_tokens = e.completion_tokens;
  }
}

// Reads the stream to its end (a generous bound keeps a hung engine from
// hanging the test binary).
inline StreamResult Drain(RequestStream& stream, std::chrono::seconds limit = std::chrono::seconds(60)) {
  StreamResult r;
  const auto deadline = std::chrono::steady_clock::now() + limit;
  while (!r.finish) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now());
    if (left.count() <= 0) {
      r.timed_out = true;
      break;
    }
    std::optional<StreamEvent> e = stream.Next(left);
    if (!e) continue;
    Absorb(r, *e);
  }
  return r;
}

inline std::shared_ptr<RequestStream> SubmitOk(Engine& engine, std::vector<int32_t> prompt, SamplingParams params) {
  auto stream = engine.Submit(GenerateRequest{.prompt = std::move(prompt), .params = std::move(params)});
  EXPECT_TRUE(stream.ok()) << stream.status().ToString();
  return stream.ok() ? *stream : nullptr;
}

// One request alone through the engine.
inline StreamResult RunSolo(Engine& engine, std::vector<int32_t> prompt, SamplingParams params) {
  auto stream = SubmitOk(engine, std::move(prompt), std::move(params));
  if (stream == nullptr) return {};
  return Drain(*stream);
}

inline std::unique_ptr<EngineImpl> CreateEngine(const EngineConfig& config) {
  auto engine = EngineImpl::Create(config);
  EXPECT_TRUE(engine.ok()) << engine.status().ToString();
  return engine.ok() ? std::move(engine).value() : nullptr;
}

// Polls Stats() until `done` holds (the engine publishes after each step).
template <class Pred>
inline EngineStats WaitForStats(const Engine& engine, Pred done, std::chrono::seconds limit = std::chrono::seconds(20)) {
  const auto deadline = std::chrono::steady_clock::now() + limit;
  EngineStats s = engine.Stats();
  while (!done(s) && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
    s = engine.Stats();
  }
  return s;
}

inline bool KvEmpty(const EngineStats& s) {
  return s.kv_pages_used_retrieval == 0 && s.kv_pages_used_streaming == 0 && s.running == 0 && s.queue_depth == 0;
}

// The offline single-sequence path over its own copy of the model, loaded
// with the engine config's model options.
struct OfflineModel {
  ModelSource source;
  std::unique_ptr<Tokenizer> tokenizer;
  std::unique_ptr<CpuBackend> backend;
  std::unique_ptr<LlamaModel> model;
  std::optional<Generator> generator;
};

inline std::unique_ptr<OfflineModel> LoadOffline(const EngineConfig& c) {
  auto m = std::make_unique<OfflineModel>();
  auto source = OpenModel(c.model_path);
  EXPECT_TRUE(source.ok()) << source.status().ToString();
  if (!source.ok()) return nullptr;
  m->source = std::move(source).value();
  auto tokenizer = LoadTokenizer(m->source);
  EXPECT_TRUE(tokenizer.ok()) << tokenizer.status().ToString();
  if (!tokenizer.ok()) return nullptr;
  m->tokenizer = std::make_unique<Tokenizer>(std::move(tokenizer).value());
  m->backend = std::make_unique<CpuBackend>(CpuBackendOptions{
      .mode = c.backend == "cpu-ref" ? CpuMode::kReference : CpuMode::kFast, .threads = c.threads});
  ModelOptions o;
  o.kv_page_size = c.page_size;
  o.kv_logical_page_size = c.logical_page_size;
  o.kv_cache_tokens = c.kv_cache_tokens;
  o.max_sequences = 1;
  o.prefill_chunk = c.prefill_chunk;
  auto attention = MakeAttentionOptions(AttentionSettingsOf(c), m->source, *m->tokenizer, *m->backend);
  EXPECT_TRUE(attention.ok()) << attention.status().ToString();
  if (!attention.ok()) return nullptr;
  o.attention = *attention;
  auto model = LlamaModel::Load(m->source, *m->backend, o);
  EXPECT_TRUE(model.ok()) << model.status().ToString();
  if (!model.ok()) return nullptr;
  m->model = std::move(model).value();
  auto generator = Generator::Create(*m->model, *m->tokenizer, GeneratorOptions{.prefill_chunk = c.prefill_chunk});
  EXPECT_TRUE(generator.ok()) << generator.status().ToString();
  if (!generator.ok()) return nullptr;
  m->generator.emplace(std::move(generator).value());
  return m;
}

// Holds the engine thread inside its next forward step until Release():
// requests submitted meanwhile stay in the inbox. Releases when destroyed, so
// that a failing test does not leave the engine thread blocked (declare it
// after the engine).
class StepGate {
 public:
  StepGate() : s_(std::make_shared<State>()) {}
  ~StepGate() { Release(); }
  ForwardHook Hook() const {
    return [s = s_](const BatchPlan&, ForwardOutput&) {
      std::unique_lock lock(s->mu);
      if (!s->released) {
        s->entered = true;
        s->cv.notify_all();
        s->cv.wait(lock, [&] { return s->released; });
      }
      return Status::Ok();
    };
  }
  void WaitEntered() {
    std::unique_lock lock(s_->mu);
    s_->cv.wait(lock, [&] { return s_->entered; });
  }
  void Release() {
    std::lock_guard lock(s_->mu);
    s_->released = true;
    s_->cv.notify_all();
  }

 private:
  struct State {
    std::mutex mu;
    std::condition_variable cv;
    bool entered = false;
    bool released = false;
  };
  std::shared_ptr<State> s_;
};

}  // namespace lserve::testing
