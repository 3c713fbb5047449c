// Internal to the CUDA runtime: the engine's graph lowered to GPU steps (see cuda_engine.h).
//
// Every device value is a 2-D view [rows, cols] of a buffer with a row stride; rows is the batch
// (the bucket at launch). Buffers live in one per-context arena at offsets planned here from the
// steps' liveness (graph inputs get their own buffers), constants in one shared weight block.
#pragma once

#include <cuda_runtime.h>

#include <array>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/engine_file.h"
#include "ir/graph.h"
#include "kernels/cuda/gemm.h"
#include "kernels/cuda/kernels.h"

namespace clickrt::runtime::gpu {

using cuda::DataType;

struct Buf {
  int64_t ld = 0;            // row stride in elements
  size_t elem = 4;           // element bytes
  int input = -1;            // graph input index, or -1 (arena buffer)
  int first = 1 << 30, last = -1;  // steps that touch it (liveness)
  int64_t offset = -1;       // arena offset in bytes (arena buffers)
  bool is_output = false;
  // Columns past a value's width (and gaps between concat segments) are read as GEMM padding:
  // such a buffer is never shared in the arena, and the arena is zeroed when a context is made.
  bool zero_pad = false;
  int64_t bytes(int64_t rows) const { return rows * ld * static_cast<int64_t>(elem); }
};

struct Val {
  int buf = -1;
  int64_t col = 0, cols = 0;
  DataType type = DataType::kF32;
  bool is_int = false;  // int64 ids
  // A concat laid out with 8-aligned segments (16-bit GEMM inputs): {logical start, start in the
  // buffer, width} per input; cols is then the padded width. Empty = contiguous.
  std::vector<std::array<int64_t, 3>> segs;
};

// What a launch resolves against: one context's memory and handles.
struct LaunchCtx {
  char* arena = nullptr;
  std::vector<char*> inputs;  // per graph input buffer
  const char* consts = nullptr;
  int64_t* error = nullptr;   // device int64[2]
  void* workspace = nullptr;
  const cuda::LtGemm* lt = nullptr;
  cudaStream_t stream = nullptr;
  int64_t bucket = 0;         // the padded batch: the rows every step runs
};

struct Plan;

struct GemmSite {
  cuda::GemmDesc desc;       // m filled per launch
  int64_t w = -1, bias = -1;  // const offsets (bias -1 = none)
  int64_t wt = -1;           // W transposed [n, k] for the skinny kernel (-1 = none)
  int in = -1, out = -1;     // vals
  // The layer's whole epilogue as the skinny kernel runs it (cuBLASLt's covers bias + ReLU; a
  // sigmoid or a cross then runs as an elementwise step after it).
  cuda::SkinnyEpilogue skinny_epi = cuda::SkinnyEpilogue::kNone;
  int x0 = -1, xl = -1;      // vals of the cross epilogue
  std::map<int64_t, cuda::GemmAlgo> algo;  // per bucket; missing = heuristic default
  std::string key(int64_t rows) const;
};

// How a step with GEMMs runs at one bucket: cuBLASLt (+ elementwise tails), the fused MLP
// kernel, or the skinny kernel per layer with fused epilogues. Chosen per bucket by the tuner.
enum Variant : int { kCublasLt = 0, kFusedMlp = 1, kSkinny = 2 };
const char* VariantName(int v);

struct Step {
  std::string name;    // the layers it runs ("emb_0+fm_0+...")
  std::string kernel;  // "embedding", "elementwise", "gemm", "fused_mlp|gemm_chain", "copy"
  std::vector<int> bufs;  // buffers read or written (liveness)
  std::vector<GemmSite> gemms;  // GEMMs this step may run (tuned per bucket)
  std::vector<int> variants;           // the variants this step can run (kCublasLt first)
  std::map<int64_t, int> variant;      // per bucket, from tuning; missing = DefaultVariant
  int VariantFor(int64_t bucket) const;
  std::function<Status(const Plan&, const LaunchCtx&, Step&)> launch;
};

struct Plan {
  DataType act = DataType::kF32;
  cuda::GemmCompute compute = cuda::GemmCompute::kF32;
  int64_t max_rows = 0;
  std::vector<Buf> bufs;
  std::vector<Val> vals;
  std::vector<std::unique_ptr<Step>> steps;
  std::vector<uint8_t> consts;   // host image of the weight block (uploaded once)
  int64_t arena_bytes = 0;
  struct Io {
    std::string name;
    DType dtype;
    std::vector<int64_t> dims;  // -1 batch
    int val = -1;
  };
  std::vector<Io> inputs, outputs;

  char* ptr(const LaunchCtx& c, const Val& v) const;
  cuda::View view(const LaunchCtx& c, int val) const;
  const void* cptr(const LaunchCtx& c, int64_t off) const { return c.consts + off; }
};

// Lowers the engine (graph raised from it) to steps; fails with Unimplemented naming the layer
// for an op the GPU path does not run.
StatusOr<std::unique_ptr<Plan>> BuildPlan(const engine::Program& program, const ir::Graph& graph);

// Runs one GEMM site for `rows` with the bucket's algorithm (or the heuristic's first).
Status RunGemm(const Plan& p, const LaunchCtx& c, const GemmSite& g, int64_t rows);

}  // namespace clickrt::runtime::gpu
