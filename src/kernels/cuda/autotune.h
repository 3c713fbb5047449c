// Picks a cuBLASLt algorithm for one GEMM by timing the heuristic's candidates on this GPU.
//
// The compiler calls this for every Linear layer and batch bucket of a CUDA build, with the
// timing cache (src/compiler/timing_cache.h) in front so a rebuild on the same GPU, CUDA and
// cuBLASLt skips the timing.
#pragma once

#include <cuda_runtime.h>

#include "clickrt/status.h"
#include "kernels/cuda/gemm.h"

namespace clickrt::cuda {

struct GemmChoice {
  GemmAlgo algo;            // the fastest candidate
  double ms = 0;            // its median time
  double heuristic_ms = 0;  // the median time of the heuristic's first candidate
  int tried = 0;            // candidates the heuristic offered
  int failed = 0;           // of those, how many would not run (skipped)
};

// Allocates scratch A, W, C, bias and workspace on the current device (random values in
// [-1, 1): timing on zeros would flatter some kernels), runs each of up to `max_candidates`
// heuristic candidates twice to warm up and then times it (median, TimeOnStream), and returns
// the fastest. Candidates that fail to run are skipped; no candidate running is an error. A and
// C are placed at exactly desc.align so that alignment-sensitive kernels are timed as they will
// run. Synchronizes `stream` before returning; frees everything it allocated.
StatusOr<GemmChoice> AutotuneGemm(const LtGemm& gemm, const GemmDesc& desc, int max_candidates,
                                  cudaStream_t stream);

}  // namespace clickrt::cuda
