// fuse_cross: see pass.h.
#include "passes/pass.h"
#include "passes/pattern.h"

namespace clickrt::passes {
namespace {

using detail::ConstOf;
using detail::ProducedBy;

// Add(Mul(x0, Linear(xl, W, b)), xl) rooted at `add`.
StatusOr<bool> TryFuse(ir::Graph& g, ir::Node* add) {
  for (int side = 0; side < 2; ++side) {
    ir::Node* mul = ProducedBy(add->input(side), ir::OpKind::kMul);
    ir::Value* xl = add->input(1 - side);
    if (mul == nullptr || !detail::HasSingleUse(mul->outputs[0])) continue;
    for (int m = 0; m < 2; ++m) {
      ir::Value* x0 = mul->input(m);
      ir::Node* lin = ProducedBy(mul->input(1 - m), ir::OpKind::kLinear);
      if (lin == nullptr || lin->input(0) != xl || lin->GetInt("activation", 0) != 0 ||
          !detail::HasSingleUse(lin->outputs[0])) {
        continue;
      }
      const Tensor* w = ConstOf(lin->input(1));
      if (w == nullptr || w->rank() != 2 || w->dim(0) != w->dim(1)) continue;
      // No broadcasting anywhere: x0, xl and the Linear's output have one shape.
      const ir::Shape& y = lin->outputs[0]->shape;
      if (!detail::SameKnownShape(x0->shape, y) || !detail::SameKnownShape(xl->shape, y)) continue;
      ir::Value* bias = lin->input(2);
      if (bias == nullptr) {
        // The bias is the activations' dtype (an INT8 Linear's W is int8).
        auto zeros = Tensor::Zeros(xl->dtype, {w->dim(1)});
        if (!zeros.ok()) return zeros.status();
        bias = detail::AddConstant(g, lin->name + "/zero_bias", zeros.value());
      }
      // An INT8 Linear (fuse_qdq) makes an INT8 Cross: w_scale 5th, x_scale carried.
      auto node = detail::MakeFusedNode(g, ir::OpKind::kCross, lin->name + "/Cross",
                                        {x0, xl, lin->input(1), bias, lin->input(3)});
      if (lin->HasAttr("x_scale")) node->attrs["x_scale"] = lin->attrs.at("x_scale");
      ASSIGN_OR_RETURN(ir::Node* fused, detail::ReplaceWithFused(g, add, std::move(node)));
      if (fused == nullptr) continue;
      g.RemoveNode(mul);
      g.RemoveNode(lin);
      return true;
    }
  }
  return false;
}

}  // namespace

Status FuseCross(ir::Graph& g, int* rewrites) {
  *rewrites = 0;
  std::vector<ir::Node*> adds;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::OpKind::kAdd) adds.push_back(n.get());
  }
  // A rewrite replaces the Add it visits and removes a Mul and a Linear: no Add is freed early.
  for (ir::Node* n : adds) {
    ASSIGN_OR_RETURN(bool fused, TryFuse(g, n));
    if (fused) ++*rewrites;
  }
  return Status::Ok();
}

}  // namespace clickrt::passes
