// A stored tensor, viewed in place: name, element type, shape and bytes.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace lserve {

struct TensorInfo {
  // Hugging Face parameter name ("model.layers.0.self_attn.q_proj.weight"),
  // also for GGUF files, whose names are mapped on load.
  std::string name;
  DType dtype = DType::kF32;
  // Outermost dimension first, as torch prints it ([out_features, in_features]
  // for a linear weight). For GGUF this is ggml's ne[] reversed.
  std::vector<int64_t> shape;
  // The tensor's bytes: memory-mapped from the file, or owned by the
  // ModelSource when the loader had to rewrite them (GGUF Q/K rows).
  std::span<const uint8_t> data;
  std::string file;  // the file it came from (for error messages)

  int64_t num_elements() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

}  // namespace lserve
