// QuantizeLinear / DequantizeLinear (ONNX opsets 10..21): dtypes and shapes.
//
// Supported: per-tensor (one-element scale) and per-axis (1-D scale along `axis`) scales, int8 and
// uint8 codes (DequantizeLinear also int32, as ONNX Runtime's quantized biases are), optional zero
// points. Block quantization (opset 21 `block_size`) and the float8 / int4 / 16-bit code types are
// refused with UNIMPLEMENTED (the latter already by the importer, which has no such dtypes).
#include "ops/infer_common.h"

namespace clickrt::ops {

using detail::NodeError;
using detail::SetOutput;

namespace {

const std::initializer_list<DType> kScaleTypes = {DType::kFloat32, DType::kFloat16,
                                                  DType::kBFloat16};

Status CheckCommon(const ir::Node& n) {
  if (n.GetInt("block_size", 0) != 0) {
    return Unimplemented("node " + n.Label() +
                         ": block quantization (block_size) is not supported; quantize per "
                         "tensor or per axis");
  }
  RETURN_IF_ERROR(detail::RequireDTypes(n, 1, kScaleTypes));
  // A per-axis scale must fit the axis; a shape known on both sides is checked here, the rest by
  // the kernel at run time.
  const ir::Shape& x = n.inputs[0]->shape;
  const ir::Shape& s = n.inputs[1]->shape;
  if (x.rank_known && s.rank_known && s.rank() == 1 && s.dims[0].known() && s.dims[0].value != 1) {
    auto axis = NormalizeAxis(n.GetInt("axis", 1), x.rank());
    if (!axis.ok()) return NodeError(n, axis.status().message());
    const ir::Dim& d = x.dims[axis.value()];
    if (d.known() && d.value != s.dims[0].value) {
      return NodeError(n, "per-axis scale " + s.ToString() + " does not match dim " +
                              std::to_string(axis.value()) + " of x " + x.ToString());
    }
  }
  if (s.rank_known && s.rank() > 1) {
    return NodeError(n, "scale " + s.ToString() + " must be a scalar or 1-D");
  }
  // The zero point has the scale's elements ([] and [1] are both one; ORT writes them so).
  const ir::Value* zp = n.input(2);
  if (zp && zp->shape.fully_known() && s.fully_known() &&
      NumElements(zp->shape.ToDims()) != NumElements(s.ToDims())) {
    return NodeError(n, "zero point " + zp->shape.ToString() + " and scale " + s.ToString() +
                            " must have one shape");
  }
  return Status::Ok();
}

}  // namespace

Status InferQuantizeLinear(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(
      n, 0, {DType::kFloat32, DType::kFloat16, DType::kBFloat16, DType::kInt32}));
  RETURN_IF_ERROR(CheckCommon(n));
  // The code type: the zero point's, else opset 21's output_dtype, else uint8.
  DType out = DType::kUInt8;
  const int64_t attr = n.GetInt("output_dtype", 0);
  if (attr != 0) {
    auto t = DTypeFromOnnx(static_cast<int32_t>(attr));
    if (!t.ok()) return t.status().WithContext("node " + n.Label() + ": output_dtype");
    out = t.value();
  }
  if (const ir::Value* zp = n.input(2)) {
    if (attr != 0 && zp->dtype != out) {
      return NodeError(n, "output_dtype " + std::string(DTypeName(out)) +
                              " differs from the zero point's dtype " + DTypeName(zp->dtype));
    }
    out = zp->dtype;
  }
  if (out != DType::kInt8 && out != DType::kUInt8) {
    return Unimplemented("node " + n.Label() + ": quantizing to " + DTypeName(out) +
                         " is not supported (int8 and uint8 are)");
  }
  SetOutput(n, 0, out, n.inputs[0]->shape);
  return Status::Ok();
}

Status InferDequantizeLinear(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, {DType::kInt8, DType::kUInt8, DType::kInt32}));
  RETURN_IF_ERROR(CheckCommon(n));
  if (const ir::Value* zp = n.input(2); zp && zp->dtype != n.inputs[0]->dtype) {
    return NodeError(n, "zero point '" + zp->name + "' is " + DTypeName(zp->dtype) + ", x is " +
                            DTypeName(n.inputs[0]->dtype) + "; they must match");
  }
  SetOutput(n, 0, n.inputs[1]->dtype, n.inputs[0]->shape);
  return Status::Ok();
}

}  // namespace clickrt::ops
