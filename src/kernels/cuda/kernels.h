// clickrt's own CUDA kernels (one .cu per op family in this folder). Never sees the IR: the CUDA
// runtime (src/runtime/cuda_engine.cc) lowers the engine's layers to these calls.
//
// Conventions shared by every kernel here:
//  - Activations are row-major 2-D views [rows, cols] with a row stride `ld` in elements
//    (ld >= cols), in the engine's activation type (DataType below). Writing to a view with a
//    column offset (ptr + col) is how producers write straight into a Concat's output.
//  - Accumulation is always FP32; conversions to FP16/BF16 round to nearest even.
//  - Every launcher is asynchronous on `stream` (no sync, no allocation; safe inside CUDA graph
//    capture) and returns a Status for launch-configuration errors (CUDA_RETURN_IF_ERROR on
//    cudaGetLastError).
//  - Out-of-range embedding ids do not fault: the row reads as zeros and the kernel stores the
//    first bad (row, field) into `error` (device int64[2], -1 when clean) for the runtime to report.
//    The runtime sets it to {-1, -1} (cudaMemsetAsync 0xff) before the launch; the kernel only
//    lowers it (row-major order), never resets it. It must be 16-byte aligned (16-byte CAS).
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "clickrt/status.h"

namespace clickrt::cuda {

enum class DataType : int { kF32 = 0, kF16 = 1, kBF16 = 2 };
size_t SizeOf(DataType t);

struct View {
  void* data = nullptr;
  DataType type = DataType::kF32;
  int64_t ld = 0;  // row stride in elements
};

// ---- embedding.cu: gather + first-order + FM + write into the MLP input layout ----------------
// For every row b and field f: id = ids[b * ids_ld + f] (+ offsets[f] when offsets != null);
// e = table[id, 0..dim). Outputs (each optional, null = not wanted):
//   out      [rows, fields * dim] view: e of field f at columns f*dim..f*dim+dim
//   fm       float [rows]: 0.5 * sum_d ((sum_f e_fd)^2 - sum_f e_fd^2)
//   first    float [rows]: sum_f table1[id] + first_bias (table1 is [table_rows, 1])
struct EmbeddingArgs {
  int64_t rows = 0, fields = 0, dim = 0, table_rows = 0;
  const void* ids = nullptr;  // int64 or int32, row stride ids_ld
  bool ids_int32 = false;
  int64_t ids_ld = 0;
  const int64_t* offsets = nullptr;  // device [fields] or null
  // Clamp semantics of the EmbeddingLookup op (docs/FUSED_OPS.md): with sizes (device [fields]),
  // an id outside [0, sizes[f]) reads row offsets[f]; without, an id outside the table is an error
  // (an index in [-table_rows, 0) after the offset wraps, as the reference Gather does).
  const int64_t* sizes = nullptr;
  const void* table = nullptr;       // [table_rows, dim] of table_type (row_format 0)
  DataType table_type = DataType::kF32;
  // 1 / 2: `table` holds row-wise int8 / int4 rows (byte layout: kernels/cpu/quant_format.h),
  // each dequantized as fma(code, scale, bias) (bit for bit the CPU's values);
  // table_type then describes only table1. 0: a dense table.
  int row_format = 0;
  View out;                          // out.data null = not written
  float* fm = nullptr;
  const void* table1 = nullptr;      // first-order table [table_rows] (table_type) or null
  float first_bias = 0.f;
  const float* first_bias_ptr = nullptr;  // device scalar added when non-null (instead of first_bias)
  float* first = nullptr;
  int64_t* error = nullptr;          // device int64[2]
};
Status LaunchEmbedding(const EmbeddingArgs& args, cudaStream_t stream);

// ---- elementwise_chain.cu: a fused chain of elementwise ops over a [rows, cols] view -------
// y = op_n(...op_1(x)...), evaluated in FP32 per element, written to `dst` (may alias src).
// Operands: a constant, a per-column vector (device float [cols]) or a second tensor view
// ([rows, cols], or [rows, 1] broadcast over columns when its `cols` is 1).
enum class EwOp : int {
  kRelu, kSigmoid, kTanh, kLog, kExp, kNeg, kAbs, kSqrt,
  kAddConst, kMulConst, kMaxConst, kMinConst, kPowConst,
  kAddVec, kMulVec, kPReluVec,  // per-column vector operand
  kAddTensor, kMulTensor, kSubTensor,  // operand is extra[operand]
};
struct EwInstr {
  EwOp op = EwOp::kRelu;
  float c = 0.f;              // constant operand
  const float* vec = nullptr; // per-column vector operand
  int operand = 0;            // index into EwProgram::extra
};
struct EwProgram {
  static constexpr int kMaxInstrs = 12, kMaxExtra = 4;
  EwInstr instrs[kMaxInstrs];
  int count = 0;
  View extra[kMaxExtra];
  int64_t extra_cols[kMaxExtra] = {};
  int extras = 0;
};
Status LaunchElementwise(const EwProgram& program, View src, View dst, int64_t rows, int64_t cols,
                         cudaStream_t stream);

// ---- mlp.cu: the whole MLP in one kernel for small batches (launches dominate there) ----------
// h_0 = x [rows, in_dims]; h_{i+1} = act_i(h_i W_i + b_i), W_i row-major [k_i, n_i] of w_type;
// writes the last h to `out`. Limits: layers <= kMaxLayers, every width <= kMaxWidth.
struct MlpLayer {
  const void* w = nullptr;
  const float* bias = nullptr;  // device float [n] or null
  int64_t k = 0, n = 0;
  int activation = 0;           // 0 none, 1 relu, 2 sigmoid (the Linear op's attribute)
};
struct MlpArgs {
  static constexpr int kMaxLayers = 8;
  static constexpr int64_t kMaxWidth = 1024;
  static constexpr int64_t kMaxRows = 256;  // the runtime uses cuBLASLt above this
  int64_t rows = 0;
  View in, out;
  DataType w_type = DataType::kF32;
  MlpLayer layers[kMaxLayers];
  int count = 0;
};
Status LaunchFusedMlp(const MlpArgs& args, cudaStream_t stream);

// ---- skinny_gemm.cu: GEMMs of a few rows, with the layer's whole epilogue fused --------------
// c = epi(a @ W + bias) for rows <= kMaxRows: one warp per output column reading a row of the
// transposed weights (coalesced), all rows in the warp, FP32 accumulation. At small batches a
// tensor-core GEMM leaves most of the GPU idle and needs extra launches for what its epilogue
// cannot do (sigmoid, DCN-v2's cross); this kernel is one launch for the whole layer.
enum class SkinnyEpilogue : int {
  kNone = 0, kRelu = 1, kSigmoid = 2,
  kCross = 3,  // x0 * (a @ W + bias) + xl (DCN-v2)
};
struct SkinnyGemmArgs {
  static constexpr int64_t kMaxRows = 64;
  int64_t rows = 0, n = 0, k = 0;
  View a;                      // [rows, k]
  const void* wt = nullptr;    // W transposed: [n, k] row-major (row stride k), of a.type
  const float* bias = nullptr; // [n] or null
  SkinnyEpilogue epilogue = SkinnyEpilogue::kNone;
  View x0, xl;                 // kCross operands [rows, n], of a.type
  View c;                      // [rows, n]; a.type or kF32
};
Status LaunchSkinnyGemm(const SkinnyGemmArgs& args, cudaStream_t stream);

// ---- din.cu: DIN's attention unit (the fused DinAttention op of docs/FUSED_OPS.md) ------------
struct DinAttentionArgs {
  int64_t rows = 0, hist = 0, dim = 0;
  View query;         // [rows, dim]
  View keys;          // [rows, hist * dim] (history embeddings, row-major per step)
  const uint8_t* mask = nullptr;  // bool [rows, hist] (true = valid) or null
  // The attention MLP: input [q, k, q-k, q*k] (4*dim) -> hidden layers -> 1, weights row-major
  // [k, n] of w_type, bias float; every hidden layer is followed by PReLU with its slopes; the
  // last layer has n == 1 and no activation.
  MlpLayer layers[4];
  const float* prelu[4] = {};  // per-hidden-layer PReLU slopes (device float [n])
  int count = 0;
  DataType w_type = DataType::kF32;
  int pooling = 1;    // the op's attribute: 0 MatMul, 1 Mul+ReduceSum; both the weighted sum
                      // sum_l where(mask, score, 0) * k_l (no softmax); only the order differs
  View out;           // [rows, dim]
};
Status LaunchDinAttention(const DinAttentionArgs& args, cudaStream_t stream);

// ---- convert.cu ------------------------------------------------------------------------------
// Converts n elements between types (host-side engine loading, inputs, outputs).
Status LaunchConvert(const void* src, DataType src_type, void* dst, DataType dst_type, int64_t n,
                     cudaStream_t stream);
// Copies a [rows, cols] view into another (type conversion included).
Status LaunchCopy2D(View src, View dst, int64_t rows, int64_t cols, cudaStream_t stream);

}  // namespace clickrt::cuda
