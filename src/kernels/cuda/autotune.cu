// GEMM autotuning: time every heuristic candidate on scratch buffers, keep the fastest.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <string>

#include "kernels/cuda/autotune.h"
#include "kernels/cuda/cuda_check.h"

namespace clickrt::cuda {
namespace {

__device__ float HashToUnit(uint64_t x) {
  // splitmix64: good enough to make the operands look like real data, and needs no state.
  x += 0x9e3779b97f4a7c15ull;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  x ^= x >> 31;
  return static_cast<float>(x >> 40) * (2.f / 16777216.f) - 1.f;
}

__global__ void FillRandomKernel(void* data, DataType type, int64_t n, uint64_t seed) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i >= n) return;
  float v = HashToUnit(seed * 0x100000001b3ull + static_cast<uint64_t>(i));
  switch (type) {
    case DataType::kF32:
      static_cast<float*>(data)[i] = v;
      break;
    case DataType::kF16:
      static_cast<__half*>(data)[i] = __float2half_rn(v);
      break;
    case DataType::kBF16:
      static_cast<__nv_bfloat16*>(data)[i] = __float2bfloat16_rn(v);
      break;
  }
}

size_t ElementSize(DataType t) { return t == DataType::kF32 ? 4 : 2; }

class DeviceBuffer {
 public:
  DeviceBuffer() = default;
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  ~DeviceBuffer() {
    if (ptr_) cudaFree(ptr_);
  }
  Status Allocate(size_t bytes) {
    CUDA_RETURN_IF_ERROR(cudaMalloc(&ptr_, std::max<size_t>(bytes, 256)));
    return Status::Ok();
  }
  char* get() const { return static_cast<char*>(ptr_); }

 private:
  void* ptr_ = nullptr;
};

Status FillRandom(void* data, DataType type, int64_t n, uint64_t seed, cudaStream_t stream) {
  unsigned blocks = static_cast<unsigned>((n + 255) / 256);
  FillRandomKernel<<<blocks, 256, 0, stream>>>(data, type, n, seed);
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace

StatusOr<GemmChoice> AutotuneGemm(const LtGemm& gemm, const GemmDesc& desc, int max_candidates,
                                  cudaStream_t stream) {
  RETURN_IF_ERROR(ValidateGemmDesc(desc));
  if (max_candidates <= 0) return InvalidArgument("AutotuneGemm: max_candidates must be > 0");
  ASSIGN_OR_RETURN(std::vector<GemmAlgo> candidates, gemm.Candidates(desc, max_candidates));

  const int64_t a_elems = (desc.m - 1) * desc.lda + desc.k;
  const int64_t w_elems = desc.k * desc.n;
  const int64_t c_elems = (desc.m - 1) * desc.ldc + desc.n;
  // A and C sit `shift` bytes past a 256-byte boundary, so their alignment is exactly desc.align.
  const size_t shift = desc.align < 256 ? static_cast<size_t>(desc.align) : 0;
  size_t workspace_bytes = 0;
  for (const GemmAlgo& algo : candidates) {
    ASSIGN_OR_RETURN(size_t ws, gemm.WorkspaceSize(desc, algo));
    workspace_bytes = std::max(workspace_bytes, ws);
  }
  DeviceBuffer a_buf, w_buf, c_buf, bias_buf, ws_buf;
  RETURN_IF_ERROR(a_buf.Allocate(a_elems * ElementSize(desc.a_type) + 256));
  RETURN_IF_ERROR(w_buf.Allocate(w_elems * ElementSize(desc.w_type)));
  RETURN_IF_ERROR(c_buf.Allocate(c_elems * ElementSize(desc.c_type) + 256));
  RETURN_IF_ERROR(bias_buf.Allocate(desc.n * sizeof(float)));
  RETURN_IF_ERROR(ws_buf.Allocate(workspace_bytes));
  char* a = a_buf.get() + shift;
  char* c = c_buf.get() + shift;
  const float* bias =
      desc.epilogue == GemmEpilogue::kNone ? nullptr : reinterpret_cast<float*>(bias_buf.get());
  RETURN_IF_ERROR(FillRandom(a, desc.a_type, a_elems, 1, stream));
  RETURN_IF_ERROR(FillRandom(w_buf.get(), desc.w_type, w_elems, 2, stream));
  RETURN_IF_ERROR(FillRandom(bias_buf.get(), DataType::kF32, desc.n, 3, stream));
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(c, 0, c_elems * ElementSize(desc.c_type), stream));

  GemmChoice best;
  best.tried = static_cast<int>(candidates.size());
  bool found = false;
  Status first_failure;
  for (size_t i = 0; i < candidates.size(); ++i) {
    const GemmAlgo& algo = candidates[i];
    auto run = [&] { return gemm.Run(desc, algo, a, w_buf.get(), bias, c, ws_buf.get(), stream); };
    auto warm_up = [&]() -> Status {
      RETURN_IF_ERROR(run());
      return run();
    };
    Status warm = warm_up();
    if (!warm.ok()) {
      // The library refused at enqueue (nothing reached the GPU): skip this candidate.
      if (first_failure.ok()) first_failure = warm;
      ++best.failed;
      continue;
    }
    // A fault inside a kernel is sticky and ends the context: not something to skip.
    CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
    ASSIGN_OR_RETURN(double probe, TimeOnStream(run, stream, 3));
    // About 10 ms of timing per candidate: many reps for the tiny GEMMs, whose times are noisy.
    int reps = probe > 0 ? static_cast<int>(10.0 / probe) : 50;
    reps = std::clamp(reps, 5, 50);
    ASSIGN_OR_RETURN(double ms, TimeOnStream(run, stream, reps));
    if (i == 0) best.heuristic_ms = ms;
    if (!found || ms < best.ms) {
      best.algo = algo;
      best.ms = ms;
      found = true;
    }
  }
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(stream));
  if (!found) {
    return Status(first_failure.code(),
                  "GEMM " + desc.Key() + ": none of " + std::to_string(best.tried) +
                      " candidates ran; the first error: " + first_failure.message());
  }
  // A skipped first candidate has no time of its own; the winner's is the fair stand-in.
  if (best.heuristic_ms == 0) best.heuristic_ms = best.ms;
  return best;
}

}  // namespace clickrt::cuda
