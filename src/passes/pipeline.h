// The pass pipeline `clickrt build` runs between import and kernel choice. The order is fixed in
// one function, RunPipeline (pipeline.cc), with the reason for each position.
#pragma once

#include <string>
#include <vector>

#include "ir/graph.h"
#include "passes/pass.h"

namespace clickrt::passes {

struct PipelineOptions {
  // false: only fold_constants, specialize_shapes and eliminate_dead_code (a plain but smaller
  // graph, for debugging a fusion or comparing against the unfused model).
  bool fuse = true;
  // Passes not to run, by name ("fuse_cross"); an unknown name is an error.
  std::vector<std::string> skip;
  // Largest single result fold_constants materializes.
  int64_t fold_max_bytes = kDefaultFoldMaxBytes;
  // The batch sizes the engine will run; a fixed one (min == max) is built into every shape by
  // specialize_shapes.
  BatchProfile batch;
  // Run ir::Verify after every pass, so a broken rewrite is caught naming its pass.
  bool verify_each = true;
};

// What one pass run did, in pipeline order (a pass may run more than once).
struct PassReport {
  std::string name;  // "fuse_linear"
  int rewrites = 0;  // matches rewritten (eliminate_dead_code: nodes + values removed)
  size_t nodes_before = 0;
  size_t nodes_after = 0;
  double millis = 0;
};

// The names of the passes, in the order RunPipeline runs them (each once).
const std::vector<std::string>& PassNames();

// Runs the pipeline on an inferred, verified graph (as the ONNX importer returns it). `report`
// may be null. Errors name the pass.
Status RunPipeline(ir::Graph& g, const PipelineOptions& options, std::vector<PassReport>* report);

// "fuse_linear: 5 rewrites, 45 -> 40 nodes (0.1 ms)", one line per entry.
std::string FormatReport(const std::vector<PassReport>& report);

}  // namespace clickrt::passes
