// Prometheus metrics: a small registry of counters, gauges and histograms
// rendered in the text exposition format 0.0.4, and ServerMetrics, the
// series the server publishes on /metrics.
//
// Series are registered once (at startup) and then updated from any thread
// without locks: every value is an atomic. Render takes the registry's mutex
// only to walk the list of series, so it may run while other threads update;
// a histogram then shows each bucket's count as it was when read, with
// _count equal to its +Inf bucket.
//
// Exposition, for a counter with one label and a histogram:
//   # HELP lserve_requests_total Requests by outcome.
//   # TYPE lserve_requests_total counter
//   lserve_requests_total{status="ok"} 3
//   # HELP lserve_latency_seconds Latency.
//   # TYPE lserve_latency_seconds histogram
//   lserve_latency_seconds_bucket{le="0.5"} 1
//   lserve_latency_seconds_bucket{le="+Inf"} 2
//   lserve_latency_seconds_sum 1.7
//   lserve_latency_seconds_count 2
#pragma once

#include <atomic>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace lserve::metrics {

// The Content-Type of Registry::Render's text.
inline constexpr std::string_view kContentType = "text/plain; version=0.0.4; charset=utf-8";

// Fixed label pairs of one series, e.g. {{"status", "ok"}}.
using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing value.
class Counter {
 public:
  // `amount` must be >= 0; negative or NaN amounts are ignored (a counter
  // never goes down).
  void Inc(double amount = 1.0);
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// A value that goes up and down (queue depth, pages in use).
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  void Inc(double amount = 1.0) { value_.fetch_add(amount, std::memory_order_relaxed); }
  void Dec(double amount = 1.0) { value_.fetch_sub(amount, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0.0};
};

// Observations counted in fixed buckets: bucket i holds the values v with
// bounds[i-1] < v <= bounds[i]; an implicit last bucket (+Inf) holds the
// rest (NaN included).
class Histogram {
 public:
  // `upper_bounds`: strictly increasing and finite.
  explicit Histogram(std::vector<double> upper_bounds);

  void Observe(double value);

  const std::vector<double>& upper_bounds() const { return bounds_; }
  // Cumulative counts per bound, then the +Inf bucket (== Count()).
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t Count() const;
  double Sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;  // bounds_.size() + 1, not cumulative
  std::atomic<double> sum_{0.0};
};

class Registry {
 public:
  Registry() = default;
  Registry(const Registry&) = delete;
  Registry& operator=(const Registry&) = delete;

  // Registers one series and returns it; the reference stays valid for the
  // registry's life. Series of one name form a family: they share `help`
  // and kind and must differ in their labels. Names match
  // [a-zA-Z_:][a-zA-Z0-9_:]* and start with "lserve_"; label names match
  // [a-zA-Z_][a-zA-Z0-9_]* and histograms may not use "le". Breaking these
  // rules is a bug in the caller (LSERVE_CHECK).
  Counter& AddCounter(std::string_view name, std::string_view help, Labels labels = {});
  Gauge& AddGauge(std::string_view name, std::string_view help, Labels labels = {});
  Histogram& AddHistogram(std::string_view name, std::string_view help, std::vector<double> upper_bounds,
                          Labels labels = {});

  // The exposition text: families in registration order, each with its
  // # HELP and # TYPE lines, then its series in registration order.
  std::string Render() const;

 private:
  enum class Kind { kCounter, kGauge, kHistogram };
  struct Series {
    Labels labels;
    std::unique_ptr<Counter> counter;
    std::unique_ptr<Gauge> gauge;
    std::unique_ptr<Histogram> histogram;
  };
  struct Family {
    std::string name;
    std::string help;
    Kind kind;
    std::deque<Series> series;
  };

  Series& AddSeries(std::string_view name, std::string_view help, Kind kind, Series series);

  mutable std::mutex mutex_;
  std::deque<Family> families_;
};

// Formats a sample value as Prometheus expects: shortest round-trip
// decimal, "+Inf", "-Inf", "NaN".
std::string FormatValue(double value);

// ---------------------------------------------------------------------------
// The server's series.

enum class RequestOutcome { kOk, kError, kCancelled, kRejected };
enum class KvPool { kRetrieval, kStreaming };
enum class AttentionPhase { kPrefill, kDecode };

class ServerMetrics {
 public:
  ServerMetrics();

  // lserve_requests_total{status="ok|error|cancelled|rejected"}
  Counter& requests(RequestOutcome outcome) { return *requests_[static_cast<int>(outcome)]; }
  Counter& prompt_tokens() { return *prompt_tokens_; }          // lserve_prompt_tokens_total
  Counter& generation_tokens() { return *generation_tokens_; }  // lserve_generation_tokens_total
  Histogram& time_to_first_token() { return *ttft_; }           // lserve_time_to_first_token_seconds
  Histogram& time_per_output_token() { return *tpot_; }         // lserve_time_per_output_token_seconds
  Histogram& e2e_request_latency() { return *e2e_; }            // lserve_e2e_request_latency_seconds
  Gauge& queue_depth() { return *queue_depth_; }                // lserve_queue_depth
  Gauge& running_sequences() { return *running_; }              // lserve_running_sequences
  // lserve_kv_pages_used{pool="retrieval|streaming"}, lserve_kv_pages_total{pool}
  Gauge& kv_pages_used(KvPool pool) { return *kv_used_[static_cast<int>(pool)]; }
  Gauge& kv_pages_total(KvPool pool) { return *kv_total_[static_cast<int>(pool)]; }
  Counter& preemptions() { return *preemptions_; }  // lserve_preemptions_total
  // lserve_sparse_blocks_visited_total{phase="prefill|decode"}: attention
  // blocks (prefill tiles, decode pages) computed; ..._dense_total: the
  // blocks dense attention would have computed for the same work.
  Counter& sparse_blocks_visited(AttentionPhase phase) { return *blocks_visited_[static_cast<int>(phase)]; }
  Counter& sparse_blocks_dense(AttentionPhase phase) { return *blocks_dense_[static_cast<int>(phase)]; }

  Registry& registry() { return registry_; }
  std::string Render() const { return registry_.Render(); }

 private:
  Registry registry_;
  Counter* requests_[4];
  Counter* prompt_tokens_;
  Counter* generation_tokens_;
  Histogram* ttft_;
  Histogram* tpot_;
  Histogram* e2e_;
  Gauge* queue_depth_;
  Gauge* running_;
  Gauge* kv_used_[2];
  Gauge* kv_total_[2];
  Counter* preemptions_;
  Counter* blocks_visited_[2];
  Counter* blocks_dense_[2];
};

}  // namespace lserve::metrics
