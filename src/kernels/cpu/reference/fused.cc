// Reference kernels for the fused ops, composed from the plain reference kernels so that each is
// exactly the subgraph it replaces.
#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

StatusOr<Tensor> EmbeddingLookup(const Tensor& table, const Tensor& ids, const Tensor* offsets,
                                 const Tensor* sizes) {
  if (ids.rank() < 1) return InvalidArgument("ids must have rank >= 1, got " + ids.Describe());
  const int64_t F = ids.dims().back();
  for (const Tensor* p : {offsets, sizes}) {
    if (p && p->size() != F) {
      return InvalidArgument("per-field tensor " + p->Describe() + " must have " +
                             std::to_string(F) + " entries");
    }
  }
  ASSIGN_OR_RETURN(Tensor idx, Cast(ids, DType::kInt64));
  idx = idx.Clone();
  int64_t* p = idx.data<int64_t>();
  for (int64_t i = 0; i < idx.size(); ++i) {
    const int64_t f = i % F;
    if (sizes && (p[i] < 0 || p[i] >= sizes->GetAsInt64(f))) p[i] = 0;
    if (offsets) p[i] += offsets->GetAsInt64(f);
  }
  return Gather(table, idx, 0);
}

StatusOr<Tensor> Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act) {
  ASSIGN_OR_RETURN(Tensor y, MatMul(x, w));
  if (bias) {
    ASSIGN_OR_RETURN(y, Binary(BinaryOp::kAdd, y, *bias));
  }
  switch (act) {
    case Activation::kNone: return y;
    case Activation::kRelu: return Unary(UnaryOp::kRelu, y);
    case Activation::kSigmoid: return Unary(UnaryOp::kSigmoid, y);
  }
  return InvalidArgument("unknown activation " + std::to_string(static_cast<int>(act)));
}

StatusOr<Tensor> FMInteraction(const Tensor& emb) {
  if (emb.rank() != 3) return InvalidArgument("FMInteraction input must be [B,F,D], got " + emb.Describe());
  ASSIGN_OR_RETURN(Tensor sum, Reduce(ReduceOp::kSum, emb, {1}, false, false));   // [B,D]
  ASSIGN_OR_RETURN(Tensor sq, Binary(BinaryOp::kMul, sum, sum));
  ASSIGN_OR_RETURN(Tensor e2, Binary(BinaryOp::kMul, emb, emb));
  ASSIGN_OR_RETURN(Tensor sum_sq, Reduce(ReduceOp::kSum, e2, {1}, false, false));
  ASSIGN_OR_RETURN(Tensor diff, Binary(BinaryOp::kSub, sq, sum_sq));
  ASSIGN_OR_RETURN(Tensor total, Reduce(ReduceOp::kSum, diff, {1}, true, false));  // [B,1]
  return Binary(BinaryOp::kMul, total, Tensor::Scalar(total.dtype(), 0.5));
}

StatusOr<Tensor> Cross(const Tensor& x0, const Tensor& xl, const Tensor& w, const Tensor& bias) {
  ASSIGN_OR_RETURN(Tensor lin, Linear(xl, w, &bias, Activation::kNone));
  ASSIGN_OR_RETURN(Tensor prod, Binary(BinaryOp::kMul, x0, lin));
  return Binary(BinaryOp::kAdd, prod, xl);
}

StatusOr<Tensor> DinAttention(const Tensor& q, const Tensor& k, const Tensor& mask,
                              const std::vector<DinHiddenLayer>& hidden, const Tensor& w_out,
                              const Tensor& b_out, DinPooling pooling) {
  if (q.rank() != 2 || k.rank() != 3 || q.dim(1) != k.dim(2)) {
    return InvalidArgument("DinAttention needs q [B,D] and k [B,L,D], got " + q.Describe() +
                           " and " + k.Describe());
  }
  const int64_t B = k.dim(0), L = k.dim(1), D = k.dim(2);
  ASSIGN_OR_RETURN(Tensor q1, q.Reshaped({q.dim(0), 1, D}));  // Unsqueeze(q, 1)
  ASSIGN_OR_RETURN(Tensor qe, Expand(q1, k.dims()));
  ASSIGN_OR_RETURN(Tensor diff, Binary(BinaryOp::kSub, qe, k));
  ASSIGN_OR_RETURN(Tensor prod, Binary(BinaryOp::kMul, qe, k));
  ASSIGN_OR_RETURN(Tensor cat, Concat({qe, k, diff, prod}, 2));
  ASSIGN_OR_RETURN(Tensor x, cat.Reshaped({B * L, 4 * D}));
  for (const DinHiddenLayer& layer : hidden) {
    if (!layer.w || !layer.bias || !layer.slope) {
      return InvalidArgument("DinAttention: a hidden layer lacks W, bias or slope");
    }
    ASSIGN_OR_RETURN(Tensor h, Linear(x, *layer.w, layer.bias, Activation::kNone));
    ASSIGN_OR_RETURN(x, PRelu(h, *layer.slope));
  }
  ASSIGN_OR_RETURN(Tensor logit, Linear(x, w_out, &b_out, Activation::kNone));  // [B*L, 1]
  ASSIGN_OR_RETURN(Tensor scores, logit.Reshaped({B, L}));
  ASSIGN_OR_RETURN(Tensor zeros, Tensor::Zeros(scores.dtype(), scores.dims()));
  ASSIGN_OR_RETURN(Tensor weights, Where(mask, scores, zeros));
  if (weights.rank() != 2) {
    return InvalidArgument("DinAttention: mask " + mask.Describe() + " does not fit scores [" +
                           std::to_string(B) + "," + std::to_string(L) + "]");
  }
  switch (pooling) {
    case DinPooling::kMatMul: {
      ASSIGN_OR_RETURN(Tensor w3, weights.Reshaped({weights.dim(0), 1, weights.dim(1)}));
      ASSIGN_OR_RETURN(Tensor pooled, MatMul(w3, k));  // [B, 1, D]
      return pooled.Reshaped({pooled.dim(0), pooled.dim(2)});
    }
    case DinPooling::kMulReduce: {
      ASSIGN_OR_RETURN(Tensor w3, weights.Reshaped({weights.dim(0), weights.dim(1), 1}));
      ASSIGN_OR_RETURN(Tensor weighted, Binary(BinaryOp::kMul, w3, k));  // [B, L, D]
      return Reduce(ReduceOp::kSum, weighted, {1}, false, false);
    }
  }
  return InvalidArgument("unknown DinAttention pooling " +
                         std::to_string(static_cast<int>(pooling)));
}

}  // namespace clickrt::kernels::ref
