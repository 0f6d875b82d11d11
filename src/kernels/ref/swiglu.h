// SwiGLU activation of the Llama MLP: out = silu(gate) * up, silu(x) = x / (1 + exp(-x)).
#pragma once

#include <cstdint>

namespace lserve {

struct SwigluParams {
  const float* gate;  // [m, inter] f32
  const float* up;    // [m, inter] f32
  float* out;         // [m, inter] f32; may alias gate or up
  int64_t m, inter;
};

void SwigluRef(const SwigluParams& p);

}  // namespace lserve
