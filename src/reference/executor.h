// The reference executor: runs an ir::Graph node by node with the reference CPU kernels.
// It is the ground truth clickrt's compiled engines are checked against: slow, simple, exact.
//
// Inputs are checked against the graph's declared dtypes and shapes (a symbol such as "batch"
// must bind to one size across all inputs); errors name the input or node.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <string>

#include "base/tensor.h"
#include "ir/graph.h"

namespace clickrt::reference {

using TensorMap = std::map<std::string, Tensor>;

// Runs one node with the reference kernels: `inputs` aligned with node.inputs (nullptr for an
// omitted optional input), results appended to `outputs` in node.outputs order. Backends call
// this for the layers they do not support themselves.
Status RunNode(const ir::Node& node, const std::vector<const Tensor*>& inputs,
               std::vector<Tensor>* outputs);

// Checks `inputs` against the graph's inputs: every one present, dtypes, ranks, known dims, one
// size per symbolic dim, no unknown names. Errors name the input.
Status CheckInputs(const ir::Graph& graph, const TensorMap& inputs);

class Executor {
 public:
  // Fails if the graph has an unsupported op or does not verify. `graph` must outlive the executor.
  static StatusOr<std::unique_ptr<Executor>> Create(const ir::Graph* graph);

  // Runs the graph; returns every graph output by name. Thread-safe (no mutable state).
  StatusOr<TensorMap> Run(const TensorMap& inputs) const;

  // Sees every value as it is computed: each graph input first, then each node's non-constant
  // outputs right after the node ran (constants are not reported). The tensor is only valid
  // during the call. Calibration (src/quant) collects activation ranges through it.
  using Observer = std::function<void(const std::string& value, const Tensor& tensor)>;
  // Run() that calls `observe` (may be empty: then exactly Run(inputs)).
  StatusOr<TensorMap> Run(const TensorMap& inputs, const Observer& observe) const;

 private:
  explicit Executor(const ir::Graph* g) : graph_(g) {}

  const ir::Graph* graph_;
};

}  // namespace clickrt::reference
