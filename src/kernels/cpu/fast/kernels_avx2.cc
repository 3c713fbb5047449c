// AVX2 + FMA kernels. Every function carries the target attribute; see kernel_table.h for why
// this file uses no std templates.
#include <immintrin.h>

#include "kernels/cpu/fast/kernel_table.h"

#define CLICKRT_AVX2 __attribute__((target("avx2,fma")))
#define CLICKRT_AVX2_INLINE CLICKRT_AVX2 __attribute__((always_inline)) inline

namespace clickrt::kernels::fast::detail {

namespace {

constexpr int kV = 8;          // floats per vector
constexpr int kNv = 3;         // vectors per panel
constexpr int kNr = kV * kNv;  // panel width
constexpr int64_t kMc = 96;    // rows per chunk (measured: 48 and 192 were slower)
constexpr int kMr = 4;         // rows per micro-kernel: 4 x 3 accumulators + 3 B + 1 A = 16 ymm

inline float Sigmoid(float v) {
  return v >= 0.f ? 1.f / (1.f + __builtin_expf(-v))
                  : __builtin_expf(v) / (1.f + __builtin_expf(v));
}

inline float ScalarEpilogue(const GemmArgs& g, int64_t m, int64_t n, float v) {
  if (g.bias) v += g.bias[n];
  if (g.x0) return g.x0[m * g.ld0 + n] * v + g.xl[m * g.ldl + n];
  if (g.act == 1) return v > 0.f ? v : 0.f;
  if (g.act == 2) return Sigmoid(v);
  return v;
}

// Lane mask with the first `n` (0..8) lanes set.
CLICKRT_AVX2_INLINE __m256i TailMask(int n) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

CLICKRT_AVX2_INLINE void Store(const GemmArgs& g, int64_t row, int64_t n, __m256 r, bool full,
                               __m256i mask) {
  if (g.bias) r = _mm256_add_ps(r, _mm256_load_ps(g.bias + n));
  float* c = g.c + row * g.ldc + n;
  if (g.x0) {
    const float* p0 = g.x0 + row * g.ld0 + n;
    const float* pl = g.xl + row * g.ldl + n;
    const __m256 x0 = full ? _mm256_loadu_ps(p0) : _mm256_maskload_ps(p0, mask);
    const __m256 xl = full ? _mm256_loadu_ps(pl) : _mm256_maskload_ps(pl, mask);
    r = _mm256_fmadd_ps(x0, r, xl);
  } else if (g.act == 1) {
    r = _mm256_max_ps(r, _mm256_setzero_ps());
  } else if (g.act == 2) {
    alignas(32) float t[kV];
    _mm256_store_ps(t, r);
    for (int j = 0; j < kV; ++j) t[j] = Sigmoid(t[j]);
    r = _mm256_load_ps(t);
  }
  if (full) {
    _mm256_storeu_ps(c, r);
  } else {
    _mm256_maskstore_ps(c, mask, r);
  }
}

// Rows [m, m+MR) x one panel of NV vectors; the last one holds `rem` (1..8) valid columns.
template <int MR, int NV>
CLICKRT_AVX2 void Micro(const GemmArgs& g, int64_t m, const float* b, int64_t n0, int rem) {
  constexpr int KU = MR * NV < 6 ? 2 : 1;
  __m256 c[KU][MR][NV];
#pragma GCC unroll 16
  for (int u = 0; u < KU; ++u)
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) c[u][i][v] = _mm256_setzero_ps();
  const float* a = g.a + m * g.lda;
  const int64_t lda = g.lda, K = g.K;
  int64_t k = 0;
  for (; k + KU <= K; k += KU) {
#pragma GCC unroll 16
    for (int u = 0; u < KU; ++u) {
      __m256 bv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = _mm256_load_ps(b + (k + u) * kNr + v * kV);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m256 av = _mm256_broadcast_ss(a + i * lda + k + u);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) c[u][i][v] = _mm256_fmadd_ps(av, bv[v], c[u][i][v]);
      }
    }
  }
  for (; k < K; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m256 av = _mm256_broadcast_ss(a + i * lda + k);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v)
        c[0][i][v] = _mm256_fmadd_ps(av, _mm256_load_ps(b + k * kNr + v * kV), c[0][i][v]);
    }
  }
  const __m256i mask = TailMask(rem);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      __m256 r = c[0][i][v];
#pragma GCC unroll 16
      for (int u = 1; u < KU; ++u) r = _mm256_add_ps(r, c[u][i][v]);
      Store(g, m + i, n0 + v * kV, r, v < NV - 1 || rem == kV, mask);
    }
  }
}

template <int MR>
CLICKRT_AVX2 void MicroNv(const GemmArgs& g, int64_t m, int64_t p) {
  const int64_t n0 = p * kNr;
  const int64_t nc = g.N - n0 < kNr ? g.N - n0 : kNr;
  const int nv = static_cast<int>((nc + kV - 1) / kV);
  const int rem = static_cast<int>(nc - (nv - 1) * kV);
  const float* b = g.packed + p * g.K * kNr;
  switch (nv) {
    case 1:
      Micro<MR, 1>(g, m, b, n0, rem);
      break;
    case 2:
      Micro<MR, 2>(g, m, b, n0, rem);
      break;
    default:
      Micro<MR, 3>(g, m, b, n0, rem);
      break;
  }
}

CLICKRT_AVX2 void Gemm(const GemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  // Row chunks of kMc rows (their x stays in L2) x panels (one panel of W stays in L1 / L2 while
  // the chunk's row blocks pass over it).
  for (int64_t mc = m0; mc < m1; mc += kMc) {
    const int64_t mc_end = m1 - mc < kMc ? m1 : mc + kMc;
    for (int64_t p = p0; p < p1; ++p) {
      for (int64_t m = mc; m < mc_end; m += kMr) {
        switch (mc_end - m < kMr ? mc_end - m : kMr) {
          case 1:
            MicroNv<1>(g, m, p);
            break;
          case 2:
            MicroNv<2>(g, m, p);
            break;
          case 3:
            MicroNv<3>(g, m, p);
            break;
          default:
            MicroNv<4>(g, m, p);
            break;
        }
      }
    }
  }
}

CLICKRT_AVX2_INLINE float HorizontalSum(__m256 v) {
  __m128 h = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  h = _mm_add_ps(h, _mm_movehl_ps(h, h));
  h = _mm_add_ss(h, _mm_movehdup_ps(h));
  return _mm_cvtss_f32(h);
}

// N <= kSmallN: per row, N dot products along K (two accumulators each), scalar epilogue.
template <int N>
CLICKRT_AVX2 void SmallNRows(const GemmArgs& g, int64_t m0, int64_t m1) {
  const int64_t K = g.K;
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = g.a + m * g.lda;
    __m256 acc[N][2];
#pragma GCC unroll 16
    for (int n = 0; n < N; ++n) acc[n][0] = acc[n][1] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 2 * kV <= K; k += 2 * kV) {
      const __m256 x0 = _mm256_loadu_ps(x + k), x1 = _mm256_loadu_ps(x + k + kV);
#pragma GCC unroll 16
      for (int n = 0; n < N; ++n) {
        acc[n][0] = _mm256_fmadd_ps(x0, _mm256_load_ps(g.wt + n * g.ldwt + k), acc[n][0]);
        acc[n][1] = _mm256_fmadd_ps(x1, _mm256_load_ps(g.wt + n * g.ldwt + k + kV), acc[n][1]);
      }
    }
    for (; k < K; k += kV) {  // wt is zero-padded past K; x is masked
      const int rem = static_cast<int>(K - k >= kV ? kV : K - k);
      const __m256 x0 = _mm256_maskload_ps(x + k, TailMask(rem));
#pragma GCC unroll 16
      for (int n = 0; n < N; ++n)
        acc[n][0] = _mm256_fmadd_ps(x0, _mm256_load_ps(g.wt + n * g.ldwt + k), acc[n][0]);
    }
#pragma GCC unroll 16
    for (int n = 0; n < N; ++n) {
      const float v = HorizontalSum(_mm256_add_ps(acc[n][0], acc[n][1]));
      g.c[m * g.ldc + n] = ScalarEpilogue(g, m, n, v);
    }
  }
}

CLICKRT_AVX2 void SmallN(const GemmArgs& g, int64_t m0, int64_t m1) {
  switch (g.N) {
    case 1:
      SmallNRows<1>(g, m0, m1);
      break;
    case 2:
      SmallNRows<2>(g, m0, m1);
      break;
    case 3:
      SmallNRows<3>(g, m0, m1);
      break;
    default:
      SmallNRows<4>(g, m0, m1);
      break;
  }
}

CLICKRT_AVX2 float FmRow(const float* const* rows, int64_t F, int64_t D, float* out) {
  __m256 total = _mm256_setzero_ps();
  for (int64_t d = 0; d < D; d += kV) {
    const int rem = static_cast<int>(D - d < kV ? D - d : kV);
    const __m256i mask = TailMask(rem);
    __m256 s = _mm256_setzero_ps(), q = _mm256_setzero_ps();
    if (rem == kV) {
      for (int64_t f = 0; f < F; ++f) {
        const __m256 e = _mm256_loadu_ps(rows[f] + d);
        if (out) _mm256_storeu_ps(out + f * D + d, e);
        s = _mm256_add_ps(s, e);
        q = _mm256_fmadd_ps(e, e, q);
      }
    } else {
      for (int64_t f = 0; f < F; ++f) {
        const __m256 e = _mm256_maskload_ps(rows[f] + d, mask);
        if (out) _mm256_maskstore_ps(out + f * D + d, mask, e);
        s = _mm256_add_ps(s, e);
        q = _mm256_fmadd_ps(e, e, q);
      }
    }
    total = _mm256_add_ps(total, _mm256_fmsub_ps(s, s, q));
  }
  return 0.5f * HorizontalSum(total);
}

const KernelTable kTable = {1, "avx2", kNr, kMr, Gemm, SmallN, FmRow};

}  // namespace

const KernelTable* Avx2Kernels() { return &kTable; }

}  // namespace clickrt::kernels::fast::detail
