// Type conversion and strided 2-D copies between activation buffers.
#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_types.cuh"

namespace clickrt::cuda {

size_t SizeOf(DataType t) {
  switch (t) {
    case DataType::kF32:
      return 4;
    case DataType::kF16:
      return 2;
    case DataType::kBF16:
      return 2;
  }
  return 0;
}

namespace {

constexpr int kThreads = 256;

template <typename S, typename D>
__global__ void ConvertKernel(const S* __restrict__ src, D* __restrict__ dst, int64_t n) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += stride) {
    dst[i] = FromFloat<D>(ToFloat(src[i]));
  }
}

// One block row of threads per grid.y row group; each thread moves N consecutive elements.
template <typename S, typename D, int N>
__global__ void Copy2DKernel(const S* __restrict__ src, int64_t src_ld, D* __restrict__ dst,
                             int64_t dst_ld, int64_t rows, int64_t cols) {
  const int64_t c = (blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x) * N;
  if (c >= cols) return;
  for (int64_t r = blockIdx.y; r < rows; r += gridDim.y) {
    float v[N];
    LoadVec<S, N>(src + r * src_ld + c, v);
    StoreVec<D, N>(dst + r * dst_ld + c, v);
  }
}

// Grid for `groups` column groups per row and `rows` rows (grid.y capped; rows loop).
dim3 Copy2DGrid(int64_t groups, int64_t rows) {
  const int64_t gx = (groups + kThreads - 1) / kThreads;
  return dim3(static_cast<unsigned>(gx), static_cast<unsigned>(std::min<int64_t>(rows, 65535)));
}

}  // namespace

Status LaunchConvert(const void* src, DataType src_type, void* dst, DataType dst_type, int64_t n,
                     cudaStream_t stream) {
  if (n < 0) return InvalidArgument("Convert: n = " + Str(n) + " < 0");
  if (!ValidType(src_type) || !ValidType(dst_type)) return InvalidArgument("Convert: bad type");
  if (n == 0) return Status::Ok();
  if (!src) return InvalidArgument("Convert: src is null");
  if (!dst) return InvalidArgument("Convert: dst is null");
  if (src_type == dst_type) {
    if (src != dst) {
      CUDA_RETURN_IF_ERROR(
          cudaMemcpyAsync(dst, src, n * SizeOf(src_type), cudaMemcpyDeviceToDevice, stream));
    }
    return Status::Ok();
  }
  // A grid-stride loop with enough blocks to fill the GPU; no need for more.
  const int64_t blocks = std::min<int64_t>((n + kThreads - 1) / kThreads, 4096);
  DispatchType(src_type, [&](auto s) {
    using S = decltype(s);
    DispatchType(dst_type, [&](auto d) {
      using D = decltype(d);
      ConvertKernel<S, D><<<static_cast<unsigned>(blocks), kThreads, 0, stream>>>(
          static_cast<const S*>(src), static_cast<D*>(dst), n);
    });
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

Status LaunchCopy2D(View src, View dst, int64_t rows, int64_t cols, cudaStream_t stream) {
  if (rows < 0 || cols < 0) {
    return InvalidArgument("Copy2D: negative size rows=" + Str(rows) + " cols=" + Str(cols));
  }
  if (!ValidType(src.type) || !ValidType(dst.type)) return InvalidArgument("Copy2D: bad type");
  if (rows == 0 || cols == 0) return Status::Ok();
  if (!src.data) return InvalidArgument("Copy2D: src.data is null");
  if (!dst.data) return InvalidArgument("Copy2D: dst.data is null");
  if (src.ld < cols && rows > 1) {
    return InvalidArgument("Copy2D: src.ld " + Str(src.ld) + " < cols " + Str(cols));
  }
  if (dst.ld < cols && rows > 1) {
    return InvalidArgument("Copy2D: dst.ld " + Str(dst.ld) + " < cols " + Str(cols));
  }
  const int64_t src_ld = rows > 1 ? src.ld : cols, dst_ld = rows > 1 ? dst.ld : cols;
  if (src.type == dst.type) {
    const size_t es = SizeOf(src.type);
    CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(dst.data, dst_ld * es, src.data, src_ld * es, cols * es,
                                           rows, cudaMemcpyDeviceToDevice, stream));
    return Status::Ok();
  }
  const int ns = VecWidth(src.data, src_ld, cols, SizeOf(src.type), 8);
  const int nd = VecWidth(dst.data, dst_ld, cols, SizeOf(dst.type), 8);
  const int n = std::min(ns, nd) >= 4 ? 4 : 1;
  const dim3 grid = Copy2DGrid((cols + n - 1) / n, rows);
  DispatchType(src.type, [&](auto s) {
    using S = decltype(s);
    DispatchType(dst.type, [&](auto d) {
      using D = decltype(d);
      if (n == 4) {
        Copy2DKernel<S, D, 4><<<grid, kThreads, 0, stream>>>(
            static_cast<const S*>(src.data), src_ld, static_cast<D*>(dst.data), dst_ld, rows, cols);
      } else {
        Copy2DKernel<S, D, 1><<<grid, kThreads, 0, stream>>>(
            static_cast<const S*>(src.data), src_ld, static_cast<D*>(dst.data), dst_ld, rows, cols);
      }
    });
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace clickrt::cuda
