// The fused elementwise chain: an EwProgram interpreted per element in FP32. The program sits in
// the kernel's parameter space (__grid_constant__, so indexing it needs no local copy); every
// thread runs the same instruction at the same time, so the switch never diverges.
#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_types.cuh"

namespace clickrt::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int64_t kMaxBlocks = 8192;  // grid-stride beyond this: enough to fill any GPU

__device__ __forceinline__ float Sigmoid(float x) {
  // The two-sided form keeps exp's argument <= 0, as the reference does.
  if (x >= 0.f) return 1.f / (1.f + expf(-x));
  const float e = expf(x);
  return e / (1.f + e);
}

__device__ __forceinline__ float Apply(const EwProgram& p, const EwInstr& in, float x, int64_t row,
                                       int64_t col) {
  switch (in.op) {
    case EwOp::kRelu:
      return x > 0.f ? x : 0.f;
    case EwOp::kSigmoid:
      return Sigmoid(x);
    case EwOp::kTanh:
      return tanhf(x);
    case EwOp::kLog:
      return logf(x);
    case EwOp::kExp:
      return expf(x);
    case EwOp::kNeg:
      return -x;
    case EwOp::kAbs:
      return fabsf(x);
    case EwOp::kSqrt:
      return sqrtf(x);
    case EwOp::kAddConst:
      return x + in.c;
    case EwOp::kMulConst:
      return x * in.c;
    case EwOp::kMaxConst:
      return fmaxf(x, in.c);
    case EwOp::kMinConst:
      return fminf(x, in.c);
    case EwOp::kPowConst:
      return powf(x, in.c);
    case EwOp::kAddVec:
      return x + __ldg(in.vec + col);
    case EwOp::kMulVec:
      return x * __ldg(in.vec + col);
    case EwOp::kPReluVec:
      return x < 0.f ? x * __ldg(in.vec + col) : x;
    case EwOp::kAddTensor:
    case EwOp::kMulTensor:
    case EwOp::kSubTensor: {
      const View& t = p.extra[in.operand];
      const int64_t at = row * t.ld + (p.extra_cols[in.operand] == 1 ? 0 : col);
      const float y = LoadAny(t.data, t.type, at);
      return in.op == EwOp::kAddTensor ? x + y : in.op == EwOp::kMulTensor ? x * y : x - y;
    }
  }
  return x;
}

// Each thread handles N consecutive columns of one row per step.
template <typename ST, typename DT, int N>
__global__ void __launch_bounds__(kThreads)
    ElementwiseKernel(const __grid_constant__ EwProgram p, const ST* src, int64_t src_ld, DT* dst,
                      int64_t dst_ld, int64_t rows, int64_t cols) {
  const int64_t per_row = (cols + N - 1) / N;
  const int64_t total = rows * per_row;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < total;
       i += stride) {
    const int64_t row = i / per_row, col = (i - row * per_row) * N;
    float v[N];
    LoadVec<ST, N>(src + row * src_ld + col, v);
    for (int k = 0; k < p.count; ++k) {
      const EwInstr& in = p.instrs[k];
#pragma unroll
      for (int e = 0; e < N; ++e) v[e] = Apply(p, in, v[e], row, col + e);
    }
    StoreVec<DT, N>(dst + row * dst_ld + col, v);
  }
}

bool IsTensorOp(EwOp op) {
  return op == EwOp::kAddTensor || op == EwOp::kMulTensor || op == EwOp::kSubTensor;
}
bool IsVecOp(EwOp op) {
  return op == EwOp::kAddVec || op == EwOp::kMulVec || op == EwOp::kPReluVec;
}

Status Check(const EwProgram& p, const View& src, const View& dst, int64_t rows, int64_t cols) {
  const auto bad = [](const std::string& m) { return InvalidArgument("Elementwise: " + m); };
  if (rows < 0 || cols < 0) return bad("negative size rows=" + Str(rows) + " cols=" + Str(cols));
  if (p.count < 0 || p.count > EwProgram::kMaxInstrs) return bad("count = " + Str(p.count));
  if (p.extras < 0 || p.extras > EwProgram::kMaxExtra) return bad("extras = " + Str(p.extras));
  if (!ValidType(src.type) || !ValidType(dst.type)) return bad("bad src/dst type");
  for (int i = 0; i < p.count; ++i) {
    const EwInstr& in = p.instrs[i];
    const int op = static_cast<int>(in.op);
    if (op < 0 || op > static_cast<int>(EwOp::kSubTensor)) {
      return bad("instrs[" + Str(i) + "].op = " + Str(op) + " is unknown");
    }
    if (IsVecOp(in.op) && !in.vec && rows > 0 && cols > 0) {
      return bad("instrs[" + Str(i) + "].vec is null");
    }
    if (IsTensorOp(in.op) && (in.operand < 0 || in.operand >= p.extras)) {
      return bad("instrs[" + Str(i) + "].operand = " + Str(in.operand) + " not in [0, " +
                 Str(p.extras) + ")");
    }
  }
  if (rows == 0 || cols == 0) return Status::Ok();
  for (int e = 0; e < p.extras; ++e) {
    const std::string name = "extra[" + Str(e) + "]";
    if (!p.extra[e].data) return bad(name + ".data is null");
    if (!ValidType(p.extra[e].type)) return bad(name + ".type is bad");
    if (p.extra_cols[e] != 1 && p.extra_cols[e] != cols) {
      return bad("extra_cols[" + Str(e) + "] = " + Str(p.extra_cols[e]) + ", want 1 or " +
                 Str(cols));
    }
    if (rows > 1 && p.extra[e].ld < p.extra_cols[e]) {
      return bad(name + ".ld " + Str(p.extra[e].ld) + " < " + Str(p.extra_cols[e]));
    }
  }
  if (!src.data) return bad("src.data is null");
  if (!dst.data) return bad("dst.data is null");
  if (rows > 1 && src.ld < cols) return bad("src.ld " + Str(src.ld) + " < cols " + Str(cols));
  if (rows > 1 && dst.ld < cols) return bad("dst.ld " + Str(dst.ld) + " < cols " + Str(cols));
  return Status::Ok();
}

}  // namespace

Status LaunchElementwise(const EwProgram& program, View src, View dst, int64_t rows, int64_t cols,
                         cudaStream_t stream) {
  RETURN_IF_ERROR(Check(program, src, dst, rows, cols));
  if (rows == 0 || cols == 0) return Status::Ok();
  if (rows == 1) src.ld = dst.ld = cols;  // a single row may come with ld 0
  // 4 columns per thread when every full-width tensor's rows are 4-aligned; otherwise 1.
  bool vec4 = VecWidth(src.data, src.ld, cols, SizeOf(src.type), 4) == 4 &&
              VecWidth(dst.data, dst.ld, cols, SizeOf(dst.type), 4) == 4;
  for (int e = 0; e < program.extras && vec4; ++e) {
    if (program.extra_cols[e] == 1) continue;
    vec4 = VecWidth(program.extra[e].data, program.extra[e].ld, cols, SizeOf(program.extra[e].type),
                    4) == 4;
  }
  const int n = vec4 ? 4 : 1;
  const int64_t total = rows * ((cols + n - 1) / n);
  const unsigned blocks =
      static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, kMaxBlocks));
  DispatchType(src.type, [&](auto s) {
    using ST = decltype(s);
    DispatchType(dst.type, [&](auto d) {
      using DT = decltype(d);
      const auto* sp = static_cast<const ST*>(src.data);
      auto* dp = static_cast<DT*>(dst.data);
      if (n == 4) {
        ElementwiseKernel<ST, DT, 4>
            <<<blocks, kThreads, 0, stream>>>(program, sp, src.ld, dp, dst.ld, rows, cols);
      } else {
        ElementwiseKernel<ST, DT, 1>
            <<<blocks, kThreads, 0, stream>>>(program, sp, src.ld, dp, dst.ld, rows, cols);
      }
    });
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace clickrt::cuda
