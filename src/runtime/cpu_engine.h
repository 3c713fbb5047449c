// The CPU runtime: runs an engine file built for the cpu backend.
//
// Layers whose kernel is a fast one (Linear, Cross, EmbeddingLookup, FMInteraction) run the
// ISA-specific kernels of src/kernels/cpu/fast over a thread pool; every other layer falls back to
// its reference kernel. Activations live in one arena per execution context, at the offsets of the
// engine's static memory plan. Run() is thread-safe: each call takes an idle context (or makes one).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine_file.h"
#include "ir/graph.h"
#include "reference/executor.h"

namespace clickrt::runtime {

struct CpuEngineOptions {
  int threads = 0;       // 0 = every CPU this process may use
  bool profile = false;  // time every layer (adds two clock reads per layer)
};

struct LayerTiming {
  std::string name, op, kernel;
  double total_ms = 0;
  int64_t calls = 0;
};

class CpuEngine {
 public:
  // Loads and validates an engine file; errors name the file and what did not match.
  static StatusOr<std::unique_ptr<CpuEngine>> Load(const std::string& path,
                                                   const CpuEngineOptions& options = {});
  static StatusOr<std::unique_ptr<CpuEngine>> Create(std::shared_ptr<engine::LoadedEngine> engine,
                                                     const CpuEngineOptions& options = {});
  ~CpuEngine();

  // Scores one batch. Inputs are checked like the reference executor's (names, dtypes, shapes);
  // a batch outside the engine's profile [min, max] is an error naming both.
  StatusOr<reference::TensorMap> Run(const reference::TensorMap& inputs);

  const engine::Program& program() const;
  // The graph the engine runs (inputs and outputs with their declared shapes).
  const ir::Graph& graph() const;
  std::vector<LayerTiming> Timings() const;
  void ResetTimings();

  struct Impl;

 private:
  explicit CpuEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// Rebuilds the IR graph of an engine program; constants view `engine`'s weights (no copy).
StatusOr<std::unique_ptr<ir::Graph>> RaiseProgram(const engine::LoadedEngine& engine);

}  // namespace clickrt::runtime
