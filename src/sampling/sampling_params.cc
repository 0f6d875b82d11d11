#include "sampling/sampling_params.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#include "core/utf8.h"

namespace lserve {
namespace {

// Shortest round-trip form ("-0.1", "1e+30", "nan", "inf").
std::string FormatNumber(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.17g", v);
  // Prefer the shortest representation that reads back the same.
  for (int precision = 1; precision < 17; ++precision) {
    char shorter[32];
    std::snprintf(shorter, sizeof(shorter), "%.*g", precision, v);
    if (std::strtod(shorter, nullptr) == v) return shorter;
  }
  return buf;
}

ParamError Error(std::string_view param, std::string detail) {
  std::string message(param);
  message += ' ';
  message += detail;
  return ParamError{std::string(param), std::move(message)};
}

std::optional<ParamError> CheckDouble(std::string_view param, double v, double lo, bool lo_open, double hi,
                                      bool hi_open, std::string_view rule) {
  const bool ok = std::isfinite(v) && (lo_open ? v > lo : v >= lo) && (hi_open ? v < hi : v <= hi);
  if (ok) return std::nullopt;
  return Error(param, "must be " + std::string(rule) + ", got " + FormatNumber(v));
}

std::string VocabRange(int32_t vocab_size) { return "[0, " + std::to_string(vocab_size) + ")"; }

bool InVocab(int64_t id, int32_t vocab_size) { return id >= 0 && id < vocab_size; }

}  // namespace

std::optional<ParamError> SamplingParams::FindInvalid(int32_t vocab_size) const {
  constexpr double kInf = INFINITY;
  if (auto e = CheckDouble("temperature", temperature, 0, false, kInf, true, "a finite number >= 0")) return e;
  if (auto e = CheckDouble("top_p", top_p, 0, true, 1, false, "in (0, 1]")) return e;
  if (top_k < -1) {
    return Error("top_k", "must be -1 or 0 (off) or a positive integer, got " + std::to_string(top_k));
  }
  if (auto e = CheckDouble("min_p", min_p, 0, false, 1, false, "in [0, 1]")) return e;
  if (auto e = CheckDouble("repetition_penalty", repetition_penalty, 0, true, kInf, true, "a finite number > 0")) {
    return e;
  }
  const double fp = kMaxAbsFrequencyPenalty;
  if (auto e = CheckDouble("frequency_penalty", frequency_penalty, -fp, false, fp, false, "in [-2, 2]")) return e;
  if (auto e = CheckDouble("presence_penalty", presence_penalty, -fp, false, fp, false, "in [-2, 2]")) return e;
  for (const auto& [id, bias] : logit_bias) {
    if (!InVocab(id, vocab_size)) {
      return Error("logit_bias", "token id " + std::to_string(id) + " is outside the vocabulary " +
                                     VocabRange(vocab_size));
    }
    if (!std::isfinite(bias) || std::fabs(bias) > kMaxAbsLogitBias) {
      return Error("logit_bias", "value for token " + std::to_string(id) + " must be in [-100, 100], got " +
                                     FormatNumber(bias));
    }
  }
  if (max_tokens < 1 || max_tokens > kMaxMaxTokens) {
    return Error("max_tokens", "must be in [1, " + std::to_string(kMaxMaxTokens) + "], got " +
                                   std::to_string(max_tokens));
  }
  if (stop.size() > kMaxStopStrings) {
    return Error("stop", "may hold at most " + std::to_string(kMaxStopStrings) + " strings, got " +
                             std::to_string(stop.size()));
  }
  for (size_t i = 0; i < stop.size(); ++i) {
    const std::string which = "string " + std::to_string(i);
    if (stop[i].empty()) return Error("stop", which + " is empty");
    if (stop[i].size() > kMaxStopStringBytes) {
      return Error("stop", which + " is longer than " + std::to_string(kMaxStopStringBytes) + " bytes (" +
                               std::to_string(stop[i].size()) + ")");
    }
    // Stop strings start on a character boundary of the text only when they
    // are well-formed themselves (StopChecker relies on it).
    if (!utf8::IsValid(stop[i])) return Error("stop", which + " is not valid UTF-8");
  }
  for (int64_t id : stop_token_ids) {
    if (!InVocab(id, vocab_size)) {
      return Error("stop_token_ids", "token id " + std::to_string(id) + " is outside the vocabulary " +
                                         VocabRange(vocab_size));
    }
  }
  if (top_logprobs < 0 || top_logprobs > kMaxTopLogprobs) {
    return Error("top_logprobs", "must be in [0, " + std::to_string(kMaxTopLogprobs) + "], got " +
                                     std::to_string(top_logprobs));
  }
  if (top_logprobs > 0 && !logprobs) return Error("top_logprobs", "requires logprobs to be true");
  return std::nullopt;
}

Status SamplingParams::Validate(int32_t vocab_size) const {
  if (auto e = FindInvalid(vocab_size)) return InvalidArgument(std::move(e->message));
  return Status::Ok();
}

Result<uint64_t> SeedFromSigned(int64_t seed) {
  if (seed < 0) return InvalidArgument("seed must be >= 0, got " + std::to_string(seed));
  return static_cast<uint64_t>(seed);
}

}  // namespace lserve
