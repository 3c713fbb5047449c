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

// ---- int8 GEMM (QLinear) ----

// Quantized x rows: codes of kernel `q` (q.code_bytes each), row stride lda bytes, Kp codes per row
// (K rounded up to q.kg; the padding codes are 0). Packed W: panel p of q.nr columns at
// packed + p*Kp*nr; in it, k-group g (q.kg consecutive k) at + g*kg*nr, column j's kg codes at
// + j*kg (zero past N and past K). comp, scale and bias are padded to npanels*nr entries.
struct QGemmArgs {
  const uint8_t* a;
  int64_t lda;
  const int8_t* packed;
  int64_t Kp;
  int64_t N;
  const int32_t* comp;  // subtracted from the int32 sums (128 * column sums of W) or null
  const float* scale;   // x_scale * w_scale[n]
  const float* bias;    // or null
  float* c;             // y [M, N], row stride ldc
  int64_t ldc;
  int32_t act;  // Activation
  // Cross epilogue when x0 is set: c = x0 * (acc * scale + bias) + xl (act must be kNone).
  const float* x0;
  int64_t ld0;
  const float* xl;
  int64_t ldl;
};

struct QGemmKernel {
  const char* name;    // the ISA part of QLinear::name, e.g. "avx512vnni"
  int32_t mr;          // rows per micro-kernel call
  int32_t nr;          // panel width (columns)
  int32_t kg;          // k values per packed group
  int32_t code_bytes;  // bytes per quantized x code (1: int8 / uint8, 2: int16)
  int32_t u8;          // 1: codes are q + 128 (uint8) and comp must be set
  int32_t needs_vnni;  // 1: runs only where Cpu().avx512_vnni
  // Writes rows [0, rows) of x (row stride ldx floats, K values) as codes into out (row stride
  // ldo bytes, Kp codes, zero past K): q = clamp(nearbyint(x / x_scale), -127, 127).
  void (*quantize)(const float* x, int64_t ldx, int64_t rows, int64_t K, int64_t Kp, float x_scale,
                   uint8_t* out, int64_t ldo);
  // Computes rows [m0, m1) x panels [p0, p1) of y from the quantized rows in g.a.
  void (*gemm)(const QGemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1);
};

// Dequantizes one embedding row: out[d] = fma(float(code[d]), scale, bias) (one rounding, so it
// matches the reference bit for bit: quant_format.h). int8: codes are D bytes; int4: ceil(D/2)
// bytes of nibble pairs. The row's scale / bias bytes follow the codes, so a kernel may read up to
// 8 bytes past code d (int8) or 4 bytes past byte d/2 (int4) while d < D.
using DequantRowFn = void (*)(const uint8_t* codes, int64_t D, float scale, float bias, float* out);
// fm_row on quantized rows: rows[f] points at field f's codes (int8 or int4 as DequantRowFn),
// scale[f] / bias[f] are its scale and bias as floats. Dequantizes as DequantRowFn into out
// (F*D floats; skipped when null) and returns the FM term, bit for bit what fm_row returns on the
// dequantized floats.
using FmRowQuantFn = float (*)(const uint8_t* const* rows, const float* scale, const float* bias,
                               int64_t F, int64_t D, float* out);

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
  DequantRowFn dequant_int8;
  DequantRowFn dequant_int4;
  FmRowQuantFn fm_row_int8;
  FmRowQuantFn fm_row_int4;
  // The int8 GEMM of this ISA; when it needs VNNI and the CPU lacks it, Avx2Kernels()'s is used.
  const QGemmKernel* qgemm;
};

const KernelTable& GenericKernels();
// Null when the build has no such variant.
const KernelTable* Avx2Kernels();
const KernelTable* Avx512Kernels();

// The table ActiveIsa() names.
const KernelTable& ActiveKernels();

}  // namespace clickrt::kernels::fast::detail
