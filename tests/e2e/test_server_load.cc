// `lserve serve` under load (RELIABILITY.md D27-D29): concurrent streams
// with cancellations mid-stream and while queued, a KV pool too small for
// the load (preemption), and a full queue. Every request that completes
// must give exactly its solo greedy output, and the KV pages must all come
// back.
#include <gtest/gtest.h>

#include <atomic>
#include <random>
#include <thread>

#include "server_client.h"

namespace lserve::e2e {
namespace {

constexpr const char* kModel = "qwen2_tied";

struct Job {
  Json body;
  std::string solo_text;
  enum class Kind { kComplete, kCancelMidStream, kCancelQueued } kind = Kind::kComplete;
  std::string streamed;
  std::string finish;
  int status = 0;
  bool done_seen = false;
};

// Streams `job`, collecting text; a mid-stream cancel closes the connection
// after two events, a queued cancel right after sending the request.
void RunStream(int port, Job* job) {
  HttpConnection c(port);
  Json body = job->body;
  body["stream"] = true;
  if (!c.SendRequest("POST", "/v1/completions", body.dump())) return;
  if (job->kind == Job::Kind::kCancelQueued) return;  // closed while queued
  HttpResponse head;
  if (!c.ReadHead(&head)) return;
  job->status = head.status;
  int events = 0;
  while (std::optional<std::string> data = c.NextSseData()) {
    if (job->kind == Job::Kind::kCancelMidStream && ++events == 2) return;
    if (*data == "[DONE]") {
      job->done_seen = true;
      continue;
    }
    const Json chunk = Json::parse(*data, nullptr, false);
    if (chunk.is_discarded() || !chunk.contains("choices")) {
      job->finish = "bad event: " + *data;
      return;
    }
    for (const Json& choice : chunk["choices"]) {
      job->streamed += choice["text"].get<std::string>();
      if (choice["finish_reason"].is_string()) job->finish = choice["finish_reason"];
    }
  }
}

std::string SoloText(int port, const Json& body) {
  const HttpResponse r = Post(port, "/v1/completions", body);
  EXPECT_EQ(r.status, 200) << r.body;
  return r.json()["choices"][0]["text"].get<std::string>();
}

// Waits until the engine holds no request and no KV page.
void ExpectDrained(int port) {
  std::string metrics;
  for (int attempt = 0; attempt < 200; ++attempt) {
    metrics = Get(port, "/metrics").body;
    if (MetricValue(metrics, "lserve_kv_pages_used{pool=\"retrieval\"}") == 0.0 &&
        MetricValue(metrics, "lserve_kv_pages_used{pool=\"streaming\"}") == 0.0 &&
        MetricValue(metrics, "lserve_running_sequences") == 0.0 && MetricValue(metrics, "lserve_queue_depth") == 0.0) {
      return;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  ADD_FAILURE() << "pages or requests left after the load:\n" << metrics;
}

TEST(ServerLoad, ConcurrentStreamsWithCancellationsKeepSoloOutputs) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--max-running", "8", "--max-queued", "64",
                            "--page-size", "16", "--max-model-len", "1024"}))
      << server.Stderr();
  const int port = server.port();
  std::mt19937 rng(std::random_device{}());
  constexpr int kJobs = 64;
  std::vector<Job> jobs(kJobs);
  for (int i = 0; i < kJobs; ++i) {
    Job& job = jobs[i];
    std::string prompt = "Request " + std::to_string(i) + ":";
    for (int w = static_cast<int>(rng() % 30); w > 0; --w) prompt += " word" + std::to_string(rng() % 100);
    job.kind = i % 10 == 3 ? Job::Kind::kCancelMidStream : i % 20 == 7 ? Job::Kind::kCancelQueued : Job::Kind::kComplete;
    const int max_tokens = job.kind == Job::Kind::kComplete ? 8 + static_cast<int>(rng() % 40) : 400;
    job.body = {{"prompt", prompt}, {"max_tokens", max_tokens}, {"temperature", 0}, {"ignore_eos", true}};
    if (job.kind == Job::Kind::kComplete) job.solo_text = SoloText(port, job.body);
  }
  const double cancelled_before =
      MetricValue(Get(port, "/metrics").body, "lserve_requests_total{status=\"cancelled\"}").value_or(-1);

  // Everything but the queued cancels at once; those once the queue holds
  // requests, so that they are cancelled before admission.
  std::vector<std::thread> threads;
  for (Job& job : jobs) {
    if (job.kind != Job::Kind::kCancelQueued) threads.emplace_back(RunStream, port, &job);
  }
  for (int attempt = 0; attempt < 500; ++attempt) {
    if (MetricValue(Get(port, "/metrics").body, "lserve_queue_depth").value_or(0) > 8) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  for (Job& job : jobs) {
    if (job.kind == Job::Kind::kCancelQueued) threads.emplace_back(RunStream, port, &job);
  }
  for (std::thread& t : threads) t.join();

  int completed = 0, cancelled = 0;
  for (int i = 0; i < kJobs; ++i) {
    const Job& job = jobs[i];
    if (job.kind != Job::Kind::kComplete) {
      ++cancelled;
      continue;
    }
    SCOPED_TRACE("job " + std::to_string(i));
    EXPECT_EQ(job.status, 200);
    EXPECT_TRUE(job.done_seen);
    EXPECT_EQ(job.finish, "length");
    EXPECT_EQ(job.streamed, job.solo_text);
    ++completed;
  }
  EXPECT_GE(cancelled, 6);
  ExpectDrained(port);
  const std::string metrics = Get(port, "/metrics").body;
  // Every cancelled request was seen as such (none ran to its end).
  EXPECT_GE(MetricValue(metrics, "lserve_requests_total{status=\"cancelled\"}").value_or(0) - cancelled_before,
            cancelled);
  EXPECT_GE(MetricValue(metrics, "lserve_requests_total{status=\"ok\"}").value_or(0), 2.0 * completed);
  EXPECT_EQ(Get(port, "/health").status, 200);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

TEST(ServerLoad, NonStreamingClientGoneCancelsItsRequest) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--max-model-len", "4096"})) << server.Stderr();
  const int port = server.port();
  {
    HttpConnection c(port);
    const Json body = {{"prompt", "Go on"}, {"max_tokens", 3000}, {"temperature", 0}, {"ignore_eos", true}};
    ASSERT_TRUE(c.SendRequest("POST", "/v1/completions", body.dump()));
    for (int attempt = 0; attempt < 500; ++attempt) {
      if (MetricValue(Get(port, "/metrics").body, "lserve_running_sequences").value_or(0) > 0) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }  // closed while the request runs
  double cancelled = 0;
  for (int attempt = 0; attempt < 200 && cancelled < 1; ++attempt) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    cancelled = MetricValue(Get(port, "/metrics").body, "lserve_requests_total{status=\"cancelled\"}").value_or(0);
  }
  EXPECT_EQ(cancelled, 1);
  ExpectDrained(port);
  const std::string metrics = Get(port, "/metrics").body;
  EXPECT_LT(MetricValue(metrics, "lserve_generation_tokens_total").value_or(3000), 3000) << metrics;
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

TEST(ServerLoad, SmallKvPoolPreemptsAndKeepsOutputs) {
  ServerProcess server;
  // 256 tokens of KV in pages of 16; each request needs about 8 pages.
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--kv-cache-tokens", "256", "--page-size", "16",
                            "--max-running", "8"}))
      << server.Stderr();
  const int port = server.port();
  constexpr int kJobs = 8;
  std::vector<Json> bodies;
  std::vector<std::string> solo;
  for (int i = 0; i < kJobs; ++i) {
    bodies.push_back({{"prompt", "Story " + std::to_string(i) + " begins here"}, {"max_tokens", 110},
                      {"temperature", 0}, {"ignore_eos", true}});
    solo.push_back(SoloText(port, bodies.back()));
  }
  std::vector<HttpResponse> responses(kJobs);
  std::vector<std::thread> threads;
  for (int i = 0; i < kJobs; ++i) {
    threads.emplace_back([&, i] { responses[i] = Post(port, "/v1/completions", bodies[i]); });
  }
  for (std::thread& t : threads) t.join();
  for (int i = 0; i < kJobs; ++i) {
    ASSERT_EQ(responses[i].status, 200) << responses[i].body;
    EXPECT_EQ(responses[i].json()["choices"][0]["text"], solo[i]) << i;
  }
  const std::string metrics = Get(port, "/metrics").body;
  EXPECT_GT(MetricValue(metrics, "lserve_preemptions_total").value_or(0), 0) << metrics;
  ExpectDrained(port);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

TEST(ServerLoad, FullQueueAnswers503WithRetryAfter) {
  ServerProcess server;
  ASSERT_TRUE(server.Start({"--model", FixtureModel(kModel), "--max-running", "1", "--max-queued", "2"}))
      << server.Stderr();
  const int port = server.port();
  constexpr int kJobs = 12;
  std::vector<HttpResponse> responses(kJobs);
  std::vector<std::thread> threads;
  for (int i = 0; i < kJobs; ++i) {
    threads.emplace_back([&, i] {
      responses[i] = Post(port, "/v1/completions",
                          {{"prompt", "Load " + std::to_string(i)}, {"max_tokens", 200}, {"temperature", 0},
                           {"ignore_eos", true}});
    });
  }
  for (std::thread& t : threads) t.join();
  int ok = 0, overloaded = 0;
  for (const HttpResponse& r : responses) {
    if (r.status == 200) {
      ++ok;
      EXPECT_EQ(r.json()["choices"][0]["finish_reason"], "length");
    } else {
      ++overloaded;
      EXPECT_EQ(r.status, 503) << r.body;
      EXPECT_EQ(r.header("retry-after"), "1");
      EXPECT_EQ(r.json()["error"]["code"], "overloaded") << r.body;
    }
  }
  EXPECT_GE(ok, 1);
  EXPECT_GE(overloaded, 1);
  ExpectDrained(port);
  EXPECT_GE(MetricValue(Get(port, "/metrics").body, "lserve_requests_total{status=\"rejected\"}").value_or(0),
            overloaded);
  EXPECT_EQ(server.Stop(), 0) << server.Stderr();
}

}  // namespace
}  // namespace lserve::e2e
