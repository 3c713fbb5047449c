// The CLI's GPU parts: implemented by gpu_cuda.cc in builds with CUDA, by gpu_none.cc otherwise
// (CMake picks one), so no command carries #ifdefs.
#pragma once

#include <string>

#include "clickrt/status.h"
#include "compiler/compiler.h"

namespace clickrt::cli::gpu {

// Registers the cuda engine loader with runtime::LoadInferenceEngine (called once by main).
void Install();

// `clickrt build --backend cuda`: compiles, autotunes every GEMM and the fused MLP per batch
// bucket on `device` (timing cache `timing_cache` when non-empty), and writes the engine.
Status BuildCuda(const std::string& model, compiler::BuildOptions options, const std::string& output,
                 const std::string& timing_cache, int device, bool dump_graph);

struct BenchArgs {
  std::string engine, inputs;
  int64_t batch = 1;
  int iterations = 0;
  double duration_s = 3.0;
  int warmup = 20;
  int device = 0;
  bool profile = false, json = false;
};
// `clickrt bench` of a cuda engine: H2D, GPU compute, D2H and end-to-end latency percentiles,
// throughput, GPU memory; per-step GPU times with --profile.
Status BenchCuda(const BenchArgs& args);

// True when the file is a cuda engine (reads the header only).
bool IsCudaEngine(const std::string& path);

}  // namespace clickrt::cli::gpu
