#include "passes/pattern.h"

#include <algorithm>

#include "kernels/cpu/reference/reference_kernels.h"
#include "ops/infer.h"

namespace clickrt::passes::detail {

ir::Node* ProducedBy(const ir::Value* v, ir::OpKind op) {
  return v && v->producer && v->producer->op == op ? v->producer : nullptr;
}

const Tensor* ConstOf(const ir::Value* v) { return v && v->constant ? &*v->constant : nullptr; }

bool HasSingleUse(const ir::Value* v) {
  return v && !v->is_graph_output && v->consumers.size() == 1;
}

bool UsedOnlyBy(const ir::Value* v, const std::vector<const ir::Node*>& users) {
  if (v == nullptr || v->is_graph_output) return false;
  for (const ir::Node* c : v->consumers) {
    if (std::find(users.begin(), users.end(), c) == users.end()) return false;
  }
  return true;
}

bool IsSingleValue(const Tensor* t, double x) {
  return t && t->size() == 1 && t->GetAsDouble(0) == x;
}

bool IsAllZeros(const Tensor& t) {
  for (int64_t i = 0; i < t.size(); ++i) {
    if (t.GetAsDouble(i) != 0) return false;
  }
  return true;
}

bool IsFloat(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16;
}

std::optional<Tensor> AsLastAxisVector(const Tensor& t, int64_t n, int rank, DType to) {
  if (t.rank() > rank) return std::nullopt;
  for (int i = 0; i + 1 < t.rank(); ++i) {
    if (t.dim(i) != 1) return std::nullopt;
  }
  const int64_t last = t.rank() == 0 ? 1 : t.dim(t.rank() - 1);
  if (last != n && last != 1) return std::nullopt;
  auto flat = t.Reshaped({last});
  if (!flat.ok()) return std::nullopt;
  auto wide = last == n ? std::move(flat) : kernels::ref::Expand(flat.value(), {n});
  if (!wide.ok()) return std::nullopt;
  auto cast = kernels::ref::Cast(wide.value(), to);
  if (!cast.ok()) return std::nullopt;
  return cast.value().Clone();
}

std::optional<std::vector<int64_t>> ReduceAxes(const ir::Node& n, int rank) {
  ops::AxesArg a = ops::GetAxesArg(n, 1);
  if (!a.present || !a.known) return std::nullopt;
  std::vector<int64_t> axes;
  for (int64_t ax : a.axes) {
    auto norm = ops::NormalizeAxis(ax, rank);
    if (!norm.ok()) return std::nullopt;
    axes.push_back(norm.value());
  }
  std::sort(axes.begin(), axes.end());
  return axes;
}

void ReplaceAllUses(ir::Value* from, ir::Value* to) {
  for (ir::Node* c : from->consumers) {
    for (ir::Value*& in : c->inputs) {
      if (in == from) in = to;
    }
  }
  // One entry per input slot, as Graph::AddNode records them.
  to->consumers.insert(to->consumers.end(), from->consumers.begin(), from->consumers.end());
  from->consumers.clear();
}

void SetInput(ir::Node* n, size_t i, ir::Value* v) {
  if (ir::Value* old = n->inputs[i]) {
    auto it = std::find(old->consumers.begin(), old->consumers.end(), n);
    if (it != old->consumers.end()) old->consumers.erase(it);
  }
  n->inputs[i] = v;
  if (v) v->consumers.push_back(n);
}

ir::Value* AddConstant(ir::Graph& g, const std::string& name, Tensor t) {
  ir::Value* v = g.AddValue(name);
  v->dtype = t.dtype();
  v->shape = ir::Shape::FromDims(t.dims());
  v->constant = std::move(t);
  return v;
}

std::unique_ptr<ir::Node> MakeFusedNode(ir::Graph& g, ir::OpKind op, const std::string& name,
                                        std::vector<ir::Value*> inputs) {
  auto n = std::make_unique<ir::Node>();
  n->op = op;
  n->op_type = ir::OpKindName(op);
  n->domain = ir::OpKindDomain(op);
  n->name = name;
  n->opset = 1;
  g.opsets.emplace(n->domain, 1);
  n->inputs = std::move(inputs);
  while (!n->inputs.empty() && n->inputs.back() == nullptr) n->inputs.pop_back();
  return n;
}

namespace {
// A dim known on both sides must agree; a rank known on both sides must agree.
bool Compatible(const ir::Shape& a, const ir::Shape& b) {
  if (!a.rank_known || !b.rank_known) return true;
  if (a.rank() != b.rank()) return false;
  for (int i = 0; i < a.rank(); ++i) {
    if (a.dims[i].known() && b.dims[i].known() && a.dims[i].value != b.dims[i].value) return false;
  }
  return true;
}

// The more informative of two compatible shapes, dim by dim.
ir::Shape Merge(const ir::Shape& kept, const ir::Shape& inferred) {
  if (!kept.rank_known) return inferred;
  if (!inferred.rank_known) return kept;
  ir::Shape out = kept;
  for (int i = 0; i < out.rank(); ++i) {
    if (!out.dims[i].known() && inferred.dims[i].known()) out.dims[i] = inferred.dims[i];
  }
  return out;
}
}  // namespace

StatusOr<ir::Node*> ReplaceWithFused(ir::Graph& g, ir::Node* root,
                                     std::unique_ptr<ir::Node> fused) {
  std::vector<ir::Value> probes(root->outputs.size());
  fused->outputs.clear();
  for (ir::Value& p : probes) fused->outputs.push_back(&p);
  RETURN_IF_ERROR(ops::InferNode(*fused));
  for (size_t i = 0; i < probes.size(); ++i) {
    const ir::Value* old = root->outputs[i];
    if (old == nullptr) continue;
    if (probes[i].dtype != old->dtype || !Compatible(probes[i].shape, old->shape)) return nullptr;
  }
  fused->outputs = root->outputs;
  for (size_t i = 0; i < probes.size(); ++i) {
    if (ir::Value* out = fused->outputs[i]) out->shape = Merge(out->shape, probes[i].shape);
  }
  return g.ReplaceNode(root, std::move(fused));
}

bool SameKnownShape(const ir::Shape& a, const ir::Shape& b) {
  if (!a.rank_known || !b.rank_known || a.rank() != b.rank()) return false;
  for (int i = 0; i < a.rank(); ++i) {
    if (!(a.dims[i] == b.dims[i])) return false;
  }
  return true;
}

}  // namespace clickrt::passes::detail
