#include "reference/executor.h"

#include <algorithm>
#include <cstring>
#include <unordered_map>

#include "kernels/cpu/reference/reference_kernels.h"
#include "ops/infer.h"

namespace clickrt::reference {
namespace {

namespace ref = kernels::ref;
using ir::OpKind;

// Values live for the run; Get returns nullptr for an omitted optional input.
class Frame {
 public:
  const Tensor* Get(const ir::Value* v) const {
    if (v == nullptr) return nullptr;
    if (v->constant) return &*v->constant;
    auto it = values_.find(v);
    return it == values_.end() ? nullptr : &it->second;
  }
  void Set(const ir::Value* v, Tensor t) {
    if (v) values_[v] = std::move(t);
  }
  void Drop(const ir::Value* v) { values_.erase(v); }

 private:
  std::unordered_map<const ir::Value*, Tensor> values_;
};

StatusOr<std::vector<int64_t>> IntsInput(const Tensor* t, const char* what) {
  if (t == nullptr) return std::vector<int64_t>{};
  auto v = t->ToInt64Vector();
  if (!v.ok()) return v.status().WithContext(what);
  return v;
}

StatusOr<Dims> ReshapeTarget(const Dims& in, const std::vector<int64_t>& target, bool allowzero) {
  Dims out(target.begin(), target.end());
  int infer = -1;
  int64_t prod = 1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0 && !allowzero) {
      if (i >= in.size()) return InvalidArgument("shape copies a dimension the input lacks");
      out[i] = in[i];
    }
    if (out[i] == -1) {
      if (infer >= 0) return InvalidArgument("shape has more than one -1");
      infer = static_cast<int>(i);
    } else if (out[i] < 0) {
      return InvalidArgument("invalid target dimension " + std::to_string(out[i]));
    } else {
      prod *= out[i];
    }
  }
  int64_t total = NumElements(in);
  if (infer >= 0) {
    if (prod == 0 || total % prod != 0) {
      return InvalidArgument("cannot reshape " + DimsToString(in) + " to " + DimsToString(target));
    }
    out[infer] = total / prod;
  }
  if (NumElements(out) != total) {
    return InvalidArgument("cannot reshape " + DimsToString(in) + " to " + DimsToString(target));
  }
  return out;
}

// The graph input an index tensor comes from, following element-wise ops (ids + offsets).
std::string IndexOrigin(const ir::Value* v) {
  for (int hops = 0; v && hops < 8; ++hops) {
    if (v->is_graph_input) return v->name;
    const ir::Node* p = v->producer;
    if (p == nullptr) break;
    const ir::Value* next = nullptr;
    for (const ir::Value* in : p->inputs) {
      if (in && !in->constant) {
        next = in;
        break;
      }
    }
    v = next;
  }
  return "";
}

StatusOr<Tensor> Reduce(const ir::Node& n, const std::vector<const Tensor*>& in, ref::ReduceOp op) {
  std::vector<int64_t> axes = n.GetInts("axes");
  if (!n.HasAttr("axes") && in.size() > 1 && in[1]) {
    ASSIGN_OR_RETURN(axes, IntsInput(in[1], "axes"));
  }
  return ref::Reduce(op, *in[0], axes, n.GetInt("keepdims", 1) != 0,
                     n.GetInt("noop_with_empty_axes", 0) != 0);
}

StatusOr<std::vector<int64_t>> AxesOf(const ir::Node& n, const std::vector<const Tensor*>& in) {
  if (n.HasAttr("axes")) return n.GetInts("axes");
  if (in.size() > 1 && in[1]) return IntsInput(in[1], "axes");
  return std::vector<int64_t>{};
}

}  // namespace

Status RunNode(const ir::Node& n, const std::vector<const Tensor*>& in, std::vector<Tensor>* out) {
  if (n.op == OpKind::kConstant) {
    const Tensor* v = n.outputs.empty() || !n.outputs[0] || !n.outputs[0]->constant
                          ? nullptr : &*n.outputs[0]->constant;
    if (v == nullptr) return Internal("Constant " + n.Label() + " has no value");
    out->push_back(*v);
    return Status::Ok();
  }
  if (in.empty() || in[0] == nullptr) return InvalidArgument("node " + n.Label() + ": first input is empty");
  auto one = [&](StatusOr<Tensor> r) -> Status {
    if (!r.ok()) return r.status();
    out->push_back(std::move(r).value());
    return Status::Ok();
  };
  const Tensor& x = *in[0];
  switch (n.op) {
    case OpKind::kAdd: return one(ref::Binary(ref::BinaryOp::kAdd, x, *in[1]));
    case OpKind::kSub: return one(ref::Binary(ref::BinaryOp::kSub, x, *in[1]));
    case OpKind::kMul: return one(ref::Binary(ref::BinaryOp::kMul, x, *in[1]));
    case OpKind::kDiv: return one(ref::Binary(ref::BinaryOp::kDiv, x, *in[1]));
    case OpKind::kPow: return one(ref::Binary(ref::BinaryOp::kPow, x, *in[1]));
    case OpKind::kEqual: return one(ref::Binary(ref::BinaryOp::kEqual, x, *in[1]));
    case OpKind::kGreater: return one(ref::Binary(ref::BinaryOp::kGreater, x, *in[1]));
    case OpKind::kLess: return one(ref::Binary(ref::BinaryOp::kLess, x, *in[1]));
    case OpKind::kAnd: return one(ref::Binary(ref::BinaryOp::kAnd, x, *in[1]));
    case OpKind::kNot: return one(ref::Unary(ref::UnaryOp::kNot, x));
    case OpKind::kNeg: return one(ref::Unary(ref::UnaryOp::kNeg, x));
    case OpKind::kSqrt: return one(ref::Unary(ref::UnaryOp::kSqrt, x));
    case OpKind::kExp: return one(ref::Unary(ref::UnaryOp::kExp, x));
    case OpKind::kLog: return one(ref::Unary(ref::UnaryOp::kLog, x));
    case OpKind::kRelu: return one(ref::Unary(ref::UnaryOp::kRelu, x));
    case OpKind::kSigmoid: return one(ref::Unary(ref::UnaryOp::kSigmoid, x));
    case OpKind::kTanh: return one(ref::Unary(ref::UnaryOp::kTanh, x));
    case OpKind::kLeakyRelu:
      return one(ref::Unary(ref::UnaryOp::kLeakyRelu, x, n.GetFloat("alpha", 0.01f)));
    case OpKind::kPRelu: return one(ref::PRelu(x, *in[1]));
    case OpKind::kWhere: return one(ref::Where(x, *in[1], *in[2]));
    case OpKind::kSum: {
      std::vector<Tensor> xs;
      for (const Tensor* t : in) xs.push_back(*t);
      return one(ref::Sum(xs));
    }
    case OpKind::kCast: {
      ASSIGN_OR_RETURN(DType to, DTypeFromOnnx(static_cast<int32_t>(n.GetInt("to", 0))));
      return one(ref::Cast(x, to));
    }
    case OpKind::kQuantizeLinear:
    case OpKind::kDequantizeLinear: {
      if (n.GetInt("block_size", 0) != 0) {
        return Unimplemented("block quantization (block_size) is not supported");
      }
      if (in.size() < 2 || in[1] == nullptr) {
        return InvalidArgument("node " + n.Label() + ": no scale");
      }
      const Tensor* zp = in.size() > 2 ? in[2] : nullptr;
      const int64_t axis = n.GetInt("axis", 1);
      if (n.op == OpKind::kDequantizeLinear) return one(ref::DequantizeLinear(x, *in[1], zp, axis));
      // The code type: the zero point's, else inference's (opset 21 output_dtype), else uint8.
      DType code = zp ? zp->dtype() : n.outputs[0] ? n.outputs[0]->dtype : DType::kUndefined;
      if (code == DType::kUndefined) code = DType::kUInt8;
      return one(ref::QuantizeLinear(x, *in[1], zp, axis, code));
    }
    case OpKind::kMatMul: return one(ref::MatMul(x, *in[1]));
    case OpKind::kGemm:
      return one(ref::Gemm(x, *in[1], in.size() > 2 ? in[2] : nullptr, n.GetFloat("alpha", 1.f),
                           n.GetFloat("beta", 1.f), n.GetInt("transA", 0) != 0,
                           n.GetInt("transB", 0) != 0));
    case OpKind::kSoftmax:
      return one(ref::Softmax(x, n.GetInt("axis", n.opset < 13 ? 1 : -1), n.opset < 13));
    case OpKind::kBatchNormalization:
      if (n.GetInt("training_mode", 0) != 0) {
        return Unimplemented("training_mode=1 is not supported (inference only)");
      }
      return one(ref::BatchNorm(x, *in[1], *in[2], *in[3], *in[4], n.GetFloat("epsilon", 1e-5f)));
    case OpKind::kLayerNormalization: {
      Tensor y, mean, inv;
      RETURN_IF_ERROR(ref::LayerNorm(x, *in[1], in.size() > 2 ? in[2] : nullptr,
                                     n.GetInt("axis", -1), n.GetFloat("epsilon", 1e-5f), &y,
                                     &mean, &inv));
      *out = {y, mean, inv};
      return Status::Ok();
    }
    case OpKind::kDropout: {
      // Training mode drops at random; with ratio 0 it is the identity, so only that is run.
      const bool training = in.size() > 2 && in[2] && in[2]->GetAsInt64(0) != 0;
      const double ratio = in.size() > 1 && in[1] ? in[1]->GetAsDouble(0) : 0.5;
      if (training && ratio != 0) {
        return Unimplemented("Dropout with training_mode=true is not supported (inference only)");
      }
      out->push_back(x);
      ASSIGN_OR_RETURN(Tensor mask, Tensor::Zeros(DType::kBool, x.dims()));
      for (int64_t i = 0; i < mask.size(); ++i) mask.data<bool>()[i] = true;
      out->push_back(mask);
      return Status::Ok();
    }
    case OpKind::kIdentity: out->push_back(x); return Status::Ok();
    case OpKind::kGather: {
      auto r = ref::Gather(x, *in[1], n.GetInt("axis", 0));
      if (!r.ok() && r.status().code() == StatusCode::kOutOfRange) {
        std::string origin = IndexOrigin(n.inputs[1]);
        return r.status().WithContext(
            origin.empty() ? "indices '" + n.inputs[1]->name + "'"
                           : "ids from input '" + origin + "' (indices '" + n.inputs[1]->name + "')");
      }
      return one(std::move(r));
    }
    case OpKind::kGatherElements: return one(ref::GatherElements(x, *in[1], n.GetInt("axis", 0)));
    case OpKind::kConcat: {
      std::vector<Tensor> xs;
      for (const Tensor* t : in) xs.push_back(*t);
      return one(ref::Concat(xs, n.GetInt("axis", 0)));
    }
    case OpKind::kSplit: {
      ASSIGN_OR_RETURN(int64_t axis, ops::NormalizeAxis(n.GetInt("axis", 0), x.rank()));
      std::vector<int64_t> sizes = n.GetInts("split");
      if (in.size() > 1 && in[1]) {
        ASSIGN_OR_RETURN(sizes, IntsInput(in[1], "split"));
      }
      if (sizes.empty()) {
        int64_t parts = n.HasAttr("num_outputs") ? n.GetInt("num_outputs", 1)
                                                 : static_cast<int64_t>(n.outputs.size());
        int64_t dim = x.dim(static_cast<int>(axis)), chunk = (dim + parts - 1) / parts;
        for (int64_t i = 0; i < parts; ++i) sizes.push_back(std::max<int64_t>(0, std::min(chunk, dim - chunk * i)));
      }
      ASSIGN_OR_RETURN(*out, ref::Split(x, axis, sizes));
      return Status::Ok();
    }
    case OpKind::kSlice: {
      std::vector<int64_t> starts, ends, axes, steps;
      if (n.opset < 10) {
        starts = n.GetInts("starts");
        ends = n.GetInts("ends");
        axes = n.GetInts("axes");
      } else {
        ASSIGN_OR_RETURN(starts, IntsInput(in[1], "starts"));
        ASSIGN_OR_RETURN(ends, IntsInput(in[2], "ends"));
        ASSIGN_OR_RETURN(axes, IntsInput(in.size() > 3 ? in[3] : nullptr, "axes"));
        ASSIGN_OR_RETURN(steps, IntsInput(in.size() > 4 ? in[4] : nullptr, "steps"));
      }
      return one(ref::Slice(x, starts, ends, axes, steps));
    }
    case OpKind::kTranspose: return one(ref::Transpose(x, n.GetInts("perm")));
    case OpKind::kExpand: {
      ASSIGN_OR_RETURN(auto shape, IntsInput(in[1], "shape"));
      return one(ref::Expand(x, shape));
    }
    case OpKind::kTile: {
      ASSIGN_OR_RETURN(auto reps, IntsInput(in[1], "repeats"));
      return one(ref::Tile(x, reps));
    }
    case OpKind::kReduceSum: return one(Reduce(n, in, ref::ReduceOp::kSum));
    case OpKind::kReduceMean: return one(Reduce(n, in, ref::ReduceOp::kMean));
    case OpKind::kReduceMax: return one(Reduce(n, in, ref::ReduceOp::kMax));
    case OpKind::kReshape: {
      ASSIGN_OR_RETURN(auto target, IntsInput(in[1], "shape"));
      ASSIGN_OR_RETURN(Dims d, ReshapeTarget(x.dims(), target, n.GetInt("allowzero", 0) != 0));
      return one(x.Reshaped(d));
    }
    case OpKind::kFlatten: {
      int64_t axis = n.GetInt("axis", 1);
      if (axis < 0) axis += x.rank();
      if (axis < 0 || axis > x.rank()) return InvalidArgument("axis out of range for " + x.Describe());
      Dims d(x.dims().begin(), x.dims().begin() + axis), rest(x.dims().begin() + axis, x.dims().end());
      return one(x.Reshaped({NumElements(d), NumElements(rest)}));
    }
    case OpKind::kSqueeze: {
      ASSIGN_OR_RETURN(auto axes, AxesOf(n, in));
      std::vector<bool> drop(x.rank(), axes.empty());
      if (axes.empty()) {
        for (int i = 0; i < x.rank(); ++i) drop[i] = x.dim(i) == 1;
      }
      for (int64_t a : axes) {
        ASSIGN_OR_RETURN(int64_t ax, ops::NormalizeAxis(a, x.rank()));
        if (x.dim(static_cast<int>(ax)) != 1) {
          return InvalidArgument("cannot squeeze axis " + std::to_string(a) + " of " + x.Describe());
        }
        drop[ax] = true;
      }
      Dims d;
      for (int i = 0; i < x.rank(); ++i) {
        if (!drop[i]) d.push_back(x.dim(i));
      }
      return one(x.Reshaped(d));
    }
    case OpKind::kUnsqueeze: {
      ASSIGN_OR_RETURN(auto axes, AxesOf(n, in));
      int64_t r = x.rank() + static_cast<int64_t>(axes.size());
      std::vector<bool> ins(r, false);
      for (int64_t a : axes) {
        ASSIGN_OR_RETURN(int64_t ax, ops::NormalizeAxis(a, r));
        if (ins[ax]) return InvalidArgument("axis " + std::to_string(a) + " given twice");
        ins[ax] = true;
      }
      Dims d;
      for (int64_t i = 0, j = 0; i < r; ++i) d.push_back(ins[i] ? 1 : x.dim(static_cast<int>(j++)));
      return one(x.Reshaped(d));
    }
    case OpKind::kShape: {
      int64_t r = x.rank(), start = n.GetInt("start", 0), end = n.GetInt("end", r);
      if (start < 0) start += r;
      if (end < 0) end += r;
      start = std::clamp<int64_t>(start, 0, r);
      end = std::clamp<int64_t>(end, start, r);
      return one(Tensor::FromVector<int64_t>(
          {end - start}, std::vector<int64_t>(x.dims().begin() + start, x.dims().begin() + end)));
    }
    case OpKind::kConstantOfShape: {
      ASSIGN_OR_RETURN(auto shape, IntsInput(in[0], "shape"));
      const Tensor* v = n.GetTensor("value");
      ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(v ? v->dtype() : DType::kFloat32, shape));
      if (v) {
        const size_t es = DTypeSize(v->dtype());
        for (int64_t i = 0; i < t.size(); ++i) {
          std::memcpy(static_cast<char*>(t.raw()) + i * es, v->raw(), es);
        }
      }
      return one(t);
    }
    case OpKind::kEmbeddingLookup: {
      const int64_t row_format = n.GetInt("row_format", 0);
      auto r = row_format != 0
                   ? ref::EmbeddingLookupQ(x, static_cast<ref::RowFormat>(row_format),
                                           n.GetInt("embedding_dim", 0), *in[1],
                                           in.size() > 2 ? in[2] : nullptr,
                                           in.size() > 3 ? in[3] : nullptr)
                   : ref::EmbeddingLookup(x, *in[1], in.size() > 2 ? in[2] : nullptr,
                                          in.size() > 3 ? in[3] : nullptr);
      if (!r.ok() && r.status().code() == StatusCode::kOutOfRange) {
        std::string origin = IndexOrigin(n.inputs[1]);
        return r.status().WithContext("ids from input '" + (origin.empty() ? n.inputs[1]->name : origin) + "'");
      }
      return one(std::move(r));
    }
    case OpKind::kLinear: {
      const Tensor* bias = in.size() > 2 ? in[2] : nullptr;
      const auto act = static_cast<ref::Activation>(n.GetInt("activation", 0));
      if (in[1]->dtype() == DType::kInt8) {
        if (in.size() < 4 || in[3] == nullptr) return InvalidArgument("node " + n.Label() + ": int8 W without w_scale");
        return one(ref::QLinear(x, *in[1], *in[3], bias, n.GetFloat("x_scale", 0.f), act));
      }
      return one(ref::Linear(x, *in[1], bias, act));
    }
    case OpKind::kFMInteraction: return one(ref::FMInteraction(x));
    case OpKind::kCross:
      if (in[2]->dtype() == DType::kInt8) {
        if (in.size() < 5 || in[4] == nullptr) return InvalidArgument("node " + n.Label() + ": int8 W without w_scale");
        return one(ref::QCross(x, *in[1], *in[2], *in[4], in[3], n.GetFloat("x_scale", 0.f)));
      }
      return one(ref::Cross(x, *in[1], *in[2], *in[3]));
    case OpKind::kDinAttention: {
      if (in.size() < 5 || (in.size() - 5) % 3 != 0) {
        return InvalidArgument("node " + n.Label() + ": wrong number of inputs");
      }
      for (const Tensor* t : in) {
        if (t == nullptr) return InvalidArgument("node " + n.Label() + ": an input is empty");
      }
      std::vector<ref::DinHiddenLayer> hidden;
      for (size_t i = 3; i + 2 < in.size(); i += 3) hidden.push_back({in[i], in[i + 1], in[i + 2]});
      return one(ref::DinAttention(x, *in[1], *in[2], hidden, *in[in.size() - 2], *in.back(),
                                   static_cast<ref::DinPooling>(n.GetInt("pooling", 0))));
    }
    case OpKind::kConstant:
    case OpKind::kUnsupported:
      break;
  }
  return Internal("no reference kernel for " + n.Label());
}

StatusOr<std::unique_ptr<Executor>> Executor::Create(const ir::Graph* graph) {
  RETURN_IF_ERROR(ir::Verify(*graph, /*allow_unsupported=*/false));
  return std::unique_ptr<Executor>(new Executor(graph));
}

Status CheckInputs(const ir::Graph& graph, const TensorMap& inputs) {
  const ir::Graph* graph_ = &graph;
  std::map<std::string, int64_t> symbols;
  for (const ir::Value* v : graph_->inputs) {
    auto it = inputs.find(v->name);
    if (it == inputs.end()) {
      return NotFound("missing input '" + v->name + "' (expected " + DTypeName(v->dtype) +
                      v->shape.ToString() + ")");
    }
    const Tensor& t = it->second;
    std::string expected = std::string(DTypeName(v->dtype)) + v->shape.ToString();
    if (t.dtype() != v->dtype) {
      return InvalidArgument("input '" + v->name + "': expected " + expected + ", got " +
                             t.Describe() + " (dtype mismatch)");
    }
    if (!v->shape.rank_known) continue;
    if (t.rank() != v->shape.rank()) {
      return InvalidArgument("input '" + v->name + "': expected " + expected + ", got " +
                             t.Describe() + " (rank mismatch)");
    }
    for (int i = 0; i < t.rank(); ++i) {
      const ir::Dim& d = v->shape.dims[i];
      if (d.known() && d.value != t.dim(i)) {
        return InvalidArgument("input '" + v->name + "': expected " + expected + ", got " +
                               t.Describe() + " (dimension " + std::to_string(i) + " differs)");
      }
      if (!d.known() && !d.symbol.empty()) {
        auto [s, inserted] = symbols.emplace(d.symbol, t.dim(i));
        if (!inserted && s->second != t.dim(i)) {
          return InvalidArgument("input '" + v->name + "': dimension '" + d.symbol + "' is " +
                                 std::to_string(t.dim(i)) + " here but " +
                                 std::to_string(s->second) + " in another input");
        }
      }
    }
  }
  for (const auto& [name, t] : inputs) {
    const ir::Value* v = graph_->FindValue(name);
    if (v == nullptr || !v->is_graph_input) {
      std::string names;
      for (const ir::Value* in : graph_->inputs) names += (names.empty() ? "" : ", ") + in->name;
      return InvalidArgument("unknown input '" + name + "'; the model's inputs are: " + names);
    }
  }
  return Status::Ok();
}

StatusOr<TensorMap> Executor::Run(const TensorMap& inputs) const { return Run(inputs, nullptr); }

StatusOr<TensorMap> Executor::Run(const TensorMap& inputs, const Observer& observe) const {
  RETURN_IF_ERROR(CheckInputs(*graph_, inputs));
  Frame frame;
  for (const ir::Value* v : graph_->inputs) {
    frame.Set(v, inputs.at(v->name));
    if (observe) observe(v->name, inputs.at(v->name));
  }
  // Remaining reads per value, so intermediates are freed after their last use.
  std::unordered_map<const ir::Value*, size_t> uses;
  for (const auto& n : graph_->nodes()) {
    for (const ir::Value* v : n->inputs) {
      if (v) ++uses[v];
    }
  }
  for (const auto& node : graph_->nodes()) {
    const ir::Node& n = *node;
    std::vector<Tensor> outs;
    if (n.op == OpKind::kConstant) {
      if (!n.outputs[0]->constant) return Internal("Constant " + n.Label() + " was not inferred");
      outs.push_back(*n.outputs[0]->constant);
    } else {
      std::vector<const Tensor*> in;
      for (size_t i = 0; i < n.inputs.size(); ++i) {
        const Tensor* t = frame.Get(n.inputs[i]);
        if (n.inputs[i] && t == nullptr) {
          return Internal("node " + n.Label() + ": input '" + n.inputs[i]->name + "' not computed");
        }
        if (i == 0 && t == nullptr) return InvalidArgument("node " + n.Label() + ": first input is empty");
        in.push_back(t);
      }
      Status s = RunNode(n, in, &outs);
      if (!s.ok()) return s.WithContext("node " + n.Label());
    }
    for (size_t i = 0; i < n.outputs.size() && i < outs.size(); ++i) {
      if (n.outputs[i] && !n.outputs[i]->constant) {
        if (observe) observe(n.outputs[i]->name, outs[i]);
        frame.Set(n.outputs[i], std::move(outs[i]));
      }
    }
    for (const ir::Value* v : n.inputs) {
      if (v && --uses[v] == 0 && !v->is_graph_output) frame.Drop(v);
    }
  }
  TensorMap result;
  for (const ir::Value* v : graph_->outputs) {
    const Tensor* t = frame.Get(v);
    if (t == nullptr) return Internal("graph output '" + v->name + "' was not computed");
    result[v->name] = *t;
  }
  return result;
}

}  // namespace clickrt::reference
