// MatMul and Gemm reference kernels. Float accumulation is in double.
#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

namespace {
StatusOr<Tensor> WidenIfHalf(const Tensor& t) {
  return detail::IsHalf(t.dtype()) ? Cast(t, DType::kFloat32) : StatusOr<Tensor>(t);
}
}  // namespace

StatusOr<Tensor> MatMul(const Tensor& a_in, const Tensor& b_in) {
  if (a_in.dtype() != b_in.dtype()) {
    return InvalidArgument("MatMul operands have different dtypes: " + a_in.Describe() + " and " +
                           b_in.Describe());
  }
  if (a_in.rank() == 0 || b_in.rank() == 0) return InvalidArgument("MatMul operands must have rank >= 1");
  ASSIGN_OR_RETURN(Tensor a, WidenIfHalf(a_in));
  ASSIGN_OR_RETURN(Tensor b, WidenIfHalf(b_in));
  Dims ad = a.dims(), bd = b.dims();
  if (ad.size() == 1) ad.insert(ad.begin(), 1);
  if (bd.size() == 1) bd.push_back(1);
  const int64_t M = ad[ad.size() - 2], K = ad.back(), K2 = bd[bd.size() - 2], N = bd.back();
  if (K != K2) {
    return InvalidArgument("MatMul inner dimensions differ: " + a.Describe() + " x " + b.Describe());
  }
  Dims a_batch(ad.begin(), ad.end() - 2), b_batch(bd.begin(), bd.end() - 2);
  ASSIGN_OR_RETURN(Dims batch, BroadcastDims(a_batch, b_batch));
  Dims out_dims = batch;
  if (a.rank() > 1) out_dims.push_back(M);
  if (b.rank() > 1) out_dims.push_back(N);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(a.dtype(), out_dims));
  const int64_t nbatch = NumElements(batch);
  detail::BroadcastIter it(batch, {detail::BroadcastStrides(a_batch, batch),
                                   detail::BroadcastStrides(b_batch, batch)});
  Status s = detail::Visit(a.dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    using Acc = std::conditional_t<std::is_floating_point_v<T>, double, int64_t>;
    T* o = out.data<T>();
    for (int64_t bi = 0; bi < nbatch; ++bi, it.Next()) {
      const T* pa = a.data<T>() + it.offsets()[0] * M * K;
      const T* pb = b.data<T>() + it.offsets()[1] * K * N;
      for (int64_t i = 0; i < M; ++i) {
        for (int64_t j = 0; j < N; ++j) {
          Acc acc = 0;
          for (int64_t k = 0; k < K; ++k) acc += static_cast<Acc>(pa[i * K + k]) * pb[k * N + j];
          o[(bi * M + i) * N + j] = static_cast<T>(acc);
        }
      }
    }
    return Status::Ok();
  }, false);
  RETURN_IF_ERROR(s);
  if (detail::IsHalf(a_in.dtype())) return Cast(out, a_in.dtype());
  return out;
}

StatusOr<Tensor> Gemm(const Tensor& a_in, const Tensor& b_in, const Tensor* c_in, float alpha,
                      float beta, bool trans_a, bool trans_b) {
  if (a_in.rank() != 2 || b_in.rank() != 2) {
    return InvalidArgument("Gemm needs 2-D A and B, got " + a_in.Describe() + " and " +
                           b_in.Describe());
  }
  if (a_in.dtype() != b_in.dtype() || (c_in && c_in->dtype() != a_in.dtype())) {
    return InvalidArgument("Gemm operands have different dtypes");
  }
  ASSIGN_OR_RETURN(Tensor a, WidenIfHalf(a_in));
  ASSIGN_OR_RETURN(Tensor b, WidenIfHalf(b_in));
  Tensor c;
  if (c_in) {
    ASSIGN_OR_RETURN(c, WidenIfHalf(*c_in));
  }
  const int64_t M = trans_a ? a.dim(1) : a.dim(0), K = trans_a ? a.dim(0) : a.dim(1);
  const int64_t K2 = trans_b ? b.dim(1) : b.dim(0), N = trans_b ? b.dim(0) : b.dim(1);
  if (K != K2) {
    return InvalidArgument("Gemm inner dimensions differ: A " + a.Describe() + (trans_a ? "^T" : "") +
                           " B " + b.Describe() + (trans_b ? "^T" : ""));
  }
  Dims out_dims = {M, N};
  std::vector<int64_t> c_strides;
  if (c_in) {
    ASSIGN_OR_RETURN(Dims bd, BroadcastDims(c.dims(), out_dims));
    if (bd != out_dims) {
      return InvalidArgument("Gemm C " + c.Describe() + " does not broadcast to " +
                             DimsToString(out_dims));
    }
    c_strides = detail::BroadcastStrides(c.dims(), out_dims);
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(a.dtype(), out_dims));
  Status s = detail::Visit(a.dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    for (int64_t i = 0; i < M; ++i) {
      for (int64_t j = 0; j < N; ++j) {
        double acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          double va = static_cast<double>(trans_a ? pa[k * M + i] : pa[i * K + k]);
          double vb = static_cast<double>(trans_b ? pb[j * K + k] : pb[k * N + j]);
          acc += va * vb;
        }
        double v = alpha * acc;
        if (c_in) v += beta * static_cast<double>(c.data<T>()[i * c_strides[0] + j * c_strides[1]]);
        out.data<T>()[i * N + j] = static_cast<T>(v);
      }
    }
    return Status::Ok();
  }, false);
  RETURN_IF_ERROR(s);
  if (detail::IsHalf(a_in.dtype())) return Cast(out, a_in.dtype());
  return out;
}

}  // namespace clickrt::kernels::ref
