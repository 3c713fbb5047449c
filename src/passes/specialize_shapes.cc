// specialize_shapes: see pass.h.
//
// Shape values (the int64 vectors exporters compute from Shape(x) to feed Reshape, Expand and
// ConstantOfShape) are tracked element by element as a known number, a named dimension or
// nothing. Ops that only move elements (Gather, Slice, Concat, Unsqueeze, ...) are evaluated by
// the reference executor on element codes: each tracked input element is replaced by its index in
// a table, the node is run, and the codes it returns say where every output element came from.
// So every index rule (negative indices, clamped slices) is the executor's own.
#include <algorithm>
#include <memory>
#include <unordered_map>
#include <utility>

#include "ops/infer.h"
#include "passes/pass.h"
#include "passes/pattern.h"
#include "reference/executor.h"

namespace clickrt::passes {
namespace {

// Longest shape value tracked; shape tensors are short.
constexpr int64_t kMaxElems = 64;

// One element of a shape value.
struct Elem {
  bool known = false;
  int64_t value = 0;   // when known; may be negative (a Reshape target's -1)
  std::string symbol;  // when not known: the dimension's name, or "" for nothing known
  bool Same(const Elem& o) const {
    return known ? o.known && value == o.value : !o.known && !symbol.empty() && symbol == o.symbol;
  }
};

struct ShapeValue {
  int rank = 1;  // 0 or 1
  std::vector<Elem> elems;
  bool fully_known() const {
    for (const Elem& e : elems) {
      if (!e.known) return false;
    }
    return true;
  }
};

Elem FromDim(const ir::Dim& d) {
  Elem e;
  if (d.known()) {
    e.known = true;
    e.value = d.value;
  } else {
    e.symbol = d.symbol;
  }
  return e;
}

bool IsIndexType(DType t) { return t == DType::kInt64 || t == DType::kInt32; }

class Specializer {
 public:
  explicit Specializer(ir::Graph& g) : g_(g) {}

  StatusOr<int> Run() {
    std::vector<ir::Node*> order;
    for (const auto& n : g_.nodes()) order.push_back(n.get());
    int rewrites = 0;
    // Node order is topological: a node's inputs are tracked before it is visited. Only the
    // visited node is ever removed or replaced.
    for (ir::Node* n : order) {
      // Once something changed, shapes downstream may be better known: infer as we go, so a
      // later rule sees them (a zeros_like made ConstantOfShape shapes the Gather after it).
      if (rewrites > 0) RETURN_IF_ERROR(Infer(*n));
      Track(*n);
      ASSIGN_OR_RETURN(ir::Node* changed, Rewrite(n));
      if (changed == nullptr) continue;
      ++rewrites;
      if (changed != n) RETURN_IF_ERROR(Infer(*changed));  // a replacement node
    }
    return rewrites;
  }

 private:
  // v's shape value: a short int64 / int32 constant, or a tracked value.
  const ShapeValue* Get(const ir::Value* v) {
    if (v == nullptr) return nullptr;
    if (auto it = values_.find(v); it != values_.end()) return &it->second;
    const Tensor* t = detail::ConstOf(v);
    if (t == nullptr || !IsIndexType(t->dtype()) || t->rank() > 1 || t->size() > kMaxElems) {
      return nullptr;
    }
    ShapeValue sv;
    sv.rank = t->rank();
    for (int64_t i = 0; i < t->size(); ++i) sv.elems.push_back({true, t->GetAsInt64(i), {}});
    return &values_.emplace(v, std::move(sv)).first->second;
  }

  void Track(const ir::Node& n) {
    ir::Value* out = n.outputs.empty() ? nullptr : n.outputs[0];
    if (out == nullptr || n.outputs.size() != 1 || out->dtype != DType::kInt64) return;
    std::optional<ShapeValue> sv;
    if (n.op == ir::OpKind::kShape) {
      sv = OfShape(n);
    } else if (const std::vector<size_t> slots = DataSlots(n); !slots.empty()) {
      sv = Moved(n, slots);
    }
    if (sv && static_cast<int64_t>(sv->elems.size()) <= kMaxElems) values_[out] = std::move(*sv);
  }

  // Shape(x) with its start / end, as InferShape reads them.
  static std::optional<ShapeValue> OfShape(const ir::Node& n) {
    const ir::Shape& s = n.inputs[0]->shape;
    if (!s.rank_known) return std::nullopt;
    const int64_t r = s.rank();
    int64_t start = n.GetInt("start", 0), end = n.GetInt("end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    start = std::clamp<int64_t>(start, 0, r);
    end = std::clamp<int64_t>(end, start, r);
    ShapeValue sv;
    for (int64_t i = start; i < end; ++i) sv.elems.push_back(FromDim(s.dims[i]));
    return sv;
  }

  // The inputs of `n` whose elements it moves to its output (the others are indices, axes or
  // targets and must be constant); none if `n` is not such an op.
  static std::vector<size_t> DataSlots(const ir::Node& n) {
    switch (n.op) {
      case ir::OpKind::kGather:
      case ir::OpKind::kSlice:
      case ir::OpKind::kUnsqueeze:
      case ir::OpKind::kSqueeze:
      case ir::OpKind::kIdentity:
      case ir::OpKind::kReshape:
        return {0};
      case ir::OpKind::kCast:
        return n.GetInt("to", 0) == 7 ? std::vector<size_t>{0} : std::vector<size_t>{};  // INT64
      case ir::OpKind::kConcat: {
        std::vector<size_t> all;
        for (size_t i = 0; i < n.inputs.size(); ++i) all.push_back(i);
        return all;
      }
      default:
        return {};
    }
  }

  // Runs `n` with each data input replaced by the codes of its elements.
  std::optional<ShapeValue> Moved(const ir::Node& n, const std::vector<size_t>& slots) {
    std::vector<Elem> table;
    std::vector<Tensor> codes(n.inputs.size());
    std::vector<const Tensor*> in(n.inputs.size(), nullptr);
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const ir::Value* v = n.inputs[i];
      if (v == nullptr) continue;
      if (std::find(slots.begin(), slots.end(), i) == slots.end()) {
        if (!v->constant) return std::nullopt;
        in[i] = &*v->constant;
        continue;
      }
      const ShapeValue* sv = Get(v);
      if (sv == nullptr || !IsIndexType(v->dtype)) return std::nullopt;
      std::vector<int64_t> c;
      for (const Elem& e : sv->elems) {
        c.push_back(static_cast<int64_t>(table.size()));
        table.push_back(e);
      }
      Dims dims;
      if (sv->rank == 1) dims.push_back(static_cast<int64_t>(c.size()));
      codes[i] = Tensor::FromVector<int64_t>(dims, c);
      in[i] = &codes[i];
    }
    std::vector<Tensor> out;
    if (!reference::RunNode(n, in, &out).ok() || out.size() != 1 || out[0].rank() > 1) {
      return std::nullopt;
    }
    ShapeValue sv;
    sv.rank = out[0].rank();
    for (int64_t i = 0; i < out[0].size(); ++i) {
      const int64_t c = out[0].GetAsInt64(i);
      if (c < 0 || c >= static_cast<int64_t>(table.size())) return std::nullopt;
      sv.elems.push_back(table[c]);
    }
    return sv;
  }

  // As ops::InferGraph does it: nothing to infer from an unsupported op's outputs.
  static Status Infer(ir::Node& n) {
    for (const ir::Value* in : n.inputs) {
      if (in && in->dtype == DType::kUndefined && n.op != ir::OpKind::kUnsupported) {
        return Status::Ok();
      }
    }
    return ops::InferNode(n);
  }

  // Applies the first rule that fits `n`; returns the node now in its place (itself, or a
  // replacement), or null if nothing changed. A removed node is returned as itself.
  StatusOr<ir::Node*> Rewrite(ir::Node* n) {
    ASSIGN_OR_RETURN(bool changed, RewriteNode(n));
    if (!changed) return nullptr;
    return replacement_ ? std::exchange(replacement_, nullptr) : n;
  }

  StatusOr<bool> RewriteNode(ir::Node* n) {
    ir::Value* out = n->outputs.empty() ? nullptr : n->outputs[0];
    if (out == nullptr || n->outputs.size() != 1) return false;
    if (n->op == ir::OpKind::kShape) return WholeShape(n);
    if (n->op == ir::OpKind::kReshape) {
      if (!out->is_graph_output && ReshapeIsIdentity(*n)) return Bypass(n);
      return ConstantTarget(n, ReshapeTarget(*n));
    }
    if (n->op == ir::OpKind::kExpand) {
      if (!out->is_graph_output && ExpandIsIdentity(*n)) return Bypass(n);
      if (ExpandOfOneValue(*n)) return ToConstantOfShape(n);
      return ConstantTarget(n, ExpandTarget(*n));
    }
    if (out->is_graph_output) return false;
    if (auto it = values_.find(out); it != values_.end() && !out->constant &&
                                     n->op != ir::OpKind::kConstant && it->second.fully_known()) {
      std::vector<int64_t> v;
      for (const Elem& e : it->second.elems) v.push_back(e.value);
      Dims dims;
      if (it->second.rank == 1) dims.push_back(static_cast<int64_t>(v.size()));
      out->constant = Tensor::FromVector<int64_t>(dims, v);
      out->shape = ir::Shape::FromDims(dims);
      g_.RemoveNode(n);
      return true;
    }
    return false;
  }

  // A computed Reshape target known but for one element: that element is then what -1 infers
  // (the other sizes fix it, for every input the original accepts), so the target becomes a
  // constant with -1 there, and inference learns the other sizes.
  std::optional<std::vector<int64_t>> ReshapeTarget(const ir::Node& n) {
    const ShapeValue* t = Get(n.input(1));
    if (t == nullptr || n.input(1)->constant || t->rank != 1) return std::nullopt;
    std::vector<int64_t> v;
    int unknown = 0;
    for (const Elem& e : t->elems) {
      if (!e.known) ++unknown;
      if (e.known && e.value < 1) return std::nullopt;  // no -1 of its own, no 0 (copy / empty)
      v.push_back(e.known ? e.value : -1);
    }
    if (unknown != 1) return std::nullopt;
    return v;
  }

  // A computed Expand target whose unknown elements each name the same dim as x's aligned one:
  // 1 there gives the same size (x's), so the target becomes a constant.
  std::optional<std::vector<int64_t>> ExpandTarget(const ir::Node& n) {
    const ir::Shape& x = n.inputs[0]->shape;
    const ShapeValue* t = Get(n.input(1));
    if (t == nullptr || n.input(1)->constant || t->rank != 1 || !x.rank_known) return std::nullopt;
    const int lead = static_cast<int>(t->elems.size()) - x.rank();
    std::vector<int64_t> v;
    for (int i = 0; i < static_cast<int>(t->elems.size()); ++i) {
      const Elem& e = t->elems[i];
      if (e.known) {
        v.push_back(e.value);
      } else if (i >= lead && e.Same(FromDim(x.dims[i - lead]))) {
        v.push_back(1);
      } else {
        return std::nullopt;
      }
    }
    return v;
  }

  // Expand(c, t) of a one-element constant c to a 1-D t at least as long as c's rank: PyTorch
  // 2.x's zeros_like(x) = Expand(0, Shape(x)). It is ConstantOfShape(t) of value c, whose
  // inference knows that ConstantOfShape(Shape(x)) is shaped like x.
  static bool ExpandOfOneValue(const ir::Node& n) {
    const Tensor* c = detail::ConstOf(n.input(0));
    const ir::Shape& t = n.inputs[1]->shape;
    return c && c->size() == 1 && t.rank_known && t.rank() == 1 && t.dims[0].known() &&
           c->rank() <= t.dims[0].value && !n.inputs[1]->constant;
  }

  StatusOr<bool> ToConstantOfShape(ir::Node* n) {
    auto cos = std::make_unique<ir::Node>();
    cos->op = ir::OpKind::kConstantOfShape;
    cos->op_type = "ConstantOfShape";
    cos->domain = n->domain;
    cos->name = n->name;
    cos->opset = n->opset;
    ASSIGN_OR_RETURN(Tensor value, detail::ConstOf(n->inputs[0])->Reshaped({1}));
    cos->attrs["value"] = value.Clone();
    cos->inputs = {n->inputs[1]};
    cos->outputs = n->outputs;
    replacement_ = g_.ReplaceNode(n, std::move(cos));
    return replacement_ != nullptr;
  }

  // Shape(x, start, end) selecting all of x's dims (PyTorch 2.x writes start=0) loses the
  // attributes: it is then the plain Shape(x) that inference and the matchers recognize.
  static bool WholeShape(ir::Node* n) {
    const ir::Shape& x = n->inputs[0]->shape;
    if (!x.rank_known || (!n->HasAttr("start") && !n->HasAttr("end"))) return false;
    const int64_t r = x.rank();
    int64_t start = n->GetInt("start", 0), end = n->GetInt("end", r);
    if (start < 0) start += r;
    if (end < 0) end += r;
    if (start > 0 || end < r) return false;
    n->attrs.erase("start");
    n->attrs.erase("end");
    return true;
  }

  bool ConstantTarget(ir::Node* n, std::optional<std::vector<int64_t>> target) {
    if (!target) return false;
    const int64_t len = static_cast<int64_t>(target->size());
    ir::Value* c = detail::AddConstant(g_, n->inputs[1]->name + "/specialized",
                                       Tensor::FromVector<int64_t>({len}, *target));
    detail::SetInput(n, 1, c);
    return true;
  }

  // Expand(x, t): every t_i is 1 or the same as x's dim it lines up with, and t is no longer
  // than x's rank.
  bool ExpandIsIdentity(const ir::Node& n) {
    const ir::Shape& x = n.inputs[0]->shape;
    const ShapeValue* t = Get(n.input(1));
    if (!x.rank_known || t == nullptr || t->rank != 1 ||
        static_cast<int>(t->elems.size()) > x.rank()) {
      return false;
    }
    const int lead = x.rank() - static_cast<int>(t->elems.size());
    for (size_t i = 0; i < t->elems.size(); ++i) {
      const Elem& e = t->elems[i];
      if (!(e.known && e.value == 1) && !e.Same(FromDim(x.dims[lead + i]))) return false;
    }
    return true;
  }

  // Reshape(x, t): t has x's rank and each t_i is x's dim i, a copy (0, without allowzero) or
  // the one -1 (then the inferred size is x's dim i too).
  bool ReshapeIsIdentity(const ir::Node& n) {
    const ir::Shape& x = n.inputs[0]->shape;
    const ShapeValue* t = Get(n.input(1));
    if (!x.rank_known || t == nullptr || t->rank != 1 ||
        static_cast<int>(t->elems.size()) != x.rank()) {
      return false;
    }
    const bool allowzero = n.GetInt("allowzero", 0) != 0;
    int wildcards = 0;
    for (int i = 0; i < x.rank(); ++i) {
      const Elem& e = t->elems[i];
      const Elem d = FromDim(x.dims[i]);
      if (e.known && e.value == -1) {
        ++wildcards;
      } else if (!(e.known && e.value == 0 && !allowzero) && !e.Same(d)) {
        return false;
      }
      // A zero-sized dim elsewhere would make the -1 ambiguous (the executor rejects it).
      if (d.known && d.value == 0) return false;
    }
    return wildcards <= 1;
  }

  // Replaces n's output by its input 0: consumers read the input directly.
  StatusOr<bool> Bypass(ir::Node* n) {
    ir::Value* in = n->inputs[0];
    ir::Value* out = n->outputs[0];
    if (in->dtype != out->dtype) return false;
    detail::ReplaceAllUses(out, in);
    g_.RemoveNode(n);
    return true;
  }

  ir::Graph& g_;
  std::unordered_map<const ir::Value*, ShapeValue> values_;
  ir::Node* replacement_ = nullptr;  // set by a rule that replaced its node
};

// The batch dimension's symbol: the one symbol at dim 0 of the graph inputs, if there is one.
std::string BatchSymbol(const ir::Graph& g) {
  std::string symbol;
  for (const ir::Value* in : g.inputs) {
    if (!in->shape.rank_known || in->shape.rank() == 0) continue;
    const ir::Dim& d = in->shape.dims[0];
    if (d.known() || d.symbol.empty()) continue;
    if (!symbol.empty() && symbol != d.symbol) return "";
    symbol = d.symbol;
  }
  return symbol;
}

// Every dim named `symbol`, graph inputs and outputs included, becomes `size`.
int FixSymbol(ir::Graph& g, const std::string& symbol, int64_t size) {
  int changed = 0;
  for (const auto& v : g.values()) {
    bool any = false;
    for (ir::Dim& d : v->shape.dims) {
      if (!d.known() && d.symbol == symbol) {
        d = ir::Dim::Known(size);
        any = true;
      }
    }
    changed += any;
  }
  return changed;
}

}  // namespace

Status SpecializeShapes(ir::Graph& g, int* rewrites, const BatchProfile& batch) {
  *rewrites = 0;
  if (batch.fixed()) {
    const std::string symbol = BatchSymbol(g);
    if (!symbol.empty()) {
      *rewrites += FixSymbol(g, symbol, batch.min);
      // Shapes downstream of the inputs become known; Shape of them becomes a constant.
      if (*rewrites > 0) RETURN_IF_ERROR(ops::InferGraph(&g));
    }
  }
  ASSIGN_OR_RETURN(int n, Specializer(g).Run());
  *rewrites += n;
  // Consumers of new constants (a Reshape's target) may now infer more.
  if (n > 0) RETURN_IF_ERROR(ops::InferGraph(&g));
  return Status::Ok();
}

}  // namespace clickrt::passes
