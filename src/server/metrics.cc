#include "server/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/check.h"

namespace lserve::metrics {
namespace {

bool ValidName(std::string_view name, bool allow_colon) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (allow_colon && c == ':');
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

// Label values escape backslash, double quote and newline; HELP text
// escapes backslash and newline.
void AppendEscaped(std::string* out, std::string_view text, bool quote) {
  for (char c : text) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '\n') {
      *out += "\\n";
    } else if (quote && c == '"') {
      *out += "\\\"";
    } else {
      *out += c;
    }
  }
}

// {a="x",b="y"} with an optional extra pair (a histogram's le) last;
// nothing when there are no labels at all.
void AppendLabels(std::string* out, const Labels& labels, std::string_view extra_name = {},
                  std::string_view extra_value = {}) {
  if (labels.empty() && extra_name.empty()) return;
  *out += '{';
  bool first = true;
  auto append = [&](std::string_view name, std::string_view value) {
    if (!first) *out += ',';
    first = false;
    *out += name;
    *out += "=\"";
    AppendEscaped(out, value, /*quote=*/true);
    *out += '"';
  };
  for (const auto& [name, value] : labels) append(name, value);
  if (!extra_name.empty()) append(extra_name, extra_value);
  *out += '}';
}

void AppendSample(std::string* out, std::string_view name, std::string_view suffix, const Labels& labels,
                  double value, std::string_view extra_name = {}, std::string_view extra_value = {}) {
  *out += name;
  *out += suffix;
  AppendLabels(out, labels, extra_name, extra_value);
  *out += ' ';
  *out += FormatValue(value);
  *out += '\n';
}

}  // namespace

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  char buf[32];
  const auto [end, ec] = std::to_chars(buf, buf + sizeof(buf), value);
  return ec == std::errc() ? std::string(buf, end) : std::string("NaN");
}

void Counter::Inc(double amount) {
  if (!(amount >= 0)) return;
  value_.fetch_add(amount, std::memory_order_relaxed);
}

Histogram::Histogram(std::vector<double> upper_bounds)
    : bounds_(std::move(upper_bounds)), counts_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i < bounds_.size(); ++i) {
    LSERVE_CHECK(std::isfinite(bounds_[i]));
    LSERVE_CHECK(i == 0 || bounds_[i - 1] < bounds_[i]);
  }
  for (size_t i = 0; i <= bounds_.size(); ++i) counts_[i].store(0, std::memory_order_relaxed);
}

void Histogram::Observe(double value) {
  // The first bound >= value; NaN belongs to no finite bucket, only to +Inf.
  const size_t bucket = std::isnan(value) ? bounds_.size()
                                          : std::lower_bound(bounds_.begin(), bounds_.end(), value) - bounds_.begin();
  counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_.fetch_add(value, std::memory_order_relaxed);
}

std::vector<uint64_t> Histogram::CumulativeCounts() const {
  std::vector<uint64_t> cumulative(bounds_.size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += counts_[i].load(std::memory_order_relaxed);
    cumulative[i] = running;
  }
  return cumulative;
}

uint64_t Histogram::Count() const { return CumulativeCounts().back(); }

Registry::Series& Registry::AddSeries(std::string_view name, std::string_view help, Kind kind, Series series) {
  const Labels& labels = series.labels;
  LSERVE_CHECK(ValidName(name, /*allow_colon=*/true));
  LSERVE_CHECK(name.substr(0, 7) == "lserve_");
  for (const auto& [label, value] : labels) {
    LSERVE_CHECK(ValidName(label, /*allow_colon=*/false));
    LSERVE_CHECK(label.substr(0, 2) != "__");
    LSERVE_CHECK(kind != Kind::kHistogram || label != "le");
  }
  std::lock_guard<std::mutex> lock(mutex_);
  auto family = std::find_if(families_.begin(), families_.end(), [&](const Family& f) { return f.name == name; });
  if (family == families_.end()) {
    families_.push_back(Family{std::string(name), std::string(help), kind, {}});
    family = families_.end() - 1;
  }
  LSERVE_CHECK(family->kind == kind);
  LSERVE_CHECK(family->help == help);
  for (const Series& s : family->series) LSERVE_CHECK(s.labels != labels);
  family->series.push_back(std::move(series));
  return family->series.back();
}

// Each series is complete before it is published under the mutex, so that
// Render never sees one half-built.
Counter& Registry::AddCounter(std::string_view name, std::string_view help, Labels labels) {
  Series series{std::move(labels), std::make_unique<Counter>(), nullptr, nullptr};
  return *AddSeries(name, help, Kind::kCounter, std::move(series)).counter;
}

Gauge& Registry::AddGauge(std::string_view name, std::string_view help, Labels labels) {
  Series series{std::move(labels), nullptr, std::make_unique<Gauge>(), nullptr};
  return *AddSeries(name, help, Kind::kGauge, std::move(series)).gauge;
}

Histogram& Registry::AddHistogram(std::string_view name, std::string_view help, std::vector<double> upper_bounds,
                                  Labels labels) {
  Series series{std::move(labels), nullptr, nullptr, std::make_unique<Histogram>(std::move(upper_bounds))};
  return *AddSeries(name, help, Kind::kHistogram, std::move(series)).histogram;
}

std::string Registry::Render() const {
  std::string out;
  std::lock_guard<std::mutex> lock(mutex_);
  for (const Family& family : families_) {
    out += "# HELP ";
    out += family.name;
    out += ' ';
    AppendEscaped(&out, family.help, /*quote=*/false);
    out += "\n# TYPE ";
    out += family.name;
    out += family.kind == Kind::kCounter ? " counter\n" : family.kind == Kind::kGauge ? " gauge\n" : " histogram\n";
    for (const Series& s : family.series) {
      if (s.counter) {
        AppendSample(&out, family.name, "", s.labels, s.counter->Value());
      } else if (s.gauge) {
        AppendSample(&out, family.name, "", s.labels, s.gauge->Value());
      } else if (s.histogram) {
        const std::vector<uint64_t> cumulative = s.histogram->CumulativeCounts();
        const std::vector<double>& bounds = s.histogram->upper_bounds();
        for (size_t i = 0; i < bounds.size(); ++i) {
          AppendSample(&out, family.name, "_bucket", s.labels, static_cast<double>(cumulative[i]), "le",
                       FormatValue(bounds[i]));
        }
        AppendSample(&out, family.name, "_bucket", s.labels, static_cast<double>(cumulative.back()), "le", "+Inf");
        AppendSample(&out, family.name, "_sum", s.labels, s.histogram->Sum());
        AppendSample(&out, family.name, "_count", s.labels, static_cast<double>(cumulative.back()));
      }
    }
  }
  return out;
}

// ---------------------------------------------------------------------------

namespace {

// vLLM's buckets, extended below 10 ms for fast GPUs and up to minutes for
// long prompts on the CPU.
std::vector<double> TimeToFirstTokenBuckets() {
  return {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75,
          1.0,   2.5,   5.0,  7.5,  10.0, 20.0, 40.0, 80.0, 160.0, 640.0, 2560.0};
}

std::vector<double> TimePerOutputTokenBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3,
          0.4,   0.5,    0.75,  1.0,  2.5,   5.0,  7.5,   10.0, 20.0, 40.0, 80.0};
}

std::vector<double> RequestLatencyBuckets() {
  return {0.3,  0.5,  0.8,  1.0,  1.5,  2.0,   2.5,   5.0,   10.0,  15.0,  20.0,
          30.0, 40.0, 50.0, 60.0, 120.0, 240.0, 480.0, 960.0, 1920.0, 7680.0};
}

}  // namespace

ServerMetrics::ServerMetrics() {
  Registry& r = registry_;
  constexpr const char* kRequestsHelp = "Finished requests by outcome (rejected: refused before admission).";
  requests_[static_cast<int>(RequestOutcome::kOk)] = &r.AddCounter("lserve_requests_total", kRequestsHelp, {{"status", "ok"}});
  requests_[static_cast<int>(RequestOutcome::kError)] =
      &r.AddCounter("lserve_requests_total", kRequestsHelp, {{"status", "error"}});
  requests_[static_cast<int>(RequestOutcome::kCancelled)] =
      &r.AddCounter("lserve_requests_total", kRequestsHelp, {{"status", "cancelled"}});
  requests_[static_cast<int>(RequestOutcome::kRejected)] =
      &r.AddCounter("lserve_requests_total", kRequestsHelp, {{"status", "rejected"}});
  prompt_tokens_ = &r.AddCounter("lserve_prompt_tokens_total", "Prompt tokens processed.");
  generation_tokens_ = &r.AddCounter("lserve_generation_tokens_total", "Tokens generated.");
  ttft_ = &r.AddHistogram("lserve_time_to_first_token_seconds", "Time from arrival to the first generated token.",
                          TimeToFirstTokenBuckets());
  tpot_ = &r.AddHistogram("lserve_time_per_output_token_seconds", "Time between consecutive generated tokens.",
                          TimePerOutputTokenBuckets());
  e2e_ = &r.AddHistogram("lserve_e2e_request_latency_seconds", "Time from arrival to the last token of a request.",
                         RequestLatencyBuckets());
  queue_depth_ = &r.AddGauge("lserve_queue_depth", "Requests waiting for admission.");
  running_ = &r.AddGauge("lserve_running_sequences", "Sequences being prefilled or decoded.");
  constexpr const char* kUsedHelp = "KV cache pages in use, per pool.";
  constexpr const char* kTotalHelp = "KV cache pages, per pool.";
  for (KvPool pool : {KvPool::kRetrieval, KvPool::kStreaming}) {
    const char* name = pool == KvPool::kRetrieval ? "retrieval" : "streaming";
    kv_used_[static_cast<int>(pool)] = &r.AddGauge("lserve_kv_pages_used", kUsedHelp, {{"pool", name}});
  }
  for (KvPool pool : {KvPool::kRetrieval, KvPool::kStreaming}) {
    const char* name = pool == KvPool::kRetrieval ? "retrieval" : "streaming";
    kv_total_[static_cast<int>(pool)] = &r.AddGauge("lserve_kv_pages_total", kTotalHelp, {{"pool", name}});
  }
  preemptions_ = &r.AddCounter("lserve_preemptions_total", "Sequences preempted (their KV freed, to be recomputed).");
  constexpr const char* kVisitedHelp = "Attention blocks computed by sparse attention, per phase.";
  constexpr const char* kDenseHelp = "Attention blocks dense attention would have computed for the same work.";
  for (AttentionPhase phase : {AttentionPhase::kPrefill, AttentionPhase::kDecode}) {
    const char* name = phase == AttentionPhase::kPrefill ? "prefill" : "decode";
    blocks_visited_[static_cast<int>(phase)] =
        &r.AddCounter("lserve_sparse_blocks_visited_total", kVisitedHelp, {{"phase", name}});
  }
  for (AttentionPhase phase : {AttentionPhase::kPrefill, AttentionPhase::kDecode}) {
    const char* name = phase == AttentionPhase::kPrefill ? "prefill" : "decode";
    blocks_dense_[static_cast<int>(phase)] =
        &r.AddCounter("lserve_sparse_blocks_dense_total", kDenseHelp, {{"phase", name}});
  }
}

}  // namespace lserve::metrics
