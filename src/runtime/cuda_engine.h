// The CUDA runtime: runs an engine file built for the cuda backend on one GPU.
//
// At load the engine's layers are lowered to GPU steps (src/runtime/cuda_plan.cc): the embedding
// gather fused with FM, the first-order sum and the write into the MLP's concat input; chains of
// elementwise ops as one kernel; Linear layers as cuBLASLt GEMMs with fused bias + ReLU, or, for
// small batches, the whole MLP in one kernel; Cross as a GEMM plus one elementwise kernel.
// Weights are uploaded once (converted to the engine's precision) and shared by every execution
// context. A context owns a stream, a device arena (planned from the steps' liveness), pinned host
// buffers and one CUDA graph per batch bucket: a request is padded to the smallest bucket that
// holds it, copied in, run as one graph launch, and copied out.
//
// Precision (meta.precision): fp32 (FP32 everywhere), tf32 (FP32 storage, TF32 tensor-core GEMMs),
// fp16 / bf16 (matrix activations, tables and weights in 16 bits, FP32 accumulation); the
// per-row scalars (FM, first-order, the final logit) and every output stay FP32.
//
// Run() is thread-safe: each call takes an idle context (or makes one).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "engine/engine_file.h"
#include "ir/graph.h"
#include "runtime/inference_engine.h"

namespace clickrt::runtime {

struct CudaEngineOptions {
  int device = 0;
  int contexts = 1;        // made at load; more are made on demand
  bool capture_graphs = true;  // off: launch the steps one by one (debugging, profiles)
  bool profile = false;    // time every step with CUDA events (forces capture_graphs off)
};

// Times of one Run(), in milliseconds (CUDA events on the context's stream, except end_to_end,
// which is the host wall time of the whole call).
struct GpuRunTimes {
  double h2d_ms = 0, compute_ms = 0, d2h_ms = 0, end_to_end_ms = 0;
  int64_t bucket = 0;  // the batch size the request was padded to
};

struct GpuStepTiming {
  std::string name, kernel;
  double total_ms = 0;
  int64_t calls = 0;
};

class CudaEngine : public InferenceEngine {
 public:
  static StatusOr<std::unique_ptr<CudaEngine>> Load(const std::string& path,
                                                    const CudaEngineOptions& options = {});
  static StatusOr<std::unique_ptr<CudaEngine>> Create(std::shared_ptr<engine::LoadedEngine> engine,
                                                      const CudaEngineOptions& options = {});
  ~CudaEngine() override;

  StatusOr<reference::TensorMap> Run(const reference::TensorMap& inputs) override;
  // Run() that also reports where the time went.
  StatusOr<reference::TensorMap> RunTimed(const reference::TensorMap& inputs, GpuRunTimes* times);

  const engine::Program& program() const override;
  std::vector<IoSpec> inputs() const override;
  std::vector<IoSpec> outputs() const override;
  std::string backend() const override { return "cuda"; }
  const ir::Graph& graph() const;

  // Device bytes: weights (shared) and one context's arena + I/O buffers.
  int64_t weight_bytes() const;
  int64_t context_bytes() const;
  std::vector<GpuStepTiming> Timings() const;
  // One line per step ("embedding+fm+first -> concat", "gemm 221x400 bias_relu", ...).
  std::vector<std::string> Describe() const;

  // Autotuning (used by `clickrt build --backend cuda`): for every bucket of the profile, times
  // each GEMM's candidate algorithms (looked up in / added to `cache`) and the fused-MLP variant
  // against the GEMM chain, and returns the choices to store in meta.extra["cuda"].
  struct TuneReport {
    int gemms_timed = 0, cache_hits = 0;
    std::vector<std::string> lines;  // progress / decisions, for the build's output
  };
  StatusOr<nlohmann::json> Tune(class TimingCacheView* cache, TuneReport* report);

  struct Impl;

 private:
  explicit CudaEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What autotuning reads and writes: a key -> (choice, ms) map (the compiler's timing cache
// implements it; the runtime does not depend on the compiler).
class TimingCacheView {
 public:
  virtual ~TimingCacheView() = default;
  virtual bool Find(const std::string& key, std::string* choice, double* ms) const = 0;
  virtual void Put(const std::string& key, const std::string& choice, double ms) = 0;
};

// "sm_90" for the given device; "" when there is none.
std::string CudaSmArch(int device);

}  // namespace clickrt::runtime
