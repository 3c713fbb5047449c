// Reference CPU kernels: simple, obviously correct loops that define what every op computes.
// They are the ground truth every fast kernel (CPU or CUDA, any precision) is tested against.
//
// Kernels see tensors and plain parameters, never the IR: the reference executor
// (src/reference/) reads each node's attributes and calls the kernel for its op.
// float16 / bfloat16 inputs are computed in float32 and rounded back.
#pragma once

#include <vector>

#include "base/tensor.h"

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
