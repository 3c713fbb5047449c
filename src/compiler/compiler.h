// `clickrt build`: ONNX -> import -> passes -> kernel choice -> memory plan -> engine file.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "engine/engine_file.h"
#include "ir/graph.h"

namespace clickrt::compiler {

struct BuildOptions {
  std::string backend = "cpu";     // only "cpu" is built today
  std::string precision = "fp32";  // only "fp32" is built today
  engine::Profile profile{1, 64, 4096, {}};
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
