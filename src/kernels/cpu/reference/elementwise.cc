// Element-wise reference kernels: unary math, broadcasting binary ops, Where, Sum, Cast.
#include <cmath>

#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

using detail::Tag;

namespace {

// Widens float16 / bfloat16 to float32 so the typed loops only see C++ arithmetic types.
StatusOr<Tensor> Widen(const Tensor& t) {
  return detail::IsHalf(t.dtype()) ? Cast(t, DType::kFloat32) : StatusOr<Tensor>(t);
}

StatusOr<Tensor> Narrow(StatusOr<Tensor> t, DType to) {
  if (!t.ok() || !detail::IsHalf(to)) return t;
  return Cast(t.value(), to);
}

template <typename T>
T ApplyUnary(UnaryOp op, T x, float alpha) {
  const double d = static_cast<double>(x);
  switch (op) {
    case UnaryOp::kNeg: return static_cast<T>(-x);
    case UnaryOp::kSqrt: return static_cast<T>(std::sqrt(d));
    case UnaryOp::kExp: return static_cast<T>(std::exp(d));
    case UnaryOp::kLog: return static_cast<T>(std::log(d));
    case UnaryOp::kRelu: return x > T(0) ? x : T(0);
    case UnaryOp::kLeakyRelu: return x >= T(0) ? x : static_cast<T>(d * alpha);
    case UnaryOp::kSigmoid:
      return static_cast<T>(d >= 0 ? 1.0 / (1.0 + std::exp(-d)) : std::exp(d) / (1.0 + std::exp(d)));
    case UnaryOp::kTanh: return static_cast<T>(std::tanh(d));
    case UnaryOp::kNot: return static_cast<T>(!x);
  }
  return x;
}

template <typename T, typename O>
O ApplyBinary(BinaryOp op, T a, T b) {
  switch (op) {
    case BinaryOp::kAdd: return static_cast<O>(a + b);
    case BinaryOp::kSub: return static_cast<O>(a - b);
    case BinaryOp::kMul: return static_cast<O>(a * b);
    case BinaryOp::kDiv:
      if constexpr (std::is_integral_v<T>) {
        return b == 0 ? O(0) : static_cast<O>(a / b);
      } else {
        return static_cast<O>(a / b);
      }
    case BinaryOp::kEqual: return static_cast<O>(a == b);
    case BinaryOp::kGreater: return static_cast<O>(a > b);
    case BinaryOp::kLess: return static_cast<O>(a < b);
    case BinaryOp::kAnd: return static_cast<O>(a && b);
    case BinaryOp::kPow: break;  // handled separately (mixed dtypes)
  }
  return O(0);
}

bool IsLogical(BinaryOp op) {
  return op == BinaryOp::kEqual || op == BinaryOp::kGreater || op == BinaryOp::kLess ||
         op == BinaryOp::kAnd;
}

// Pow allows different base and exponent dtypes; the result has the base's dtype.
StatusOr<Tensor> Pow(const Tensor& a, const Tensor& b) {
  ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims(a.dims(), b.dims()));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(a.dtype(), out_dims));
  detail::BroadcastIter it(out_dims, {detail::BroadcastStrides(a.dims(), out_dims),
                                      detail::BroadcastStrides(b.dims(), out_dims)});
  Status s = detail::Visit(a.dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    for (int64_t i = 0; i < out.size(); ++i, it.Next()) {
      double base = a.GetAsDouble(it.offsets()[0]);
      double e = b.GetAsDouble(it.offsets()[1]);
      o[i] = static_cast<T>(std::pow(base, e));
    }
    return Status::Ok();
  }, false);
  RETURN_IF_ERROR(s);
  return out;
}

}  // namespace

StatusOr<Tensor> Unary(UnaryOp op, const Tensor& x_in, float alpha) {
  ASSIGN_OR_RETURN(Tensor x, Widen(x_in));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), x.dims()));
  Status s = detail::Visit(x.dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    const T* in = x.data<T>();
    T* o = out.data<T>();
    for (int64_t i = 0; i < x.size(); ++i) o[i] = ApplyUnary<T>(op, in[i], alpha);
    return Status::Ok();
  });
  RETURN_IF_ERROR(s);
  return Narrow(out, x_in.dtype());
}

StatusOr<Tensor> Binary(BinaryOp op, const Tensor& a_in, const Tensor& b_in) {
  if (op == BinaryOp::kPow) {
    ASSIGN_OR_RETURN(Tensor a, Widen(a_in));
    ASSIGN_OR_RETURN(Tensor b, Widen(b_in));
    return Narrow(Pow(a, b), a_in.dtype());
  }
  if (a_in.dtype() != b_in.dtype()) {
    return InvalidArgument("operands have different dtypes: " + a_in.Describe() + " and " +
                           b_in.Describe());
  }
  ASSIGN_OR_RETURN(Tensor a, Widen(a_in));
  ASSIGN_OR_RETURN(Tensor b, Widen(b_in));
  ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims(a.dims(), b.dims()));
  const bool logical = IsLogical(op);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(logical ? DType::kBool : a.dtype(), out_dims));
  detail::BroadcastIter it(out_dims, {detail::BroadcastStrides(a.dims(), out_dims),
                                      detail::BroadcastStrides(b.dims(), out_dims)});
  Status s = detail::Visit(a.dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    const T* pa = a.data<T>();
    const T* pb = b.data<T>();
    for (int64_t i = 0; i < out.size(); ++i, it.Next()) {
      T va = pa[it.offsets()[0]], vb = pb[it.offsets()[1]];
      if (logical) {
        out.data<bool>()[i] = ApplyBinary<T, bool>(op, va, vb);
      } else {
        out.data<T>()[i] = ApplyBinary<T, T>(op, va, vb);
      }
    }
    return Status::Ok();
  });
  RETURN_IF_ERROR(s);
  return logical ? StatusOr<Tensor>(out) : Narrow(out, a_in.dtype());
}

StatusOr<Tensor> PRelu(const Tensor& x_in, const Tensor& slope_in) {
  if (x_in.dtype() != slope_in.dtype()) {
    return InvalidArgument("PRelu slope dtype differs from input: " + slope_in.Describe());
  }
  ASSIGN_OR_RETURN(Tensor x, Widen(x_in));
  ASSIGN_OR_RETURN(Tensor slope, Widen(slope_in));
  ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims(x.dims(), slope.dims()));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), out_dims));
  detail::BroadcastIter it(out_dims, {detail::BroadcastStrides(x.dims(), out_dims),
                                      detail::BroadcastStrides(slope.dims(), out_dims)});
  Status s = detail::Visit(x.dtype(), [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    for (int64_t i = 0; i < out.size(); ++i, it.Next()) {
      T v = x.data<T>()[it.offsets()[0]];
      out.data<T>()[i] = v < T(0) ? static_cast<T>(v * slope.data<T>()[it.offsets()[1]]) : v;
    }
    return Status::Ok();
  }, false);
  RETURN_IF_ERROR(s);
  return Narrow(out, x_in.dtype());
}

StatusOr<Tensor> Where(const Tensor& cond, const Tensor& x, const Tensor& y) {
  if (cond.dtype() != DType::kBool) return InvalidArgument("Where condition must be bool");
  if (x.dtype() != y.dtype()) return InvalidArgument("Where X and Y dtypes differ");
  ASSIGN_OR_RETURN(Dims d1, BroadcastDims(cond.dims(), x.dims()));
  ASSIGN_OR_RETURN(Dims out_dims, BroadcastDims(d1, y.dims()));
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), out_dims));
  detail::BroadcastIter it(out_dims, {detail::BroadcastStrides(cond.dims(), out_dims),
                                      detail::BroadcastStrides(x.dims(), out_dims),
                                      detail::BroadcastStrides(y.dims(), out_dims)});
  const size_t es = DTypeSize(x.dtype());
  auto* o = static_cast<char*>(out.raw());
  for (int64_t i = 0; i < out.size(); ++i, it.Next()) {
    const auto& off = it.offsets();
    const char* src = cond.data<bool>()[off[0]] ? static_cast<const char*>(x.raw()) + off[1] * es
                                                : static_cast<const char*>(y.raw()) + off[2] * es;
    std::copy(src, src + es, o + i * es);
  }
  return out;
}

StatusOr<Tensor> Sum(const std::vector<Tensor>& xs) {
  if (xs.empty()) return InvalidArgument("Sum needs at least one input");
  Tensor acc = xs[0];
  if (xs.size() == 1) return acc.Clone();
  for (size_t i = 1; i < xs.size(); ++i) {
    ASSIGN_OR_RETURN(acc, Binary(BinaryOp::kAdd, acc, xs[i]));
  }
  return acc;
}

StatusOr<Tensor> Cast(const Tensor& x, DType to) {
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(to, x.dims()));
  const int64_t n = x.size();
  if (to == DType::kFloat16 || to == DType::kBFloat16) {
    // Rounds once from the widest source value (double -> float first is a double rounding the
    // ONNX reference also performs).
    for (int64_t i = 0; i < n; ++i) {
      float f = static_cast<float>(x.GetAsDouble(i));
      out.data<uint16_t>()[i] = to == DType::kFloat16 ? FloatToHalf(f) : FloatToBFloat16(f);
    }
    return out;
  }
  Status s = detail::Visit(to, [&](auto tag) -> Status {
    using T = typename decltype(tag)::type;
    T* o = out.data<T>();
    if (IsFloating(x.dtype())) {
      for (int64_t i = 0; i < n; ++i) {
        double v = x.GetAsDouble(i);
        if constexpr (std::is_same_v<T, bool>) {
          o[i] = v != 0;
        } else if constexpr (std::is_integral_v<T>) {
          o[i] = std::isfinite(v) ? static_cast<T>(static_cast<int64_t>(v)) : T(0);
        } else {
          o[i] = static_cast<T>(v);
        }
      }
    } else {
      for (int64_t i = 0; i < n; ++i) {
        int64_t v = x.GetAsInt64(i);
        if constexpr (std::is_same_v<T, bool>) {
          o[i] = v != 0;
        } else {
          o[i] = static_cast<T>(v);
        }
      }
    }
    return Status::Ok();
  });
  RETURN_IF_ERROR(s);
  return out;
}

}  // namespace clickrt::kernels::ref
