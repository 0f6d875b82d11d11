// The Engine's contract at its edges: Create's checks and model info,
// Submit's validation (each error names the field), the queue cap, the KV
// pool's limit, logprobs, seeded sampling, and shutdown.
#include <gtest/gtest.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "test_engine_util.h"

namespace lserve {
namespace {

using testing::CreateEngine;
using testing::Drain;
using testing::Greedy;
using testing::KvEmpty;
using testing::Rng;
using testing::RunSolo;
using testing::StepGate;
using testing::StreamResult;
using testing::SubmitOk;
using testing::WaitForStats;

bool StartsWith(const std::string& s, const std::string& prefix) { return s.rfind(prefix, 0) == 0; }

TEST(EngineApi, FinishKindNames) {
  EXPECT_STREQ(FinishKindName(FinishKind::kStop), "stop");
  EXPECT_STREQ(FinishKindName(FinishKind::kLength), "length");
  EXPECT_STREQ(FinishKindName(FinishKind::kCancelled), "cancelled");
  EXPECT_STREQ(FinishKindName(FinishKind::kAborted), "abort");
  EXPECT_STREQ(FinishKindName(FinishKind::kError), "error");
}

TEST(EngineApi, CreateChecksTheConfigAndDescribesTheModel) {
  EngineConfig bad = testing::SmallConfig();
  bad.page_size = 48;
  auto e1 = Engine::Create(bad);
  ASSERT_FALSE(e1.ok());
  EXPECT_EQ(e1.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(StartsWith(e1.status().message(), "page_size")) << e1.status().message();

  bad = testing::SmallConfig();
  bad.attention = "sparse";
  EXPECT_EQ(Engine::Create(bad).status().code(), StatusCode::kInvalidArgument);
  bad = testing::SmallConfig();
  bad.streaming_ratio = 0.5;  // with dense attention
  EXPECT_EQ(Engine::Create(bad).status().code(), StatusCode::kInvalidArgument);
  bad = testing::SmallConfig();
  bad.max_model_len = 131073;  // beyond the model's context
  EXPECT_EQ(Engine::Create(bad).status().code(), StatusCode::kInvalidArgument);
  bad = testing::SmallConfig();
  bad.model_path = testing::FixtureDir("no_such_model");
  EXPECT_FALSE(Engine::Create(bad).ok());

  auto engine = Engine::Create(testing::SmallConfig());
  ASSERT_TRUE(engine.ok()) << engine.status().ToString();
  const ModelInfo& info = (*engine)->model_info();
  EXPECT_EQ(info.id, "llama3_gqa");
  EXPECT_EQ(info.vocab_size, 1113);
  EXPECT_EQ(info.max_model_len, 8192);  // the model's 131072, capped by the pool
  EXPECT_EQ(info.eos_ids, (std::vector<int32_t>{1101, 1108, 1109}));
  EXPECT_NE((*engine)->chat_template(), nullptr);
  EXPECT_GT((*engine)->tokenizer().vocab_size(), 0);
  const EngineStats stats = (*engine)->Stats();
  EXPECT_TRUE(stats.ready);
  EXPECT_EQ(stats.kv_pages_total_retrieval, 8192 / 16);
  EXPECT_EQ(stats.kv_pages_total_streaming, 0);
  EXPECT_TRUE(KvEmpty(stats));

  // Dynamic-NTK scaling runs past the trained length: 32 x factor 2.
  auto dynamic = Engine::Create(testing::SmallConfig("llama_dynamic"));
  ASSERT_TRUE(dynamic.ok()) << dynamic.status().ToString();
  EXPECT_EQ((*dynamic)->model_info().max_model_len, 64);

  // chat_template.jinja is a template source too.
  auto yarn = Engine::Create(testing::SmallConfig("llama_yarn"));
  ASSERT_TRUE(yarn.ok()) << yarn.status().ToString();
  EXPECT_NE((*yarn)->chat_template(), nullptr);
}

TEST(EngineApi, AModelWithoutAChatTemplateHasNone) {
  // The fixture copied without the template of its tokenizer_config.json.
  namespace fs = std::filesystem;
  const fs::path dir = testing::TestTempDir() / "model";
  fs::create_directories(dir);
  for (const auto& entry : fs::directory_iterator(testing::FixtureDir(testing::kGqaModel))) {
    fs::copy_file(entry.path(), dir / entry.path().filename(), fs::copy_options::overwrite_existing);
  }
  nlohmann::json tokenizer_config;
  {
    std::ifstream in(dir / "tokenizer_config.json");
    tokenizer_config = nlohmann::json::parse(in);
  }
  tokenizer_config.erase("chat_template");
  std::ofstream(dir / "tokenizer_config.json") << tokenizer_config.dump();
  EngineConfig config = testing::SmallConfig();
  config.model_path = dir.string();
  auto engine = CreateEngine(config);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->chat_template(), nullptr);
  EXPECT_EQ(engine->model_info().id, "model");
  EXPECT_EQ(RunSolo(*engine, {5, 6, 7}, Greedy(2)).completion_tokens, 2);
}

TEST(EngineApi, SubmitNamesTheInvalidField) {
  auto engine = CreateEngine(testing::SmallConfig());
  ASSERT_NE(engine, nullptr);
  auto submit = [&](std::vector<int32_t> prompt, SamplingParams params) {
    return engine->Submit(GenerateRequest{.prompt = std::move(prompt), .params = std::move(params)}).status();
  };
  Status s = submit({}, Greedy(4));
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(StartsWith(s.message(), "prompt")) << s.message();
  for (const int32_t id : {-1, 1113, 2147483647}) {
    s = submit({5, id}, Greedy(4));
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_TRUE(StartsWith(s.message(), "prompt")) << s.message();
    EXPECT_NE(s.message().find("out of vocabulary"), std::string::npos) << s.message();
  }
  SamplingParams p = Greedy(4);
  p.temperature = -0.1;
  s = submit({5, 6}, p);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(StartsWith(s.message(), "temperature")) << s.message();
  p = Greedy(4);
  p.logprobs = true;
  p.top_logprobs = 21;
  EXPECT_TRUE(StartsWith(submit({5}, p).message(), "top_logprobs"));
  p = Greedy(4);
  p.stop_token_ids = {1113};
  EXPECT_TRUE(StartsWith(submit({5}, p).message(), "stop_token_ids"));
  p = Greedy(0);
  EXPECT_TRUE(StartsWith(submit({5}, p).message(), "max_tokens"));
  // Model length: prompt + max_tokens <= max_model_len (8192), both numbers named.
  s = submit(std::vector<int32_t>(8191, 5), Greedy(1));
  EXPECT_TRUE(s.ok()) << s.ToString();
  s = submit(std::vector<int32_t>(8191, 5), Greedy(2));
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  EXPECT_NE(s.message().find("8191"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("8192"), std::string::npos) << s.message();
  s = submit({5}, Greedy(kMaxMaxTokens));
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  // The engine still serves.
  EXPECT_EQ(RunSolo(*engine, {5, 6, 7}, Greedy(3)).completion_tokens, 3);
}

TEST(EngineApi, ARequestThatCouldNeverFitThePoolIsRejectedUpFront) {
  EngineConfig config = testing::SmallConfig();
  config.kv_cache_tokens = 256;
  config.max_model_len = 4096;  // longer than the pool holds
  auto engine = CreateEngine(config);
  ASSERT_NE(engine, nullptr);
  EXPECT_EQ(engine->model_info().max_model_len, 4096);
  Status s = engine->Submit(GenerateRequest{.prompt = std::vector<int32_t>(10, 5), .params = Greedy(300)}).status();
  EXPECT_EQ(s.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(s.message().find("KV cache"), std::string::npos) << s.message();
  s = engine->Submit(GenerateRequest{.prompt = std::vector<int32_t>(10, 5), .params = Greedy(5000)}).status();
  EXPECT_EQ(s.code(), StatusCode::kOutOfRange);
  // Exactly the pool fits.
  StreamResult r = RunSolo(*engine, std::vector<int32_t>(200, 5), Greedy(56));
  EXPECT_EQ(r.finish, FinishKind::kLength);
  EXPECT_EQ(r.completion_tokens, 56);
}

TEST(EngineApi, TheQueueCapAnswersUnavailable) {
  Rng rng;
  EngineConfig config = testing::SmallConfig();
  config.max_running = 1;
  config.max_queued = 3;
  auto engine = CreateEngine(config);
  ASSERT_NE(engine, nullptr);
  StepGate gate;  // holds the engine thread in the first request's first step
  engine->SetForwardHookForTesting(gate.Hook());
  std::vector<std::shared_ptr<RequestStream>> streams;
  streams.push_back(SubmitOk(*engine, rng.Prompt(8), Greedy(6)));
  gate.WaitEntered();
  for (int i = 0; i < 3; ++i) streams.push_back(SubmitOk(*engine, rng.Prompt(8), Greedy(6)));
  auto refused = engine->Submit(GenerateRequest{.prompt = rng.Prompt(8), .params = Greedy(6)});
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  EXPECT_NE(refused.status().message().find("queue"), std::string::npos);
  EXPECT_EQ(engine->Stats().queue_depth, 3);
  gate.Release();
  for (auto& stream : streams) {
    ASSERT_NE(stream, nullptr);
    EXPECT_EQ(Drain(*stream).finish, FinishKind::kLength);
  }
  const EngineStats stats = WaitForStats(*engine, KvEmpty);
  EXPECT_TRUE(KvEmpty(stats));
  EXPECT_EQ(stats.generated_tokens, 24);
  EXPECT_EQ(stats.prompt_tokens, 32);
  // With room again, Submit accepts.
  EXPECT_EQ(RunSolo(*engine, rng.Prompt(8), Greedy(2)).finish, FinishKind::kLength);
}

TEST(EngineApi, LogprobsComeWithEveryToken) {
  Rng rng;
  auto engine = CreateEngine(testing::SmallConfig());
  ASSERT_NE(engine, nullptr);
  SamplingParams p = Greedy(10);
  p.logprobs = true;
  p.top_logprobs = 3;
  StreamResult r = RunSolo(*engine, rng.Prompt(12), p);
  ASSERT_EQ(r.ids.size(), 10u);
  ASSERT_EQ(r.logprobs.size(), r.ids.size());
  ASSERT_EQ(r.top_logprobs.size(), r.ids.size());
  for (size_t i = 0; i < r.ids.size(); ++i) {
    ASSERT_EQ(r.top_logprobs[i].size(), 3u);
    EXPECT_EQ(r.top_logprobs[i][0].token_id, r.ids[i]);  // greedy: the most likely
    EXPECT_EQ(r.top_logprobs[i][0].logprob, r.logprobs[i]);
    EXPECT_LE(r.logprobs[i], 0.0f);
    EXPECT_GE(r.top_logprobs[i][0].logprob, r.top_logprobs[i][1].logprob);
    EXPECT_GE(r.top_logprobs[i][1].logprob, r.top_logprobs[i][2].logprob);
  }
  // Without logprobs, none.
  StreamResult plain = RunSolo(*engine, rng.Prompt(12), Greedy(4));
  EXPECT_TRUE(plain.logprobs.empty());
  EXPECT_TRUE(plain.top_logprobs.empty());
}

TEST(EngineApi, SeededSamplingRepeatsWithAndWithoutOtherTraffic) {
  Rng rng;
  SCOPED_TRACE("seed " + std::to_string(rng.seed()));
  auto engine = CreateEngine(testing::SmallConfig());
  ASSERT_NE(engine, nullptr);
  const std::vector<int32_t> prompt = rng.Prompt(rng.Uniform(5, 60));
  SamplingParams p;
  p.temperature = 1.0;
  p.top_p = 0.95;
  p.max_tokens = 32;
  p.ignore_eos = true;
  p.seed = static_cast<uint64_t>(rng.Uniform(0, 1 << 30));
  const StreamResult first = RunSolo(*engine, prompt, p);
  ASSERT_EQ(first.ids.size(), 32u);
  EXPECT_EQ(RunSolo(*engine, prompt, p).ids, first.ids);
  // The same request among others.
  std::vector<std::shared_ptr<RequestStream>> traffic;
  for (int i = 0; i < 6; ++i) traffic.push_back(SubmitOk(*engine, rng.Prompt(rng.Uniform(1, 80)), Greedy(20)));
  auto stream = SubmitOk(*engine, prompt, p);
  for (int i = 0; i < 6; ++i) traffic.push_back(SubmitOk(*engine, rng.Prompt(rng.Uniform(1, 80)), Greedy(20)));
  ASSERT_NE(stream, nullptr);
  EXPECT_EQ(Drain(*stream).ids, first.ids);
  for (auto& t : traffic) EXPECT_EQ(Drain(*t).finish, FinishKind::kLength);
  // Another seed, another output (32 tokens from a near-uniform model).
  p.seed = *p.seed + 1;
  EXPECT_NE(RunSolo(*engine, prompt, p).ids, first.ids);
}

TEST(EngineApi, ShutdownWithoutTimeAbortsWhatIsInFlight) {
  Rng rng;
  EngineConfig config = testing::SmallConfig();
  config.max_running = 2;
  auto engine = CreateEngine(config);
  ASSERT_NE(engine, nullptr);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 5; ++i) streams.push_back(SubmitOk(*engine, rng.Prompt(16), Greedy(4000)));
  ASSERT_TRUE(streams[0]->Next(std::chrono::seconds(30)).has_value());  // running for sure
  engine->Shutdown(std::chrono::milliseconds(0));
  for (auto& stream : streams) {
    const StreamResult r = Drain(*stream);
    EXPECT_EQ(r.finish, FinishKind::kAborted);
    EXPECT_LT(r.completion_tokens, 4000);
  }
  auto refused = engine->Submit(GenerateRequest{.prompt = {5}, .params = Greedy(1)});
  EXPECT_EQ(refused.status().code(), StatusCode::kUnavailable);
  const EngineStats stats = engine->Stats();
  EXPECT_FALSE(stats.ready);
  EXPECT_TRUE(KvEmpty(stats));
  engine->Shutdown(std::chrono::milliseconds(0));  // idempotent
}

TEST(EngineApi, ShutdownWithTimeLetsRequestsFinish) {
  Rng rng;
  auto engine = CreateEngine(testing::SmallConfig());
  ASSERT_NE(engine, nullptr);
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (int i = 0; i < 6; ++i) streams.push_back(SubmitOk(*engine, rng.Prompt(rng.Uniform(1, 40)), Greedy(12)));
  engine->Shutdown(std::chrono::seconds(60));
  for (auto& stream : streams) {
    const StreamResult r = Drain(*stream);
    EXPECT_EQ(r.finish, FinishKind::kLength);
    EXPECT_EQ(r.completion_tokens, 12);
  }
  EXPECT_EQ(engine->Submit(GenerateRequest{.prompt = {5}, .params = Greedy(1)}).status().code(),
            StatusCode::kUnavailable);
}

TEST(EngineApi, DestroyingTheEngineAbortsItsStreams) {
  Rng rng;
  std::vector<std::shared_ptr<RequestStream>> streams;
  {
    auto engine = CreateEngine(testing::SmallConfig());
    ASSERT_NE(engine, nullptr);
    for (int i = 0; i < 3; ++i) streams.push_back(SubmitOk(*engine, rng.Prompt(16), Greedy(4000)));
  }
  for (auto& stream : streams) {
    EXPECT_EQ(Drain(*stream).finish, FinishKind::kAborted);
    stream->Cancel();  // the engine is gone: nothing happens
  }
}

// The demo model (when present): greedy outputs through the batching engine
// equal the offline Generator's.
TEST(EngineApi, DemoModelGreedyEqualsTheGenerator) {
  auto path = DefaultModelPath();
  if (!path.ok() || !std::filesystem::exists(*path)) GTEST_SKIP() << "the demo model is absent";
  EngineConfig config;
  config.model_path = *path;
  config.threads = 2;
  config.page_size = 64;
  config.kv_cache_tokens = 1024;
  config.max_running = 4;
  config.prefill_chunk = 64;
  config.max_step_tokens = 4 * 64;
  config.attention = "dense";
  auto engine = CreateEngine(config);
  auto offline = testing::LoadOffline(config);
  ASSERT_NE(engine, nullptr);
  ASSERT_NE(offline, nullptr);
  std::vector<std::vector<int32_t>> prompts;
  for (const char* text : {"The capital of France is", "Once upon a time,", "1, 2, 3, 4,"}) {
    auto ids = engine->tokenizer().Encode(text);
    ASSERT_TRUE(ids.ok());
    prompts.push_back(*ids);
  }
  std::vector<std::shared_ptr<RequestStream>> streams;
  for (const auto& prompt : prompts) streams.push_back(SubmitOk(*engine, prompt, Greedy(8, false)));
  for (size_t i = 0; i < prompts.size(); ++i) {
    auto want = offline->generator->Generate(prompts[i], Greedy(8, false));
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    const StreamResult got = Drain(*streams[i]);
    EXPECT_EQ(got.ids, want->ids) << "prompt " << i;
    EXPECT_EQ(got.text, want->text) << "prompt " << i;
  }
}

}  // namespace
}  // namespace lserve
