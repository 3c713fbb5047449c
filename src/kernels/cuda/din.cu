// DIN's attention unit: one block per batch row. History steps go through the scoring MLP in
// tiles of LT steps that live in shared memory (ping-pong buffers, FP32); each thread computes one
// output column for up to 4 steps, so a weight read from L1 serves 4 FMAs. The tile's masked
// scores then pool its keys into the row's output, summing steps in order as the reference does.
#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_types.cuh"

namespace clickrt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kStepsPerThread = 4;
constexpr int64_t kMaxWidth = 1024;
constexpr size_t kSmemBudget = 48 * 1024;  // no opt-in needed, two blocks can share an SM

// y[l, j] = act(sum_k x[l, k] W[k, j] + b[j]) for l < steps; PReLU when slope is non-null.
template <typename WT>
__device__ void DinLayer(const MlpLayer& layer, const float* slope, const float* x, float* y,
                         int wpad, int steps) {
  const int n = static_cast<int>(layer.n), k = static_cast<int>(layer.k);
  const int groups = (steps + kStepsPerThread - 1) / kStepsPerThread;
  const WT* w = static_cast<const WT*>(layer.w);
  for (int t = threadIdx.x; t < groups * n; t += kThreads) {
    const int j = t % n, l0 = (t / n) * kStepsPerThread;
    float acc[kStepsPerThread] = {};
    const float* xr = x + l0 * wpad;
    for (int kk = 0; kk < k; ++kk) {
      const float wv = LoadF(w + static_cast<int64_t>(kk) * n + j);
#pragma unroll
      for (int i = 0; i < kStepsPerThread; ++i) acc[i] = fmaf(xr[i * wpad + kk], wv, acc[i]);
    }
    const float b = layer.bias ? __ldg(layer.bias + j) : 0.f;
    const float sl = slope ? __ldg(slope + j) : 1.f;
#pragma unroll
    for (int i = 0; i < kStepsPerThread; ++i) {
      if (l0 + i >= steps) break;
      float v = acc[i] + b;
      if (slope && v < 0.f) v *= sl;
      y[(l0 + i) * wpad + j] = v;
    }
  }
}

// Query, keys and out are read through their runtime type (a switch the whole grid takes the
// same way), so only the weight type multiplies the instantiations.
template <typename WT>
__global__ void __launch_bounds__(kThreads)
    DinKernel(const __grid_constant__ DinAttentionArgs a, int wpad, int tile) {
  extern __shared__ float smem[];
  const int64_t b = blockIdx.x;
  const int dim = static_cast<int>(a.dim);
  float* q = smem;
  float* pooled = q + dim;
  float* buf[2] = {pooled + dim, pooled + dim + tile * wpad};

  const int64_t qrow = b * a.query.ld, krow = b * a.keys.ld;
  for (int d = threadIdx.x; d < dim; d += kThreads) {
    q[d] = LoadAny(a.query.data, a.query.type, qrow + d);
    pooled[d] = 0.f;
  }
  __syncthreads();

  for (int64_t t0 = 0; t0 < a.hist; t0 += tile) {
    const int steps = static_cast<int>(min(static_cast<int64_t>(tile), a.hist - t0));
    // [q, k, q - k, q * k] per step. Rows past `steps` (up to the 4-step group) read as zeros.
    const int rows_built = (steps + kStepsPerThread - 1) / kStepsPerThread * kStepsPerThread;
    for (int i = threadIdx.x; i < rows_built * dim; i += kThreads) {
      const int l = i / dim, d = i - l * dim;
      float* xr = buf[0] + l * wpad;
      const float kv =
          l < steps ? LoadAny(a.keys.data, a.keys.type, krow + (t0 + l) * dim + d) : 0.f;
      const float qv = l < steps ? q[d] : 0.f;
      xr[d] = qv;
      xr[dim + d] = kv;
      xr[2 * dim + d] = qv - kv;
      xr[3 * dim + d] = qv * kv;
    }
    __syncthreads();
    for (int i = 0; i < a.count; ++i) {
      const bool hidden = i + 1 < a.count;
      DinLayer<WT>(a.layers[i], hidden ? a.prelu[i] : nullptr, buf[i & 1], buf[(i + 1) & 1], wpad,
                   steps);
      __syncthreads();
    }
    const float* scores = buf[a.count & 1];  // column 0 of the last layer's output
    for (int d = threadIdx.x; d < dim; d += kThreads) {
      float acc = pooled[d];
      for (int l = 0; l < steps; ++l) {
        const int64_t step = t0 + l;
        if (a.mask && !a.mask[b * a.hist + step]) continue;
        acc = fmaf(scores[l * wpad], LoadAny(a.keys.data, a.keys.type, krow + step * dim + d), acc);
      }
      pooled[d] = acc;
    }
    __syncthreads();  // the next tile overwrites buf[0]
  }
  for (int d = threadIdx.x; d < dim; d += kThreads) {
    StoreAny(a.out.data, a.out.type, b * a.out.ld + d, pooled[d]);
  }
}

Status Check(const DinAttentionArgs& a) {
  const auto bad = [](const std::string& m) { return InvalidArgument("DinAttention: " + m); };
  if (a.rows < 0) return bad("rows = " + Str(a.rows) + " < 0");
  if (a.hist < 0) return bad("hist = " + Str(a.hist) + " < 0");
  if (a.dim <= 0 || 4 * a.dim > kMaxWidth) {
    return bad("dim = " + Str(a.dim) + " not in [1, " + Str(kMaxWidth / 4) + "]");
  }
  if (a.count < 1 || a.count > 4) return bad("count = " + Str(a.count) + " not in [1, 4]");
  if (a.pooling != 0 && a.pooling != 1) return bad("pooling = " + Str(a.pooling));
  if (!ValidType(a.w_type)) return bad("bad w_type");
  if (!ValidType(a.query.type) || !ValidType(a.keys.type) || !ValidType(a.out.type)) {
    return bad("bad query/keys/out type");
  }
  if (a.layers[a.count - 1].n != 1) {
    return bad("the last layer has n = " + Str(a.layers[a.count - 1].n) + ", want 1");
  }
  for (int i = 0; i < a.count; ++i) {
    const MlpLayer& l = a.layers[i];
    const std::string name = "layers[" + Str(i) + "]";
    if (l.k <= 0 || l.k > kMaxWidth || l.n <= 0 || l.n > kMaxWidth) {
      return bad(name + " is [" + Str(l.k) + ", " + Str(l.n) + "], widths must be in [1, " +
                 Str(kMaxWidth) + "]");
    }
    const int64_t want_k = i == 0 ? 4 * a.dim : a.layers[i - 1].n;
    if (l.k != want_k) return bad(name + ".k = " + Str(l.k) + ", want " + Str(want_k));
    if (!l.w) return bad(name + ".w is null");
    if (!AlignedTo(l.w, SizeOf(a.w_type))) return bad(name + ".w is misaligned");
    if (i + 1 < a.count && !a.prelu[i]) return bad("prelu[" + Str(i) + "] is null");
  }
  if (a.rows == 0) return Status::Ok();
  if (a.rows > 0x7fffffff) return bad("rows = " + Str(a.rows) + " is too many for one launch");
  if (!a.query.data) return bad("query.data is null");
  if (!a.out.data) return bad("out.data is null");
  if (a.hist > 0 && !a.keys.data) return bad("keys.data is null");
  if (a.rows > 1 && a.query.ld < a.dim) return bad("query.ld " + Str(a.query.ld) + " < dim");
  if (a.rows > 1 && a.out.ld < a.dim) return bad("out.ld " + Str(a.out.ld) + " < dim");
  if (a.rows > 1 && a.hist > 0 && a.keys.ld < a.hist * a.dim) {
    return bad("keys.ld " + Str(a.keys.ld) + " < hist * dim = " + Str(a.hist * a.dim));
  }
  return Status::Ok();
}

}  // namespace

Status LaunchDinAttention(const DinAttentionArgs& args, cudaStream_t stream) {
  RETURN_IF_ERROR(Check(args));
  if (args.rows == 0) return Status::Ok();
  int64_t width = 4 * args.dim;
  for (int i = 0; i < args.count; ++i) width = std::max(width, args.layers[i].n);
  const int wpad = static_cast<int>(width + (width % 2 == 0 ? 1 : 0));  // odd: fewer bank clashes
  const int64_t fixed = 2 * args.dim * static_cast<int64_t>(sizeof(float));
  const int64_t per_step = 2 * static_cast<int64_t>(wpad) * sizeof(float);
  // Whole 4-step groups, at least one.
  int64_t tile =
      (static_cast<int64_t>(kSmemBudget) - fixed) / per_step / kStepsPerThread * kStepsPerThread;
  tile = std::max<int64_t>(kStepsPerThread,
                           std::min(tile, (std::max<int64_t>(args.hist, 1) + kStepsPerThread - 1) /
                                              kStepsPerThread * kStepsPerThread));
  const size_t smem = static_cast<size_t>(fixed + per_step * tile);
  if (smem > kSmemBudget) {
    return InvalidArgument("DinAttention: widths need " + Str(static_cast<int64_t>(smem)) +
                           " bytes of shared memory");
  }
  DinAttentionArgs a = args;
  if (a.rows == 1) a.query.ld = a.out.ld = a.dim, a.keys.ld = a.hist * a.dim;
  DispatchType(a.w_type, [&](auto w) {
    using WT = decltype(w);
    DinKernel<WT><<<static_cast<unsigned>(a.rows), kThreads, smem, stream>>>(
        a, wpad, static_cast<int>(tile));
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace clickrt::cuda
