// Inference for the fused ops the compiler's passes create (domain "clickrt").
#include "ops/infer_common.h"

namespace clickrt::ops {

using detail::NodeError;
using detail::SetOutput;

Status InferEmbeddingLookup(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 1, {DType::kInt64, DType::kInt32}));
  const ir::Shape& table = n.inputs[0]->shape;
  const ir::Shape& ids = n.inputs[1]->shape;
  ir::Shape out;
  if (table.rank_known && ids.rank_known) {
    if (table.rank() != 2) return NodeError(n, "table must be 2-D, got " + table.ToString());
    out = ids;
    out.dims.push_back(table.dims[1]);
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferLinear(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, {DType::kFloat32, DType::kFloat16, DType::kBFloat16}));
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  const ir::Shape& x = n.inputs[0]->shape;
  const ir::Shape& w = n.inputs[1]->shape;
  ir::Shape out;
  if (x.rank_known && w.rank_known) {
    if (w.rank() != 2 || x.rank() < 1) return NodeError(n, "W must be 2-D [K,N]");
    const ir::Dim& k = x.dims.back();
    if (k.known() && w.dims[0].known() && k.value != w.dims[0].value) {
      return NodeError(n, "x " + x.ToString() + " does not match W " + w.ToString());
    }
    out = x;
    out.dims.back() = w.dims[1];
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferFMInteraction(ir::Node& n) {
  const ir::Shape& e = n.inputs[0]->shape;
  ir::Shape out;
  if (e.rank_known) {
    if (e.rank() != 3) return NodeError(n, "input must be [B,F,D], got " + e.ToString());
    out.rank_known = true;
    out.dims = {e.dims[0], ir::Dim::Known(1)};
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferCross(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  SetOutput(n, 0, n.inputs[0]->dtype, n.inputs[1]->shape);
  return Status::Ok();
}

}  // namespace clickrt::ops
