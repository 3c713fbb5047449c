// Dtype and shape inference, one Infer<Op> per row of the op table (src/ir/op_list.inc).
//
// Inference is best effort for shapes (an unknown dimension or rank is fine) and strict for dtypes:
// inputs whose dtypes an op does not accept are an error naming the node. Where every input of a
// shape-computing op (Shape, Constant, ...) is constant, the result is recorded as a constant so
// later Reshape / Slice / Expand nodes get exact shapes.
#pragma once

#include "ir/graph.h"

namespace clickrt::ops {

#define CLICKRT_OP(name, ...) Status Infer##name(ir::Node& node);
#include "ir/op_list.inc"
#undef CLICKRT_OP

// Infers one node's output dtypes and shapes from its inputs.
Status InferNode(ir::Node& node);
// Infers every node in order; errors carry the node's label.
Status InferGraph(ir::Graph* g);

// Numpy-style broadcast of symbolic shapes; error when two known dims differ and neither is 1.
StatusOr<ir::Shape> BroadcastShapes(const ir::Shape& a, const ir::Shape& b);
// Normalizes a possibly negative axis into [0, rank); error names the axis and rank.
StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank);

// Axes of a reduce / squeeze / unsqueeze node, from the attribute (older opsets) or the optional
// second input (newer opsets). `present` is false when no axes were given; axes input that is
// not constant makes `known` false.
struct AxesArg {
  bool present = false;
  bool known = true;
  std::vector<int64_t> axes;
};
AxesArg GetAxesArg(const ir::Node& node, size_t input_index);

}  // namespace clickrt::ops
