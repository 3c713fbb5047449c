// Element-wise CUDA kernels.
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

namespace clickrt::cuda {
namespace {

__global__ void SigmoidKernel(const float* x, float* y, int64_t n) {
  int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x;
  if (i < n) y[i] = 1.f / (1.f + __expf(-x[i]));
}

}  // namespace

Status SigmoidOnDevice(const float* x, float* y, int64_t n, int device) {
  CUDA_RETURN_IF_ERROR(cudaSetDevice(device));
  float* d = nullptr;
  CUDA_RETURN_IF_ERROR(cudaMalloc(&d, sizeof(float) * n * 2));
  Status s = [&]() -> Status {
    CUDA_RETURN_IF_ERROR(cudaMemcpy(d, x, sizeof(float) * n, cudaMemcpyHostToDevice));
    int threads = 256;
    int blocks = static_cast<int>((n + threads - 1) / threads);
    SigmoidKernel<<<blocks, threads>>>(d, d + n, n);
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    CUDA_RETURN_IF_ERROR(cudaMemcpy(y, d + n, sizeof(float) * n, cudaMemcpyDeviceToHost));
    return Status::Ok();
  }();
  cudaFree(d);
  return s;
}

}  // namespace clickrt::cuda
