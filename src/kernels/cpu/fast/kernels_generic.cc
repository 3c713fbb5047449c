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

const KernelTable kTable = {0, "generic", kNr, kMr, Gemm, SmallN, FmRow};

}  // namespace

const KernelTable& GenericKernels() { return kTable; }

}  // namespace clickrt::kernels::fast::detail
