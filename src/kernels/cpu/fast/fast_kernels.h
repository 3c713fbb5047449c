// Fast CPU kernels for the fused CTR ops (Linear, EmbeddingLookup, FMInteraction, Cross) and their
// int8 forms (QLinear, embeddings from row-wise quantized tables).
//
// Every kernel computes what its reference kernel in kernels/cpu/reference/reference_kernels.h
// computes (float32; sums may be reordered, so results agree to rounding, not bit for bit). Like
// the reference kernels they see raw pointers and sizes, never the IR.
//
// ISA: the kernels come in three variants, "generic" (portable C++), "avx2" (AVX2 + FMA) and
// "avx512" (AVX-512 F/BW/VL/DQ). The widest one the CPU supports is picked once, at first use, into
// a table of function pointers; ForceIsa() overrides the choice for tests and benchmarks.
//
// Threads: kernels that take a ThreadPool* split their work over it (null = the calling thread
// only). All entry points are safe to call concurrently from several threads; when two callers
// share one pool, the second runs its work on its own thread instead of waiting for the pool.
//
// Errors come back as a Status (never an exception, never an abort): InvalidArgument for bad sizes
// or pointers, OutOfRange for an embedding id outside the table.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "clickrt/status.h"
#include "kernels/cpu/quant_format.h"

namespace clickrt::kernels::fast {

// ---------------------------------------------------------------------------------------------
// CPU features and the kernel variant in use.

enum class Isa : int32_t { kGeneric = 0, kAvx2 = 1, kAvx512 = 2 };

// "generic" | "avx2" | "avx512".
const char* IsaName(Isa isa);

struct CpuInfo {
  bool avx2 = false;         // AVX2
  bool fma = false;          // FMA3
  bool avx512 = false;       // AVX-512 F, BW, VL and DQ together
  bool avx512_vnni = false;  // AVX512_VNNI (vpdpbusd) on top of the above: the int8 GEMM
  Isa best = Isa::kGeneric;  // the widest variant this CPU can run
  std::string isa;           // IsaName(best)
  int threads = 1;           // CPUs this process may run on (affinity mask), >= 1
};

// Detected once, on first call.
const CpuInfo& Cpu();

// The variant kernels use now: Cpu().best unless ForceIsa() changed it.
Isa ActiveIsa();

// Uses `isa`'s kernels for every later call and every Linear / Cross / QLinear created afterwards
// (objects already created keep theirs). FailedPrecondition if this CPU cannot run it. For tests
// and benchmarks: must not race with kernels running on other threads.
Status ForceIsa(Isa isa);

// ---------------------------------------------------------------------------------------------
// A fixed pool of threads. Idle workers spin for 200 us after each job (consecutive layers follow
// within microseconds), then sleep on a condition variable, so an idle server burns no CPU.

class ThreadPool {
 public:
  // `threads` counts the caller: ThreadPool(2) starts one worker thread. threads <= 0 means
  // Cpu().threads. ThreadPool(1) starts none and runs everything inline.
  explicit ThreadPool(int threads);
  ~ThreadPool();
  ThreadPool(const ThreadPool&) = delete;
  ThreadPool& operator=(const ThreadPool&) = delete;

  int size() const { return size_; }

  // Calls fn(begin, end) on disjoint ranges covering [0, n), at most size() of them, each at least
  // `grain` long (except when n < grain), one of them on the calling thread. Returns when all are
  // done. A call made while the pool is busy (another caller, or from inside fn) runs inline.
  void ParallelFor(int64_t n, int64_t grain, const std::function<void(int64_t, int64_t)>& fn);

 private:
  struct State;
  int size_ = 1;
  std::unique_ptr<State> state_;
};

// Splits [0, n) like ParallelFor, or runs fn(0, n) inline when pool is null.
void ParallelFor(ThreadPool* pool, int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn);

// ---------------------------------------------------------------------------------------------
// Linear: y = act(x @ W + bias).
//
// How it runs (all hand-written; measured faster than or level with oneDNN 2.6 matmul and far
// ahead of OpenBLAS at these shapes, see bench/micro/fast_kernels_bench.cc):
//  - W is packed once into panels of 24 (avx2) / 48 (avx512) / 16 (generic) columns; a register-
//    blocked micro-kernel of 4x24 / 8x48 / 4x16 outputs broadcasts x and FMAs the panel over all
//    of K, with bias + activation (or the Cross epilogue) applied in registers before the store.
//  - N <= 4 (the logit layer) uses dot products along K on W stored transposed instead.
//  - Threads: below 64K multiply-adds everything runs on the caller; when M has at least
//    2 x threads row blocks the rows are split (each thread streams all of W from its own
//    cache); otherwise (small M) the output panels are split, so each thread reads its half of W
//    and, thanks to the pool's fixed chunk-to-thread mapping, finds it in its cache next call.

// Same values as ref::Activation.
enum class Activation : int32_t { kNone = 0, kRelu = 1, kSigmoid = 2 };

class Linear {
 public:
  // w: [K, N] row-major; bias: [N] or null. Both are copied (packed for the active ISA), so the
  // caller may free them afterwards. pool (may be null) must outlive the Linear.
  static StatusOr<std::unique_ptr<Linear>> Create(const float* w, int64_t K, int64_t N,
                                                  const float* bias, Activation act,
                                                  ThreadPool* pool);
  ~Linear();

  // y[m, 0:N] (row stride ldy) = act(x[m, 0:K] (row stride ldx) @ W + bias) for m in [0, M).
  // M may be 0. y must not overlap x. Thread-safe.
  Status Run(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const;

  int64_t K() const;
  int64_t N() const;
  // The kernel used for a given M, e.g. "avx512_gemm8x48/rows+relu", "avx2_dot+sigmoid" (for
  // logs and benchmarks; "/rows" or "/panels" says how the work is split over threads).
  std::string name(int64_t M = 1) const;

  struct Impl;

 private:
  explicit Linear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// DCN-v2 cross layer: out = x0 * (xl @ W + bias) + xl, all [M, K] row-major; W [K, K].

class Cross {
 public:
  // w: [K, K] row-major; bias: [K] or null. Copied. pool may be null and must outlive the Cross.
  static StatusOr<std::unique_ptr<Cross>> Create(const float* w, int64_t K, const float* bias,
                                                 ThreadPool* pool);
  ~Cross();

  // Row strides: ld0 for x0, ldl for xl, ldo for out. out must not overlap x0 or xl.
  Status Run(const float* x0, int64_t ld0, const float* xl, int64_t ldl, int64_t M, float* out,
             int64_t ldo) const;
  // Contiguous rows (all strides K).
  Status Run(const float* x0, const float* xl, int64_t M, float* out) const;

  std::string name(int64_t M = 1) const;

 private:
  explicit Cross(std::unique_ptr<Linear::Impl> impl);
  std::unique_ptr<Linear::Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// QLinear: int8 Linear with per-channel weight scales, semantics of ref::QLinear / ref::QCross:
//   acc[m, n] = sum_k q(x[m, k]) * wq[k, n]     (int32, exact; q(x) = clamp(nearbyint(x / x_scale),
//                                                 -128, 127), half to even, NaN -> -128)
//   y[m, n]   = act(acc * (x_scale * w_scale[n]) + bias[n])       (Run)
//   out[m, n] = x0[m, n] * (acc * (x_scale * w_scale[n]) + bias[n]) + xl[m, n]  (RunCross, x = xl)
// The int32 sums equal the reference's exactly; the float epilogue may use an FMA, so results
// agree with ref::QLinear to float rounding (~1e-6 relative), not bit for bit.
//
// How it runs: x is quantized on the fly, a chunk of rows at a time, into a per-thread buffer
// (each row once, whatever N); W is packed once into panels; the epilogue (dequantize, bias,
// activation or Cross) is applied in registers before the store. Kernels:
//  - avx512 with VNNI ("avx512vnni_qgemm8x48"): vpdpbusd on x codes shifted to uint8 (+128) and
//    signed weights, 4 k per instruction; 128 * column sums of W, computed at Create, are
//    subtracted from the sums.
//  - avx2 ("avx2_qgemm4x24"), also used by avx512 CPUs without VNNI: vpmaddwd on int16 x codes and
//    sign-extended weights, 2 k per instruction.
//  - generic ("generic_qgemm4x16"): plain C++.
// Threads: as Linear (rows or output panels), but below 256K multiply-adds on the caller.

class QLinear {
 public:
  // wq: [K, N] int8 row-major, codes in [-127, 127]; w_scale: [N]; bias: [N] or null; x_scale > 0.
  // All are copied (packed for the active ISA). 1 <= K <= 65536 (int32 sums cannot overflow).
  // InvalidArgument for null pointers, bad sizes, a non-finite or non-positive x_scale, a
  // non-finite w_scale, or an unknown activation. pool (may be null) must outlive the QLinear.
  static StatusOr<std::unique_ptr<QLinear>> Create(const int8_t* wq, int64_t K, int64_t N,
                                                   const float* w_scale, const float* bias,
                                                   float x_scale, Activation act, ThreadPool* pool);
  ~QLinear();

  // y[m, 0:N] (row stride ldy) = act(...) for x[m, 0:K] (row stride ldx), m in [0, M). M may be 0.
  // y must not overlap x. Thread-safe.
  Status Run(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const;
  // Cross epilogue (the int8 DCN-v2 cross layer): out = x0 * (xl @ W * scales + bias) + xl, all
  // [M, K] with row strides ld0 / ldl / ldo. InvalidArgument unless K == N and act is kNone.
  // out must not overlap x0 or xl. Thread-safe.
  Status RunCross(const float* x0, int64_t ld0, const float* xl, int64_t ldl, int64_t M, float* out,
                  int64_t ldo) const;

  int64_t K() const;
  int64_t N() const;
  float x_scale() const;
  // The kernel used for a given M, e.g. "avx512vnni_qgemm8x48/rows+relu", "avx2_qcross4x24"
  // (cross: the RunCross kernel). "/rows" or "/panels" as in Linear::name.
  std::string name(int64_t M = 1, bool cross = false) const;

  struct Impl;

 private:
  explicit QLinear(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// ---------------------------------------------------------------------------------------------
// Embeddings and FM (semantics of ref::EmbeddingLookup and ref::FMInteraction).
//
// Ids: for row b and field f, id'(b,f) = ids[b*F + f], clamped to 0 when sizes is non-null and the
// id is outside [0, sizes[f]); then offsets[f] is added when offsets is non-null. The result must
// lie in [-V, V) (negative counts from the end, as ONNX Gather does), else OutOfRange naming the
// row, field and id ("id 912 at [row 3, field 7] is out of range [-900, 900) of table [900, 16]").
// When several ids are bad, the first in row-major order is named; outputs are then unspecified.
// Large tables are read at random: backing them with huge pages (madvise MADV_HUGEPAGE) saves a
// TLB miss per row.

// out + b*out_stride receives row b's F*D floats (field f at + f*D), so the rows can land straight
// in a wider concat buffer. out_stride >= F*D.
Status EmbeddingLookup(const float* table, int64_t V, int64_t D, const int64_t* ids, int64_t B,
                       int64_t F, const int64_t* offsets, const int64_t* sizes, float* out,
                       int64_t out_stride, ThreadPool* pool);

// One pass over the ids that gathers the embedding rows and computes, per row b,
//   fm_out[b]          = 0.5 * sum_d((sum_f e[b,f,d])^2 - sum_f e[b,f,d]^2)   (ref::FMInteraction)
//   first_order_out[b] = sum_f first_order_table[id(b,f)]                        (D = 1 table)
// where the first-order table is indexed by the same clamped and offset ids (same V).
struct EmbeddingFmArgs {
  const float* table = nullptr;  // [V, D]
  int64_t V = 0;
  int64_t D = 0;
  const int64_t* ids = nullptr;  // [B, F]
  int64_t B = 0;
  int64_t F = 0;
  const int64_t* offsets = nullptr;          // [F] or null
  const int64_t* sizes = nullptr;            // [F] or null
  float* emb_out = nullptr;                  // null: do not write the embedding rows
  int64_t emb_stride = 0;                    // >= F*D when emb_out is set
  float* fm_out = nullptr;                   // [B] or null
  const float* first_order_table = nullptr;  // [V] or null
  float* first_order_out = nullptr;          // [B]; required when first_order_table is set
  // A row-wise quantized table (kernels/cpu/quant_format.h) read instead of `table` when
  // row_format != 0 (RowFormat::kFloat32): qtable holds V rows of RowwiseBytes(row_format, D)
  // bytes. Rows are dequantized on the fly, bit for bit as ref::DequantizeRow, into emb_out (when
  // set), and fm_out is bit for bit what the float32 path gives on those floats. The first-order
  // table stays float32.
  const uint8_t* qtable = nullptr;
  int32_t row_format = 0;  // RowFormat
};
Status EmbeddingFm(const EmbeddingFmArgs& args, ThreadPool* pool);

// EmbeddingLookup on a quantized table: qtable [V, RowwiseBytes(fmt, D)] bytes; out as
// EmbeddingLookup's, each row dequantized (bit for bit ref::EmbeddingLookupQ).
Status EmbeddingLookupQ(const uint8_t* qtable, RowFormat fmt, int64_t V, int64_t D,
                        const int64_t* ids, int64_t B, int64_t F, const int64_t* offsets,
                        const int64_t* sizes, float* out, int64_t out_stride, ThreadPool* pool);

// out[b] = FM second-order term of row b's F*D floats at emb + b*in_stride.
Status FmInteraction(const float* emb, int64_t B, int64_t F, int64_t D, int64_t in_stride,
                     float* out, ThreadPool* pool);

}  // namespace clickrt::kernels::fast
