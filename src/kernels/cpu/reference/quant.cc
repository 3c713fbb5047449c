// Reference quantization kernels: the row-wise embedding formats (quant_format.h), per-channel int8
// weights, and the int8 Linear / Cross they define. Integer sums are exact (int64).
#include <cmath>
#include <cstring>
#include <string>

#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

namespace {

std::string RowName(int64_t v) { return "row " + std::to_string(v); }

// The fp16 value next to `h` toward -inf / +inf (h finite).
uint16_t HalfStepDown(uint16_t h) {
  if (h == 0x0000) return 0x8001;       // +0 -> smallest negative subnormal
  return (h & 0x8000) ? h + 1 : h - 1;  // negative: larger magnitude; positive: smaller
}
uint16_t HalfStepUp(uint16_t h) {
  if (h == 0x8000) return 0x0001;  // -0 -> smallest positive subnormal
  return (h & 0x8000) ? h - 1 : h + 1;
}

uint8_t Code(float x, float bias, float scale, float max_code) {
  if (scale == 0.f) return 0;
  float c = std::nearbyint((x - bias) / scale);
  c = c > 0.f ? c : 0.f;
  c = c < max_code ? c : max_code;
  return static_cast<uint8_t>(c);
}

Status QuantizeRowInt8(const float* x, int64_t D, uint8_t* out, int64_t v) {
  float lo = x[0], hi = x[0];
  for (int64_t d = 1; d < D; ++d) {
    lo = x[d] < lo ? x[d] : lo;
    hi = x[d] > hi ? x[d] : hi;
  }
  const float scale = (hi - lo) / 255.f, bias = lo;
  if (!std::isfinite(scale)) {
    return InvalidArgument("QuantizeRows: " + RowName(v) + " has a range that does not fit float");
  }
  for (int64_t d = 0; d < D; ++d) out[d] = Code(x[d], bias, scale, 255.f);
  std::memcpy(out + D, &scale, 4);
  std::memcpy(out + D + 4, &bias, 4);
  return Status::Ok();
}

Status QuantizeRowInt4(const float* x, int64_t D, uint8_t* out, int64_t v) {
  float lo = x[0], hi = x[0];
  for (int64_t d = 1; d < D; ++d) {
    lo = x[d] < lo ? x[d] : lo;
    hi = x[d] > hi ? x[d] : hi;
  }
  // Bias rounded down and scale rounded up to fp16, so [bias, bias + 15 * scale] covers the row.
  uint16_t bias_h = FloatToHalf(lo);
  if (HalfToFloat(bias_h) > lo) bias_h = HalfStepDown(bias_h);
  const float bias = HalfToFloat(bias_h);
  const float want_scale = (hi - bias) / 15.f;
  uint16_t scale_h = FloatToHalf(want_scale);
  if (HalfToFloat(scale_h) < want_scale) scale_h = HalfStepUp(scale_h);
  const float scale = HalfToFloat(scale_h);
  if (!std::isfinite(bias) || !std::isfinite(scale)) {
    return InvalidArgument("QuantizeRows: " + RowName(v) + " (min " + std::to_string(lo) +
                           ", max " + std::to_string(hi) + ") does not fit the fp16 scale / bias");
  }
  const int64_t nbytes = (D + 1) / 2;
  std::memset(out, 0, static_cast<size_t>(nbytes));
  for (int64_t d = 0; d < D; ++d) {
    const uint8_t c = Code(x[d], bias, scale, 15.f);
    out[d / 2] |= static_cast<uint8_t>(d % 2 ? c << 4 : c);
  }
  std::memcpy(out + nbytes, &scale_h, 2);
  std::memcpy(out + nbytes + 2, &bias_h, 2);
  return Status::Ok();
}

// Every kernel dequantizes with one fused multiply-add (quant_format.h), so all agree bit for bit.
inline float Affine(uint32_t code, float scale, float bias) {
  return std::fma(static_cast<float>(code), scale, bias);
}

int64_t ProductOfLeadingDims(const Tensor& t) {
  int64_t rows = 1;
  for (int i = 0; i + 1 < t.rank(); ++i) rows *= t.dim(i);
  return rows;
}

// Shared by QLinear and QCross: y[m, n] = float(acc) * (x_scale * w_scale[n]) + bias[n].
StatusOr<Tensor> QGemm(const char* op, const Tensor& x, const Tensor& wq, const Tensor& w_scale,
                       const Tensor* bias, float x_scale) {
  const std::string what(op);
  if (x.dtype() != DType::kFloat32 || x.rank() < 1) {
    return InvalidArgument(what + ": x must be float32 of rank >= 1, got " + x.Describe());
  }
  if (wq.dtype() != DType::kInt8 || wq.rank() != 2) {
    return InvalidArgument(what + ": weights must be int8 [K, N], got " + wq.Describe());
  }
  const int64_t K = wq.dim(0), N = wq.dim(1);
  if (x.dims().back() != K) {
    return InvalidArgument(what + ": x " + x.Describe() + " does not match weights " +
                           wq.Describe());
  }
  if (w_scale.dtype() != DType::kFloat32 || w_scale.size() != N) {
    return InvalidArgument(what + ": w_scale must be float32 [" + std::to_string(N) + "], got " +
                           w_scale.Describe());
  }
  if (bias && (bias->dtype() != DType::kFloat32 || bias->size() != N)) {
    return InvalidArgument(what + ": bias must be float32 [" + std::to_string(N) + "], got " +
                           bias->Describe());
  }
  if (!(x_scale > 0.f) || !std::isfinite(x_scale)) {
    return InvalidArgument(what + ": x_scale must be finite and > 0, got " +
                           std::to_string(x_scale));
  }
  Dims out_dims = x.dims();
  out_dims.back() = N;
  ASSIGN_OR_RETURN(Tensor y, Tensor::Zeros(DType::kFloat32, out_dims));
  const int64_t M = ProductOfLeadingDims(x);
  const float* px = x.data<float>();
  const int8_t* pw = wq.data<int8_t>();
  const float* ps = w_scale.data<float>();
  float* py = y.data<float>();
  std::vector<int32_t> q(static_cast<size_t>(K));
  for (int64_t m = 0; m < M; ++m) {
    for (int64_t k = 0; k < K; ++k) q[k] = QuantizeActivation(px[m * K + k], x_scale);
    for (int64_t n = 0; n < N; ++n) {
      int64_t acc = 0;
      for (int64_t k = 0; k < K; ++k) acc += int64_t{q[k]} * pw[k * N + n];
      const float s = x_scale * ps[n];
      const volatile float prod = static_cast<float>(acc) * s;
      py[m * N + n] = bias ? prod + bias->data<float>()[n] : prod;
    }
  }
  return y;
}

}  // namespace

Status QuantizeRows(const float* table, int64_t V, int64_t D, RowFormat fmt, uint8_t* out) {
  const int64_t row_bytes = RowwiseBytes(fmt, D);
  if (V < 0 || D <= 0 || row_bytes < 0 || (V > 0 && (!table || !out))) {
    return InvalidArgument("QuantizeRows: bad arguments V=" + std::to_string(V) + " D=" +
                           std::to_string(D) + " format=" + std::to_string(static_cast<int>(fmt)));
  }
  for (int64_t v = 0; v < V; ++v) {
    const float* x = table + v * D;
    for (int64_t d = 0; d < D; ++d) {
      if (!std::isfinite(x[d])) {
        return InvalidArgument("QuantizeRows: " + RowName(v) + " holds a NaN or inf at column " +
                               std::to_string(d));
      }
    }
    uint8_t* o = out + v * row_bytes;
    switch (fmt) {
      case RowFormat::kFloat32:
        std::memcpy(o, x, static_cast<size_t>(row_bytes));
        break;
      case RowFormat::kInt8Rowwise:
        RETURN_IF_ERROR(QuantizeRowInt8(x, D, o, v));
        break;
      case RowFormat::kInt4Rowwise:
        RETURN_IF_ERROR(QuantizeRowInt4(x, D, o, v));
        break;
    }
  }
  return Status::Ok();
}

void DequantizeRow(const uint8_t* row, int64_t D, RowFormat fmt, float* out) {
  switch (fmt) {
    case RowFormat::kFloat32:
      std::memcpy(out, row, static_cast<size_t>(D) * 4);
      return;
    case RowFormat::kInt8Rowwise: {
      float scale, bias;
      std::memcpy(&scale, row + D, 4);
      std::memcpy(&bias, row + D + 4, 4);
      for (int64_t d = 0; d < D; ++d) out[d] = Affine(row[d], scale, bias);
      return;
    }
    case RowFormat::kInt4Rowwise: {
      const int64_t nbytes = (D + 1) / 2;
      uint16_t scale_h, bias_h;
      std::memcpy(&scale_h, row + nbytes, 2);
      std::memcpy(&bias_h, row + nbytes + 2, 2);
      const float scale = HalfToFloat(scale_h), bias = HalfToFloat(bias_h);
      for (int64_t d = 0; d < D; ++d) {
        const uint32_t c = d % 2 ? row[d / 2] >> 4 : row[d / 2] & 0x0f;
        out[d] = Affine(c, scale, bias);
      }
      return;
    }
  }
  for (int64_t d = 0; d < D; ++d) out[d] = 0.f;
}

StatusOr<Tensor> EmbeddingLookupQ(const Tensor& qtable, RowFormat fmt, int64_t D, const Tensor& ids,
                                  const Tensor* offsets, const Tensor* sizes) {
  const int64_t row_bytes = RowwiseBytes(fmt, D);
  if (D <= 0 || row_bytes < 0) {
    return InvalidArgument("EmbeddingLookupQ: bad D " + std::to_string(D) + " or format " +
                           std::to_string(static_cast<int>(fmt)));
  }
  if (qtable.dtype() != DType::kUInt8 || qtable.rank() != 2 || qtable.dim(1) != row_bytes) {
    return InvalidArgument("EmbeddingLookupQ: table must be uint8 [V, " +
                           std::to_string(row_bytes) + "] for D=" + std::to_string(D) + ", got " +
                           qtable.Describe());
  }
  ASSIGN_OR_RETURN(Tensor rows, EmbeddingLookup(qtable, ids, offsets, sizes));  // [..., row_bytes]
  Dims out_dims = rows.dims();
  out_dims.back() = D;
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(DType::kFloat32, out_dims));
  const int64_t n = ProductOfLeadingDims(rows);
  for (int64_t i = 0; i < n; ++i) {
    DequantizeRow(rows.data<uint8_t>() + i * row_bytes, D, fmt, out.data<float>() + i * D);
  }
  return out;
}

Status QuantizeWeightsPerChannel(const float* w, int64_t K, int64_t N, int8_t* wq, float* w_scale) {
  if (!w || !wq || !w_scale || K <= 0 || N <= 0) {
    return InvalidArgument("QuantizeWeightsPerChannel: bad arguments K=" + std::to_string(K) +
                           " N=" + std::to_string(N));
  }
  for (int64_t n = 0; n < N; ++n) {
    float amax = 0.f;
    for (int64_t k = 0; k < K; ++k) {
      const float v = w[k * N + n];
      if (!std::isfinite(v)) {
        return InvalidArgument("QuantizeWeightsPerChannel: NaN or inf at [" + std::to_string(k) +
                               ", " + std::to_string(n) + "]");
      }
      amax = std::fabs(v) > amax ? std::fabs(v) : amax;
    }
    float scale = amax / 127.f;
    if (scale == 0.f) scale = 1.f;
    w_scale[n] = scale;
    for (int64_t k = 0; k < K; ++k) {
      float c = std::nearbyint(w[k * N + n] / scale);
      c = c > -127.f ? c : -127.f;
      c = c < 127.f ? c : 127.f;
      wq[k * N + n] = static_cast<int8_t>(c);
    }
  }
  return Status::Ok();
}

StatusOr<Tensor> QLinear(const Tensor& x, const Tensor& wq, const Tensor& w_scale,
                         const Tensor* bias, float x_scale, Activation act) {
  ASSIGN_OR_RETURN(Tensor y, QGemm("QLinear", x, wq, w_scale, bias, x_scale));
  switch (act) {
    case Activation::kNone:
      return y;
    case Activation::kRelu:
      return Unary(UnaryOp::kRelu, y);
    case Activation::kSigmoid:
      return Unary(UnaryOp::kSigmoid, y);
  }
  return InvalidArgument("QLinear: unknown activation " + std::to_string(static_cast<int>(act)));
}

StatusOr<Tensor> QCross(const Tensor& x0, const Tensor& xl, const Tensor& wq, const Tensor& w_scale,
                        const Tensor* bias, float x_scale) {
  if (wq.rank() != 2 || wq.dim(0) != wq.dim(1)) {
    return InvalidArgument("QCross: weights must be square, got " + wq.Describe());
  }
  if (x0.dims() != xl.dims() || x0.dtype() != xl.dtype()) {
    return InvalidArgument("QCross: x0 " + x0.Describe() + " and xl " + xl.Describe() + " differ");
  }
  ASSIGN_OR_RETURN(Tensor lin, QGemm("QCross", xl, wq, w_scale, bias, x_scale));
  ASSIGN_OR_RETURN(Tensor prod, Binary(BinaryOp::kMul, x0, lin));
  return Binary(BinaryOp::kAdd, prod, xl);
}

}  // namespace clickrt::kernels::ref
