// `clickrt build`: ONNX -> import -> passes -> kernel choice -> memory plan -> engine file.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/engine_file.h"
#include "ir/graph.h"

namespace clickrt::compiler {

// The GPU a cuda engine is built for (filled by the caller, which links CUDA; the compiler
// itself does not).
struct GpuTarget {
  std::string name, sm_arch, cuda_version, cublaslt_version;
};

struct BuildOptions {
  std::string backend = "cpu";     // "cpu" or "cuda"
  // cpu: fp32, int8; cuda: fp32, tf32, fp16, bf16, int8, fp8. int8 / fp8 need `after_passes` to
  // assign layer precisions from a calibration (quant/quantize_graph.h does).
  std::string precision = "fp32";
  // Runs on the optimized graph between the passes and lowering (precision assignment, row-wise
  // quantized embeddings); null = nothing. Its error fails the build; what it returns (unless
  // null) is recorded as the engine's meta.extra.precision_assignment.
  std::function<StatusOr<nlohmann::json>(ir::Graph&)> after_passes;
  std::string calibration_sha256;  // written into the engine's metadata
  // Buckets empty: the cuda backend takes min, max and the powers of 8 between (each gets its
  // own tuned kernels and CUDA graph); the cpu backend needs none.
  engine::Profile profile{1, 64, 4096, {}};
  GpuTarget gpu;
  // ISA the CPU kernels are chosen for: "" = this machine's best ("avx512", "avx2", "generic").
  std::string cpu_isa;
  // Build time written into the engine. "" = SOURCE_DATE_EPOCH if set (reproducible builds), else now.
  std::string build_time_utc;
  bool optimize = true;  // run the pass pipeline
  // Progress lines ("[2/5] passes: ..."); null = silent.
  std::function<void(const std::string&)> progress;
};

struct BuildResult {
  engine::Program program;
  std::vector<uint8_t> weights;
  std::string graph_before;  // ir::Dump of the imported graph
  std::string graph_after;   // after the passes
};

StatusOr<BuildResult> Build(const std::string& onnx_path, const BuildOptions& options);

// Converts an (optimized) graph to an engine program and its weights blob; `batch_symbol` names the
// batch dimension ("" = the first dim of the first input). Exposed for tests.
StatusOr<BuildResult> Lower(const ir::Graph& graph, const BuildOptions& options);

}  // namespace clickrt::compiler
