// Softmax, BatchNormalization (inference) and LayerNormalization reference kernels.
#include <cmath>
#include <limits>

#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

namespace {

StatusOr<Tensor> ToF64(const Tensor& t) {
  if (!IsFloating(t.dtype())) {
    return InvalidArgument("expected a floating-point tensor, got " + t.Describe());
  }
  return Cast(t, DType::kFloat64);
}

StatusOr<int64_t> Axis(int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return InvalidArgument("axis " + std::to_string(axis) + " out of range for rank " +
                           std::to_string(rank));
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace

StatusOr<Tensor> Softmax(const Tensor& x, int64_t axis_in, bool coerce_2d) {
  ASSIGN_OR_RETURN(Tensor xd, ToF64(x));
  if (x.rank() == 0) return InvalidArgument("Softmax input must have rank >= 1");
  ASSIGN_OR_RETURN(int64_t axis, Axis(axis_in, x.rank()));
  const Dims& d = x.dims();
  int64_t outer = 1, n = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= d[i];
  if (coerce_2d) {
    for (int64_t i = axis; i < x.rank(); ++i) n *= d[i];
  } else {
    n = d[axis];
    for (int64_t i = axis + 1; i < x.rank(); ++i) inner *= d[i];
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(DType::kFloat64, d));
  const double* in = xd.data<double>();
  double* o = out.data<double>();
  for (int64_t a = 0; a < outer; ++a) {
    for (int64_t c = 0; c < inner; ++c) {
      double mx = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < n; ++k) mx = std::max(mx, in[(a * n + k) * inner + c]);
      double sum = 0;
      for (int64_t k = 0; k < n; ++k) sum += std::exp(in[(a * n + k) * inner + c] - mx);
      for (int64_t k = 0; k < n; ++k) {
        o[(a * n + k) * inner + c] = std::exp(in[(a * n + k) * inner + c] - mx) / sum;
      }
    }
  }
  return Cast(out, x.dtype());
}

StatusOr<Tensor> BatchNorm(const Tensor& x, const Tensor& scale, const Tensor& bias,
                           const Tensor& mean, const Tensor& var, float epsilon) {
  if (x.rank() < 2) return InvalidArgument("BatchNormalization input must have rank >= 2");
  const int64_t C = x.dim(1);
  for (const Tensor* p : {&scale, &bias, &mean, &var}) {
    if (p->size() != C) {
      return InvalidArgument("BatchNormalization parameter " + p->Describe() + " must have " +
                             std::to_string(C) + " elements (the channel count)");
    }
  }
  ASSIGN_OR_RETURN(Tensor xd, ToF64(x));
  ASSIGN_OR_RETURN(Tensor s, ToF64(scale));
  ASSIGN_OR_RETURN(Tensor b, ToF64(bias));
  ASSIGN_OR_RETURN(Tensor m, ToF64(mean));
  ASSIGN_OR_RETURN(Tensor v, ToF64(var));
  int64_t inner = 1;
  for (int i = 2; i < x.rank(); ++i) inner *= x.dim(i);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(DType::kFloat64, x.dims()));
  const int64_t N = x.dim(0);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t c = 0; c < C; ++c) {
      double k = s.data<double>()[c] / std::sqrt(v.data<double>()[c] + epsilon);
      double sh = b.data<double>()[c] - m.data<double>()[c] * k;
      for (int64_t i = 0; i < inner; ++i) {
        int64_t idx = (n * C + c) * inner + i;
        out.data<double>()[idx] = xd.data<double>()[idx] * k + sh;
      }
    }
  }
  return Cast(out, x.dtype());
}

Status LayerNorm(const Tensor& x, const Tensor& scale, const Tensor* bias, int64_t axis_in,
                 float epsilon, Tensor* y, Tensor* mean, Tensor* inv_std) {
  if (x.rank() == 0) return InvalidArgument("LayerNormalization input must have rank >= 1");
  ASSIGN_OR_RETURN(int64_t axis, Axis(axis_in, x.rank()));
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < axis; ++i) outer *= x.dim(static_cast<int>(i));
  for (int64_t i = axis; i < x.rank(); ++i) inner *= x.dim(static_cast<int>(i));
  ASSIGN_OR_RETURN(Tensor xd, ToF64(x));
  ASSIGN_OR_RETURN(Tensor sd, ToF64(scale));
  Tensor bd;
  if (bias) {
    ASSIGN_OR_RETURN(bd, ToF64(*bias));
  }
  Dims inner_dims(x.dims().begin() + axis, x.dims().end());
  ASSIGN_OR_RETURN(Dims sb, BroadcastDims(scale.dims(), inner_dims));
  if (sb != inner_dims || (bias && BroadcastDims(bias->dims(), inner_dims).value() != inner_dims)) {
    return InvalidArgument("LayerNormalization scale " + scale.Describe() +
                           " does not broadcast to the normalized shape " + DimsToString(inner_dims));
  }
  auto s_strides = detail::BroadcastStrides(scale.dims(), inner_dims);
  std::vector<int64_t> b_strides;
  if (bias) b_strides = detail::BroadcastStrides(bias->dims(), inner_dims);
  Dims stat_dims = x.dims();
  for (int64_t i = axis; i < x.rank(); ++i) stat_dims[i] = 1;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(DType::kFloat64, x.dims()));
  ASSIGN_OR_RETURN(Tensor mo, Tensor::Zeros(DType::kFloat64, stat_dims));
  ASSIGN_OR_RETURN(Tensor io, Tensor::Zeros(DType::kFloat64, stat_dims));
  for (int64_t o = 0; o < outer; ++o) {
    const double* row = xd.data<double>() + o * inner;
    double mu = 0;
    for (int64_t i = 0; i < inner; ++i) mu += row[i];
    mu /= static_cast<double>(inner);
    double var = 0;
    for (int64_t i = 0; i < inner; ++i) var += (row[i] - mu) * (row[i] - mu);
    var /= static_cast<double>(inner);
    double inv = 1.0 / std::sqrt(var + epsilon);
    mo.data<double>()[o] = mu;
    io.data<double>()[o] = inv;
    detail::BroadcastIter sit(inner_dims, {s_strides, bias ? b_strides : s_strides});
    for (int64_t i = 0; i < inner; ++i, sit.Next()) {
      double v = (row[i] - mu) * inv * sd.data<double>()[sit.offsets()[0]];
      if (bias) v += bd.data<double>()[sit.offsets()[1]];
      out.data<double>()[o * inner + i] = v;
    }
  }
  ASSIGN_OR_RETURN(*y, Cast(out, x.dtype()));
  if (mean) {
    ASSIGN_OR_RETURN(*mean, Cast(mo, DType::kFloat32));
  }
  if (inv_std) {
    ASSIGN_OR_RETURN(*inv_std, Cast(io, DType::kFloat32));
  }
  return Status::Ok();
}

}  // namespace clickrt::kernels::ref
