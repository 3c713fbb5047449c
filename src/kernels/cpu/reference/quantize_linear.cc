// ONNX QuantizeLinear / DequantizeLinear: see reference_kernels.h.
#include <cmath>
#include <limits>
#include <string>

#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {
namespace {

// x seen as [outer, channels, inner] for its scale; one channel for a per-tensor scale.
struct Layout {
  int64_t outer = 1, channels = 1, inner = 1;
};

bool IsScaleType(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16;
}

StatusOr<Layout> ScaleLayout(const char* op, const Tensor& x, const Tensor& scale,
                             const Tensor* zero_point, int64_t axis) {
  if (!IsScaleType(scale.dtype())) {
    return InvalidArgument(std::string(op) + ": scale must be float32, float16 or bfloat16, got " +
                           scale.Describe());
  }
  if (zero_point && zero_point->size() != scale.size()) {
    return InvalidArgument(std::string(op) + ": zero point " + zero_point->Describe() +
                           " and scale " + scale.Describe() + " must have one shape");
  }
  Layout l;
  if (scale.size() == 1 && scale.rank() <= 1) {
    l.inner = x.size();
    return l;
  }
  if (scale.rank() != 1) {
    return InvalidArgument(std::string(op) + ": scale " + scale.Describe() +
                           " must be a scalar or 1-D (block quantization is not supported)");
  }
  ASSIGN_OR_RETURN(int64_t a, detail::NormalizeAxis(op, axis, x));
  if (x.dim(static_cast<int>(a)) != scale.dim(0)) {
    return InvalidArgument(std::string(op) + ": per-axis scale " + scale.Describe() +
                           " does not match dim " + std::to_string(a) + " of " + x.Describe());
  }
  for (int i = 0; i < x.rank(); ++i) {
    if (i < a) l.outer *= x.dim(i);
    if (i > a) l.inner *= x.dim(i);
  }
  l.channels = scale.dim(0);
  return l;
}

// The values of a float / integer tensor as float32 (float16 / bfloat16 widened exactly).
StatusOr<std::vector<float>> AsFloats(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.size()));
  if (detail::IsHalf(t.dtype())) {
    ASSIGN_OR_RETURN(Tensor f, Cast(t, DType::kFloat32));
    for (int64_t i = 0; i < f.size(); ++i) v[i] = f.data<float>()[i];
    return v;
  }
  switch (t.dtype()) {
    case DType::kFloat32:
      for (int64_t i = 0; i < t.size(); ++i) v[i] = t.data<float>()[i];
      return v;
    case DType::kInt32:
      for (int64_t i = 0; i < t.size(); ++i) v[i] = static_cast<float>(t.data<int32_t>()[i]);
      return v;
    default:
      return InvalidArgument("expected a float32, float16, bfloat16 or int32 tensor, got " +
                             t.Describe());
  }
}

// Round half to even of |v| < 2^22 in float32 (the default rounding mode does it, as nearbyint
// would; written so the loops vectorize).
inline float RoundHalfEven(float v) {
  constexpr float kMagic = 12582912.f;  // 1.5 * 2^23
  return (v + kMagic) - kMagic;
}

template <typename Q>
void QuantizeLoop(const float* x, const std::vector<float>& scale, const Tensor* zero_point,
                  const Layout& l, Q* y) {
  const float lo = static_cast<float>(std::numeric_limits<Q>::min());
  const float hi = static_cast<float>(std::numeric_limits<Q>::max());
  int64_t i = 0;
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t c = 0; c < l.channels; ++c) {
      const float s = scale[c];
      const float z = zero_point ? static_cast<float>(zero_point->data<Q>()[c]) : 0.f;
      // saturate(round(v) + z) == round(clamp(v, lo - z, hi - z)) + z: the bounds are integers.
      // Clamping first keeps |v| small enough for RoundHalfEven; NaN becomes 0 (the zero point).
      const float vlo = lo - z, vhi = hi - z;
      for (int64_t k = 0; k < l.inner; ++k, ++i) {
        float v = x[i] / s;
        v = v == v ? v : 0.f;
        v = v < vlo ? vlo : v;
        v = v > vhi ? vhi : v;
        y[i] = static_cast<Q>(RoundHalfEven(v) + z);
      }
    }
  }
}

template <typename Q, typename Wide>
void DequantizeLoop(const Q* x, const Tensor* zero_point, const std::vector<float>& scale,
                    const Layout& l, float* y) {
  int64_t i = 0;
  for (int64_t o = 0; o < l.outer; ++o) {
    for (int64_t c = 0; c < l.channels; ++c) {
      const Wide z = zero_point ? static_cast<Wide>(zero_point->data<Q>()[c]) : 0;
      const float s = scale[c];
      for (int64_t k = 0; k < l.inner; ++k, ++i) {
        y[i] = static_cast<float>(static_cast<Wide>(x[i]) - z) * s;
      }
    }
  }
}

}  // namespace

StatusOr<Tensor> QuantizeLinear(const Tensor& x, const Tensor& scale, const Tensor* zero_point,
                                int64_t axis, DType out) {
  if (out != DType::kInt8 && out != DType::kUInt8) {
    return Unimplemented(std::string("QuantizeLinear to ") + DTypeName(out) +
                         " is not supported (int8 and uint8 are)");
  }
  if (zero_point && zero_point->dtype() != out) {
    return InvalidArgument(std::string("QuantizeLinear: zero point ") + zero_point->Describe() +
                           " must be " + DTypeName(out));
  }
  ASSIGN_OR_RETURN(Layout l, ScaleLayout("QuantizeLinear", x, scale, zero_point, axis));
  ASSIGN_OR_RETURN(std::vector<float> ss, AsFloats(scale));
  std::vector<float> widened;  // x unless it is float32
  if (x.dtype() != DType::kFloat32) {
    ASSIGN_OR_RETURN(widened, AsFloats(x));
  }
  const float* xs = x.dtype() == DType::kFloat32 ? x.data<float>() : widened.data();
  ASSIGN_OR_RETURN(Tensor y, Tensor::Zeros(out, x.dims()));
  if (out == DType::kInt8) {
    QuantizeLoop<int8_t>(xs, ss, zero_point, l, y.data<int8_t>());
  } else {
    QuantizeLoop<uint8_t>(xs, ss, zero_point, l, y.data<uint8_t>());
  }
  return y;
}

StatusOr<Tensor> DequantizeLinear(const Tensor& x, const Tensor& scale, const Tensor* zero_point,
                                  int64_t axis) {
  if (zero_point && zero_point->dtype() != x.dtype()) {
    return InvalidArgument("DequantizeLinear: zero point " + zero_point->Describe() + " and x " +
                           x.Describe() + " must have one dtype");
  }
  ASSIGN_OR_RETURN(Layout l, ScaleLayout("DequantizeLinear", x, scale, zero_point, axis));
  ASSIGN_OR_RETURN(std::vector<float> ss, AsFloats(scale));
  ASSIGN_OR_RETURN(Tensor y, Tensor::Zeros(DType::kFloat32, x.dims()));
  float* out = y.data<float>();
  switch (x.dtype()) {
    case DType::kInt8:
      DequantizeLoop<int8_t, int32_t>(x.data<int8_t>(), zero_point, ss, l, out);
      break;
    case DType::kUInt8:
      DequantizeLoop<uint8_t, int32_t>(x.data<uint8_t>(), zero_point, ss, l, out);
      break;
    case DType::kInt32:
      DequantizeLoop<int32_t, int64_t>(x.data<int32_t>(), zero_point, ss, l, out);
      break;
    default:
      return Unimplemented("DequantizeLinear of " + x.Describe() +
                           " is not supported (int8, uint8 and int32 are)");
  }
  if (scale.dtype() != DType::kFloat32) return Cast(y, scale.dtype());
  return y;
}

}  // namespace clickrt::kernels::ref
