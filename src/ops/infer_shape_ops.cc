// Inference for the ops that move, select or describe data: Gather, Concat, Reshape, Slice, ...
#include <algorithm>

#include "ops/infer_common.h"

namespace clickrt::ops {

using detail::ConstInput;
using detail::NodeError;
using detail::SetOutput;

namespace {

ir::Shape RankOnly(int64_t rank) {
  ir::Shape s;
  s.rank_known = true;
  s.dims.resize(static_cast<size_t>(rank));
  return s;
}

// Shape of a 1-D int64 shape tensor's values, if constant.
bool ConstDims(const ir::Node& n, size_t i, std::vector<int64_t>* out) {
  const Tensor* t = ConstInput(n, i);
  if (t == nullptr) return false;
  auto v = t->ToInt64Vector();
  if (!v.ok()) return false;
  *out = v.value();
  return true;
}

}  // namespace

Status InferConstant(ir::Node& n) {
  Tensor value;
  if (const Tensor* t = n.GetTensor("value")) {
    value = *t;
  } else if (n.HasAttr("value_float")) {
    value = Tensor::Scalar(DType::kFloat32, n.GetFloat("value_float", 0));
  } else if (n.HasAttr("value_int")) {
    value = Tensor::Scalar(DType::kInt64, static_cast<double>(n.GetInt("value_int", 0)));
  } else if (n.HasAttr("value_floats")) {
    auto it = n.attrs.find("value_floats");
    auto& v = std::get<std::vector<float>>(it->second);
    value = Tensor::FromVector<float>({static_cast<int64_t>(v.size())}, v);
  } else if (n.HasAttr("value_ints")) {
    auto v = n.GetInts("value_ints");
    value = Tensor::FromVector<int64_t>({static_cast<int64_t>(v.size())}, v);
  } else {
    return Unimplemented("node " + n.Label() +
                         ": Constant needs one of value, value_float(s), value_int(s) "
                         "(sparse and string constants are not supported)");
  }
  SetOutput(n, 0, value.dtype(), ir::Shape::FromDims(value.dims()));
  n.outputs[0]->constant = value;
  return Status::Ok();
}

Status InferConstantOfShape(ir::Node& n) {
  const Tensor* v = n.GetTensor("value");
  DType dt = v ? v->dtype() : DType::kFloat32;
  std::vector<int64_t> dims;
  if (ConstDims(n, 0, &dims)) {
    SetOutput(n, 0, dt, ir::Shape::FromDims(dims));
  } else if (const ir::Node* p = n.inputs[0]->producer;
             p && p->op == ir::OpKind::kShape && !p->HasAttr("start") && !p->HasAttr("end")) {
    SetOutput(n, 0, dt, p->inputs[0]->shape);  // ConstantOfShape(Shape(x)) is shaped like x
  } else {
    const ir::Shape& s = n.inputs[0]->shape;
    SetOutput(n, 0, dt, s.fully_known() && s.rank() == 1 ? RankOnly(s.dims[0].value) : ir::Shape{});
  }
  return Status::Ok();
}

Status InferShape(ir::Node& n) {
  const ir::Shape& s = n.inputs[0]->shape;
  if (!s.rank_known) {
    SetOutput(n, 0, DType::kInt64, RankOnly(1));
    return Status::Ok();
  }
  int64_t r = s.rank();
  int64_t start = n.GetInt("start", 0), end = n.GetInt("end", r);
  if (start < 0) start += r;
  if (end < 0) end += r;
  start = std::clamp<int64_t>(start, 0, r);
  end = std::clamp<int64_t>(end, start, r);
  SetOutput(n, 0, DType::kInt64, ir::Shape::FromDims({end - start}));
  bool known = true;
  std::vector<int64_t> vals;
  for (int64_t i = start; i < end; ++i) {
    known &= s.dims[i].known();
    vals.push_back(s.dims[i].value);
  }
  if (known) n.outputs[0]->constant = Tensor::FromVector<int64_t>({end - start}, vals);
  return Status::Ok();
}

Status InferGather(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 1, {DType::kInt64, DType::kInt32}));
  const ir::Shape& d = n.inputs[0]->shape;
  const ir::Shape& idx = n.inputs[1]->shape;
  ir::Shape out;
  if (d.rank_known && idx.rank_known) {
    if (d.rank() == 0) return NodeError(n, "data must have rank >= 1");
    auto axis = NormalizeAxis(n.GetInt("axis", 0), d.rank());
    if (!axis.ok()) return NodeError(n, axis.status().message());
    out.rank_known = true;
    out.dims.assign(d.dims.begin(), d.dims.begin() + axis.value());
    out.dims.insert(out.dims.end(), idx.dims.begin(), idx.dims.end());
    out.dims.insert(out.dims.end(), d.dims.begin() + axis.value() + 1, d.dims.end());
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferGatherElements(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 1, {DType::kInt64, DType::kInt32}));
  SetOutput(n, 0, n.inputs[0]->dtype, n.inputs[1]->shape);
  return Status::Ok();
}

Status InferConcat(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireSameDTypes(n));
  if (!n.HasAttr("axis")) return NodeError(n, "Concat requires the 'axis' attribute");
  ir::Shape out;
  bool all_known = std::all_of(n.inputs.begin(), n.inputs.end(),
                               [](const ir::Value* v) { return v && v->shape.rank_known; });
  if (all_known) {
    int r = n.inputs[0]->shape.rank();
    auto axis = NormalizeAxis(n.GetInt("axis", 0), r);
    if (!axis.ok()) return NodeError(n, axis.status().message());
    out = n.inputs[0]->shape;
    int64_t total = 0;
    bool total_known = true;
    for (const ir::Value* v : n.inputs) {
      if (v->shape.rank() != r) {
        return NodeError(n, "inputs have different ranks: " + n.inputs[0]->shape.ToString() +
                                " and " + v->shape.ToString());
      }
      const ir::Dim& d = v->shape.dims[axis.value()];
      total_known &= d.known();
      total += d.value;
    }
    out.dims[axis.value()] = total_known ? ir::Dim::Known(total) : ir::Dim{};
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferReshape(ir::Node& n) {
  RETURN_IF_ERROR(detail::RequireDTypes(n, 1, {DType::kInt64}));
  std::vector<int64_t> target;
  const ir::Shape& in = n.inputs[0]->shape;
  if (!ConstDims(n, 1, &target)) {
    const ir::Shape& s = n.inputs[1]->shape;
    SetOutput(n, 0, n.inputs[0]->dtype,
              s.fully_known() && s.rank() == 1 ? RankOnly(s.dims[0].value) : ir::Shape{});
    return Status::Ok();
  }
  bool allowzero = n.GetInt("allowzero", 0) != 0;
  ir::Shape out;
  out.rank_known = true;
  int infer_at = -1;
  int64_t known_product = 1;
  bool product_known = true;
  for (size_t i = 0; i < target.size(); ++i) {
    int64_t t = target[i];
    if (t == -1) {
      if (infer_at >= 0) return NodeError(n, "shape has more than one -1");
      infer_at = static_cast<int>(i);
      out.dims.emplace_back();
    } else if (t == 0 && !allowzero) {
      if (!in.rank_known || static_cast<int>(i) >= in.rank()) {
        if (in.rank_known) return NodeError(n, "shape copies dimension " + std::to_string(i) +
                                                   " of an input of rank " + std::to_string(in.rank()));
        out.dims.emplace_back();
        product_known = false;
      } else {
        out.dims.push_back(in.dims[i]);
        if (in.dims[i].known()) known_product *= in.dims[i].value; else product_known = false;
      }
    } else if (t < 0) {
      return NodeError(n, "invalid target dimension " + std::to_string(t));
    } else {
      out.dims.push_back(ir::Dim::Known(t));
      known_product *= t;
    }
  }
  if (infer_at >= 0 && in.fully_known() && product_known && known_product > 0) {
    int64_t total = NumElements(in.ToDims());
    if (total % known_product != 0) {
      return NodeError(n, "cannot reshape " + in.ToString() + " to " + DimsToString(target));
    }
    out.dims[infer_at] = ir::Dim::Known(total / known_product);
  } else if (infer_at >= 0 && in.rank_known && product_known) {
    // Common export pattern: [batch, a, b] -> [-1, a*b]: the unknown dims carry over.
    int64_t in_known = 1;
    std::vector<ir::Dim> unknown;
    for (const ir::Dim& d : in.dims) {
      if (d.known()) in_known *= d.value; else unknown.push_back(d);
    }
    if (unknown.size() == 1 && known_product > 0 && in_known == known_product) {
      out.dims[infer_at] = unknown[0];
    }
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferFlatten(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  ir::Shape out;
  if (in.rank_known) {
    int64_t axis = n.GetInt("axis", 1);
    if (axis < 0) axis += in.rank();
    if (axis < 0 || axis > in.rank()) return NodeError(n, "axis out of range for " + in.ToString());
    auto prod = [&](int64_t b, int64_t e) {
      if (e - b == 1) return in.dims[b];
      int64_t p = 1;
      for (int64_t i = b; i < e; ++i) {
        if (!in.dims[i].known()) return ir::Dim{};
        p *= in.dims[i].value;
      }
      return ir::Dim::Known(p);
    };
    out.rank_known = true;
    out.dims = {prod(0, axis), prod(axis, in.rank())};
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferSqueeze(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  AxesArg axes = GetAxesArg(n, 1);
  ir::Shape out;
  if (in.rank_known && axes.known) {
    out.rank_known = true;
    std::vector<bool> drop(in.rank(), false);
    if (axes.present) {
      for (int64_t a : axes.axes) {
        auto ax = NormalizeAxis(a, in.rank());
        if (!ax.ok()) return NodeError(n, ax.status().message());
        if (in.dims[ax.value()].known() && in.dims[ax.value()].value != 1) {
          return NodeError(n, "cannot squeeze axis " + std::to_string(a) + " of " + in.ToString());
        }
        drop[ax.value()] = true;
      }
    } else {
      for (int i = 0; i < in.rank(); ++i) {
        if (!in.dims[i].known()) return SetOutput(n, 0, n.inputs[0]->dtype, {}), Status::Ok();
        drop[i] = in.dims[i].value == 1;
      }
    }
    for (int i = 0; i < in.rank(); ++i) {
      if (!drop[i]) out.dims.push_back(in.dims[i]);
    }
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferUnsqueeze(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  AxesArg axes = GetAxesArg(n, 1);
  if (!axes.present) return NodeError(n, "Unsqueeze needs axes");
  ir::Shape out;
  if (in.rank_known && axes.known) {
    int64_t r = in.rank() + static_cast<int64_t>(axes.axes.size());
    std::vector<bool> ins(r, false);
    for (int64_t a : axes.axes) {
      auto ax = NormalizeAxis(a, r);
      if (!ax.ok()) return NodeError(n, ax.status().message());
      if (ins[ax.value()]) return NodeError(n, "axis " + std::to_string(a) + " given twice");
      ins[ax.value()] = true;
    }
    out.rank_known = true;
    size_t j = 0;
    for (int64_t i = 0; i < r; ++i) out.dims.push_back(ins[i] ? ir::Dim::Known(1) : in.dims[j++]);
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  const Tensor* c = ConstInput(n, 0);
  if (c && out.fully_known()) n.outputs[0]->constant = c->Reshaped(out.ToDims()).value();
  return Status::Ok();
}

Status InferTranspose(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  ir::Shape out;
  if (in.rank_known) {
    std::vector<int64_t> perm = n.GetInts("perm");
    if (perm.empty()) {
      for (int i = in.rank() - 1; i >= 0; --i) perm.push_back(i);
    }
    if (static_cast<int>(perm.size()) != in.rank()) {
      return NodeError(n, "perm has " + std::to_string(perm.size()) + " entries for rank " +
                              std::to_string(in.rank()));
    }
    out.rank_known = true;
    std::vector<bool> seen(in.rank(), false);
    for (int64_t p : perm) {
      if (p < 0 || p >= in.rank() || seen[p]) return NodeError(n, "perm is not a permutation");
      seen[p] = true;
      out.dims.push_back(in.dims[p]);
    }
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferSlice(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  ir::Shape out;
  std::vector<int64_t> starts, ends, axes, steps;
  bool known = in.rank_known;
  if (n.opset < 10) {
    starts = n.GetInts("starts");
    ends = n.GetInts("ends");
    axes = n.GetInts("axes");
  } else {
    known = known && ConstDims(n, 1, &starts) && ConstDims(n, 2, &ends);
    if (n.input(3)) known = known && ConstDims(n, 3, &axes);
    if (n.input(4)) known = known && ConstDims(n, 4, &steps);
  }
  if (in.rank_known) out = RankOnly(in.rank());
  if (known) {
    if (axes.empty()) {
      for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
    }
    if (steps.empty()) steps.assign(starts.size(), 1);
    if (ends.size() != starts.size() || axes.size() != starts.size() || steps.size() != starts.size()) {
      return NodeError(n, "starts, ends, axes and steps must have the same length");
    }
    out = in;
    for (size_t i = 0; i < starts.size(); ++i) {
      auto ax = NormalizeAxis(axes[i], in.rank());
      if (!ax.ok()) return NodeError(n, ax.status().message());
      const ir::Dim& d = in.dims[ax.value()];
      if (steps[i] == 0) return NodeError(n, "step must not be 0");
      if (!d.known()) {
        out.dims[ax.value()] = ir::Dim{};
        continue;
      }
      int64_t dim = d.value, s = starts[i], e = ends[i], st = steps[i];
      if (s < 0) s += dim;
      if (e < 0) e += dim;
      int64_t len;
      if (st > 0) {
        s = std::clamp<int64_t>(s, 0, dim);
        e = std::clamp<int64_t>(e, 0, dim);
        len = e > s ? (e - s + st - 1) / st : 0;
      } else {
        s = std::clamp<int64_t>(s, 0, dim - 1);
        e = std::clamp<int64_t>(e, -1, dim - 1);
        len = s > e ? (s - e - st - 1) / (-st) : 0;
      }
      out.dims[ax.value()] = ir::Dim::Known(len);
    }
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferSplit(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  size_t nout = n.outputs.size();
  for (size_t i = 0; i < nout; ++i) SetOutput(n, i, n.inputs[0]->dtype, {});
  if (!in.rank_known) return Status::Ok();
  auto axis = NormalizeAxis(n.GetInt("axis", 0), in.rank());
  if (!axis.ok()) return NodeError(n, axis.status().message());
  std::vector<int64_t> split = n.GetInts("split");
  if (n.input(1) && !ConstDims(n, 1, &split)) {
    for (size_t i = 0; i < nout; ++i) SetOutput(n, i, n.inputs[0]->dtype, RankOnly(in.rank()));
    return Status::Ok();
  }
  const ir::Dim& d = in.dims[axis.value()];
  if (split.empty()) {
    if (!d.known()) return Status::Ok();
    int64_t chunk = (d.value + static_cast<int64_t>(nout) - 1) / static_cast<int64_t>(nout);
    for (size_t i = 0; i < nout; ++i) {
      split.push_back(std::min<int64_t>(chunk, d.value - chunk * static_cast<int64_t>(i)));
    }
  }
  if (split.size() != nout) {
    return NodeError(n, "split has " + std::to_string(split.size()) + " sizes for " +
                            std::to_string(nout) + " outputs");
  }
  for (size_t i = 0; i < nout; ++i) {
    ir::Shape s = in;
    s.dims[axis.value()] = ir::Dim::Known(split[i]);
    SetOutput(n, i, n.inputs[0]->dtype, s);
  }
  return Status::Ok();
}

Status InferExpand(ir::Node& n) {
  std::vector<int64_t> target;
  ir::Shape out;
  if (ConstDims(n, 1, &target)) {
    auto s = BroadcastShapes(n.inputs[0]->shape, ir::Shape::FromDims(target));
    if (!s.ok()) return NodeError(n, s.status().message());
    out = s.value();
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

Status InferTile(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  std::vector<int64_t> reps;
  ir::Shape out;
  if (in.rank_known) out = RankOnly(in.rank());
  if (in.rank_known && ConstDims(n, 1, &reps)) {
    if (static_cast<int>(reps.size()) != in.rank()) {
      return NodeError(n, "repeats has " + std::to_string(reps.size()) + " entries for rank " +
                              std::to_string(in.rank()));
    }
    for (int i = 0; i < in.rank(); ++i) {
      out.dims[i] = in.dims[i].known() ? ir::Dim::Known(in.dims[i].value * reps[i])
                                       : (reps[i] == 1 ? in.dims[i] : ir::Dim{});
    }
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}

namespace {
Status InferReduce(ir::Node& n) {
  const ir::Shape& in = n.inputs[0]->shape;
  AxesArg axes = GetAxesArg(n, 1);
  bool keepdims = n.GetInt("keepdims", 1) != 0;
  bool noop = n.GetInt("noop_with_empty_axes", 0) != 0;
  ir::Shape out;
  if (in.rank_known && axes.known) {
    std::vector<bool> red(in.rank(), !axes.present || axes.axes.empty());
    if ((!axes.present || axes.axes.empty()) && noop) red.assign(in.rank(), false);
    for (int64_t a : axes.axes) {
      auto ax = NormalizeAxis(a, in.rank());
      if (!ax.ok()) return NodeError(n, ax.status().message());
      red[ax.value()] = true;
    }
    out.rank_known = true;
    for (int i = 0; i < in.rank(); ++i) {
      if (!red[i]) {
        out.dims.push_back(in.dims[i]);
      } else if (keepdims) {
        out.dims.push_back(ir::Dim::Known(1));
      }
    }
  }
  SetOutput(n, 0, n.inputs[0]->dtype, out);
  return Status::Ok();
}
}  // namespace

Status InferReduceSum(ir::Node& n) { return InferReduce(n); }
Status InferReduceMean(ir::Node& n) { return InferReduce(n); }
Status InferReduceMax(ir::Node& n) { return InferReduce(n); }

}  // namespace clickrt::ops
