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

}  // namespace clickrt::kernels::ref
