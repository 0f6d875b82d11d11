// Fast CPU linear kernel: same contract and params as kernels/ref/linear.h
// (which documents the shapes), threaded over the pool, AVX2/FMA where the
// machine has them.
//
// Batch-invariant: row i of y is a function of row i of x, the weights and
// the bias only. It has the same bits whatever m, whatever the other rows of
// x, the thread count of the pool or the LinearAlgo used (the m = 1 result is
// the result). The summation order differs from LinearRef's.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/thread_pool.h"
#include "kernels/ref/linear.h"

namespace lserve {

// The two ways LinearCpu computes y = x w^T, with identical results:
// - kGemv: streams each weight row in its stored format, converting 32-element
//   chunks in registers for every group of up to 4 rows of x; best when m is
//   small (decode), where reading the weights dominates;
// - kGemm: converts panels of weight rows to f32 once and applies them to all
//   rows of x in 4 x 3 register tiles; best for many rows (prefill).
enum class LinearAlgo { kGemv, kGemm };

// The algorithm LinearCpu uses for these shapes: a pure function, picked by
// measurement (bench/kernels: the GEMV's cost per row of x stays flat while
// the GEMM amortises its conversion over the rows).
LinearAlgo ChooseLinearAlgo(int64_t m, int64_t n, int64_t k, DType w_dtype);

void LinearCpu(const LinearParams& p, ThreadPool& pool);

// LinearCpu with the algorithm forced (conformance tests and benchmarks).
void LinearCpuWithAlgo(const LinearParams& p, LinearAlgo algo, ThreadPool& pool);

}  // namespace lserve
