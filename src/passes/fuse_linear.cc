// fuse_linear: see pass.h.
//
// Built one step at a time in node order: a Gemm / MatMul becomes a Linear, and a Linear then
// absorbs the bias Add or activation that follows it. Each step replaces the node being visited
// and removes the Linear before it, which was visited already, so a single sweep finishes chains
// such as MatMul -> Add -> Relu.
#include <map>

#include "kernels/cpu/reference/reference_kernels.h"
#include "passes/pass.h"
#include "passes/pattern.h"

namespace clickrt::passes {
namespace {

using detail::ConstOf;

constexpr int64_t kActNone = 0, kActRelu = 1, kActSigmoid = 2;

class LinearFuser {
 public:
  explicit LinearFuser(ir::Graph& g) : g_(g) {}

  // Rewrites `n` if it is a step of a Linear chain; returns whether it did.
  StatusOr<bool> Visit(ir::Node* n) {
    switch (n->op) {
      case ir::OpKind::kGemm: return FromGemm(n);
      case ir::OpKind::kMatMul: return FromMatMul(n);
      case ir::OpKind::kAdd: return AbsorbBias(n);
      case ir::OpKind::kRelu: return AbsorbActivation(n, kActRelu);
      case ir::OpKind::kSigmoid: return AbsorbActivation(n, kActSigmoid);
      default: return false;
    }
  }

 private:
  // A constant 2-D weight of x's float dtype.
  static bool IsWeight(const ir::Value* x, const ir::Value* w) {
    const Tensor* t = ConstOf(w);
    return x && t && t->rank() == 2 && detail::IsFloat(x->dtype) && t->dtype() == x->dtype;
  }

  // `absorbed` is the Linear the new one extends; its INT8 form (w_scale, x_scale: fuse_qdq) is
  // carried over.
  StatusOr<bool> Emit(ir::Node* root, ir::Value* x, ir::Value* w, ir::Value* bias, int64_t act,
                      const std::string& name, ir::Node* absorbed) {
    ir::Value* w_scale = absorbed ? absorbed->input(3) : nullptr;
    auto node = detail::MakeFusedNode(g_, ir::OpKind::kLinear, name, {x, w, bias, w_scale});
    node->attrs["activation"] = act;
    if (absorbed && absorbed->HasAttr("x_scale")) {
      node->attrs["x_scale"] = absorbed->attrs.at("x_scale");
    }
    ASSIGN_OR_RETURN(ir::Node* fused, detail::ReplaceWithFused(g_, root, std::move(node)));
    if (fused == nullptr) return false;
    if (absorbed) g_.RemoveNode(absorbed);
    return true;
  }

  StatusOr<bool> FromGemm(ir::Node* n) {
    ir::Value* x = n->input(0);
    ir::Value* b = n->input(1);
    if (!IsWeight(x, b) || n->GetInt("transA", 0) != 0 || n->GetFloat("alpha", 1.f) != 1.f) {
      return false;
    }
    const bool trans_b = n->GetInt("transB", 0) != 0;
    const int64_t N = ConstOf(b)->dim(trans_b ? 0 : 1);
    ir::Value* bias = nullptr;
    if (ir::Value* c = n->input(2)) {
      const Tensor* ct = ConstOf(c);
      if (ct == nullptr || n->GetFloat("beta", 1.f) != 1.f) return false;
      auto vec = detail::AsLastAxisVector(*ct, N, 2, x->dtype);
      if (!vec) return false;
      const bool as_is = ct->rank() == 1 && ct->dim(0) == N && ct->dtype() == x->dtype;
      bias = as_is ? c : detail::AddConstant(g_, c->name + "/bias", *vec);
    }
    ir::Value* w = b;
    if (trans_b) {
      ASSIGN_OR_RETURN(w, Transposed(b));
    }
    return Emit(n, x, w, bias, kActNone, n->name + "/Linear", nullptr);
  }

  StatusOr<bool> FromMatMul(ir::Node* n) {
    ir::Value* x = n->input(0);
    if (!IsWeight(x, n->input(1)) || !x->shape.rank_known || x->shape.rank() < 1) return false;
    return Emit(n, x, n->input(1), nullptr, kActNone, n->name + "/Linear", nullptr);
  }

  // The Linear producing v when it may absorb v's one consumer: no activation yet, and v used
  // only by that consumer.
  static ir::Node* OpenLinear(const ir::Value* v) {
    ir::Node* lin = detail::ProducedBy(v, ir::OpKind::kLinear);
    if (lin == nullptr || !detail::HasSingleUse(v) || lin->GetInt("activation", 0) != kActNone) {
      return nullptr;
    }
    return lin;
  }

  StatusOr<bool> AbsorbBias(ir::Node* add) {
    for (int side = 0; side < 2; ++side) {
      ir::Node* lin = OpenLinear(add->input(side));
      const Tensor* c = ConstOf(add->input(1 - side));
      if (lin == nullptr || c == nullptr || lin->input(2) != nullptr) continue;
      const ir::Shape& y = add->input(side)->shape;
      if (!y.rank_known || c->dtype() != lin->input(0)->dtype) continue;
      const int64_t N = ConstOf(lin->input(1))->dim(1);
      auto vec = detail::AsLastAxisVector(*c, N, y.rank(), c->dtype());
      if (!vec) continue;
      ir::Value* bias = c->rank() == 1 && c->dim(0) == N
                            ? add->input(1 - side)
                            : detail::AddConstant(g_, add->input(1 - side)->name + "/bias", *vec);
      return Emit(add, lin->input(0), lin->input(1), bias, kActNone, lin->name, lin);
    }
    return false;
  }

  StatusOr<bool> AbsorbActivation(ir::Node* act, int64_t kind) {
    ir::Node* lin = OpenLinear(act->input(0));
    if (lin == nullptr) return false;
    return Emit(act, lin->input(0), lin->input(1), lin->input(2), kind, lin->name, lin);
  }

  // W^T as a new constant, once per weight (a weight shared by several Gemms is transposed once).
  StatusOr<ir::Value*> Transposed(ir::Value* b) {
    auto it = transposed_.find(b);
    if (it != transposed_.end()) return it->second;
    ASSIGN_OR_RETURN(Tensor t, kernels::ref::Transpose(*ConstOf(b), {1, 0}));
    ir::Value* v = detail::AddConstant(g_, b->name + "/transposed", std::move(t));
    transposed_[b] = v;
    return v;
  }

  ir::Graph& g_;
  std::map<const ir::Value*, ir::Value*> transposed_;
};

}  // namespace

Status FuseLinear(ir::Graph& g, int* rewrites) {
  *rewrites = 0;
  std::vector<ir::Node*> order;
  for (const auto& n : g.nodes()) order.push_back(n.get());
  LinearFuser fuser(g);
  for (ir::Node* n : order) {
    ASSIGN_OR_RETURN(bool fused, fuser.Visit(n));
    if (fused) ++*rewrites;
  }
  return Status::Ok();
}

}  // namespace clickrt::passes
