// Prometheus registry: the exact exposition text of a small registry,
// histogram bucket semantics, and updates from many threads while rendering.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/metrics.h"

namespace lserve::metrics {
namespace {

TEST(Metrics, GoldenExposition) {
  Registry r;
  Counter& ok = r.AddCounter("lserve_requests_total", "Requests by outcome.", {{"status", "ok"}});
  Counter& err = r.AddCounter("lserve_requests_total", "Requests by outcome.", {{"status", "error"}});
  Gauge& depth = r.AddGauge("lserve_queue_depth", "Waiting requests.");
  Histogram& h = r.AddHistogram("lserve_latency_seconds", "Latency \\ with\nnewline.", {0.25, 0.5, 2});
  Gauge& odd = r.AddGauge("lserve_odd", "Label escaping.", {{"path", "a\"b\\c\nd"}, {"x", "y"}});
  ok.Inc();
  ok.Inc(2);
  err.Inc(0.5);
  depth.Set(4);
  depth.Dec();
  odd.Set(-1.25);
  for (double v : {0.125, 0.25, 0.375, 1.0, 7.0}) h.Observe(v);
  const std::string expected =
      "# HELP lserve_requests_total Requests by outcome.\n"
      "# TYPE lserve_requests_total counter\n"
      "lserve_requests_total{status=\"ok\"} 3\n"
      "lserve_requests_total{status=\"error\"} 0.5\n"
      "# HELP lserve_queue_depth Waiting requests.\n"
      "# TYPE lserve_queue_depth gauge\n"
      "lserve_queue_depth 3\n"
      "# HELP lserve_latency_seconds Latency \\\\ with\\nnewline.\n"
      "# TYPE lserve_latency_seconds histogram\n"
      "lserve_latency_seconds_bucket{le=\"0.25\"} 2\n"
      "lserve_latency_seconds_bucket{le=\"0.5\"} 3\n"
      "lserve_latency_seconds_bucket{le=\"2\"} 4\n"
      "lserve_latency_seconds_bucket{le=\"+Inf\"} 5\n"
      "lserve_latency_seconds_sum 8.75\n"
      "lserve_latency_seconds_count 5\n"
      "# HELP lserve_odd Label escaping.\n"
      "# TYPE lserve_odd gauge\n"
      "lserve_odd{path=\"a\\\"b\\\\c\\nd\",x=\"y\"} -1.25\n";
  EXPECT_EQ(r.Render(), expected);
}

TEST(Metrics, FormatValue) {
  EXPECT_EQ(FormatValue(0), "0");
  EXPECT_EQ(FormatValue(3), "3");
  EXPECT_EQ(FormatValue(0.005), "0.005");
  EXPECT_EQ(FormatValue(1e21), "1e+21");
  EXPECT_EQ(FormatValue(INFINITY), "+Inf");
  EXPECT_EQ(FormatValue(-INFINITY), "-Inf");
  EXPECT_EQ(FormatValue(NAN), "NaN");
}

TEST(Metrics, CounterNeverDecreases) {
  Counter c;
  c.Inc(2);
  c.Inc(-1);
  c.Inc(NAN);
  EXPECT_EQ(c.Value(), 2);
}

TEST(Metrics, HistogramBucketsAreUpperInclusive) {
  Histogram h({1, 2});
  h.Observe(1);   // le=1
  h.Observe(1.5); // le=2
  h.Observe(2);   // le=2
  h.Observe(NAN); // +Inf only
  h.Observe(-5);  // le=1
  EXPECT_EQ(h.CumulativeCounts(), (std::vector<uint64_t>{2, 4, 5}));
  EXPECT_EQ(h.Count(), 5u);
}

TEST(Metrics, ConcurrentUpdatesWhileRendering) {
  Registry r;
  Counter& c = r.AddCounter("lserve_things_total", "Things.");
  Gauge& g = r.AddGauge("lserve_level", "Level.");
  Histogram& h = r.AddHistogram("lserve_sizes", "Sizes.", {1, 10, 100});
  std::mt19937 rng(std::random_device{}());
  const int threads = 4;
  const int per_thread = 5000 + static_cast<int>(rng() % 5000);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    workers.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        c.Inc();
        g.Inc();
        g.Dec();
        h.Observe((i + t) % 200);
      }
    });
  }
  // Renders racing the updates stay well-formed: +Inf bucket == _count.
  for (int k = 0; k < 20; ++k) {
    const std::string text = r.Render();
    const size_t inf = text.find("lserve_sizes_bucket{le=\"+Inf\"} ");
    const size_t count = text.find("lserve_sizes_count ");
    ASSERT_NE(inf, std::string::npos);
    ASSERT_NE(count, std::string::npos);
    const std::string inf_value = text.substr(inf + 31, text.find('\n', inf) - inf - 31);
    const std::string count_value = text.substr(count + 19, text.find('\n', count) - count - 19);
    EXPECT_EQ(inf_value, count_value);
  }
  for (std::thread& w : workers) w.join();
  const double total = static_cast<double>(threads) * per_thread;
  EXPECT_EQ(c.Value(), total);
  EXPECT_EQ(g.Value(), 0);
  EXPECT_EQ(h.Count(), static_cast<uint64_t>(total));
  double sum = 0;
  for (int t = 0; t < threads; ++t) {
    for (int i = 0; i < per_thread; ++i) sum += (i + t) % 200;
  }
  EXPECT_EQ(h.Sum(), sum);  // integers below 2^53: exact in any order
  EXPECT_NE(r.Render().find("lserve_things_total " + FormatValue(total) + "\n"), std::string::npos);
}

TEST(ServerMetrics, SeriesTheIssueNames) {
  ServerMetrics m;
  m.requests(RequestOutcome::kOk).Inc();
  m.requests(RequestOutcome::kRejected).Inc(2);
  m.prompt_tokens().Inc(100);
  m.generation_tokens().Inc(20);
  m.time_to_first_token().Observe(0.2);
  m.time_per_output_token().Observe(0.02);
  m.e2e_request_latency().Observe(1.2);
  m.queue_depth().Set(3);
  m.running_sequences().Set(2);
  m.kv_pages_used(KvPool::kRetrieval).Set(10);
  m.kv_pages_total(KvPool::kStreaming).Set(64);
  m.preemptions().Inc();
  m.sparse_blocks_visited(AttentionPhase::kDecode).Inc(5);
  m.sparse_blocks_dense(AttentionPhase::kPrefill).Inc(9);
  const std::string text = m.Render();
  for (const char* line : {
           "# TYPE lserve_requests_total counter\n",
           "lserve_requests_total{status=\"ok\"} 1\n",
           "lserve_requests_total{status=\"error\"} 0\n",
           "lserve_requests_total{status=\"cancelled\"} 0\n",
           "lserve_requests_total{status=\"rejected\"} 2\n",
           "lserve_prompt_tokens_total 100\n",
           "lserve_generation_tokens_total 20\n",
           "# TYPE lserve_time_to_first_token_seconds histogram\n",
           "lserve_time_to_first_token_seconds_bucket{le=\"0.25\"} 1\n",
           "lserve_time_to_first_token_seconds_count 1\n",
           "# TYPE lserve_time_per_output_token_seconds histogram\n",
           "lserve_time_per_output_token_seconds_sum 0.02\n",
           "# TYPE lserve_e2e_request_latency_seconds histogram\n",
           "lserve_e2e_request_latency_seconds_bucket{le=\"+Inf\"} 1\n",
           "# TYPE lserve_queue_depth gauge\n",
           "lserve_queue_depth 3\n",
           "lserve_running_sequences 2\n",
           "lserve_kv_pages_used{pool=\"retrieval\"} 10\n",
           "lserve_kv_pages_used{pool=\"streaming\"} 0\n",
           "lserve_kv_pages_total{pool=\"streaming\"} 64\n",
           "lserve_preemptions_total 1\n",
           "lserve_sparse_blocks_visited_total{phase=\"decode\"} 5\n",
           "lserve_sparse_blocks_dense_total{phase=\"prefill\"} 9\n",
       }) {
    EXPECT_NE(text.find(line), std::string::npos) << line;
  }
  // Every sample line is "name[{labels}] value" with a registered family.
  size_t start = 0;
  while (start < text.size()) {
    const size_t end = text.find('\n', start);
    ASSERT_NE(end, std::string::npos);
    const std::string line = text.substr(start, end - start);
    start = end + 1;
    if (line.rfind("# ", 0) == 0) continue;
    EXPECT_EQ(line.rfind("lserve_", 0), 0u) << line;
    EXPECT_EQ(std::count(line.begin(), line.end(), ' '), 1) << line;  // no label value holds a space
  }
}

}  // namespace
}  // namespace lserve::metrics
