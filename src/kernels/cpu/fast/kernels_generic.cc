// Portable kernels: plain C++ that the compiler vectorizes for the baseline ISA. They run
// wherever the AVX2 / AVX-512 variants cannot, and have the same packed-weight layout idea
// (panels of kNr columns).
#include "kernels/cpu/fast/kernel_table.h"

namespace clickrt::kernels::fast::detail {

namespace {

constexpr int kNr = 16;
constexpr int kMr = 4;

inline float Sigmoid(float v) {
  return v >= 0.f ? 1.f / (1.f + __builtin_expf(-v))
                  : __builtin_expf(v) / (1.f + __builtin_expf(v));
}

// The bias and Cross / activation epilogue of one element.
inline float Epilogue(const GemmArgs& g, int64_t m, int64_t n, float v) {
  if (g.bias) v += g.bias[n];
  if (g.x0) return g.x0[m * g.ld0 + n] * v + g.xl[m * g.ldl + n];
  if (g.act == 1) return v > 0.f ? v : 0.f;
  if (g.act == 2) return Sigmoid(v);
  return v;
}

void Gemm(const GemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  for (int64_t m = m0; m < m1; m += kMr) {
    const int mr = m1 - m < kMr ? static_cast<int>(m1 - m) : kMr;
    for (int64_t p = p0; p < p1; ++p) {
      const float* b = g.packed + p * g.K * kNr;
      const int64_t n0 = p * kNr;
      const int nc = g.N - n0 < kNr ? static_cast<int>(g.N - n0) : kNr;
      float acc[kMr][kNr] = {};
      for (int64_t k = 0; k < g.K; ++k) {
        const float* bk = b + k * kNr;
        for (int i = 0; i < mr; ++i) {
          const float av = g.a[(m + i) * g.lda + k];
          for (int j = 0; j < kNr; ++j) acc[i][j] += av * bk[j];
        }
      }
      for (int i = 0; i < mr; ++i) {
        float* c = g.c + (m + i) * g.ldc + n0;
        for (int j = 0; j < nc; ++j) c[j] = Epilogue(g, m + i, n0 + j, acc[i][j]);
      }
    }
  }
}

void SmallN(const GemmArgs& g, int64_t m0, int64_t m1) {
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = g.a + m * g.lda;
    for (int64_t n = 0; n < g.N; ++n) {
      const float* w = g.wt + n * g.ldwt;
      float acc[8] = {};
      int64_t k = 0;
      for (; k + 8 <= g.K; k += 8)
        for (int j = 0; j < 8; ++j) acc[j] += x[k + j] * w[k + j];
      for (; k < g.K; ++k) acc[0] += x[k] * w[k];
      float s = 0.f;
      for (float v : acc) s += v;
      g.c[m * g.ldc + n] = Epilogue(g, m, n, s);
    }
  }
}

float FmRow(const float* const* rows, int64_t F, int64_t D, float* out) {
  float total = 0.f;
  for (int64_t d = 0; d < D; ++d) {
    float s = 0.f, q = 0.f;
    for (int64_t f = 0; f < F; ++f) {
      const float e = rows[f][d];
      if (out) out[f * D + d] = e;
      s += e;
      q += e * e;
    }
    total += s * s - q;
  }
  return 0.5f * total;
}

// ---- int8: signed codes, one k per group, panels of kNr columns.

inline float QEpilogue(const QGemmArgs& g, int64_t m, int64_t n, int32_t acc) {
  float v = static_cast<float>(acc) * g.scale[n];
  if (g.bias) v += g.bias[n];
  if (g.x0) return g.x0[m * g.ld0 + n] * v + g.xl[m * g.ldl + n];
  if (g.act == 1) return v > 0.f ? v : 0.f;
  if (g.act == 2) return Sigmoid(v);
  return v;
}

void QuantizeRows(const float* x, int64_t ldx, int64_t rows, int64_t K, int64_t Kp, float x_scale,
                  uint8_t* out, int64_t ldo) {
  for (int64_t r = 0; r < rows; ++r) {
    uint8_t* o = out + r * ldo;
    for (int64_t k = 0; k < K; ++k) {
      float v = x[r * ldx + k] / x_scale;
      v = v > -128.f ? v : -128.f;
      v = v < 127.f ? v : 127.f;
      o[k] = static_cast<uint8_t>(static_cast<int8_t>(__builtin_nearbyintf(v)));
    }
    for (int64_t k = K; k < Kp; ++k) o[k] = 0;
  }
}

void QGemm(const QGemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  for (int64_t m = m0; m < m1; m += kMr) {
    const int mr = m1 - m < kMr ? static_cast<int>(m1 - m) : kMr;
    for (int64_t p = p0; p < p1; ++p) {
      const int8_t* b = g.packed + p * g.Kp * kNr;
      const int64_t n0 = p * kNr;
      const int nc = g.N - n0 < kNr ? static_cast<int>(g.N - n0) : kNr;
      int32_t acc[kMr][kNr] = {};
      for (int64_t k = 0; k < g.Kp; ++k) {
        const int8_t* bk = b + k * kNr;
        for (int i = 0; i < mr; ++i) {
          const int32_t av = static_cast<int8_t>(g.a[(m + i) * g.lda + k]);
          for (int j = 0; j < kNr; ++j) acc[i][j] += av * bk[j];
        }
      }
      for (int i = 0; i < mr; ++i) {
        float* c = g.c + (m + i) * g.ldc + n0;
        for (int j = 0; j < nc; ++j) c[j] = QEpilogue(g, m + i, n0 + j, acc[i][j]);
      }
    }
  }
}

const QGemmKernel kQGemm = {"generic_qgemm", kMr, kNr, 1, 1, 0, 0, QuantizeRows, QGemm};

void DequantInt8(const uint8_t* codes, int64_t D, float scale, float bias, float* out) {
  for (int64_t d = 0; d < D; ++d)
    out[d] = __builtin_fmaf(static_cast<float>(codes[d]), scale, bias);
}

void DequantInt4(const uint8_t* codes, int64_t D, float scale, float bias, float* out) {
  for (int64_t d = 0; d < D; ++d) {
    const int c = d % 2 ? codes[d / 2] >> 4 : codes[d / 2] & 0x0f;
    out[d] = __builtin_fmaf(static_cast<float>(c), scale, bias);
  }
}

float FmRowInt8(const uint8_t* const* rows, const float* scale, const float* bias, int64_t F,
                int64_t D, float* out) {
  float total = 0.f;
  for (int64_t d = 0; d < D; ++d) {
    float s = 0.f, q = 0.f;
    for (int64_t f = 0; f < F; ++f) {
      const float e = __builtin_fmaf(static_cast<float>(rows[f][d]), scale[f], bias[f]);
      if (out) out[f * D + d] = e;
      s += e;
      q += e * e;
    }
    total += s * s - q;
  }
  return 0.5f * total;
}

float FmRowInt4(const uint8_t* const* rows, const float* scale, const float* bias, int64_t F,
                int64_t D, float* out) {
  float total = 0.f;
  for (int64_t d = 0; d < D; ++d) {
    float s = 0.f, q = 0.f;
    for (int64_t f = 0; f < F; ++f) {
      const int c = d % 2 ? rows[f][d / 2] >> 4 : rows[f][d / 2] & 0x0f;
      const float e = __builtin_fmaf(static_cast<float>(c), scale[f], bias[f]);
      if (out) out[f * D + d] = e;
      s += e;
      q += e * e;
    }
    total += s * s - q;
  }
  return 0.5f * total;
}

const KernelTable kTable = {0,     "generic",   kNr,         kMr,       Gemm,      SmallN,
                            FmRow, DequantInt8, DequantInt4, FmRowInt8, FmRowInt4, &kQGemm};

}  // namespace

const KernelTable& GenericKernels() { return kTable; }

}  // namespace clickrt::kernels::fast::detail
