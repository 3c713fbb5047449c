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
// The int8 GEMM: runs only where Cpu().avx512_vnni (KernelTable::qgemm says so).
#define CLICKRT_VNNI \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx512dq,avx512vnni,avx2,fma")))
#define CLICKRT_VNNI_INLINE CLICKRT_VNNI __attribute__((always_inline)) inline

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

// ---- int8 with VNNI: vpdpbusd multiplies 4 unsigned x codes (q + 128) by 4 signed weights and
// adds the 4 products into an int32 lane; the +128 is taken back by comp = 128 * column sums.
// Panels of kNr columns (groups of 4 k: 48 columns x 4 bytes = 3 vectors), kMr rows.

constexpr int kQg = 4;  // k values per packed group

CLICKRT_VNNI void QuantizeRowsU8(const float* x, int64_t ldx, int64_t rows, int64_t K, int64_t Kp,
                                 float x_scale, uint8_t* out, int64_t ldo) {
  const __m512 s = _mm512_set1_ps(x_scale);
  const __m512 lo = _mm512_set1_ps(-128.f), hi = _mm512_set1_ps(127.f);
  const __m512i shift = _mm512_set1_epi32(128);
  for (int64_t r = 0; r < rows; ++r) {
    const float* xr = x + r * ldx;
    uint8_t* o = out + r * ldo;
    for (int64_t k = 0; k < K; k += kV) {
      const __mmask16 mask = static_cast<__mmask16>(K - k >= kV ? 0xffffu : (1u << (K - k)) - 1u);
      __m512 v = _mm512_maskz_loadu_ps(mask, xr + k);
      v = _mm512_min_ps(_mm512_max_ps(_mm512_div_ps(v, s), lo), hi);  // NaN -> -128
      const __m512i i = _mm512_add_epi32(_mm512_cvtps_epi32(v), shift);
      _mm_mask_storeu_epi8(o + k, mask, _mm512_cvtepi32_epi8(i));
    }
    for (int64_t k = K; k < Kp; ++k) o[k] = 0;
  }
}

CLICKRT_VNNI_INLINE void QStore(const QGemmArgs& g, int64_t row, int64_t n, __m512i acc,
                                __mmask16 mask) {
  acc = _mm512_sub_epi32(acc, _mm512_loadu_si512(g.comp + n));
  const __m512 s = _mm512_loadu_ps(g.scale + n);
  __m512 r = _mm512_cvtepi32_ps(acc);
  r = g.bias ? _mm512_fmadd_ps(r, s, _mm512_loadu_ps(g.bias + n)) : _mm512_mul_ps(r, s);
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

// Rows [m, m+MR) x one panel of NV vectors; with few accumulators, KU independent sets over the
// k-groups hide the vpdpbusd latency.
template <int MR, int NV>
CLICKRT_VNNI void QMicro(const QGemmArgs& g, int64_t m, const int8_t* b, int64_t n0,
                         __mmask16 tail) {
  constexpr int KU = MR * NV < 8 ? 2 : 1;
  __m512i c[KU][MR][NV];
#pragma GCC unroll 16
  for (int u = 0; u < KU; ++u)
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i)
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) c[u][i][v] = _mm512_setzero_si512();
  const uint8_t* a = g.a + m * g.lda;
  const int64_t lda = g.lda, groups = g.Kp / kQg;
  int64_t kg = 0;
  for (; kg + KU <= groups; kg += KU) {
#pragma GCC unroll 16
    for (int u = 0; u < KU; ++u) {
      __m512i bv[NV];
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) bv[v] = _mm512_load_si512(b + (kg + u) * kQg * kNr + v * 64);
#pragma GCC unroll 16
      for (int i = 0; i < MR; ++i) {
        int32_t quad;
        __builtin_memcpy(&quad, a + i * lda + (kg + u) * kQg, 4);
        const __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 16
        for (int v = 0; v < NV; ++v) c[u][i][v] = _mm512_dpbusd_epi32(c[u][i][v], av, bv[v]);
      }
    }
  }
  for (; kg < groups; ++kg) {
#pragma GCC unroll 16
    for (int i = 0; i < MR; ++i) {
      int32_t quad;
      __builtin_memcpy(&quad, a + i * lda + kg * kQg, 4);
      const __m512i av = _mm512_set1_epi32(quad);
#pragma GCC unroll 16
      for (int v = 0; v < NV; ++v) {
        c[0][i][v] =
            _mm512_dpbusd_epi32(c[0][i][v], av, _mm512_load_si512(b + kg * kQg * kNr + v * 64));
      }
    }
  }
#pragma GCC unroll 16
  for (int i = 0; i < MR; ++i) {
#pragma GCC unroll 16
    for (int v = 0; v < NV; ++v) {
      __m512i r = c[0][i][v];
#pragma GCC unroll 16
      for (int u = 1; u < KU; ++u) r = _mm512_add_epi32(r, c[u][i][v]);
      QStore(g, m + i, n0 + v * kV, r, v == NV - 1 ? tail : static_cast<__mmask16>(0xffff));
    }
  }
}

template <int MR>
CLICKRT_VNNI void QMicroNv(const QGemmArgs& g, int64_t m, int64_t p) {
  const int64_t n0 = p * kNr;
  const int64_t nc = g.N - n0 < kNr ? g.N - n0 : kNr;
  const int nv = static_cast<int>((nc + kV - 1) / kV);
  const int rem = static_cast<int>(nc - (nv - 1) * kV);
  const __mmask16 tail = static_cast<__mmask16>((1u << rem) - 1u);
  const int8_t* b = g.packed + p * g.Kp * kNr;
  switch (nv) {
    case 1:
      QMicro<MR, 1>(g, m, b, n0, tail);
      break;
    case 2:
      QMicro<MR, 2>(g, m, b, n0, tail);
      break;
    default:
      QMicro<MR, 3>(g, m, b, n0, tail);
      break;
  }
}

CLICKRT_VNNI void QGemm(const QGemmArgs& g, int64_t m0, int64_t m1, int64_t p0, int64_t p1) {
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
        case 4:
          QMicroNv<4>(g, m, p);
          break;
        case 5:
          QMicroNv<5>(g, m, p);
          break;
        case 6:
          QMicroNv<6>(g, m, p);
          break;
        case 7:
          QMicroNv<7>(g, m, p);
          break;
        default:
          QMicroNv<8>(g, m, p);
          break;
      }
    }
  }
}

const QGemmKernel kQGemmVnni = {"avx512vnni", kMr, kNr, kQg, 1, 1, 1, QuantizeRowsU8, QGemm};

// The codes of lanes `mask` at d of an int8 row / an int4 row (d even), as floats (0 elsewhere).
CLICKRT_AVX512_INLINE __m512 Int8Codes(const uint8_t* r, int64_t d, __mmask16 mask) {
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(mask, r + d)));
}
CLICKRT_AVX512_INLINE __m512 Int4Codes(const uint8_t* r, int64_t d, int64_t n) {
  const __mmask16 bytes = static_cast<__mmask16>((1u << ((n + 1) / 2)) - 1u);
  const __m128i q = _mm_maskz_loadu_epi8(bytes, r + d / 2), low = _mm_set1_epi8(0x0f);
  const __m128i lo = _mm_and_si128(q, low), hi = _mm_and_si128(_mm_srli_epi16(q, 4), low);
  return _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi)));
}

template <bool kInt4>
CLICKRT_AVX512 void DequantRow(const uint8_t* codes, int64_t D, float scale, float bias,
                               float* out) {
  const __m512 s = _mm512_set1_ps(scale), b = _mm512_set1_ps(bias);
  for (int64_t d = 0; d < D; d += kV) {
    const int64_t n = D - d >= kV ? kV : D - d;
    const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
    const __m512 c = kInt4 ? Int4Codes(codes, d, n) : Int8Codes(codes, d, mask);
    _mm512_mask_storeu_ps(out + d, mask, _mm512_fmadd_ps(c, s, b));
  }
}

CLICKRT_AVX512 void DequantInt8(const uint8_t* codes, int64_t D, float scale, float bias,
                                float* out) {
  DequantRow<false>(codes, D, scale, bias, out);
}
CLICKRT_AVX512 void DequantInt4(const uint8_t* codes, int64_t D, float scale, float bias,
                                float* out) {
  DequantRow<true>(codes, D, scale, bias, out);
}

template <bool kInt4>
CLICKRT_AVX512 float FmRowQuant(const uint8_t* const* rows, const float* scale, const float* bias,
                                int64_t F, int64_t D, float* out) {
  __m512 total = _mm512_setzero_ps();
  for (int64_t d = 0; d < D; d += kV) {
    const int64_t n = D - d >= kV ? kV : D - d;
    const __mmask16 mask = static_cast<__mmask16>((1u << n) - 1u);
    __m512 s = _mm512_setzero_ps(), q = _mm512_setzero_ps();
    for (int64_t f = 0; f < F; ++f) {
      const __m512 c = kInt4 ? Int4Codes(rows[f], d, n) : Int8Codes(rows[f], d, mask);
      // Lanes past D count as 0, as fm_row's masked loads make them.
      const __m512 e =
          _mm512_maskz_fmadd_ps(mask, c, _mm512_set1_ps(scale[f]), _mm512_set1_ps(bias[f]));
      if (out) _mm512_mask_storeu_ps(out + f * D + d, mask, e);
      s = _mm512_add_ps(s, e);
      q = _mm512_fmadd_ps(e, e, q);
    }
    total = _mm512_add_ps(total, _mm512_fmsub_ps(s, s, q));
  }
  return 0.5f * _mm512_reduce_add_ps(total);
}

CLICKRT_AVX512 float FmRowInt8(const uint8_t* const* rows, const float* scale, const float* bias,
                               int64_t F, int64_t D, float* out) {
  return FmRowQuant<false>(rows, scale, bias, F, D, out);
}
CLICKRT_AVX512 float FmRowInt4(const uint8_t* const* rows, const float* scale, const float* bias,
                               int64_t F, int64_t D, float* out) {
  return FmRowQuant<true>(rows, scale, bias, F, D, out);
}

const KernelTable kTable = {2,     "avx512",    kNr,         kMr,       Gemm,      SmallN,
                            FmRow, DequantInt8, DequantInt4, FmRowInt8, FmRowInt4, &kQGemmVnni};

}  // namespace

const KernelTable* Avx512Kernels() { return &kTable; }

}  // namespace clickrt::kernels::fast::detail
