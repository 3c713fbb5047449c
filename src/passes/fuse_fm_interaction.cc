// fuse_fm_interaction: see pass.h.
#include "passes/pass.h"
#include "passes/pattern.h"

namespace clickrt::passes {
namespace {

using detail::ConstOf;
using detail::ProducedBy;

// ReduceSum over exactly axis `axis` of its rank-`rank` input, with keepdims as given.
ir::Node* ReduceSumOver(const ir::Value* v, int rank, int64_t axis, bool keepdims) {
  ir::Node* r = ProducedBy(v, ir::OpKind::kReduceSum);
  if (r == nullptr || (r->GetInt("keepdims", 1) != 0) != keepdims) return nullptr;
  const ir::Value* in = r->input(0);
  if (!in->shape.rank_known || in->shape.rank() != rank) return nullptr;
  auto axes = detail::ReduceAxes(*r, rank);
  if (!axes || *axes != std::vector<int64_t>{axis}) return nullptr;
  return r;
}

// Mul(v, v): returns v.
ir::Value* SquareOf(ir::Node* mul) {
  return mul && mul->input(0) == mul->input(1) ? mul->input(0) : nullptr;
}

StatusOr<bool> TryFuse(ir::Graph& g, ir::Node* root) {
  // root = Mul(r, 0.5), either order.
  ir::Node* r = nullptr;
  for (int side = 0; side < 2 && r == nullptr; ++side) {
    const Tensor* half = ConstOf(root->input(1 - side));
    if (half && half->rank() <= 2 && detail::IsSingleValue(half, 0.5)) {
      r = ReduceSumOver(root->input(side), 2, 1, /*keepdims=*/true);
    }
  }
  if (r == nullptr) return false;
  ir::Node* d = ProducedBy(r->input(0), ir::OpKind::kSub);
  if (d == nullptr) return false;
  ir::Node* sq = ProducedBy(d->input(0), ir::OpKind::kMul);
  ir::Value* s = SquareOf(sq);
  ir::Node* s_sum = ReduceSumOver(s, 3, 1, /*keepdims=*/false);
  ir::Node* ss = ReduceSumOver(d->input(1), 3, 1, /*keepdims=*/false);
  if (s_sum == nullptr || ss == nullptr) return false;
  ir::Node* e2 = ProducedBy(ss->input(0), ir::OpKind::kMul);
  ir::Value* e = SquareOf(e2);
  if (e == nullptr || s_sum->input(0) != e || !detail::IsFloat(e->dtype)) return false;
  // Every intermediate is used only inside the pattern, so it can all go.
  if (!detail::UsedOnlyBy(s, {sq}) || !detail::HasSingleUse(sq->outputs[0]) ||
      !detail::HasSingleUse(e2->outputs[0]) || !detail::HasSingleUse(ss->outputs[0]) ||
      !detail::HasSingleUse(d->outputs[0]) || !detail::HasSingleUse(r->outputs[0])) {
    return false;
  }
  // The output shape must be the replaced subgraph's [B,1] (ReplaceWithFused checks the rest).
  const ir::Shape& out = root->outputs[0]->shape;
  if (!out.rank_known || out.rank() != 2 || !(out.dims[1] == ir::Dim::Known(1))) return false;

  auto node = detail::MakeFusedNode(g, ir::OpKind::kFMInteraction, r->name + "/FMInteraction", {e});
  ASSIGN_OR_RETURN(ir::Node* fused, detail::ReplaceWithFused(g, root, std::move(node)));
  if (fused == nullptr) return false;
  for (ir::Node* n : {r, d, sq, s_sum, ss, e2}) g.RemoveNode(n);
  return true;
}

}  // namespace

Status FuseFMInteraction(ir::Graph& g, int* rewrites) {
  *rewrites = 0;
  std::vector<ir::Node*> muls;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::OpKind::kMul) muls.push_back(n.get());
  }
  // A rewrite removes Muls of its own match (sq, e2), which come before their root in node order
  // and so are never visited after being freed: only nodes already passed are removed.
  for (ir::Node* n : muls) {
    ASSIGN_OR_RETURN(bool fused, TryFuse(g, n));
    if (fused) ++*rewrites;
  }
  return Status::Ok();
}

}  // namespace clickrt::passes
