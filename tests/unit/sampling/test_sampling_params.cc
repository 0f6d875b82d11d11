// SamplingParams validation: every RELIABILITY.md C14/C15/C18/C19 case that
// reaches the sampler (JSON type errors such as "1" or 1.5 are the server's),
// each naming the offending field; and the boundary values that must pass.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <string>
#include <vector>

#include "sampling/sampling_params.h"

namespace lserve {
namespace {

constexpr int32_t kVocab = 1000;
constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
constexpr double kInf = std::numeric_limits<double>::infinity();

struct InvalidCase {
  const char* name;
  std::function<void(SamplingParams&)> mutate;
  const char* param;
};

const std::vector<InvalidCase>& InvalidCases() {
  static const std::vector<InvalidCase> cases = {
      {"temperature_negative", [](SamplingParams& p) { p.temperature = -0.1; }, "temperature"},
      {"temperature_nan", [](SamplingParams& p) { p.temperature = kNan; }, "temperature"},
      {"temperature_inf", [](SamplingParams& p) { p.temperature = kInf; }, "temperature"},
      {"temperature_minus_inf", [](SamplingParams& p) { p.temperature = -kInf; }, "temperature"},
      {"top_p_zero", [](SamplingParams& p) { p.top_p = 0; }, "top_p"},
      {"top_p_above_one", [](SamplingParams& p) { p.top_p = 1.01; }, "top_p"},
      {"top_p_negative", [](SamplingParams& p) { p.top_p = -0.5; }, "top_p"},
      {"top_p_nan", [](SamplingParams& p) { p.top_p = kNan; }, "top_p"},
      {"top_k_minus_two", [](SamplingParams& p) { p.top_k = -2; }, "top_k"},
      {"top_k_min_int64", [](SamplingParams& p) { p.top_k = INT64_MIN; }, "top_k"},
      {"min_p_above_one", [](SamplingParams& p) { p.min_p = 1.1; }, "min_p"},
      {"min_p_negative", [](SamplingParams& p) { p.min_p = -0.01; }, "min_p"},
      {"min_p_nan", [](SamplingParams& p) { p.min_p = kNan; }, "min_p"},
      {"frequency_penalty_above", [](SamplingParams& p) { p.frequency_penalty = 2.01; }, "frequency_penalty"},
      {"frequency_penalty_below", [](SamplingParams& p) { p.frequency_penalty = -2.01; }, "frequency_penalty"},
      {"frequency_penalty_nan", [](SamplingParams& p) { p.frequency_penalty = kNan; }, "frequency_penalty"},
      {"presence_penalty_above", [](SamplingParams& p) { p.presence_penalty = 2.01; }, "presence_penalty"},
      {"presence_penalty_below", [](SamplingParams& p) { p.presence_penalty = -2.01; }, "presence_penalty"},
      {"presence_penalty_inf", [](SamplingParams& p) { p.presence_penalty = kInf; }, "presence_penalty"},
      {"repetition_penalty_zero", [](SamplingParams& p) { p.repetition_penalty = 0; }, "repetition_penalty"},
      {"repetition_penalty_negative", [](SamplingParams& p) { p.repetition_penalty = -1; }, "repetition_penalty"},
      {"repetition_penalty_inf", [](SamplingParams& p) { p.repetition_penalty = kInf; }, "repetition_penalty"},
      {"repetition_penalty_nan", [](SamplingParams& p) { p.repetition_penalty = kNan; }, "repetition_penalty"},
      {"logit_bias_negative_id", [](SamplingParams& p) { p.logit_bias[-1] = 1; }, "logit_bias"},
      {"logit_bias_id_vocab", [](SamplingParams& p) { p.logit_bias[kVocab] = 1; }, "logit_bias"},
      {"logit_bias_id_huge", [](SamplingParams& p) { p.logit_bias[int64_t{1} << 40] = 1; }, "logit_bias"},
      {"logit_bias_1e30", [](SamplingParams& p) { p.logit_bias[5] = 1e30; }, "logit_bias"},
      {"logit_bias_above_100", [](SamplingParams& p) { p.logit_bias[5] = 100.5; }, "logit_bias"},
      {"logit_bias_below_minus_100", [](SamplingParams& p) { p.logit_bias[5] = -100.5; }, "logit_bias"},
      {"logit_bias_nan", [](SamplingParams& p) { p.logit_bias[5] = kNan; }, "logit_bias"},
      {"logit_bias_minus_inf", [](SamplingParams& p) { p.logit_bias[5] = -kInf; }, "logit_bias"},
      {"max_tokens_zero", [](SamplingParams& p) { p.max_tokens = 0; }, "max_tokens"},
      {"max_tokens_negative", [](SamplingParams& p) { p.max_tokens = -1; }, "max_tokens"},
      {"max_tokens_2_pow_31", [](SamplingParams& p) { p.max_tokens = int64_t{1} << 31; }, "max_tokens"},
      {"max_tokens_2_pow_63_minus_1", [](SamplingParams& p) { p.max_tokens = INT64_MAX; }, "max_tokens"},
      {"max_tokens_min_int64", [](SamplingParams& p) { p.max_tokens = INT64_MIN; }, "max_tokens"},
      {"stop_nine_strings", [](SamplingParams& p) { p.stop.assign(9, "x"); }, "stop"},
      {"stop_empty_string", [](SamplingParams& p) { p.stop = {"ok", ""}; }, "stop"},
      {"stop_257_bytes", [](SamplingParams& p) { p.stop = {std::string(257, 'a')}; }, "stop"},
      {"stop_1_mib", [](SamplingParams& p) { p.stop = {std::string(1 << 20, 'a')}; }, "stop"},
      {"stop_invalid_utf8", [](SamplingParams& p) { p.stop = {"ab\xff"}; }, "stop"},
      {"stop_truncated_utf8", [](SamplingParams& p) { p.stop = {"\xe5\xad"}; }, "stop"},
      {"stop_token_ids_negative", [](SamplingParams& p) { p.stop_token_ids = {2, -1}; }, "stop_token_ids"},
      {"stop_token_ids_vocab", [](SamplingParams& p) { p.stop_token_ids = {kVocab}; }, "stop_token_ids"},
      {"stop_token_ids_2_pow_31", [](SamplingParams& p) { p.stop_token_ids = {int64_t{1} << 31}; },
       "stop_token_ids"},
      {"top_logprobs_negative", [](SamplingParams& p) { p.logprobs = true; p.top_logprobs = -1; }, "top_logprobs"},
      {"top_logprobs_21", [](SamplingParams& p) { p.logprobs = true; p.top_logprobs = 21; }, "top_logprobs"},
      {"top_logprobs_without_logprobs", [](SamplingParams& p) { p.top_logprobs = 5; }, "top_logprobs"},
  };
  return cases;
}

TEST(SamplingParamsValidate, DefaultsAreValid) {
  SamplingParams p;
  EXPECT_TRUE(p.Validate(kVocab).ok());
  EXPECT_FALSE(p.FindInvalid(kVocab).has_value());
  EXPECT_FALSE(p.greedy());
}

TEST(SamplingParamsValidate, EachInvalidCaseNamesItsField) {
  for (const InvalidCase& c : InvalidCases()) {
    SCOPED_TRACE(c.name);
    SamplingParams p;
    c.mutate(p);
    const std::optional<ParamError> e = p.FindInvalid(kVocab);
    ASSERT_TRUE(e.has_value());
    EXPECT_EQ(e->param, c.param);
    // The message starts with the field name, so the plain Status names it too.
    EXPECT_EQ(e->message.rfind(c.param, 0), 0u) << e->message;
    const Status s = p.Validate(kVocab);
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(s.message(), e->message);
  }
}

TEST(SamplingParamsValidate, MessagesShowTheOffendingValue) {
  SamplingParams p;
  p.temperature = -0.1;
  EXPECT_NE(p.Validate(kVocab).message().find("-0.1"), std::string::npos) << p.Validate(kVocab).message();
  p = {};
  p.logit_bias[kVocab] = 1;
  EXPECT_NE(p.Validate(kVocab).message().find("1000"), std::string::npos) << p.Validate(kVocab).message();
  p = {};
  p.logit_bias[3] = 1e30;
  EXPECT_NE(p.Validate(kVocab).message().find("1e+30"), std::string::npos) << p.Validate(kVocab).message();
  p = {};
  p.temperature = std::nan("");
  EXPECT_NE(p.Validate(kVocab).message().find("nan"), std::string::npos) << p.Validate(kVocab).message();
}

TEST(SamplingParamsValidate, BoundaryValuesPass) {
  const std::vector<std::pair<const char*, std::function<void(SamplingParams&)>>> cases = {
      {"temperature_zero", [](SamplingParams& p) { p.temperature = 0; }},
      {"temperature_large", [](SamplingParams& p) { p.temperature = 1e6; }},
      {"top_p_one", [](SamplingParams& p) { p.top_p = 1; }},
      {"top_p_tiny", [](SamplingParams& p) { p.top_p = 1e-9; }},
      {"top_k_minus_one", [](SamplingParams& p) { p.top_k = -1; }},
      {"top_k_zero", [](SamplingParams& p) { p.top_k = 0; }},
      {"top_k_above_vocab", [](SamplingParams& p) { p.top_k = int64_t{1} << 40; }},
      {"min_p_zero", [](SamplingParams& p) { p.min_p = 0; }},
      {"min_p_one", [](SamplingParams& p) { p.min_p = 1; }},
      {"penalties_plus_two", [](SamplingParams& p) { p.frequency_penalty = p.presence_penalty = 2; }},
      {"penalties_minus_two", [](SamplingParams& p) { p.frequency_penalty = p.presence_penalty = -2; }},
      {"repetition_penalty_small", [](SamplingParams& p) { p.repetition_penalty = 1e-3; }},
      {"logit_bias_extremes", [](SamplingParams& p) { p.logit_bias = {{0, -100}, {kVocab - 1, 100}}; }},
      {"max_tokens_one", [](SamplingParams& p) { p.max_tokens = 1; }},
      {"max_tokens_int32_max", [](SamplingParams& p) { p.max_tokens = INT32_MAX; }},
      {"stop_eight_of_256_bytes", [](SamplingParams& p) { p.stop.assign(8, std::string(256, 'z')); }},
      {"stop_multibyte", [](SamplingParams& p) { p.stop = {"字", "é\n"}; }},
      {"stop_token_ids_edges", [](SamplingParams& p) { p.stop_token_ids = {0, kVocab - 1}; }},
      {"top_logprobs_zero", [](SamplingParams& p) { p.logprobs = true; p.top_logprobs = 0; }},
      {"top_logprobs_twenty", [](SamplingParams& p) { p.logprobs = true; p.top_logprobs = 20; }},
      {"seed_max", [](SamplingParams& p) { p.seed = UINT64_MAX; }},
  };
  for (const auto& [name, mutate] : cases) {
    SCOPED_TRACE(name);
    SamplingParams p;
    mutate(p);
    const Status s = p.Validate(kVocab);
    EXPECT_TRUE(s.ok()) << s.ToString();
  }
}

TEST(SamplingParamsValidate, GreedyBelowTheSamplingEpsilon) {
  SamplingParams p;
  p.temperature = 0;
  EXPECT_TRUE(p.greedy());
  p.temperature = 0.5 * kGreedyTemperature;
  EXPECT_TRUE(p.greedy());
  p.temperature = kGreedyTemperature;
  EXPECT_FALSE(p.greedy());
}

TEST(SamplingParamsValidate, SignedSeedEntryPoint) {
  for (int64_t bad : {int64_t{-1}, int64_t{-2}, INT64_MIN}) {
    Result<uint64_t> r = SeedFromSigned(bad);
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
    EXPECT_EQ(r.status().message().rfind("seed", 0), 0u) << r.status().message();
  }
  EXPECT_EQ(*SeedFromSigned(0), 0u);
  EXPECT_EQ(*SeedFromSigned(INT64_MAX), static_cast<uint64_t>(INT64_MAX));
}

}  // namespace
}  // namespace lserve
