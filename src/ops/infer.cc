// Inference driver, shared helpers, and the element-wise / NN ops.
#include "ops/infer.h"

#include <algorithm>

#include "ops/infer_common.h"

namespace clickrt::ops {

using detail::ConstInput;
using detail::NodeError;
using detail::SetOutput;

namespace detail {

Status RequireDTypes(const ir::Node& n, size_t i, std::initializer_list<DType> allowed) {
  ir::Value* v = n.input(i);
  if (v == nullptr) return Status::Ok();
  for (DType t : allowed) {
    if (v->dtype == t) return Status::Ok();
  }
  std::string list;
  for (DType t : allowed) list += (list.empty() ? "" : ", ") + std::string(DTypeName(t));
  return NodeError(n, "input " + std::to_string(i) + " '" + v->name + "' has dtype " +
                          DTypeName(v->dtype) + "; expected one of " + list);
}

Status RequireSameDTypes(const ir::Node& n) {
  const ir::Value* first = nullptr;
  for (const ir::Value* v : n.inputs) {
    if (v == nullptr) continue;
    if (first == nullptr) {
      first = v;
    } else if (v->dtype != first->dtype) {
      return NodeError(n, "inputs '" + first->name + "' (" + DTypeName(first->dtype) + ") and '" +
                              v->name + "' (" + DTypeName(v->dtype) + ") must have the same dtype");
    }
  }
  return Status::Ok();
}

}  // namespace detail

StatusOr<int64_t> NormalizeAxis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return InvalidArgument("axis " + std::to_string(axis) + " is out of range for rank " +
                           std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

StatusOr<ir::Shape> BroadcastShapes(const ir::Shape& a, const ir::Shape& b) {
  if (!a.rank_known || !b.rank_known) return ir::Shape::Unknown();
  ir::Shape out;
  out.rank_known = true;
  int r = std::max(a.rank(), b.rank());
  out.dims.resize(r);
  for (int i = 0; i < r; ++i) {
    int ia = i - (r - a.rank()), ib = i - (r - b.rank());
    ir::Dim da = ia >= 0 ? a.dims[ia] : ir::Dim::Known(1);
    ir::Dim db = ib >= 0 ? b.dims[ib] : ir::Dim::Known(1);
    if (da.known() && da.value == 1) {
      out.dims[i] = db;
    } else if (db.known() && db.value == 1) {
      out.dims[i] = da;
    } else if (da.known() && db.known()) {
      if (da.value != db.value) {
        return InvalidArgument("shapes " + a.ToString() + " and " + b.ToString() +
                               " cannot be broadcast");
      }
      out.dims[i] = da;
    } else {
      // A known size > 1 wins over a symbol; a symbol wins over an anonymous unknown.
      out.dims[i] = da.known() ? da : db.known() ? db : (da.symbol.empty() ? db : da);
    }
  }
  return out;
}

AxesArg GetAxesArg(const ir::Node& node, size_t input_index) {
  AxesArg r;
  if (node.HasAttr("axes")) {
    r.present = true;
    r.axes = node.GetInts("axes");
    return r;
  }
  ir::Value* v = node.input(input_index);
  if (v == nullptr) return r;
  r.present = true;
  if (!v->constant) {
    r.known = false;
    return r;
  }
  auto axes = v->constant->ToInt64Vector();
  if (!axes.ok()) {
    r.known = false;
    return r;
  }
  r.axes = axes.value();
  return r;
}

Status InferNode(ir::Node& n) {
  switch (n.op) {
#define CLICKRT_OP(name, ...) \
  case ir::OpKind::k##name:   \
    return Infer##name(n);
#include "ir/op_list.inc"
#undef CLICKRT_OP
    case ir::OpKind::kUnsupported:
      return Status::Ok();  // nothing is known about its outputs
  }
  return Status::Ok();
}

Status InferGraph(ir::Graph* g) {
  for (const auto& n : g->nodes()) {
    for (ir::Value* in : n->inputs) {
      if (in && in->dtype == DType::kUndefined && n->op != ir::OpKind::kUnsupported) {
        // Produced by an unsupported op: nothing to infer from.
        goto next;
      }
    }
    RETURN_IF_ERROR(InferNode(*n));
  next:;
  }
  return Status::Ok();
}

namespace {

Status InferUnarySame(ir::Node& n, std::initializer_list<DType> allowed) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, allowed));
  SetOutput(n, 0, n.inputs[0]->dtype, n.inputs[0]->shape);
  return Status::Ok();
}

const std::initializer_list<DType> kFloats = {DType::kFloat32, DType::kFloat64, DType::kFloat16,
                                              DType::kBFloat16};
const std::initializer_list<DType> kNumeric = {DType::kFloat32, DType::kFloat64, DType::kFloat16,
                                               DType::kBFloat16, DType::kInt32, DType::kInt64,
                                               DType::kInt8, DType::kUInt8};

Status InferBinary(ir::Node& n, bool logical_out, std::initializer_list<DType> allowed) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, allowed));
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  auto s = BroadcastShapes(n.inputs[0]->shape, n.inputs[1]->shape);
  if (!s.ok()) return NodeError(n, s.status().message());
  SetOutput(n, 0, logical_out ? DType::kBool : n.inputs[0]->dtype, s.value());
  return Status::Ok();
}

}  // namespace

Status InferAdd(ir::Node& n) { return InferBinary(n, false, kNumeric); }
Status InferSub(ir::Node& n) { return InferBinary(n, false, kNumeric); }
Status InferMul(ir::Node& n) { return InferBinary(n, false, kNumeric); }
Status InferDiv(ir::Node& n) { return InferBinary(n, false, kNumeric); }
Status InferEqual(ir::Node& n) {
  return InferBinary(n, true, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32,
                               DType::kInt64, DType::kInt8, DType::kUInt8, DType::kBool});
}
Status InferGreater(ir::Node& n) { return InferBinary(n, true, kNumeric); }
Status InferLess(ir::Node& n) { return InferBinary(n, true, kNumeric); }
Status InferAnd(ir::Node& n) { return InferBinary(n, true, {DType::kBool}); }

Status InferPow(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, kNumeric));
  RETURN_IF_ERROR(detail::RequireDTypes(n, 1, kNumeric));
  auto s = BroadcastShapes(n.inputs[0]->shape, n.inputs[1]->shape);
  if (!s.ok()) return NodeError(n, s.status().message());
  SetOutput(n, 0, n.inputs[0]->dtype, s.value());
  return Status::Ok();
}

Status InferSum(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, kNumeric));
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  ir::Shape s = n.inputs[0]->shape;
  for (size_t i = 1; i < n.inputs.size(); ++i) {
    auto b = BroadcastShapes(s, n.inputs[i]->shape);
    if (!b.ok()) return NodeError(n, b.status().message());
    s = b.value();
  }
  SetOutput(n, 0, n.inputs[0]->dtype, s);
  return Status::Ok();
}

Status InferWhere(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, {DType::kBool}));
  if (n.inputs[1]->dtype != n.inputs[2]->dtype) {
    return NodeError(n, "X and Y must have the same dtype");
  }
  auto s = BroadcastShapes(n.inputs[0]->shape, n.inputs[1]->shape);
  if (s.ok()) s = BroadcastShapes(s.value(), n.inputs[2]->shape);
  if (!s.ok()) return NodeError(n, s.status().message());
  SetOutput(n, 0, n.inputs[1]->dtype, s.value());
  return Status::Ok();
}

Status InferNot(ir::Node& n) { return InferUnarySame(n, {DType::kBool}); }
Status InferNeg(ir::Node& n) {
  return InferUnarySame(n, {DType::kFloat32, DType::kFloat64, DType::kFloat16, DType::kInt32,
                            DType::kInt64, DType::kInt8});
}
Status InferSqrt(ir::Node& n) { return InferUnarySame(n, kFloats); }
Status InferExp(ir::Node& n) { return InferUnarySame(n, kFloats); }
Status InferLog(ir::Node& n) { return InferUnarySame(n, kFloats); }
Status InferRelu(ir::Node& n) { return InferUnarySame(n, kNumeric); }
Status InferLeakyRelu(ir::Node& n) { return InferUnarySame(n, kFloats); }
Status InferSigmoid(ir::Node& n) { return InferUnarySame(n, kFloats); }
Status InferTanh(ir::Node& n) { return InferUnarySame(n, kFloats); }
Status InferSoftmax(ir::Node& n) { return InferUnarySame(n, kFloats); }
Status InferIdentity(ir::Node& n) {
  SetOutput(n, 0, n.inputs[0]->dtype, n.inputs[0]->shape);
  if (n.inputs[0]->constant && n.outputs[0]) n.outputs[0]->constant = n.inputs[0]->constant;
  return Status::Ok();
}

Status InferPRelu(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, kNumeric));
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  auto s = BroadcastShapes(n.inputs[0]->shape, n.inputs[1]->shape);
  if (!s.ok()) return NodeError(n, s.status().message());
  SetOutput(n, 0, n.inputs[0]->dtype, s.value());
  return Status::Ok();
}

Status InferDropout(ir::Node& n) {
  SetOutput(n, 0, n.inputs[0]->dtype, n.inputs[0]->shape);
  SetOutput(n, 1, DType::kBool, n.inputs[0]->shape);
  return Status::Ok();
}

Status InferBatchNormalization(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, kFloats));
  SetOutput(n, 0, n.inputs[0]->dtype, n.inputs[0]->shape);
  return Status::Ok();
}

Status InferLayerNormalization(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, kFloats));
  const ir::Shape& x = n.inputs[0]->shape;
  SetOutput(n, 0, n.inputs[0]->dtype, x);
  ir::Shape stat = ir::Shape::Unknown();
  if (x.rank_known) {
    auto axis = NormalizeAxis(n.GetInt("axis", -1), x.rank());
    if (!axis.ok()) return NodeError(n, axis.status().message());
    stat = x;
    for (int i = static_cast<int>(axis.value()); i < x.rank(); ++i) stat.dims[i] = ir::Dim::Known(1);
  }
  DType stash = static_cast<DType>(n.GetInt("stash_type", 1));
  SetOutput(n, 1, stash, stat);
  SetOutput(n, 2, stash, stat);
  return Status::Ok();
}

Status InferMatMul(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, kNumeric));
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  const ir::Shape& a = n.inputs[0]->shape;
  const ir::Shape& b = n.inputs[1]->shape;
  ir::Shape out = ir::Shape::Unknown();
  if (a.rank_known && b.rank_known && a.rank() > 0 && b.rank() > 0) {
    ir::Shape a2 = a, b2 = b;
    if (a2.rank() == 1) a2.dims.insert(a2.dims.begin(), ir::Dim::Known(1));
    if (b2.rank() == 1) b2.dims.push_back(ir::Dim::Known(1));
    ir::Dim k1 = a2.dims.back(), k2 = b2.dims[b2.rank() - 2];
    if (k1.known() && k2.known() && k1.value != k2.value) {
      return NodeError(n, "inner dimensions differ: " + a.ToString() + " x " + b.ToString());
    }
    ir::Shape ba, bb;
    ba.rank_known = bb.rank_known = true;
    ba.dims.assign(a2.dims.begin(), a2.dims.end() - 2);
    bb.dims.assign(b2.dims.begin(), b2.dims.end() - 2);
    auto batch = BroadcastShapes(ba, bb);
    if (!batch.ok()) return NodeError(n, batch.status().message());
    out = batch.value();
    if (a.rank() > 1) out.dims.push_back(a2.dims[a2.rank() - 2]);
    if (b.rank() > 1) out.dims.push_back(b2.dims.back());
  } else if ((a.rank_known && a.rank() == 0) || (b.rank_known && b.rank() == 0)) {
    return NodeError(n, "MatMul inputs must have rank >= 1");
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferGemm(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 0, kNumeric));
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  const ir::Shape& a = n.inputs[0]->shape;
  const ir::Shape& b = n.inputs[1]->shape;
  ir::Shape out = ir::Shape::Unknown();
  if (a.rank_known && b.rank_known) {
    if (a.rank() != 2 || b.rank() != 2) {
      return NodeError(n, "Gemm needs 2-D A and B, got " + a.ToString() + " and " + b.ToString());
    }
    bool ta = n.GetInt("transA", 0) != 0, tb = n.GetInt("transB", 0) != 0;
    ir::Dim m = a.dims[ta ? 1 : 0], ka = a.dims[ta ? 0 : 1];
    ir::Dim kb = b.dims[tb ? 1 : 0], nn = b.dims[tb ? 0 : 1];
    if (ka.known() && kb.known() && ka.value != kb.value) {
      return NodeError(n, "inner dimensions differ: A " + a.ToString() + " B " + b.ToString());
    }
    out.rank_known = true;
    out.dims = {m, nn};
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferCast(ir::Node& n) {
  auto to = DTypeFromOnnx(static_cast<int32_t>(n.GetInt("to", 0)));
  if (!to.ok()) return to.status().WithContext("node " + n.Label());
  SetOutput(n, 0, to.value(), n.inputs[0]->shape);
  return Status::Ok();
}

}  // namespace clickrt::ops
