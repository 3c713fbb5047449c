// Reading input tensors for `clickrt run` and printing outputs.
#pragma once

#include <iosfwd>
#include <string>

#include "ir/graph.h"
#include "reference/executor.h"

namespace clickrt::cli {

// Loads inputs from:
//  - a directory of ONNX TensorProto files `<input_name>.pb` (or ONNX test-data style
//    `input_<i>.pb`, matched to the graph's inputs by position),
//  - a single JSON file {"<input_name>": nested arrays, ...}; dtypes come from the model.
StatusOr<reference::TensorMap> LoadInputs(const std::string& path, const ir::Graph& graph);

// JSON value -> tensor of the given dtype (shape from the nesting); error names `name`.
StatusOr<Tensor> TensorFromJson(const std::string& json_text, DType dtype, const std::string& name);

// Random valid inputs for `graph` at `batch`: floats uniform in [0, 1); integer ids uniform in
// [0, vocabulary) of the embedding field they index (from EmbeddingLookup sizes or the table rows),
// else 0. Deterministic for a seed.
StatusOr<reference::TensorMap> SyntheticInputs(const ir::Graph& graph, int64_t batch, uint64_t seed);

// Prints "name: float32[8,1]" then the values, at most `max_values` of them.
void PrintTensor(std::ostream& os, const std::string& name, const Tensor& t, int64_t max_values);
// {"name": {"dtype":..., "shape":[...], "data":[...]}} for every tensor.
std::string TensorsToJson(const reference::TensorMap& tensors);

}  // namespace clickrt::cli
