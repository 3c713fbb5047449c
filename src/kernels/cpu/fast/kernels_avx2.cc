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

// ---- int8: x codes as int16, W as int8 pairs (k, k+1) sign-extended on load; vpmaddwd sums the
// pair into int32 lanes. Panels of kNr columns, kMr rows per micro-kernel (12 accumulators).

constexpr int kQg = 2;  // k values per packed group

CLICKRT_AVX2 void QuantizeRows(const float* x, int64_t ldx, int64_t rows, int64_t K, int64_t Kp,
                               float x_scale, uint8_t* out, int64_t ldo) {
  const __m256 s = _mm256_set1_ps(x_scale);
  const __m256 lo = _mm256_set1_ps(-128.f), hi = _mm256_set1_ps(127.f);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    int16_t* o = reinterpret_cast<int16_t*>(out + r * ldo);
    for (int64_t k = 0; k < K; k += kV) {
      const int rem = static_cast<int>(K - k < kV ? K - k : kV);
      __m256 v = rem == kV ? _mm256_loadu_ps(xr + k) : _mm256_maskload_ps(xr + k, TailMask(rem));
      v = _mm256_min_ps(_mm256_max_ps(_mm256_div_ps(v, s), lo), hi);  // NaN -> -128
      const __m256i i = _mm256_cvtps_epi32(v);
      const __m128i p = _mm_packs_epi32(_mm256_castsi256_si128(i), _mm256_extracti128_si256(i, 1));
      if (rem == kV) {
        _mm_storeu_si128(reinterpret_cast<__m128i*>(o + k), p);
      } else {
        alignas(16) int16_t t[kV];
        _mm_store_si128(reinterpret_cast<__m128i*>(t), p);
        for (int j = 0; j < rem; ++j) o[k + j] = t[j];
      }
    }
    for (int64_t k = K; k < Kp; ++k) o[k] = 0;
  }
}

CLICKRT_AVX2_INLINE void QStore(const QGemmArgs& g, int64_t row, int64_t n, __m256i acc, bool full,
                                __m256i mask) {
  if (g.comp)
    acc = _mm256_sub_epi32(acc, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(g.comp + n)));
  const __m256 s = _mm256_loadu_ps(g.scale + n);
  __m256 r = _mm256_cvtepi32_ps(acc);
  r = g.bias ? _mm256_fmadd_ps(r, s, _mm256_loadu_ps(g.bias + n)) : _mm256_mul_ps(r, s);
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

template <int MR, int NV>
CLICKRT_AVX2 void QMicro(const QGemmArgs& g, int64_t m, const int8_t* b, int64_t n0, int rem) {
  __m256i c[MR][NV];
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) c[i][v] = _mm256_setzero_si256();
  const uint8_t* a = g.a + m * g.lda;
  const int64_t lda = g.lda, groups = g.Kp / kQg;
  for (int64_t kg = 0; kg < groups; ++kg) {
    __m256i bv[NV];
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      bv[v] = _mm256_cvtepi8_epi16(
          _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + kg * kQg * kNr + v * 2 * kV)));
    }
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      int32_t pair;
      __builtin_memcpy(&pair, a + i * lda + kg * 4, 4);
      const __m256i av = _mm256_set1_epi32(pair);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v)
        c[i][v] = _mm256_add_epi32(c[i][v], _mm256_madd_epi16(av, bv[v]));
    }
  }
  const __m256i mask = TailMask(rem);
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v)
      QStore(g, m + i, n0 + v * kV, c[i][v], v < NV - 1 || rem == kV, mask);
  }
}

template <int MR>
CLICKRT_AVX2 void QMicroNv(const QGemmArgs& g, int64_t m, int64_t p) {
  const int64_t n0 = p * kNr;
  const int64_t nc = g.N - n0 < kNr ? g.N - n0 : kNr;
  const int nv = static_cast<int>((nc + kV - 1) / kV);
  const int rem = static_cast<int>(nc - (nv - 1) * kV);
  const int8_t* b = g.packed + p * g.Kp * kNr;
  switch (nv) {
    case 1:
      QMicro<MR, 1>(g, m, b, n0, rem);
      break;
    case 2:
      QMicro<MR, 2>(g, m, b, n0, rem);
      break;
    default:
      QMicro<MR, 3>(g, m, b, n0, rem);
      break;
  }
}

CLICKRT_AVX2 void QGemm(const QGemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
  for (int64_t p = p0; p < p1; ++p) {
    for (int64_t m = m0; m < m1; m += kMr) {
      switch (m1 - m < kMr ? m1 - m : kMr) {
        case 1:
          QMicroNv<1>(g, m, p);
          break;
        case 2:
          QMicroNv<2>(g, m, p);
          break;
        case 3:
          QMicroNv<3>(g, m, p);
          break;
        default:
          QMicroNv<4>(g, m, p);
          break;
      }
    }
  }
}

const QGemmKernel kQGemm = {"avx2", kMr, kNr, kQg, 2, 0, 0, QuantizeRows, QGemm};

// The 8 codes at d of an int8 row (an 8-byte load at d < D stays inside the row).
CLICKRT_AVX2_INLINE __m256 Int8Codes(const uint8_t* r, int64_t d) {
  const __m128i c = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(r + d));
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(c));
}

// The 8 codes at d (even) of an int4 row (a 4-byte load at d/2 stays inside the row).
CLICKRT_AVX2_INLINE __m256 Int4Codes(const uint8_t* r, int64_t d) {
  int32_t bytes;
  __builtin_memcpy(&bytes, r + d / 2, 4);
  const __m128i q = _mm_cvtsi32_si128(bytes), low = _mm_set1_epi8(0x0f);
  const __m128i lo = _mm_and_si128(q, low), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low);
  return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
}

template <bool kInt4>
CLICKRT_AVX2 float FmRowQuant(const uint8_t* const* rows, const float* scale, const float* bias,
                              int64_t F, int64_t D, float* out) {
  __m256 total = _mm256_setzero_ps();
  for (int64_t d = 0; d < D; d += kV) {
    const int rem = static_cast<int>(D - d < kV ? D - d : kV);
    const __m256i mask = TailMask(rem);
    __m256 s = _mm256_setzero_ps(), q = _mm256_setzero_ps();
    for (int64_t f = 0; f < F; ++f) {
      const __m256 c = kInt4 ? Int4Codes(rows[f], d) : Int8Codes(rows[f], d);
      __m256 e = _mm256_fmadd_ps(c, _mm256_set1_ps(scale[f]), _mm256_set1_ps(bias[f]));
      if (rem == kV) {
        if (out) _mm256_storeu_ps(out + f * D + d, e);
      } else {
        e = _mm256_and_ps(e, _mm256_castsi256_ps(mask));  // lanes past D count as 0
        if (out) _mm256_maskstore_ps(out + f * D + d, mask, e);
      }
      s = _mm256_add_ps(s, e);
      q = _mm256_fmadd_ps(e, e, q);
    }
    total = _mm256_add_ps(total, _mm256_fmsub_ps(s, s, q));
  }
  return 0.5f * HorizontalSum(total);
}

CLICKRT_AVX2 float FmRowInt8(const uint8_t* const* rows, const float* scale, const float* bias,
                             int64_t F, int64_t D, float* out) {
  return FmRowQuant<false>(rows, scale, bias, F, D, out);
}
CLICKRT_AVX2 float FmRowInt4(const uint8_t* const* rows, const float* scale, const float* bias,
                             int64_t F, int64_t D, float* out) {
  return FmRowQuant<true>(rows, scale, bias, F, D, out);
}

template <bool kInt4>
CLICKRT_AVX2 void DequantRow(const uint8_t* codes, int64_t D, float scale, float bias, float* out) {
  const __m256 s = _mm256_set1_ps(scale), b = _mm256_set1_ps(bias);
  for (int64_t d = 0; d < D; d += kV) {
    const __m256 v = _mm256_fmadd_ps(kInt4 ? Int4Codes(codes, d) : Int8Codes(codes, d), s, b);
    if (D - d >= kV) {
      _mm256_storeu_ps(out + d, v);
    } else {
      _mm256_maskstore_ps(out + d, TailMask(static_cast<int>(D - d)), v);
    }
  }
}

CLICKRT_AVX2 void DequantInt8(const uint8_t* codes, int64_t D, float scale, float bias,
                              float* out) {
  DequantRow<false>(codes, D, scale, bias, out);
}
CLICKRT_AVX2 void DequantInt4(const uint8_t* codes, int64_t D, float scale, float bias,
                              float* out) {
  DequantRow<true>(codes, D, scale, bias, out);
}

const KernelTable kTable = {1,     "avx2",      kNr,         kMr,       Gemm,      SmallN,
                            FmRow, DequantInt8, DequantInt4, FmRowInt8, FmRowInt4, &kQGemm};

}  // namespace

const KernelTable* Avx2Kernels() { return &kTable; }

}  // namespace clickrt::kernels::fast::detail
