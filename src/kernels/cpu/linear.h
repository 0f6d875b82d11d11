// Fast CPU linear kernel: same contract and params as kernels/ref/linear.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/ref/linear.h"

namespace lserve {

// The two ways LinearCpu computes y = x w^T:
// - kGemv: streams each weight row once in its stored format, converting
//   32-element chunks in registers and reusing them for up to 4 rows of x;
//   best when m is small (decode), where reading the weights dominates;
// - kGemm: dequantizes tiles of weight rows to f32 and runs sgemm (OpenBLAS,
//   one thread per slice of output rows); best for many rows (prefill).
enum class LinearAlgo { kGemv, kGemm };

// The algorithm LinearCpu uses for these shapes: a pure function, picked by
// measurement (bench/kernels: the GEMV's cost per row of x stays flat while
// sgemm's efficiency grows with m; they cross at m = 8 for the 4-bit and
// 6-bit types, 12 for Q8_0, 16-24 for f32/f16/bf16).
LinearAlgo ChooseLinearAlgo(int64_t m, int64_t n, int64_t k, DType w_dtype);

void LinearCpu(const LinearParams& p, ThreadPool& pool);

// LinearCpu with the algorithm forced (conformance tests and benchmarks).
void LinearCpuWithAlgo(const LinearParams& p, LinearAlgo algo, ThreadPool& pool);

}  // namespace lserve
