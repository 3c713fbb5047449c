// Portable kernels: plain C++ that the compiler vectorizes for the baseline ISA. They run
// wherever the AVX2 / AVX-512 variants cannot, and have the same packed-weight layout idea
// (panels of kNr columns).
#include "kernels/cpu/fast/kernel_table.h"

namespace clickrt::kernels::fast::detail {

namespace {

constexpr int kNr = 16;
constexpr int kMr = 4;

inline float Sigmoid(float v) {
  return v >= 0.f ? 1.f / (1.f + __builtin_expf(-v)) : __builtin_expf(v) / (1.f + __builtin_expf(v));
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
        for (int j = 0; j < nc; ++j) {
          float v = acc[i][j];
          if (g.bias) v += g.bias[n0 + j];
          if (g.x0) {
            v = g.x0[(m + i) * g.ld0 + n0 + j] * v + g.xl[(m + i) * g.ldl + n0 + j];
          } else if (g.act == 1) {
            v = v > 0.f ? v : 0.f;
          } else if (g.act == 2) {
            v = Sigmoid(v);
          }
          c[j] = v;
        }
      }
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

const KernelTable kTable = {0, "generic", kNr, kMr, Gemm, FmRow};

}  // namespace

const KernelTable& GenericKernels() { return kTable; }

}  // namespace clickrt::kernels::fast::detail
