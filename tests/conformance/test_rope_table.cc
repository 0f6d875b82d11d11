// ComputeRopeTable against transformers: the fixture models' goldens
// (inv_freq, attention scaling, cos/sin at the last prompt position) and
// tables of further configurations computed with transformers 5.24's
// ROPE_INIT_FUNCTIONS (values copied below, %.9g of the f32 results).
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/mapped_file.h"
#include "formats/hf_config.h"
#include "kernels/ref/rope.h"
#include "kernels/ref/rope_table.h"

namespace lserve {
namespace {

// |a - b| within `ulps` units in the last place of b (f32).
void ExpectUlpClose(const std::vector<float>& got, const std::vector<float>& want, int ulps) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < want.size(); ++i) {
    const float tol = ulps * (std::nextafter(std::fabs(want[i]), INFINITY) - std::fabs(want[i]));
    EXPECT_NEAR(got[i], want[i], tol) << "inv_freq[" << i << "]";
  }
}

// cos and sin the RoPE kernel applies at `pos` (read off by rotating the
// vector [1 .. 1 | 0 .. 0]: v'[i] = cos_i, v'[i + half] = sin_i).
void CosSinAt(const RopeTable& table, int64_t pos, std::vector<float>& cos, std::vector<float>& sin) {
  const int64_t half = static_cast<int64_t>(table.inv_freq.size());
  std::vector<float> v(2 * half, 0.0f);
  std::fill(v.begin(), v.begin() + half, 1.0f);
  RopeRef({v.data(), nullptr, 1, 1, 0, 2 * half, &pos, table.inv_freq.data(), table.attention_scaling});
  cos.assign(v.begin(), v.begin() + half);
  sin.assign(v.begin() + half, v.end());
}

class RopeTableFixture : public testing::TestWithParam<std::string> {};

TEST_P(RopeTableFixture, MatchesTransformersGolden) {
  const std::string dir = std::string(LSERVE_SOURCE_DIR) + "/tests/fixtures/models/" + GetParam();
  auto config_text = ReadTextFile(dir + "/config.json");
  ASSERT_TRUE(config_text.ok()) << config_text.status().ToString();
  auto config = ParseHfConfig(*config_text, "");
  ASSERT_TRUE(config.ok()) << config.status().ToString();
  auto golden_text = ReadTextFile(dir + "/golden.json");
  ASSERT_TRUE(golden_text.ok());
  const nlohmann::json golden = nlohmann::json::parse(*golden_text);
  const nlohmann::json& rope = golden.at("rope");
  const int64_t n_positions = rope.at("n_positions").get<int64_t>();

  auto table = ComputeRopeTable(*config, nullptr, n_positions);
  ASSERT_TRUE(table.ok()) << table.status().ToString();
  ExpectUlpClose(table->inv_freq, rope.at("inv_freq").get<std::vector<float>>(), 2);
  EXPECT_NEAR(table->attention_scaling, rope.at("attention_scaling").get<double>(), 1e-7);

  std::vector<float> cos, sin;
  CosSinAt(*table, n_positions - 1, cos, sin);
  const auto golden_cos = rope.at("cos_last_position").get<std::vector<float>>();
  const auto golden_sin = rope.at("sin_last_position").get<std::vector<float>>();
  for (size_t i = 0; i < cos.size(); ++i) {
    EXPECT_NEAR(cos[i], golden_cos[i], 2e-6) << i;
    EXPECT_NEAR(sin[i], golden_sin[i], 2e-6) << i;
    // HF concatenates (freqs, freqs): both halves carry the same values.
    EXPECT_EQ(golden_cos[i], golden_cos[i + cos.size()]);
  }
}

INSTANTIATE_TEST_SUITE_P(Fixtures, RopeTableFixture,
                         testing::Values("llama2_mha_sharded", "llama3_gqa", "llama_dynamic", "llama_yarn",
                                         "mistral_mqa", "qwen2_tied"));

ModelConfig BaseConfig(int64_t head_dim, int64_t max_pos, double theta) {
  ModelConfig c;
  c.hidden_size = 4 * head_dim;
  c.num_attention_heads = 4;
  c.num_key_value_heads = 4;
  c.head_dim = head_dim;
  c.max_position_embeddings = max_pos;
  c.rope_theta = theta;
  return c;
}

TEST(RopeTable, LinearNonPowerOfTwoFactor) {
  ModelConfig c = BaseConfig(64, 2048, 10000.0);
  c.rope_scaling.type = RopeScalingType::kLinear;
  c.rope_scaling.factor = 3.0;
  auto t = ComputeRopeTable(c, nullptr, 1);
  ASSERT_TRUE(t.ok());
  ExpectUlpClose(t->inv_freq, {0.333333343f, 0.249964729f, 0.187447116f, 0.1405655f, 0.105409257f, 0.0790457875f, 0.059275981f, 0.0444507152f, 0.0333333351f, 0.0249964725f, 0.018744709f, 0.0140565494f, 0.0105409259f, 0.00790457893f, 0.0059275981f, 0.0044450718f, 0.00333333318f, 0.00249964744f, 0.00187447108f, 0.00140565494f, 0.00105409266f, 0.00079045794f, 0.00059275981f, 0.000444507139f, 0.000333333359f, 0.000249964738f, 0.000187447105f, 0.000140565491f, 0.000105409265f, 7.90457925e-05f, 5.92759789e-05f, 4.44507168e-05f}, 2);
  EXPECT_EQ(t->attention_scaling, 1.0f);
}

TEST(RopeTable, DynamicGrowsOnlyBeyondMaxPositions) {
  ModelConfig c = BaseConfig(32, 64, 10000.0);
  c.rope_scaling.type = RopeScalingType::kDynamic;
  c.rope_scaling.factor = 3.0;
  EXPECT_TRUE(RopeTableDependsOnSeqLen(c));
  auto grown = ComputeRopeTable(c, nullptr, 100);
  ASSERT_TRUE(grown.ok());
  ExpectUlpClose(grown->inv_freq, {1.0f, 0.52647382f, 0.277174652f, 0.145925209f, 0.0768257976f, 0.0404467694f, 0.0212941635f, 0.0112108206f, 0.0059022028f, 0.00310735521f, 0.00163594121f, 0.00086128019f, 0.000453441433f, 0.000238725042f, 0.000125682491f, 6.61685408e-05f}, 2);
  // At or below max_position_embeddings: the unscaled table.
  ModelConfig plain = BaseConfig(32, 64, 10000.0);
  auto base = ComputeRopeTable(plain, nullptr, 1);
  auto at_max = ComputeRopeTable(c, nullptr, 64);
  ASSERT_TRUE(base.ok() && at_max.ok());
  EXPECT_EQ(at_max->inv_freq, base->inv_freq);
  EXPECT_FALSE(RopeTableDependsOnSeqLen(plain));
}

TEST(RopeTable, DynamicUpdateRule) {
  // transformers: grow when a pass reaches beyond the cached length, reset to
  // the original table when a pass fits below max_position_embeddings again.
  const int64_t max_pos = 64;
  int64_t cached = max_pos;
  cached = NextDynamicRopeSeqLen(cached, 10, max_pos);
  EXPECT_EQ(cached, 64);
  cached = NextDynamicRopeSeqLen(cached, 100, max_pos);
  EXPECT_EQ(cached, 100);
  cached = NextDynamicRopeSeqLen(cached, 90, max_pos);  // shorter but still beyond: kept
  EXPECT_EQ(cached, 100);
  cached = NextDynamicRopeSeqLen(cached, 101, max_pos);
  EXPECT_EQ(cached, 101);
  cached = NextDynamicRopeSeqLen(cached, 64, max_pos);  // not below max: kept
  EXPECT_EQ(cached, 101);
  cached = NextDynamicRopeSeqLen(cached, 20, max_pos);  // back inside: reset
  EXPECT_EQ(cached, 64);
}

TEST(RopeTable, Llama3HeadDim128) {
  ModelConfig c = BaseConfig(128, 131072, 500000.0);
  c.rope_scaling.type = RopeScalingType::kLlama3;
  c.rope_scaling.factor = 8.0;
  c.rope_scaling.low_freq_factor = 1.0;
  c.rope_scaling.high_freq_factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 8192;
  auto t = ComputeRopeTable(c, nullptr, 1);
  ASSERT_TRUE(t.ok());
  ExpectUlpClose(t->inv_freq, {1.0f, 0.814617217f, 0.663601279f, 0.540580988f, 0.440366626f, 0.358730227f, 0.292227834f, 0.238053814f, 0.193922758f, 0.157972813f, 0.128687382f, 0.10483095f, 0.0853971019f, 0.0695659518f, 0.0566696189f, 0.0461640507f, 0.0376060307f, 0.0306345206f, 0.0249554086f, 0.0203291047f, 0.0165604409f, 0.0134904198f, 0.0109895291f, 0.00895225909f, 0.00729266508f, 0.00594073068f, 0.00483942125f, 0.00394227589f, 0.00321144611f, 0.00216657063f, 0.00137189368f, 0.00085675146f, 0.000524846022f, 0.00031269365f, 0.000178507791f, 9.55621217e-05f, 7.78465546e-05f, 6.34151438e-05f, 5.16590699e-05f, 4.20823671e-05f, 3.42810235e-05f, 2.79259093e-05f, 2.2748929e-05f, 1.85316694e-05f, 1.50962178e-05f, 1.22976389e-05f, 1.00178686e-05f, 8.1607277e-06f, 6.64786967e-06f, 5.41546933e-06f, 4.41153452e-06f, 3.59371188e-06f, 2.92749974e-06f, 2.38479174e-06f, 1.94269251e-06f, 1.58255079e-06f, 1.28917316e-06f, 1.05018262e-06f, 8.55496921e-07f, 6.96902532e-07f, 5.6770881e-07f, 4.6246538e-07f, 3.7673226e-07f, 3.06892588e-07f}, 2);
}

TEST(RopeTable, YarnWithMscaleNoTruncateAndBetas) {
  ModelConfig c = BaseConfig(64, 16384, 10000.0);
  c.rope_scaling.type = RopeScalingType::kYarn;
  c.rope_scaling.factor = 4.0;
  c.rope_scaling.original_max_position_embeddings = 4096;
  c.rope_scaling.mscale = 0.707;
  c.rope_scaling.mscale_all_dim = 1.0;
  c.rope_scaling.truncate = false;
  c.rope_scaling.beta_fast = 16.0;
  c.rope_scaling.beta_slow = 2.0;
  auto t = ComputeRopeTable(c, nullptr, 1);
  ASSERT_TRUE(t.ok());
  ExpectUlpClose(t->inv_freq, {1.0f, 0.749894202f, 0.562341332f, 0.421696514f, 0.316227764f, 0.237137362f, 0.177827939f, 0.133352146f, 0.100000001f, 0.0749894157f, 0.0562341288f, 0.0421696492f, 0.0316227786f, 0.0234195106f, 0.0157161225f, 0.0104010971f, 0.00676161889f, 0.00429203222f, 0.00263480213f, 0.00153805851f, 0.000825104478f, 0.000592843455f, 0.000444569858f, 0.000333380362f, 0.000250000012f, 0.000187473546f, 0.000140585325f, 0.000105424122f, 7.90569466e-05f, 5.92843462e-05f, 4.44569851e-05f, 3.33380376e-05f}, 2);
  EXPECT_NEAR(t->attention_scaling, 0.964326914892074, 1e-7);
}

TEST(RopeTable, YarnExplicitAttentionFactor) {
  ModelConfig c = BaseConfig(32, 8192, 1000000.0);
  c.rope_scaling.type = RopeScalingType::kYarn;
  c.rope_scaling.factor = 2.5;
  c.rope_scaling.original_max_position_embeddings = 2048;
  c.rope_scaling.attention_factor = 0.9;
  auto t = ComputeRopeTable(c, nullptr, 1);
  ASSERT_TRUE(t.ok());
  ExpectUlpClose(t->inv_freq, {1.0f, 0.421696514f, 0.177827939f, 0.0659906864f, 0.0240333118f, 0.00853453763f, 0.00292417477f, 0.000948549539f, 0.00039999999f, 0.000168678598f, 7.11311732e-05f, 2.99957683e-05f, 1.26491104e-05f, 5.33408547e-06f, 2.24936525e-06f, 9.48549484e-07f}, 2);
  EXPECT_NEAR(t->attention_scaling, 0.9, 1e-7);
}

TEST(RopeTable, GgufRopeFreqsDivideInvFreq) {
  ModelConfig c = BaseConfig(16, 2048, 10000.0);
  auto base = ComputeRopeTable(c, nullptr, 1);
  ASSERT_TRUE(base.ok());
  const std::vector<float> factors = {1.0f, 1.0f, 2.0f, 3.0f, 8.0f, 8.0f, 8.0f, 0.5f};
  auto scaled = ComputeRopeTable(c, factors.data(), 1);
  ASSERT_TRUE(scaled.ok());
  for (size_t i = 0; i < factors.size(); ++i) EXPECT_EQ(scaled->inv_freq[i], base->inv_freq[i] / factors[i]);
  const std::vector<float> bad = {1.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f, 1.0f};
  EXPECT_FALSE(ComputeRopeTable(c, bad.data(), 1).ok());
}

TEST(RopeTable, RejectsBadParameters) {
  ModelConfig odd = BaseConfig(15, 2048, 10000.0);
  EXPECT_EQ(ComputeRopeTable(odd, nullptr, 1).status().code(), StatusCode::kInvalidArgument);
  ModelConfig theta = BaseConfig(16, 2048, 0.0);
  EXPECT_FALSE(ComputeRopeTable(theta, nullptr, 1).ok());
  ModelConfig factor = BaseConfig(16, 2048, 10000.0);
  factor.rope_scaling.type = RopeScalingType::kLinear;
  factor.rope_scaling.factor = 0.0;
  EXPECT_FALSE(ComputeRopeTable(factor, nullptr, 1).ok());
  ModelConfig llama3 = BaseConfig(16, 2048, 10000.0);
  llama3.rope_scaling.type = RopeScalingType::kLlama3;
  llama3.rope_scaling.factor = 8.0;
  llama3.rope_scaling.low_freq_factor = 4.0;
  llama3.rope_scaling.high_freq_factor = 4.0;  // equal: division by zero in transformers
  EXPECT_FALSE(ComputeRopeTable(llama3, nullptr, 1).ok());
}

}  // namespace
}  // namespace lserve
