// Reference ReduceSum / ReduceMean / ReduceMax (ONNX semantics, opset 18 style axes).
//
// Floating sums accumulate in double. Integer sums wrap like the integer type. Over an empty set
// Sum gives 0, Mean gives NaN for floats (numpy) and 0 for integers, Max gives -inf for floats
// and the lowest value for integers. Max propagates NaN.
#include <cmath>
#include <limits>
#include <string>
#include <type_traits>

#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

namespace {

template <typename T>
bool IsNan(T v) {
  if constexpr (std::is_floating_point_v<T>) {
    return std::isnan(v);
  } else {
    return false;
  }
}

// Reduces x into out. out_strides are, per dim of x, out's element stride (0 on reduced axes);
// `count` is the number of x elements folded into each output element.
template <typename T>
void ReduceTyped(ReduceOp op, const Tensor& x, const std::vector<int64_t>& out_strides,
                 int64_t count, Tensor* out) {
  const size_t m = static_cast<size_t>(out->size());
  const T* in = x.data<T>();
  T* o = out->data<T>();
  detail::BroadcastIter it(x.dims(), {out_strides});
  switch (op) {
    case ReduceOp::kSum:
    case ReduceOp::kMean:
      if constexpr (std::is_floating_point_v<T>) {
        std::vector<double> acc(m, 0.0);
        for (int64_t i = 0; i < x.size(); ++i, it.Next()) acc[it.offsets()[0]] += in[i];
        for (size_t j = 0; j < m; ++j) {
          // Mean of an empty set is 0.0 / 0 = NaN.
          o[j] =
              static_cast<T>(op == ReduceOp::kMean ? acc[j] / static_cast<double>(count) : acc[j]);
        }
      } else {
        std::vector<uint64_t> acc(m, 0);  // unsigned, so overflow wraps instead of being UB
        for (int64_t i = 0; i < x.size(); ++i, it.Next()) {
          acc[it.offsets()[0]] += static_cast<uint64_t>(static_cast<int64_t>(in[i]));
        }
        for (size_t j = 0; j < m; ++j) {
          const int64_t s = static_cast<int64_t>(acc[j]);
          const int64_t v = op == ReduceOp::kSum ? s : (count > 0 ? s / count : 0);
          o[j] = static_cast<T>(v);
        }
      }
      return;
    case ReduceOp::kMax: {
      const T init = std::numeric_limits<T>::has_infinity ? -std::numeric_limits<T>::infinity()
                                                          : std::numeric_limits<T>::lowest();
      std::vector<T> acc(m, init);
      for (int64_t i = 0; i < x.size(); ++i, it.Next()) {
        T& a = acc[it.offsets()[0]];
        if (IsNan(a)) continue;
        if (IsNan(in[i]) || in[i] > a) a = in[i];
      }
      for (size_t j = 0; j < m; ++j) o[j] = acc[j];
      return;
    }
  }
}

}  // namespace

StatusOr<Tensor> Reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes,
                        bool keepdims, bool noop_with_empty_axes) {
  if (axes.empty() && noop_with_empty_axes) return x;
  if (detail::IsHalf(x.dtype())) {
    ASSIGN_OR_RETURN(Tensor wide, Cast(x, DType::kFloat32));
    ASSIGN_OR_RETURN(Tensor y, Reduce(op, wide, axes, keepdims, noop_with_empty_axes));
    return Cast(y, x.dtype());
  }
  const int64_t r = x.rank();
  std::vector<bool> reduced(r, axes.empty());
  for (int64_t a : axes) {
    if (a < -r || a >= r) {
      return OutOfRange("Reduce axis " + std::to_string(a) + " is out of range for " +
                        x.Describe());
    }
    const int64_t n = a < 0 ? a + r : a;
    if (reduced[n]) {
      return InvalidArgument("Reduce axes " + DimsToString(axes) + " of " + x.Describe() +
                             " repeat axis " + std::to_string(n));
    }
    reduced[n] = true;
  }
  Dims kept_dims = x.dims();  // the keepdims=1 shape; same element order without the 1s
  Dims out_dims;
  for (int64_t d = 0; d < r; ++d) {
    if (reduced[d]) kept_dims[d] = 1;
    if (!reduced[d] || keepdims) out_dims.push_back(kept_dims[d]);
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), out_dims));
  std::vector<int64_t> out_strides = detail::RowMajorStrides(kept_dims);
  for (int64_t d = 0; d < r; ++d) {
    if (reduced[d]) out_strides[d] = 0;
  }
  const int64_t count = out.size() > 0 ? x.size() / out.size() : 0;
  Status s = detail::Visit(
      x.dtype(),
      [&](auto tag) -> Status {
        using T = typename decltype(tag)::type;
        if constexpr (std::is_same_v<T, bool>) {
          return Status::Ok();  // never visited: allow_bool is false
        } else {
          ReduceTyped<T>(op, x, out_strides, count, &out);
          return Status::Ok();
        }
      },
      /*allow_bool=*/false);
  RETURN_IF_ERROR(s);
  return out;
}

}  // namespace clickrt::kernels::ref
