#include "kernels/ref/rope_table.h"

#include <algorithm>
#include <cmath>
#include <numbers>
#include <string>

namespace lserve {
namespace {

// transformers computes the tables with f32 tensors and Python (f64)
// scalars. Each helper below is one torch op on an f32 tensor: the scalar is
// rounded to f32 first and the op's result is rounded once to f32.
// `scalar / tensor` is Tensor.__rtruediv__ = reciprocal(tensor) * scalar.
float F32(double v) { return static_cast<float>(v); }
float RDiv(double scalar, float t) { return (1.0f / t) * F32(scalar); }
float PowF32(float base, float exponent) {
  return F32(std::pow(static_cast<double>(base), static_cast<double>(exponent)));
}

// base ** (arange(0, dim, 2).float() / dim): the unscaled frequencies' denominators.
std::vector<float> PosFreqs(float base, int64_t dim) {
  std::vector<float> out(dim / 2);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float exponent = static_cast<float>(2 * i) / static_cast<float>(dim);
    out[i] = PowF32(base, exponent);
  }
  return out;
}

std::vector<float> DefaultInvFreq(double theta, int64_t dim) {
  std::vector<float> inv = PosFreqs(F32(theta), dim);
  for (float& f : inv) f = RDiv(1.0, f);
  return inv;
}

void ApplyLlama3(const RopeScaling& rs, int64_t original_max, std::vector<float>& inv_freq) {
  const float factor = F32(rs.factor);
  const double low_freq_wavelen = static_cast<double>(original_max) / rs.low_freq_factor;
  const double high_freq_wavelen = static_cast<double>(original_max) / rs.high_freq_factor;
  for (float& f : inv_freq) {
    const float wavelen = RDiv(2.0 * std::numbers::pi, f);
    // torch.where(wavelen > low_freq_wavelen, inv_freq / factor, inv_freq); the comparison
    // is made in f32.
    const float llama = wavelen > F32(low_freq_wavelen) ? f / factor : f;
    const float smooth = (RDiv(static_cast<double>(original_max), wavelen) - F32(rs.low_freq_factor)) /
                         F32(rs.high_freq_factor - rs.low_freq_factor);
    const float smoothed = (1.0f - smooth) * llama / factor + smooth * llama;
    const bool is_medium = !(wavelen < F32(high_freq_wavelen)) && !(wavelen > F32(low_freq_wavelen));
    f = is_medium ? smoothed : llama;
  }
}

double YarnMscale(double scale, double mscale) {
  if (scale <= 1.0) return 1.0;
  return 0.1 * mscale * std::log(scale) + 1.0;
}

// _compute_yarn_parameters; returns the attention factor.
double ApplyYarn(const RopeScaling& rs, double theta, int64_t dim, int64_t original_max,
                 std::vector<float>& inv_freq) {
  const double factor = rs.factor;
  double attention_factor;
  if (rs.attention_factor.has_value()) {
    attention_factor = *rs.attention_factor;
  } else if (rs.mscale != 0.0 && rs.mscale_all_dim != 0.0) {
    attention_factor = YarnMscale(factor, rs.mscale) / YarnMscale(factor, rs.mscale_all_dim);
  } else {
    attention_factor = YarnMscale(factor, 1.0);
  }
  const double beta_fast = rs.beta_fast != 0.0 ? rs.beta_fast : 32.0;  // `or 32`
  const double beta_slow = rs.beta_slow != 0.0 ? rs.beta_slow : 1.0;   // `or 1`
  auto correction_dim = [&](double num_rotations) {
    return (static_cast<double>(dim) * std::log(static_cast<double>(original_max) / (num_rotations * 2.0 * std::numbers::pi))) /
           (2.0 * std::log(theta));
  };
  double low = correction_dim(beta_fast);
  double high = correction_dim(beta_slow);
  if (rs.truncate) {
    low = std::floor(low);
    high = std::ceil(high);
  }
  low = std::max(low, 0.0);
  high = std::min(high, static_cast<double>(dim - 1));
  if (low == high) high += 0.001;  // transformers' guard against a zero-width ramp

  const std::vector<float> pos_freqs = PosFreqs(F32(theta), dim);
  const float f32_factor = F32(factor);
  for (int64_t i = 0; i < dim / 2; ++i) {
    const float extrapolation = RDiv(1.0, pos_freqs[i]);
    const float interpolation = RDiv(1.0, f32_factor * pos_freqs[i]);
    const float linear = (static_cast<float>(i) - F32(low)) / F32(high - low);
    const float ramp = std::clamp(linear, 0.0f, 1.0f);
    const float extrapolation_factor = 1.0f - ramp;
    inv_freq[i] = interpolation * (1.0f - extrapolation_factor) + extrapolation * extrapolation_factor;
  }
  return attention_factor;
}

}  // namespace

bool RopeTableDependsOnSeqLen(const ModelConfig& config) {
  return config.rope_scaling.type == RopeScalingType::kDynamic;
}

int64_t NextDynamicRopeSeqLen(int64_t cached_seq_len, int64_t pass_seq_len, int64_t max_position_embeddings) {
  if (pass_seq_len > cached_seq_len) return pass_seq_len;
  if (pass_seq_len < max_position_embeddings && cached_seq_len > max_position_embeddings) {
    return max_position_embeddings;
  }
  return cached_seq_len;
}

Result<RopeTable> ComputeRopeTable(const ModelConfig& config, const float* gguf_rope_freqs, int64_t seq_len) {
  const int64_t dim = config.head_dim > 0 ? config.head_dim
                      : config.num_attention_heads > 0 ? config.hidden_size / config.num_attention_heads
                                                       : 0;
  if (dim <= 0 || dim % 2 != 0) {
    return InvalidArgument("rope: head_dim must be even and positive, got " + std::to_string(dim));
  }
  if (!(config.rope_theta > 0.0) || !std::isfinite(config.rope_theta)) {
    return InvalidArgument("rope: rope_theta must be positive and finite");
  }
  const RopeScaling& rs = config.rope_scaling;
  if (rs.type != RopeScalingType::kNone && (!(rs.factor > 0.0) || !std::isfinite(rs.factor))) {
    return InvalidArgument("rope: scaling factor must be positive and finite");
  }
  const int64_t original_max =
      rs.original_max_position_embeddings > 0 ? rs.original_max_position_embeddings : config.max_position_embeddings;

  RopeTable table;
  switch (rs.type) {
    case RopeScalingType::kNone:
      table.inv_freq = DefaultInvFreq(config.rope_theta, dim);
      break;
    case RopeScalingType::kLinear:
      table.inv_freq = DefaultInvFreq(config.rope_theta, dim);
      for (float& f : table.inv_freq) f /= F32(rs.factor);
      break;
    case RopeScalingType::kLlama3:
      if (original_max <= 0 || !(rs.high_freq_factor != rs.low_freq_factor) || !(rs.low_freq_factor > 0.0) ||
          !(rs.high_freq_factor > 0.0)) {
        return InvalidArgument("rope: llama3 scaling needs original_max_position_embeddings > 0 and "
                               "distinct positive low/high frequency factors");
      }
      table.inv_freq = DefaultInvFreq(config.rope_theta, dim);
      ApplyLlama3(rs, original_max, table.inv_freq);
      break;
    case RopeScalingType::kDynamic: {
      const int64_t max_pos = config.max_position_embeddings;
      if (max_pos <= 0 || dim <= 2) {
        return InvalidArgument("rope: dynamic scaling needs max_position_embeddings > 0 and head_dim > 2");
      }
      if (seq_len <= max_pos) {
        // Init path (Python scalars): the factor term is exactly 1, the base unchanged.
        table.inv_freq = DefaultInvFreq(config.rope_theta, dim);
      } else {
        // Update path: seq_len is an int64 tensor, so the new base is an f32 tensor:
        // base * ((factor * seq_len / max_pos) - (factor - 1)) ** (dim / (dim - 2)).
        const float ratio = (F32(rs.factor) * static_cast<float>(seq_len)) / static_cast<float>(max_pos);
        const float grown = ratio - F32(rs.factor - 1.0);
        const float base = F32(config.rope_theta) * PowF32(grown, F32(static_cast<double>(dim) / (dim - 2)));
        table.inv_freq = PosFreqs(base, dim);
        for (float& f : table.inv_freq) f = RDiv(1.0, f);
      }
      break;
    }
    case RopeScalingType::kYarn: {
      if (original_max <= 0) return InvalidArgument("rope: yarn scaling needs original_max_position_embeddings > 0");
      table.inv_freq.assign(dim / 2, 0.0f);
      table.attention_scaling = F32(ApplyYarn(rs, config.rope_theta, dim, original_max, table.inv_freq));
      if (!std::isfinite(table.attention_scaling)) return InvalidArgument("rope: yarn attention factor is not finite");
      break;
    }
  }
  if (gguf_rope_freqs != nullptr) {
    for (int64_t i = 0; i < dim / 2; ++i) {
      if (!(gguf_rope_freqs[i] > 0.0f) || !std::isfinite(gguf_rope_freqs[i])) {
        return InvalidArgument("rope: rope_freqs factors must be positive and finite");
      }
      table.inv_freq[i] /= gguf_rope_freqs[i];
    }
  }
  return table;
}

}  // namespace lserve
