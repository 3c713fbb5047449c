// cuBLASLt GEMM with fused epilogues, and the autotuner that picks its algorithm.
//
// Row-major terms throughout: C[m, n] = epilogue(A[m, k] @ W[k, n] + bias[n]), A and C with
// row strides lda / ldc, W dense [k, n] (the Linear op's layout). Internally this is the
// column-major product C^T = W^T A^T, which is what cuBLASLt computes without transposes.
//
// Algorithms are opaque cublasLtMatmulAlgo_t values; `GemmAlgo` carries one as bytes so the
// compiler can store the choice in the engine and the runtime can use it again (checked with
// cublasLtMatmulAlgoCheck at load: an algorithm that does not fit this GPU / library is an error).
//
// Supported type combinations (anything else is InvalidArgument naming the field):
//   compute f32 / tf32: a, w, c all f32 (tf32 = CUBLAS_COMPUTE_32F_FAST_TF32 tensor cores)
//   compute f16:        a, w f16; c f16 or f32 (FP32 accumulation, FP32 alpha/beta)
//   compute bf16:       a, w bf16; c bf16 or f32
//
// Bias: always FP32 [n] from the caller. cuBLASLt's bias must have the output's type unless the
// library says otherwise; for a 16-bit output LtGemm first asks the heuristic whether an FP32
// bias is accepted, and where it is not, Run converts the bias into the front of the workspace
// (one tiny kernel on the same stream; the room is counted in GemmAlgo::workspace).
//
// Alignment: cuBLASLt picks vectorized kernels from the pointers' alignment. GemmDesc::align
// declares the alignment (bytes) that A, W, C and the bias all have; Run rejects a pointer that
// has less (a column offset into a Concat's output, ptr + col, is often only element-aligned:
// declare align = AlignmentOf(ptr) for those GEMMs when tuning and running).
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
enum class GemmCompute : int {
  kF32 = 0,
  kTF32 = 1,
  kF16 = 2,  // fp16 inputs, fp32 accumulate
  kBF16 = 3,
};

struct GemmDesc {
  int64_t m = 0, n = 0, k = 0;
  int64_t lda = 0, ldc = 0;
  DataType a_type = DataType::kF32, w_type = DataType::kF32, c_type = DataType::kF32;
  GemmCompute compute = GemmCompute::kF32;
  GemmEpilogue epilogue = GemmEpilogue::kNone;
  // Bytes every one of A, W, C and the bias is aligned to: a power of two, at least the element
  // size, at most 256 (what cudaMalloc gives).
  int64_t align = 256;
  // "m=..,n=..,k=..,lda=..,ldc=..,a=f16,w=f16,c=f16,compute=f16,epi=bias_relu,align=256": the
  // timing-cache key.
  std::string Key() const;
};

// OK, or InvalidArgument naming the first bad field (m/n/k <= 0, ld < cols, a type combination
// outside the table above, a bad alignment).
Status ValidateGemmDesc(const GemmDesc& desc);

// The largest power of two (<= 256) that divides the address: what to put in GemmDesc::align.
int64_t AlignmentOf(const void* ptr);

struct GemmAlgo {
  std::vector<uint8_t> bytes;  // a cublasLtMatmulAlgo_t; empty = let the heuristic choose at run
  // Bytes of device workspace Run needs with this algorithm (the algorithm's own workspace plus
  // the converted bias, if any).
  size_t workspace = 0;
  // 128 hex digits (the 64 algorithm bytes) + ":" + workspace in decimal; "heuristic:<workspace>"
  // for an empty algo. Lower-case on output; FromHex accepts either case.
  std::string ToHex() const;
  static StatusOr<GemmAlgo> FromHex(const std::string& hex);
};

// One handle per device; thread-safe (descriptors are cached per GemmDesc under a mutex; Run
// builds its per-call descriptor on the stack), one per process is enough.
class LtGemm {
 public:
  // The workspace limit given to the heuristic (cuBLAS's recommendation for Hopper).
  static constexpr size_t kMaxWorkspace = 32u << 20;

  static StatusOr<std::unique_ptr<LtGemm>> Create();
  ~LtGemm();

  // Up to `max` candidate algorithms from cuBLASLt's heuristic for this shape (best first).
  // Unimplemented when the library has none for this desc.
  StatusOr<std::vector<GemmAlgo>> Candidates(const GemmDesc& desc, int max) const;
  // Checks that `algo` is valid for `desc` on this GPU and library (engine load):
  // InvalidArgument for malformed bytes, FailedPrecondition when cuBLASLt rejects the algorithm
  // or it needs more workspace than algo.workspace says. An empty algo is valid when the
  // heuristic has an algorithm for desc.
  Status Check(const GemmDesc& desc, const GemmAlgo& algo) const;
  // Device bytes Run needs for `desc` with `algo`: algo.workspace for a chosen algorithm; for an
  // empty one (the heuristic's pick, made with no cuBLAS workspace) just the bias scratch.
  StatusOr<size_t> WorkspaceSize(const GemmDesc& desc, const GemmAlgo& algo) const;
  // Enqueues the GEMM on `stream`. `bias` is device float [n] (or null when no bias epilogue);
  // `workspace` at least WorkspaceSize(desc, algo) bytes, 256-byte aligned (null when that is 0).
  // Capturable in a CUDA graph once the desc has been seen (the first call with a new desc sets
  // up its descriptors and asks the heuristic, which is host work only; warm up before capture).
  Status Run(const GemmDesc& desc, const GemmAlgo& algo, const void* a, const void* w,
             const float* bias, void* c, void* workspace, cudaStream_t stream) const;

  // "13.1.0" style cuBLASLt version (of the library loaded, not the headers).
  static std::string Version();

  struct Impl;

 private:
  explicit LtGemm(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Times `fn` (already warm) on `stream`, in ms per call: 20 calls captured into one CUDA graph,
// the median of max(5, reps / 4) timed replays divided by 20 (launch overhead left out, as in
// the runtime's graphs); where `fn` cannot be captured, the median of `reps` event-timed calls.
// `fn` only enqueues; the first error it returns is returned.
StatusOr<double> TimeOnStream(const std::function<Status()>& fn, cudaStream_t stream, int reps);

}  // namespace clickrt::cuda
