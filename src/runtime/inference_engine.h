// The interface the server scores through: one loaded engine, CPU or CUDA, behind one Run().
//
// A backend (CpuEngine, CudaEngine) implements it; the server, the batcher and the tools see only
// this. Run() is thread-safe and may be called from many threads at once (each call takes its own
// execution context: an arena on the CPU, a stream + arena + CUDA graphs on the GPU).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "base/tensor.h"
#include "clickrt/status.h"
#include "engine/engine_file.h"
#include "reference/executor.h"

namespace clickrt::runtime {

// One input or output of the engine as a caller sees it. dims: -1 marks the batch dimension.
struct IoSpec {
  std::string name;
  DType dtype = DType::kUndefined;
  std::vector<int64_t> dims;
};

class InferenceEngine {
 public:
  virtual ~InferenceEngine() = default;

  // Scores one batch. Inputs are checked (names, dtypes, shapes); a batch outside the engine's
  // profile [min, max] is an InvalidArgument naming both. Outputs are host tensors.
  virtual StatusOr<reference::TensorMap> Run(const reference::TensorMap& inputs) = 0;

  virtual const engine::Program& program() const = 0;
  virtual std::vector<IoSpec> inputs() const = 0;
  virtual std::vector<IoSpec> outputs() const = 0;
  // "cpu" or "cuda".
  virtual std::string backend() const = 0;
  int64_t max_batch() const { return program().meta.profile.max; }
};

struct EngineLoadOptions {
  int cpu_threads = 0;   // CPU backend: 0 = every CPU this process may use
  int device = 0;        // CUDA backend: device index
  int contexts = 2;      // execution contexts made up front (more are made on demand)
};

// Backends other than cpu live in their own targets (the CUDA runtime links CUDA); the program
// that links one registers its loader at start-up, before the first LoadInferenceEngine call.
using EngineLoaderFn = std::function<StatusOr<std::unique_ptr<InferenceEngine>>(
    const std::string& path, const EngineLoadOptions& options)>;
void RegisterEngineLoader(const std::string& backend, EngineLoaderFn loader);

// Loads an engine file of either backend (the backend is read from the file); errors name the
// file and what did not match (e.g. a cuda engine where no GPU or no CUDA support exists).
StatusOr<std::unique_ptr<InferenceEngine>> LoadInferenceEngine(const std::string& path,
                                                               const EngineLoadOptions& options = {});

}  // namespace clickrt::runtime
