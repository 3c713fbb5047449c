// Inference for the fused ops the compiler's passes create (domain "clickrt").
#include "ops/infer_common.h"

namespace clickrt::ops {

using detail::NodeError;
using detail::SetOutput;

Status InferEmbeddingLookup(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 1, {DType::kInt64, DType::kInt32}));
  const ir::Shape& table = n.inputs[0]->shape;
  const ir::Shape& ids = n.inputs[1]->shape;
  // A uint8 table holds row-wise quantized rows (docs/FUSED_OPS.md): the output is float32 and its
  // width is the embedding_dim attribute, not the row's byte count.
  const bool quantized = n.inputs[0]->dtype == DType::kUInt8;
  const int64_t row_format = n.GetInt("row_format", 0);
  if (quantized != (row_format != 0)) {
    return NodeError(n, "a uint8 table needs row_format 1 (int8) or 2 (int4), and only a uint8 "
                        "table may have one (table " + std::string(DTypeName(n.inputs[0]->dtype)) +
                        ", row_format " + std::to_string(row_format) + ")");
  }
  if (quantized && (row_format < 1 || row_format > 2 || n.GetInt("embedding_dim", 0) < 1)) {
    return NodeError(n, "row_format must be 1 or 2 and embedding_dim positive");
  }
  ir::Shape out;
  if (table.rank_known && ids.rank_known) {
    if (table.rank() != 2) return NodeError(n, "table must be 2-D, got " + table.ToString());
    out = ids;
    out.dims.push_back(quantized ? ir::Dim::Known(n.GetInt("embedding_dim", 0)) : table.dims[1]);
  }
  SetOutput(n, 0, quantized ? DType::kFloat32 : n.inputs[0]->dtype, out);
  return Status::Ok();
}

// INT8 Linear / Cross: W int8 with a float32 per-output-channel scale at `scale_index`, the
// activation scale in attr x_scale; everything else float32.
Status CheckInt8Weights(const ir::Node& n, size_t w_index, size_t scale_index) {
  if (n.input(w_index) == nullptr || n.input(w_index)->dtype != DType::kInt8) {
    if (n.input(scale_index) != nullptr) {
      return NodeError(n, "w_scale is only allowed with an int8 W");
    }
    return Status::Ok();
  }
  if (n.input(scale_index) == nullptr || n.input(scale_index)->dtype != DType::kFloat32) {
    return NodeError(n, "an int8 W needs a float32 w_scale input");
  }
  if (!(n.GetFloat("x_scale", 0.f) > 0.f)) {
    return NodeError(n, "an int8 W needs a positive x_scale attribute");
  }
  for (size_t i = 0; i < n.inputs.size(); ++i) {
    if (i != w_index && n.inputs[i] && n.inputs[i]->dtype != DType::kFloat32) {
      return NodeError(n, "input " + std::to_string(i) + " '" + n.inputs[i]->name +
                              "' must be float32 in an INT8 layer, got " +
                              DTypeName(n.inputs[i]->dtype));
    }
  }
  return Status::Ok();
}

Status InferLinear(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, {DType::kFloat32, DType::kFloat16, DType::kBFloat16}));
  RETURN_IF_ERROR(CheckInt8Weights(n, 1, 3));
  if (n.inputs[1]->dtype != DType::kInt8) RETURN_IF_ERROR(detail::RequireSameDTypes(n));
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
  RETURN_IF_ERROR(CheckInt8Weights(n, 2, 4));
  if (n.inputs[2]->dtype != DType::kInt8) RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  SetOutput(n, 0, n.inputs[0]->dtype, n.inputs[1]->shape);
  return Status::Ok();
}

// q [B,D], k [B,L,D], mask [B,L] bool, then (W [K,H], b [H], slope) per hidden layer, W_out [H,1],
// b_out [1]. Output [B,D], B and D taken from k (the subgraph's MatMul with k gives them).
Status InferDinAttention(ir::Node& n) {
  if (n.inputs.size() < 5 || (n.inputs.size() - 5) % 3 != 0) {
    return NodeError(n, "takes q, k, mask, 3 inputs per hidden layer, W_out and b_out; got " +
                            std::to_string(n.inputs.size()) + " inputs");
  }
  for (const ir::Value* v : n.inputs) {
    if (v == nullptr) return NodeError(n, "no input may be omitted");
  }
  RETURN_IF_ERROR(
      detail::RequireDTypes(n, 0, {DType::kFloat32, DType::kFloat16, DType::kBFloat16}));
  RETURN_IF_ERROR(detail::RequireDTypes(n, 2, {DType::kBool}));
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    if (i != 2 && n.inputs[i]->dtype != n.inputs[0]->dtype) {
      return NodeError(n, "input " + std::to_string(i) + " '" + n.inputs[i]->name + "' has dtype " +
                              DTypeName(n.inputs[i]->dtype) + ", q has " +
                              DTypeName(n.inputs[0]->dtype));
    }
  }
  const ir::Shape& q = n.inputs[0]->shape;
  const ir::Shape& k = n.inputs[1]->shape;
  const ir::Shape& mask = n.inputs[2]->shape;
  if ((q.rank_known && q.rank() != 2) || (k.rank_known && k.rank() != 3) ||
      (mask.rank_known && mask.rank() != 2)) {
    return NodeError(n, "needs q [B,D], k [B,L,D] and mask [B,L], got " + q.ToString() + ", " +
                            k.ToString() + ", " + mask.ToString());
  }
  if (q.rank_known && k.rank_known && q.dims[1].known() && k.dims[2].known() &&
      q.dims[1].value != k.dims[2].value) {
    return NodeError(n, "q " + q.ToString() + " and k " + k.ToString() + " differ in D");
  }
  const ir::Shape& w_out = n.inputs[n.inputs.size() - 2]->shape;
  if (w_out.rank_known && (w_out.rank() != 2 || !(w_out.dims[1] == ir::Dim::Known(1)))) {
    return NodeError(n, "W_out must be [H,1], got " + w_out.ToString());
  }
  ir::Shape out;
  if (k.rank_known) {
    out.rank_known = true;
    out.dims = {k.dims[0], k.dims[2]};
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

}  // namespace clickrt::ops
