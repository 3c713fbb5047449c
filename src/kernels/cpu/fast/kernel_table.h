// The per-ISA kernel table behind fast_kernels.h (internal to src/kernels/cpu/fast/).
//
// Each kernels_<isa>.cc defines one KernelTable. The files compiled for AVX2 / AVX-512 mark every
// function with __attribute__((target)); they include only this header and <immintrin.h> and use
// no std templates, so no inline function compiled for a wide ISA can be picked by the linker for
// code that runs on a narrower CPU.
#pragma once

#include <cstdint>

namespace clickrt::kernels::fast::detail {

// Packed weights: W [K, N] is cut into panels of `nr` columns; panel p holds
// W[k][p*nr + j] at packed[p*K*nr + k*nr + j] (zero beyond N). The bias, if any, is padded to
// npanels*nr floats.
struct GemmArgs {
  const float* a;  // x [M, K], row stride lda
  int64_t lda;
  const float* packed;  // packed W
  const float* bias;    // padded bias or null
  int64_t K;
  int64_t N;
  float* c;  // y [M, N], row stride ldc
  int64_t ldc;
  int32_t act;  // Activation
  // Cross epilogue when x0 is set: c = x0 * (acc + bias) + xl (act must be kNone).
  const float* x0;
  int64_t ld0;
  const float* xl;
  int64_t ldl;
  // W transposed, [N, ldwt] (ldwt >= K, rows 64-byte aligned, zero past K): set when N is small
  // enough for small_n.
  const float* wt;
  int64_t ldwt;
};

// N at or below this uses small_n: dot products along K, one row of x at a time.
constexpr int64_t kSmallN = 4;

// One row of a fused embedding + FM pass: rows[f] points at field f's D floats in the table.
// Copies them to out (F*D floats; skipped when out is null) and returns the FM second-order term
// 0.5 * sum_d((sum_f e)^2 - sum_f e^2).
using FmRowFn = float (*)(const float* const* rows, int64_t F, int64_t D, float* out);

struct KernelTable {
  int32_t isa;  // Isa
  const char* name;
  int32_t nr;  // panel width (floats) of the packed weights
  int32_t mr;  // rows per micro-kernel call
  // Computes rows [m0, m1) x panels [p0, p1) of y.
  void (*gemm)(const GemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1);
  // Rows [m0, m1) for N <= kSmallN, from g.wt.
  void (*small_n)(const GemmArgs& g, int64_t m0, int64_t m1);
  FmRowFn fm_row;
};

const KernelTable& GenericKernels();
// Null when the build has no such variant.
const KernelTable* Avx2Kernels();
const KernelTable* Avx512Kernels();

// The table ActiveIsa() names.
const KernelTable& ActiveKernels();

}  // namespace clickrt::kernels::fast::detail
