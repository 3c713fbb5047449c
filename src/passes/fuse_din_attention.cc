// fuse_din_attention: see pass.h.
//
// Matched backwards from the pooling at the end of the subgraph: pooling <- Where <- score
// Reshape <- Linear / PRelu chain <- input Reshape <- Concat of the four interaction terms <-
// Expand of the query. Every intermediate must be used only inside the match, so the whole
// subgraph goes; the Expand's target (Shape(k) or its 2.x equivalent) is left for
// eliminate_dead_code, since it reads only k.
#include "passes/pass.h"
#include "passes/pattern.h"

namespace clickrt::passes {
namespace {

using detail::ConstOf;
using detail::HasSingleUse;
using detail::ProducedBy;

// `n`'s axes (attribute or constant input) are exactly {axis} once normalized against `rank`.
bool AxesAre(const ir::Node* n, int rank, int64_t axis) {
  if (n == nullptr) return false;
  auto axes = detail::ReduceAxes(*n, rank);
  return axes && *axes == std::vector<int64_t>{axis};
}

int RankOf(const ir::Value* v) { return v && v->shape.rank_known ? v->shape.rank() : -1; }

// A known dim `i` of v, or -1.
int64_t KnownDim(const ir::Value* v, int i) {
  if (RankOf(v) <= i) return -1;
  const ir::Dim& d = v->shape.dims[i];
  return d.known() ? d.value : -1;
}

struct Match {
  ir::Value* q = nullptr;
  ir::Value* k = nullptr;
  ir::Value* mask = nullptr;
  // (W, bias, slope) per hidden layer, then W_out, b_out; a bias is null where the Linear has none.
  std::vector<ir::Value*> mlp;
  std::vector<ir::Node*> remove;  // every matched node but the root
  int64_t pooling = 0;            // DinAttention's attribute: 0 MatMul, 1 Mul + ReduceSum
};

class DinMatcher {
 public:
  DinMatcher() = default;

  // The pooling over the history, rooted at `root`:
  //   Squeeze(MatMul(Unsqueeze(w, 1), k), 1)                 (torch.bmm / matmul form)
  //   ReduceSum(Mul(Unsqueeze(w, -1), k), axes 1, keepdims 0)  (broadcast-multiply-sum form)
  bool MatchPooling(ir::Node* root, ir::Value** w) {
    ir::Node* prod = nullptr;
    int unsq_axis = -1;
    if (root->op == ir::OpKind::kSqueeze) {
      prod = ProducedBy(root->input(0), ir::OpKind::kMatMul);
      if (!AxesAre(root, 3, 1) || !prod || RankOf(prod->input(0)) != 3) return false;
      k_ = prod->input(1);
      unsq_axis = 1;
      pooling_ = 0;
      wu_ = ProducedBy(prod->input(0), ir::OpKind::kUnsqueeze);
    } else if (root->op == ir::OpKind::kReduceSum) {
      prod = ProducedBy(root->input(0), ir::OpKind::kMul);
      if (!prod || root->GetInt("keepdims", 1) != 0 || !AxesAre(root, 3, 1)) return false;
      unsq_axis = 2;
      pooling_ = 1;
      for (int side = 0; side < 2 && wu_ == nullptr; ++side) {
        wu_ = ProducedBy(prod->input(side), ir::OpKind::kUnsqueeze);
        k_ = prod->input(1 - side);
      }
    } else {
      return false;
    }
    if (wu_ == nullptr || !AxesAre(wu_, 3, unsq_axis) || RankOf(k_) != 3 ||
        !HasSingleUse(prod->outputs[0]) || !HasSingleUse(wu_->outputs[0])) {
      return false;
    }
    Add(prod);
    Add(wu_);
    *w = wu_->input(0);
    return true;
  }

  // w = Where(mask, s, zeros) with s = Reshape(logit, [B, L]) of the last Linear [B*L, 1].
  bool MatchMaskedScores(ir::Value* w, ir::Value** logit) {
    ir::Node* where = ProducedBy(w, ir::OpKind::kWhere);
    if (where == nullptr || !HasSingleUse(w)) return false;
    mask_ = where->input(0);
    ir::Value* s = where->input(1);
    ir::Node* reshape = ProducedBy(s, ir::OpKind::kReshape);
    if (mask_->dtype != DType::kBool || reshape == nullptr || RankOf(w) != 2) return false;
    // [B*L, 1] -> [B, L]: rank 2 with the history length last.
    const int64_t L = KnownDim(k_, 1);
    if (L < 1 || RankOf(s) != 2 || KnownDim(s, 1) != L || KnownDim(reshape->input(0), 1) != 1) {
      return false;
    }
    std::vector<const ir::Node*> s_users = {where};
    if (!ZerosLike(where->input(2), s, &s_users)) return false;
    if (!detail::UsedOnlyBy(s, s_users)) return false;
    Add(where);
    Add(reshape);
    *logit = reshape->input(0);
    return true;
  }

  // The scoring MLP back from its [rows, 1] logit: Linear (activation none) after hidden
  // layers PRelu(Linear(x)); returns its input x.
  bool MatchMlp(ir::Value* logit, ir::Value** x) {
    ir::Node* out = OpenLinear(logit);
    if (out == nullptr) return false;
    std::vector<ir::Value*> layers = {out->input(1), out->input(2)};
    ir::Value* in = out->input(0);
    while (ir::Node* prelu = ProducedBy(in, ir::OpKind::kPRelu)) {
      ir::Node* lin = OpenLinear(prelu->input(0));
      const Tensor* slope = ConstOf(prelu->input(1));
      const int64_t H = lin ? ConstOf(lin->input(1))->dim(1) : -1;
      if (lin == nullptr || !HasSingleUse(in) || slope == nullptr ||
          !detail::AsLastAxisVector(*slope, H, 2, slope->dtype())) {
        return false;
      }
      layers.insert(layers.begin(), {lin->input(1), lin->input(2), prelu->input(1)});
      Add(prelu);
      Add(lin);
      in = lin->input(0);
    }
    Add(out);
    mlp_ = std::move(layers);
    *x = in;
    return true;
  }

  // x = Reshape(Concat(qe, k, Sub(qe, k), Mul(qe, k); last axis), [-1, 4D]) with
  // qe = Expand(Unsqueeze(q, 1), shape of k).
  bool MatchInteraction(ir::Value* x) {
    ir::Node* reshape = ProducedBy(x, ir::OpKind::kReshape);
    const int64_t D = KnownDim(k_, 2);
    if (reshape == nullptr || !HasSingleUse(x) || D < 1 || RankOf(x) != 2 ||
        KnownDim(x, 1) != 4 * D) {
      return false;
    }
    ir::Node* cat = ProducedBy(reshape->input(0), ir::OpKind::kConcat);
    if (cat == nullptr || !HasSingleUse(cat->outputs[0]) || cat->inputs.size() != 4) return false;
    const int64_t axis = cat->GetInt("axis", 0);
    if (axis != 2 && axis != -1) return false;
    ir::Value* qe = cat->input(0);
    ir::Node* sub = ProducedBy(cat->input(2), ir::OpKind::kSub);
    ir::Node* mul = ProducedBy(cat->input(3), ir::OpKind::kMul);
    ir::Node* expand = ProducedBy(qe, ir::OpKind::kExpand);
    if (cat->input(1) != k_ || sub == nullptr || mul == nullptr || expand == nullptr ||
        sub->input(0) != qe || sub->input(1) != k_ || !HasSingleUse(sub->outputs[0]) ||
        !HasSingleUse(mul->outputs[0]) ||
        !((mul->input(0) == qe && mul->input(1) == k_) ||
          (mul->input(0) == k_ && mul->input(1) == qe)) ||
        !detail::UsedOnlyBy(qe, {cat, sub, mul})) {
      return false;
    }
    ir::Node* unsq = ProducedBy(expand->input(0), ir::OpKind::kUnsqueeze);
    if (unsq == nullptr || !AxesAre(unsq, 3, 1) || !HasSingleUse(unsq->outputs[0])) return false;
    q_ = unsq->input(0);
    // With q [B,D] and k [B,L,D] of one D, the Concat only runs if qe is shaped like k, so the
    // Expand's target needs no check: qe = Expand(Unsqueeze(q, 1), shape of k).
    if (RankOf(q_) != 2 || KnownDim(q_, 1) != D || !detail::IsFloat(q_->dtype) ||
        q_->dtype != k_->dtype) {
      return false;
    }
    for (ir::Node* n : {reshape, cat, sub, mul, expand, unsq}) Add(n);
    return true;
  }

  Match Result() && {
    Match m;
    m.q = q_;
    m.k = k_;
    m.mask = mask_;
    m.mlp = std::move(mlp_);
    m.remove = std::move(remove_);
    m.pooling = pooling_;
    return m;
  }

 private:
  void Add(ir::Node* n) { remove_.push_back(n); }

  // A Linear without activation, of constant weight, whose output only `v`'s consumer reads;
  // not an INT8 one (fuse_qdq), which DinAttention has no form of.
  static ir::Node* OpenLinear(const ir::Value* v) {
    ir::Node* lin = ProducedBy(v, ir::OpKind::kLinear);
    if (lin == nullptr || !HasSingleUse(v) || lin->GetInt("activation", 0) != 0 ||
        ConstOf(lin->input(1)) == nullptr || lin->input(3) != nullptr) {
      return nullptr;
    }
    return lin;
  }

  // `zeros` is zeros_like(s): an all-zero constant that broadcasts into s's shape [B, L]
  // without growing it (a fixed batch folds zeros_like into one), or ConstantOfShape(Shape(x))
  // of value 0 with x == s (those two nodes then join the match: `s_users` grows) or x shaped
  // like s.
  bool ZerosLike(ir::Value* zeros, ir::Value* s, std::vector<const ir::Node*>* s_users) {
    if (const Tensor* c = ConstOf(zeros)) {
      if (c->rank() > 2 || c->dtype() != s->dtype || !detail::IsAllZeros(*c)) return false;
      for (int i = 0; i < c->rank(); ++i) {  // broadcasts into s without growing it
        const int64_t d = c->dim(c->rank() - 1 - i);
        if (d != 1 && d != KnownDim(s, 1 - i)) return false;
      }
      return true;
    }
    ir::Node* cos = ProducedBy(zeros, ir::OpKind::kConstantOfShape);
    if (cos == nullptr || zeros->dtype != s->dtype) return false;
    if (const Tensor* v = cos->GetTensor("value"); v && !detail::IsAllZeros(*v)) return false;
    ir::Node* shape = ProducedBy(cos->input(0), ir::OpKind::kShape);
    if (shape == nullptr || shape->HasAttr("start") || shape->HasAttr("end")) return false;
    if (shape->input(0) != s) return detail::SameKnownShape(shape->input(0)->shape, s->shape);
    if (!HasSingleUse(zeros) || !HasSingleUse(shape->outputs[0])) return false;
    s_users->push_back(shape);
    Add(cos);
    Add(shape);
    return true;
  }

  ir::Value* q_ = nullptr;
  ir::Value* k_ = nullptr;
  ir::Value* mask_ = nullptr;
  ir::Node* wu_ = nullptr;
  int64_t pooling_ = 0;
  std::vector<ir::Value*> mlp_;
  std::vector<ir::Node*> remove_;
};

StatusOr<bool> TryFuse(ir::Graph& g, ir::Node* root) {
  DinMatcher m;
  ir::Value *w = nullptr, *logit = nullptr, *x = nullptr;
  if (!m.MatchPooling(root, &w) || !m.MatchMaskedScores(w, &logit) || !m.MatchMlp(logit, &x) ||
      !m.MatchInteraction(x)) {
    return false;
  }
  Match match = std::move(m).Result();
  // A Linear without bias gets a zero one: every bias slot of DinAttention is filled.
  for (size_t i = 1; i < match.mlp.size(); ++i) {
    const Tensor* w = ConstOf(match.mlp[i - 1]);
    if (match.mlp[i] != nullptr || w == nullptr || w->rank() != 2) continue;
    ASSIGN_OR_RETURN(Tensor zero, Tensor::Zeros(w->dtype(), {w->dim(1)}));
    match.mlp[i] = detail::AddConstant(g, match.mlp[i - 1]->name + "/zero_bias", std::move(zero));
  }
  std::vector<ir::Value*> inputs = {match.q, match.k, match.mask};
  inputs.insert(inputs.end(), match.mlp.begin(), match.mlp.end());
  auto node = detail::MakeFusedNode(g, ir::OpKind::kDinAttention, root->name + "/DinAttention",
                                    std::move(inputs));
  node->attrs["pooling"] = match.pooling;
  ASSIGN_OR_RETURN(ir::Node* fused, detail::ReplaceWithFused(g, root, std::move(node)));
  if (fused == nullptr) return false;
  for (ir::Node* n : match.remove) g.RemoveNode(n);
  return true;
}

}  // namespace

Status FuseDinAttention(ir::Graph& g, int* rewrites) {
  *rewrites = 0;
  std::vector<ir::Node*> roots;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::OpKind::kSqueeze || n->op == ir::OpKind::kReduceSum) roots.push_back(n.get());
  }
  // A rewrite removes only nodes before its root (a ReduceSum among them would be one already
  // visited), so no root is visited after being freed.
  for (ir::Node* n : roots) {
    ASSIGN_OR_RETURN(bool fused, TryFuse(g, n));
    if (fused) ++*rewrites;
  }
  return Status::Ok();
}

}  // namespace clickrt::passes
