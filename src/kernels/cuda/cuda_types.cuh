// Device helpers shared by clickrt's CUDA kernels: f32 / f16 / bf16 elements read and written as
// float (FP32 math everywhere, round-to-nearest-even on the way out), vector loads and stores of N
// consecutive elements, and the host-side dispatch from DataType to a C++ element type.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <string>

#include "kernels/cuda/kernels.h"

namespace clickrt::cuda {

// ---- scalar loads / stores as float ------------------------------------------------------------
__device__ __forceinline__ float ToFloat(float v) { return v; }
__device__ __forceinline__ float ToFloat(__half v) { return __half2float(v); }
__device__ __forceinline__ float ToFloat(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T FromFloat(float v);
template <>
__device__ __forceinline__ float FromFloat<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T>
__device__ __forceinline__ float LoadF(const T* p) {
  return ToFloat(*p);
}
template <typename T>
__device__ __forceinline__ void StoreF(T* p, float v) {
  *p = FromFloat<T>(v);
}

// Reads / writes an element of a runtime-typed buffer (operands whose type varies per launch).
__device__ __forceinline__ float LoadAny(const void* base, DataType t, int64_t i) {
  switch (t) {
    case DataType::kF32:
      return static_cast<const float*>(base)[i];
    case DataType::kF16:
      return __half2float(static_cast<const __half*>(base)[i]);
    case DataType::kBF16:
      return __bfloat162float(static_cast<const __nv_bfloat16*>(base)[i]);
  }
  return 0.f;
}
__device__ __forceinline__ void StoreAny(void* base, DataType t, int64_t i, float v) {
  switch (t) {
    case DataType::kF32:
      static_cast<float*>(base)[i] = v;
      return;
    case DataType::kF16:
      static_cast<__half*>(base)[i] = __float2half_rn(v);
      return;
    case DataType::kBF16:
      static_cast<__nv_bfloat16*>(base)[i] = __float2bfloat16_rn(v);
      return;
  }
}

// ---- N consecutive elements ------------------------------------------------------------------
// The caller guarantees p is aligned to min(16, N * sizeof(T)) bytes; wider spans go as several
// 16-byte accesses. N * sizeof(T) must be a power of two (1..8 elements of 2 or 4 bytes).
template <int Bytes>
struct alignas(Bytes) RawBytes {
  unsigned char b[Bytes];
};
template <int Bytes>
struct VecWord;  // the register type that moves `Bytes` bytes in one instruction
template <>
struct VecWord<2> {
  using type = unsigned short;
};
template <>
struct VecWord<4> {
  using type = unsigned int;
};
template <>
struct VecWord<8> {
  using type = uint2;
};
template <>
struct VecWord<16> {
  using type = uint4;
};

template <typename T, int N>
__device__ __forceinline__ void LoadVec(const T* p, float (&v)[N]) {
  constexpr int kBytes = N * static_cast<int>(sizeof(T));
  constexpr int kChunk = kBytes < 16 ? kBytes : 16;
  constexpr int kPer = kChunk / static_cast<int>(sizeof(T));
  using W = typename VecWord<kChunk>::type;
#pragma unroll
  for (int c = 0; c < N / kPer; ++c) {
    union {
      W w;
      T e[kPer];
    } u;
    u.w = *reinterpret_cast<const W*>(p + c * kPer);
#pragma unroll
    for (int i = 0; i < kPer; ++i) v[c * kPer + i] = ToFloat(u.e[i]);
  }
}

template <typename T, int N>
__device__ __forceinline__ void StoreVec(T* p, const float (&v)[N]) {
  constexpr int kBytes = N * static_cast<int>(sizeof(T));
  constexpr int kChunk = kBytes < 16 ? kBytes : 16;
  constexpr int kPer = kChunk / static_cast<int>(sizeof(T));
  using W = typename VecWord<kChunk>::type;
#pragma unroll
  for (int c = 0; c < N / kPer; ++c) {
    union {
      W w;
      T e[kPer];
    } u;
#pragma unroll
    for (int i = 0; i < kPer; ++i) u.e[i] = FromFloat<T>(v[c * kPer + i]);
    *reinterpret_cast<W*>(p + c * kPer) = u.w;
  }
}

// ---- host side -------------------------------------------------------------------------------
// Calls f(T{}) with the C++ element type of t.
template <typename F>
decltype(auto) DispatchType(DataType t, F&& f) {
  switch (t) {
    case DataType::kF16:
      return f(__half{});
    case DataType::kBF16:
      return f(__nv_bfloat16{});
    case DataType::kF32:
      break;
  }
  return f(float{});
}

inline bool ValidType(DataType t) {
  return t == DataType::kF32 || t == DataType::kF16 || t == DataType::kBF16;
}

inline bool AlignedTo(const void* p, size_t bytes) {
  return reinterpret_cast<uintptr_t>(p) % bytes == 0;
}

// Largest n in {max, max/2, ..., 1} such that every row of a view with this ld, starting at base,
// is aligned for n-element vector access (n * size capped at 16 bytes) and n divides cols.
inline int VecWidth(const void* base, int64_t ld, int64_t cols, size_t elem_size, int max) {
  for (int n = max; n > 1; n /= 2) {
    const size_t bytes = n * elem_size < 16 ? n * elem_size : 16;
    if (cols % n == 0 && ld % n == 0 && AlignedTo(base, bytes)) return n;
  }
  return 1;
}

inline std::string Str(int64_t v) { return std::to_string(v); }

}  // namespace clickrt::cuda
