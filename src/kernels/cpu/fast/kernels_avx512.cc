// AVX-512 kernels (F/BW/VL/DQ). Every function carries the target attribute; see kernel_table.h
// for why this file uses no std templates.
// GCC 12 flags the deliberately undefined registers inside its own AVX-512 intrinsics
// (_mm512_undefined_ps) as uninitialized; the warnings are about the header, not this code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

#include <immintrin.h>

#include "kernels/cpu/fast/kernel_table.h"

#define CLICKRT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx2,fma")))
#define CLICKRT_AVX512_INLINE CLICKRT_AVX512 __attribute__((always_inline)) inline

namespace clickrt::kernels::fast::detail {

namespace {

constexpr int kV = 16;         // floats per vector
constexpr int kNv = 3;         // vectors per panel
constexpr int kNr = kV * kNv;  // panel width
constexpr int64_t kMc = 96;    // rows per chunk (measured: 48 and 192 were slower)
constexpr int kMr = 8;         // rows per micro-kernel

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

// acc (already reduced) + bias, then the Cross or activation epilogue, stored to row i.
CLICKRT_AVX512_INLINE void Store(const GemmArgs& g, int64_t row, int64_t n, __m512 r,
                                 __mmask16 mask) {
  if (g.bias) r = _mm512_add_ps(r, _mm512_load_ps(g.bias + n));
  float* c = g.c + row * g.ldc + n;
  if (g.x0) {
    const __m512 x0 = _mm512_maskz_loadu_ps(mask, g.x0 + row * g.ld0 + n);
    const __m512 xl = _mm512_maskz_loadu_ps(mask, g.xl + row * g.ldl + n);
    r = _mm512_fmadd_ps(x0, r, xl);
  } else if (g.act == 1) {
    r = _mm512_max_ps(r, _mm512_setzero_ps());
  } else if (g.act == 2) {
    alignas(64) float t[kV];
    _mm512_store_ps(t, r);
    for (int j = 0; j < kV; ++j) t[j] = Sigmoid(t[j]);
    r = _mm512_load_ps(t);
  }
  _mm512_mask_storeu_ps(c, mask, r);
}

// Rows [m, m+MR) x one panel of NV vectors (the last one masked by `tail`). With few
// accumulators, KU independent sets over k hide the FMA latency.
template <int MR, int NV>
CLICKRT_AVX512 void Micro(const GemmArgs& g, int64_t m, const float* b, int64_t n0,
                          __mmask16 tail) {
  constexpr int KU = MR * NV < 8 ? 2 : 1;
  __m512 c[KU][MR][NV];
#pragma GCC unroll 16
  for (int u = 0; u < KU; ++u)
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) c[u][i][v] = _mm512_setzero_ps();
  const float* a = g.a + m * g.lda;
  const int64_t lda = g.lda, K = g.K;
  int64_t k = 0;
  for (; k + KU <= K; k += KU) {
#pragma GCC unroll 16
    for (int u = 0; u < KU; ++u) {
      __m512 bv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_ps(b + (k + u) * kNr + v * kV);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        const __m512 av = _mm512_set1_ps(a[i * lda + k + u]);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) c[u][i][v] = _mm512_fmadd_ps(av, bv[v], c[u][i][v]);
      }
    }
  }
  for (; k < K; ++k) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      const __m512 av = _mm512_set1_ps(a[i * lda + k]);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v)
        c[0][i][v] = _mm512_fmadd_ps(av, _mm512_load_ps(b + k * kNr + v * kV), c[0][i][v]);
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      __m512 r = c[0][i][v];
#pragma GCC unroll 16
      for (int u = 1; u < KU; ++u) r = _mm512_add_ps(r, c[u][i][v]);
      Store(g, m + i, n0 + v * kV, r, v == NV - 1 ? tail : static_cast<__mmask16>(0xffff));
    }
  }
}

template <int MR>
CLICKRT_AVX512 void MicroNv(const GemmArgs& g, int64_t m, int64_t p) {
  const int64_t n0 = p * kNr;
  const int64_t nc = g.N - n0 < kNr ? g.N - n0 : kNr;
  const int nv = static_cast<int>((nc + kV - 1) / kV);
  const int rem = static_cast<int>(nc - (nv - 1) * kV);
  const __mmask16 tail = static_cast<__mmask16>((1u << rem) - 1u);
  const float* b = g.packed + p * g.K * kNr;
  switch (nv) {
    case 1:
      Micro<MR, 1>(g, m, b, n0, tail);
      break;
    case 2:
      Micro<MR, 2>(g, m, b, n0, tail);
      break;
    default:
      Micro<MR, 3>(g, m, b, n0, tail);
      break;
  }
}

CLICKRT_AVX512 void Gemm(const GemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
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
          case 4:
            MicroNv<4>(g, m, p);
            break;
          case 5:
            MicroNv<5>(g, m, p);
            break;
          case 6:
            MicroNv<6>(g, m, p);
            break;
          case 7:
            MicroNv<7>(g, m, p);
            break;
          default:
            MicroNv<8>(g, m, p);
            break;
        }
      }
    }
  }
}

// N <= kSmallN: per row, N dot products along K (two accumulators each), scalar epilogue.
template <int N>
CLICKRT_AVX512 void SmallNRows(const GemmArgs& g, int64_t m0, int64_t m1) {
  const int64_t K = g.K;
  for (int64_t m = m0; m < m1; ++m) {
    const float* x = g.a + m * g.lda;
    __m512 acc[N][2];
#pragma GCC unroll 16
    for (int n = 0; n < N; ++n) acc[n][0] = acc[n][1] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 2 * kV <= K; k += 2 * kV) {
      const __m512 x0 = _mm512_loadu_ps(x + k), x1 = _mm512_loadu_ps(x + k + kV);
#pragma GCC unroll 16
      for (int n = 0; n < N; ++n) {
        acc[n][0] = _mm512_fmadd_ps(x0, _mm512_load_ps(g.wt + n * g.ldwt + k), acc[n][0]);
        acc[n][1] = _mm512_fmadd_ps(x1, _mm512_load_ps(g.wt + n * g.ldwt + k + kV), acc[n][1]);
      }
    }
    for (; k < K; k += kV) {  // wt is zero-padded past K; x is masked
      const __mmask16 mask = static_cast<__mmask16>(K - k >= kV ? 0xffffu : (1u << (K - k)) - 1u);
      const __m512 x0 = _mm512_maskz_loadu_ps(mask, x + k);
#pragma GCC unroll 16
      for (int n = 0; n < N; ++n)
        acc[n][0] = _mm512_fmadd_ps(x0, _mm512_load_ps(g.wt + n * g.ldwt + k), acc[n][0]);
    }
#pragma GCC unroll 16
    for (int n = 0; n < N; ++n) {
      const float v = _mm512_reduce_add_ps(_mm512_add_ps(acc[n][0], acc[n][1]));
      g.c[m * g.ldc + n] = ScalarEpilogue(g, m, n, v);
    }
  }
}

CLICKRT_AVX512 void SmallN(const GemmArgs& g, int64_t m0, int64_t m1) {
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

CLICKRT_AVX512 float FmRow(const float* const* rows, int64_t F, int64_t D, float* out) {
  __m512 total = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; d += kV) {
    const int64_t rem = D - d < kV ? D - d : kV;
    const __mmask16 mask = static_cast<__mmask16>((1u << rem) - 1u);
    __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
    for (int64_t f = 0; f < F; ++f) {
      const __m512 e = _mm512_maskz_loadu_ps(mask, rows[f] + d);
      if (out) _mm512_mask_storeu_ps(out + f * D + d, mask, e);
      s = _mm512_add_ps(s, e);
      q = _mm512_fmadd_ps(e, e, q);
    }
    total = _mm512_add_ps(total, _mm512_fmsub_ps(s, s, q));
  }
  return 0.5f * _mm512_reduce_add_ps(total);
}

const KernelTable kTable = {2, "avx512", kNr, kMr, Gemm, SmallN, FmRow};

}  // namespace

const KernelTable* Avx512Kernels() { return &kTable; }

}  // namespace clickrt::kernels::fast::detail
