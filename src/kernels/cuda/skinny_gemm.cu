// GEMMs of a few rows with the layer's whole epilogue fused (see kernels.h).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_types.cuh"
#include "kernels/cuda/kernels.h"

namespace clickrt::cuda {
namespace {

constexpr int kWarps = 8;    // output columns per block
constexpr int kRowTile = 8;  // rows accumulated at once per warp

template <typename T, typename TC, int VEC>
__global__ void __launch_bounds__(kWarps * 32) SkinnyKernel(const SkinnyGemmArgs a) {
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  const int64_t n = static_cast<int64_t>(blockIdx.x) * kWarps + warp;
  if (n >= a.n) return;
  const T* A = static_cast<const T*>(a.a.data);
  const T* W = static_cast<const T*>(a.wt) + n * a.k;
  const float b = a.bias ? a.bias[n] : 0.f;
  for (int64_t r0 = 0; r0 < a.rows; r0 += kRowTile) {
    const int rn = static_cast<int>(a.rows - r0 < kRowTile ? a.rows - r0 : kRowTile);
    float acc[kRowTile];
#pragma unroll
    for (int r = 0; r < kRowTile; ++r) acc[r] = 0.f;
    for (int64_t k0 = static_cast<int64_t>(lane) * VEC; k0 < a.k; k0 += 32 * VEC) {
      float w[VEC];
      LoadVec<T, VEC>(W + k0, w);
#pragma unroll
      for (int r = 0; r < kRowTile; ++r) {
        if (r < rn) {
          float x[VEC];
          LoadVec<T, VEC>(A + (r0 + r) * a.a.ld + k0, x);
#pragma unroll
          for (int v = 0; v < VEC; ++v) acc[r] = fmaf(w[v], x[v], acc[r]);
        }
      }
    }
#pragma unroll
    for (int r = 0; r < kRowTile; ++r) {
#pragma unroll
      for (int off = 16; off > 0; off /= 2) acc[r] += __shfl_xor_sync(0xffffffffu, acc[r], off);
    }
    if (lane < rn) {
      float v = 0.f;
#pragma unroll
      for (int r = 0; r < kRowTile; ++r) v = r == lane ? acc[r] : v;
      v += b;
      const int64_t row = r0 + lane;
      switch (a.epilogue) {
        case SkinnyEpilogue::kRelu: v = fmaxf(v, 0.f); break;
        case SkinnyEpilogue::kSigmoid: v = 1.f / (1.f + __expf(-v)); break;
        case SkinnyEpilogue::kCross:
          v = ToFloat(static_cast<const T*>(a.x0.data)[row * a.x0.ld + n]) * v +
              ToFloat(static_cast<const T*>(a.xl.data)[row * a.xl.ld + n]);
          break;
        case SkinnyEpilogue::kNone: break;
      }
      static_cast<TC*>(a.c.data)[row * a.c.ld + n] = FromFloat<TC>(v);
    }
  }
}

template <typename T, typename TC>
Status Launch(const SkinnyGemmArgs& a, cudaStream_t stream) {
  const dim3 grid(static_cast<unsigned>((a.n + kWarps - 1) / kWarps));
  constexpr int kMaxVec = 16 / sizeof(T);
  // 16-byte loads where every row of A and of W^T starts aligned and k is a multiple.
  const bool vec = a.k % kMaxVec == 0 && a.a.ld % kMaxVec == 0 && AlignedTo(a.a.data, 16) && AlignedTo(a.wt, 16);
  if (vec) {
    SkinnyKernel<T, TC, kMaxVec><<<grid, kWarps * 32, 0, stream>>>(a);
  } else {
    SkinnyKernel<T, TC, 1><<<grid, kWarps * 32, 0, stream>>>(a);
  }
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

Status LaunchSkinnyGemm(const SkinnyGemmArgs& a, cudaStream_t stream) {
  auto bad = [](const std::string& what) { return InvalidArgument("SkinnyGemm: " + what); };
  if (a.rows < 1 || a.rows > SkinnyGemmArgs::kMaxRows) return bad("rows must be in [1, 64], got " + Str(a.rows));
  if (a.n < 1 || a.k < 1) return bad("n and k must be positive");
  if (!a.a.data || !a.wt || !a.c.data) return bad("a, wt and c must be set");
  if (a.a.ld < a.k || a.c.ld < a.n) return bad("a.ld must be >= k and c.ld >= n");
  if (!ValidType(a.a.type) || !ValidType(a.c.type)) return bad("bad data type");
  if (a.c.type != a.a.type && a.c.type != DataType::kF32) return bad("c must have a's type or be FP32");
  if (a.epilogue == SkinnyEpilogue::kCross) {
    if (!a.x0.data || !a.xl.data) return bad("the cross epilogue needs x0 and xl");
    if (a.x0.type != a.a.type || a.xl.type != a.a.type) return bad("x0 and xl must have a's type");
    if (a.x0.ld < a.n || a.xl.ld < a.n) return bad("x0.ld and xl.ld must be >= n");
  }
  return DispatchType(a.a.type, [&](auto t) -> Status {
    using T = decltype(t);
    if (a.c.type == DataType::kF32) return Launch<T, float>(a, stream);
    return Launch<T, T>(a, stream);
  });
}

}  // namespace clickrt::cuda
