// Reference CPU kernels: simple, obviously correct loops that define what every op computes.
// They are the ground truth every fast kernel (CPU or CUDA, any precision) is tested against.
//
// Kernels see tensors and plain parameters, never the IR: the reference executor
// (src/reference/) reads each node's attributes and calls the kernel for its op.
// float16 / bfloat16 inputs are computed in float32 and rounded back.
#pragma once

#include <vector>

#include "base/tensor.h"
#include "kernels/cpu/quant_format.h"

namespace clickrt::kernels::ref {

enum class UnaryOp { kNeg, kSqrt, kExp, kLog, kRelu, kLeakyRelu, kSigmoid, kTanh, kNot };
enum class BinaryOp { kAdd, kSub, kMul, kDiv, kPow, kEqual, kGreater, kLess, kAnd };
enum class ReduceOp { kSum, kMean, kMax };

// Numpy broadcasting of two shapes.
StatusOr<Dims> BroadcastDims(const Dims& a, const Dims& b);

StatusOr<Tensor> Unary(UnaryOp op, const Tensor& x, float alpha = 0.f);
StatusOr<Tensor> Binary(BinaryOp op, const Tensor& a, const Tensor& b);
StatusOr<Tensor> PRelu(const Tensor& x, const Tensor& slope);
StatusOr<Tensor> Where(const Tensor& cond, const Tensor& x, const Tensor& y);
StatusOr<Tensor> Sum(const std::vector<Tensor>& xs);
StatusOr<Tensor> Cast(const Tensor& x, DType to);

// N-d matmul with numpy batch broadcasting; 1-D operands are promoted and the axis removed.
StatusOr<Tensor> MatMul(const Tensor& a, const Tensor& b);
// Y = alpha * op(A) @ op(B) + beta * C (C broadcast to [M, N]; may be null).
StatusOr<Tensor> Gemm(const Tensor& a, const Tensor& b, const Tensor* c, float alpha, float beta,
                      bool trans_a, bool trans_b);

// Softmax along `axis`; `coerce_2d` gives the opset < 13 semantics (flatten at axis).
StatusOr<Tensor> Softmax(const Tensor& x, int64_t axis, bool coerce_2d);
// Inference-mode batch norm over channel axis 1.
StatusOr<Tensor> BatchNorm(const Tensor& x, const Tensor& scale, const Tensor& bias,
                           const Tensor& mean, const Tensor& var, float epsilon);
// Normalizes over dims [axis, rank). mean / inv_std (shape with those dims set to 1) if non-null.
Status LayerNorm(const Tensor& x, const Tensor& scale, const Tensor* bias, int64_t axis,
                 float epsilon, Tensor* y, Tensor* mean, Tensor* inv_std);

// Gather along `axis`. An index outside [-n, n) is an OutOfRange error whose message gives the
// index value and its position in `indices` ("at [row, col]").
StatusOr<Tensor> Gather(const Tensor& data, const Tensor& indices, int64_t axis);
StatusOr<Tensor> GatherElements(const Tensor& data, const Tensor& indices, int64_t axis);

StatusOr<Tensor> Concat(const std::vector<Tensor>& xs, int64_t axis);
StatusOr<std::vector<Tensor>> Split(const Tensor& x, int64_t axis, const std::vector<int64_t>& sizes);
// starts / ends / axes / steps as in ONNX Slice-13 (clamped, negative allowed).
StatusOr<Tensor> Slice(const Tensor& x, std::vector<int64_t> starts, std::vector<int64_t> ends,
                       std::vector<int64_t> axes, std::vector<int64_t> steps);
StatusOr<Tensor> Transpose(const Tensor& x, const std::vector<int64_t>& perm);
StatusOr<Tensor> Expand(const Tensor& x, const Dims& shape);
StatusOr<Tensor> Tile(const Tensor& x, const std::vector<int64_t>& repeats);
// Reduces over `axes` (all when empty and !noop_with_empty_axes).
StatusOr<Tensor> Reduce(ReduceOp op, const Tensor& x, const std::vector<int64_t>& axes,
                        bool keepdims, bool noop_with_empty_axes);

}  // namespace clickrt::kernels::ref

namespace clickrt::kernels::ref {

// --- Fused ops (domain "clickrt"), defined by the ONNX subgraphs they replace. ---

// Activation applied by a fused Linear.
enum class Activation : int32_t { kNone = 0, kRelu = 1, kSigmoid = 2 };

// out[b,f,:] = table[id'(b,f) + offsets[f]], where id'(b,f) = ids[b,f] if sizes is null or
// 0 <= ids[b,f] < sizes[f], else 0 (the clamp PyTorch models apply to unseen ids). An index
// outside the table is an OutOfRange error naming its position.
StatusOr<Tensor> EmbeddingLookup(const Tensor& table, const Tensor& ids, const Tensor* offsets,
                                 const Tensor* sizes);
// act(x @ W + bias), x [..., K], W [K, N], bias [N] or null.
StatusOr<Tensor> Linear(const Tensor& x, const Tensor& w, const Tensor* bias, Activation act);
// [B,F,D] -> [B,1]: 0.5 * sum_d((sum_f e)^2 - sum_f e^2).
StatusOr<Tensor> FMInteraction(const Tensor& emb);
// x0 * (xl @ W + bias) + xl.
StatusOr<Tensor> Cross(const Tensor& x0, const Tensor& xl, const Tensor& w, const Tensor& bias);

// One hidden layer of DinAttention's scoring MLP: PRelu(x @ W + bias, slope).
struct DinHiddenLayer {
  const Tensor* w;      // [K, H]
  const Tensor* bias;   // [H]
  const Tensor* slope;  // broadcasts against [rows, H]
};
// How DinAttention pools the history; the two exported forms, which sum in different orders.
enum class DinPooling : int32_t {
  kMatMul = 0,     // Squeeze(MatMul(Unsqueeze(w, 1), k), 1)            (torch.bmm / matmul)
  kMulReduce = 1,  // ReduceSum(Mul(Unsqueeze(w, -1), k), 1, keepdims 0)  ((w * k).sum(1))
};
// DIN's target attention, as PyTorch exports it. With qe = Expand(Unsqueeze(q, 1), shape of k):
//   x = Reshape(Concat(qe, k, qe - k, qe * k; axis 2), [B*L, 4D]); x = hidden layers in order
//   s = Reshape(x @ W_out + b_out, [B, L]); w = Where(mask, s, 0); out = pooling(w, k) [B, D]
// q [B,D] (or [1,D]), k [B,L,D], mask [B,L] bool (broadcast as Where does).
StatusOr<Tensor> DinAttention(const Tensor& q, const Tensor& k, const Tensor& mask,
                              const std::vector<DinHiddenLayer>& hidden, const Tensor& w_out,
                              const Tensor& b_out, DinPooling pooling);

}  // namespace clickrt::kernels::ref

namespace clickrt::kernels::ref {

// --- Quantization (issue #6): the int8 / int4 formats and the int8 Linear / Cross they define. ---

// Row-wise quantized embedding tables; the byte layout is specified in kernels/cpu/quant_format.h.
using kernels::RowFormat;
using kernels::RowwiseBytes;

// Writes V rows of `table` [V, D] float32 into `out` (V * RowwiseBytes(fmt, D) bytes).
// InvalidArgument for null pointers, V < 0, D <= 0, an unknown format, a NaN / inf value, or (int4)
// a row whose range does not fit fp16. Rows whose values are all equal get scale 0 and codes 0.
Status QuantizeRows(const float* table, int64_t V, int64_t D, RowFormat fmt, uint8_t* out);
// out[d] = fma(code(d), scale, bias) for one row of `fmt` (a plain copy for kFloat32). `fmt` must
// be one of the three formats (an unknown one writes zeros).
void DequantizeRow(const uint8_t* row, int64_t D, RowFormat fmt, float* out);
// EmbeddingLookup on a quantized table: qtable uint8 [V, RowwiseBytes(fmt, D)]; the ids, offsets,
// sizes and errors are EmbeddingLookup's. Returns float32 [..., F, D], each row dequantized.
StatusOr<Tensor> EmbeddingLookupQ(const Tensor& qtable, RowFormat fmt, int64_t D, const Tensor& ids,
                                  const Tensor* offsets, const Tensor* sizes);

// Symmetric per-output-channel int8 weights: w [K, N] float32 -> wq [K, N] int8 and w_scale [N],
//   w_scale[n] = max_k |w[k, n]| / 127 (1 when the column is all zeros),
//   wq[k, n]   = clamp(nearbyint(w[k, n] / w_scale[n]), -127, 127).
// InvalidArgument for null pointers, K or N <= 0, or a NaN / inf weight.
Status QuantizeWeightsPerChannel(const float* w, int64_t K, int64_t N, int8_t* wq, float* w_scale);

// Activation quantization with one per-tensor scale:
//   q(x) = clamp(nearbyint(x / x_scale), -128, 127)
// rounding half to even (the default FP rounding mode, as cvtps2dq does): ONNX QuantizeLinear's
// int8 saturation, so a QDQ model's fused layers see the codes its pairs define (a calibrated
// scale maps the threshold to 127; -128 is reached only below -127.5 * x_scale). The clamp is
// applied before rounding (same result for integer bounds); NaN quantizes to -128.
inline int32_t QuantizeActivation(float x, float x_scale) {
  float v = x / x_scale;
  v = v > -128.f ? v : -128.f;
  v = v < 127.f ? v : 127.f;
  return static_cast<int32_t>(__builtin_nearbyintf(v));
}

// Int8 Linear: x float32 [..., K], wq int8 [K, N], w_scale float32 [N], bias float32 [N] or null;
// x_scale > 0 and finite. With acc = sum_k q(x)[m, k] * wq[k, n] summed exactly in integers,
//   y[m, n] = act(float(acc) * (x_scale * w_scale[n]) + bias[n])
// where x_scale * w_scale[n] is a float product and the rest is float arithmetic, multiply then
// add. The fast kernels accumulate in int32 (exact for K <= 65536).
StatusOr<Tensor> QLinear(const Tensor& x, const Tensor& wq, const Tensor& w_scale,
                         const Tensor* bias, float x_scale, Activation act);
// Int8 DCN-v2 cross layer: out = x0 * (QLinear(xl, wq, w_scale, bias, x_scale, kNone)) + xl;
// x0, xl float32 [M, K]; wq [K, K].
StatusOr<Tensor> QCross(const Tensor& x0, const Tensor& xl, const Tensor& wq, const Tensor& w_scale,
                        const Tensor* bias, float x_scale);

}  // namespace clickrt::kernels::ref

namespace clickrt::kernels::ref {

// --- ONNX QuantizeLinear / DequantizeLinear (opsets 10..21; quantize_linear.cc) ---
// The scale is per tensor when it has one element, else per axis: 1-D of length x.dim(axis)
// (axis in [-rank, rank)). The zero point, when given, has the scale's shape; absent, it is 0.
// Block quantization is not supported (the executor refuses block_size before calling these).

// y = saturate(round_half_even(x / scale) + zero_point), codes of `out` (kInt8 or kUInt8; a given
// zero point's dtype must be `out`). x float32 / float16 / bfloat16 / int32 and scale float32 /
// float16 / bfloat16 are divided in float32 (x / scale, one float division, as ONNX Runtime does);
// saturation clamps to the code type's range; NaN quantizes to the zero point.
StatusOr<Tensor> QuantizeLinear(const Tensor& x, const Tensor& scale, const Tensor* zero_point,
                                int64_t axis, DType out);
// y = float(x - zero_point) * scale (the difference exact in integers, one float multiply),
// of the scale's dtype; x int8 / uint8 / int32, the zero point x's dtype.
StatusOr<Tensor> DequantizeLinear(const Tensor& x, const Tensor& scale, const Tensor* zero_point,
                                  int64_t axis);

}  // namespace clickrt::kernels::ref
