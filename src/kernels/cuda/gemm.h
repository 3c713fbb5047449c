// cuBLASLt GEMM with fused epilogues, and the autotuner that picks its algorithm.
//
// Row-major terms throughout: C[m, n] = epilogue(A[m, k] @ W[k, n] + bias[n]), A and C with
// row strides lda / ldc, W dense [k, n] (the Linear op's layout). Internally this is the
// column-major product C^T = W^T A^T, which is what cuBLASLt computes without transposes.
//
// Algorithms are opaque cublasLtMatmulAlgo_t values; `GemmAlgo` carries one as bytes so the
// compiler can store the choice in the engine and the runtime can use it again (checked with
// cublasLtMatmulAlgoCheck at load: an algorithm that does not fit this GPU / library is an error).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "kernels/cuda/kernels.h"

namespace clickrt::cuda {

enum class GemmEpilogue : int { kNone = 0, kBias = 1, kBiasRelu = 2 };
enum class GemmCompute : int { kF32 = 0, kTF32 = 1, kF16 = 2 /* fp16 inputs, fp32 accumulate */,
                               kBF16 = 3 };

struct GemmDesc {
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldc = 0;
  DataType a_type = DataType::kF32, w_type = DataType::kF32, c_type = DataType::kF32;
  GemmCompute compute = GemmCompute::kF32;
  GemmEpilogue epilogue = GemmEpilogue::kNone;
  // "m=..,n=..,k=..,lda=..,ldc=..,a=f16,w=f16,c=f16,compute=f16,epi=bias_relu": the timing-cache key.
  std::string Key() const;
};

struct GemmAlgo {
  std::vector<uint8_t> bytes;  // a cublasLtMatmulAlgo_t; empty = let the heuristic choose at run
  size_t workspace = 0;        // bytes the algorithm needs
  std::string ToHex() const;
  static StatusOr<GemmAlgo> FromHex(const std::string& hex);  // 2 * 64 hex digits + ":" workspace
};

// One handle per device; thread-safe for Run (cuBLASLt handles are), one per process is enough.
class LtGemm {
 public:
  static StatusOr<std::unique_ptr<LtGemm>> Create();
  ~LtGemm();

  // Up to `max` candidate algorithms from cuBLASLt's heuristic for this shape (best first).
  StatusOr<std::vector<GemmAlgo>> Candidates(const GemmDesc& desc, int max) const;
  // Checks that `algo` is valid for `desc` on this GPU and library (engine load).
  Status Check(const GemmDesc& desc, const GemmAlgo& algo) const;
  // Enqueues the GEMM on `stream`. `bias` is device float [n] (or null when no bias epilogue);
  // `workspace` at least algo.workspace bytes. Capturable in a CUDA graph.
  Status Run(const GemmDesc& desc, const GemmAlgo& algo, const void* a, const void* w,
             const float* bias, void* c, void* workspace, cudaStream_t stream) const;

  // "13.0.1" style cuBLASLt version.
  static std::string Version();

  struct Impl;

 private:
  explicit LtGemm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Times `fn` (already warm) on `stream` with CUDA events: the median of `reps` runs, in ms.
StatusOr<double> TimeOnStream(const std::function<Status()>& fn, cudaStream_t stream, int reps);

}  // namespace clickrt::cuda
