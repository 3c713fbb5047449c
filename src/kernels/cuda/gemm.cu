// cuBLASLt GEMM: descriptors cached per GemmDesc, the per-call work kept to a stack descriptor and
// one cublasLtMatmul (plus a bias conversion where the library wants a 16-bit bias).
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "kernels/cuda/cublas_check.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/gemm.h"

namespace clickrt::cuda {
namespace {

const char* TypeName(DataType t) {
  switch (t) {
    case DataType::kF32:
      return "f32";
    case DataType::kF16:
      return "f16";
    case DataType::kBF16:
      return "bf16";
  }
  return "?";
}

const char* ComputeName(GemmCompute c) {
  switch (c) {
    case GemmCompute::kF32:
      return "f32";
    case GemmCompute::kTF32:
      return "tf32";
    case GemmCompute::kF16:
      return "f16";
    case GemmCompute::kBF16:
      return "bf16";
  }
  return "?";
}

const char* EpilogueName(GemmEpilogue e) {
  switch (e) {
    case GemmEpilogue::kNone:
      return "none";
    case GemmEpilogue::kBias:
      return "bias";
    case GemmEpilogue::kBiasRelu:
      return "bias_relu";
  }
  return "?";
}

cudaDataType_t CudaType(DataType t) {
  switch (t) {
    case DataType::kF32:
      return CUDA_R_32F;
    case DataType::kF16:
      return CUDA_R_16F;
    case DataType::kBF16:
      return CUDA_R_16BF;
  }
  return CUDA_R_32F;
}

cublasComputeType_t ComputeType(GemmCompute c) {
  return c == GemmCompute::kTF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
}

bool HasBias(GemmEpilogue e) { return e != GemmEpilogue::kNone; }

size_t TypeSize(DataType t) { return t == DataType::kF32 ? 4 : 2; }

size_t RoundUp(size_t v, size_t to) { return (v + to - 1) / to * to; }

// Everything a plan depends on; GemmDesc::Key() would do too but allocates on the hot path.
using PlanKey = std::array<int64_t, 11>;
PlanKey KeyOf(const GemmDesc& d) {
  return {d.m,
          d.n,
          d.k,
          d.lda,
          d.ldc,
          d.align,
          static_cast<int64_t>(d.a_type),
          static_cast<int64_t>(d.w_type),
          static_cast<int64_t>(d.c_type),
          static_cast<int64_t>(d.compute),
          static_cast<int64_t>(d.epilogue)};
}

template <typename T>
__device__ T FromFloat(float v);
template <>
__device__ __half FromFloat<__half>(float v) {
  return __float2half_rn(v);
}
template <>
__device__ __nv_bfloat16 FromFloat<__nv_bfloat16>(float v) {
  return __float2bfloat16_rn(v);
}

template <typename T>
__global__ void ConvertBiasKernel(const float* in, T* out, int64_t n) {
  int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = FromFloat<T>(in[i]);
}

}  // namespace

std::string GemmDesc::Key() const {
  return "m=" + std::to_string(m) + ",n=" + std::to_string(n) + ",k=" + std::to_string(k) +
         ",lda=" + std::to_string(lda) + ",ldc=" + std::to_string(ldc) + ",a=" + TypeName(a_type) +
         ",w=" + TypeName(w_type) + ",c=" + TypeName(c_type) + ",compute=" + ComputeName(compute) +
         ",epi=" + EpilogueName(epilogue) + ",align=" + std::to_string(align);
}

Status ValidateGemmDesc(const GemmDesc& d) {
  auto bad = [&](const std::string& what) {
    return InvalidArgument("GEMM " + d.Key() + ": " + what);
  };
  if (d.m <= 0) return bad("m must be > 0");
  if (d.n <= 0) return bad("n must be > 0");
  if (d.k <= 0) return bad("k must be > 0");
  if (d.lda < d.k) return bad("lda must be >= k (A is row-major [m, k])");
  if (d.ldc < d.n) return bad("ldc must be >= n (C is row-major [m, n])");
  if (d.compute != GemmCompute::kF32 && d.compute != GemmCompute::kTF32 &&
      d.compute != GemmCompute::kF16 && d.compute != GemmCompute::kBF16) {
    return bad("compute is not a GemmCompute value");
  }
  const DataType in = d.compute == GemmCompute::kF16    ? DataType::kF16
                      : d.compute == GemmCompute::kBF16 ? DataType::kBF16
                                                        : DataType::kF32;
  if (d.a_type != in) {
    return bad(std::string("a_type must be ") + TypeName(in) + " for compute " +
               ComputeName(d.compute));
  }
  if (d.w_type != in) {
    return bad(std::string("w_type must be ") + TypeName(in) + " for compute " +
               ComputeName(d.compute));
  }
  if (in == DataType::kF32 && d.c_type != DataType::kF32) {
    return bad(std::string("c_type must be f32 for compute ") + ComputeName(d.compute));
  }
  if (d.c_type != in && d.c_type != DataType::kF32) {
    return bad(std::string("c_type must be ") + TypeName(in) + " or f32 for compute " +
               ComputeName(d.compute));
  }
  if (d.epilogue != GemmEpilogue::kNone && d.epilogue != GemmEpilogue::kBias &&
      d.epilogue != GemmEpilogue::kBiasRelu) {
    return bad("epilogue is not a GemmEpilogue value");
  }
  if (d.align <= 0 || d.align > 256 || (d.align & (d.align - 1)) != 0) {
    return bad("align must be a power of two in [1, 256]");
  }
  if (static_cast<size_t>(d.align) < std::max(TypeSize(d.a_type), TypeSize(d.c_type))) {
    return bad("align must be at least the element size");
  }
  return Status::Ok();
}

int64_t AlignmentOf(const void* ptr) {
  auto v = reinterpret_cast<uintptr_t>(ptr);
  if (v == 0) return 256;
  return static_cast<int64_t>(std::min<uintptr_t>(v & (~v + 1), 256));
}

std::string GemmAlgo::ToHex() const {
  static const char kDigits[] = "0123456789abcdef";
  std::string out;
  if (bytes.empty()) {
    out = "heuristic";
  } else {
    for (uint8_t b : bytes) {
      out += kDigits[b >> 4];
      out += kDigits[b & 15];
    }
  }
  return out + ":" + std::to_string(workspace);
}

StatusOr<GemmAlgo> GemmAlgo::FromHex(const std::string& hex) {
  auto bad = [&](const std::string& why) {
    return InvalidArgument("GEMM algorithm \"" + hex + "\": " + why);
  };
  size_t colon = hex.find(':');
  if (colon == std::string::npos) return bad("expected <hex>:<workspace>");
  std::string head = hex.substr(0, colon), tail = hex.substr(colon + 1);
  if (tail.empty() || tail.size() > 19 ||
      !std::all_of(tail.begin(), tail.end(), [](char ch) { return ch >= '0' && ch <= '9'; })) {
    return bad("workspace must be a decimal byte count");
  }
  GemmAlgo algo;
  algo.workspace = std::stoull(tail);
  if (head == "heuristic") return algo;
  constexpr size_t kBytes = sizeof(cublasLtMatmulAlgo_t);
  if (head.size() != 2 * kBytes) {
    return bad("expected " + std::to_string(2 * kBytes) + " hex digits, got " +
               std::to_string(head.size()));
  }
  auto nibble = [](char ch) -> int {
    if (ch >= '0' && ch <= '9') return ch - '0';
    if (ch >= 'a' && ch <= 'f') return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F') return ch - 'A' + 10;
    return -1;
  };
  algo.bytes.resize(kBytes);
  for (size_t i = 0; i < kBytes; ++i) {
    int hi = nibble(head[2 * i]), lo = nibble(head[2 * i + 1]);
    if (hi < 0 || lo < 0) return bad("not a hex digit at position " + std::to_string(2 * i));
    algo.bytes[i] = static_cast<uint8_t>(hi << 4 | lo);
  }
  return algo;
}

// The descriptors of one GemmDesc, made once. Read-only after construction.
struct Plan {
  GemmDesc desc;
  cublasComputeType_t compute = CUBLAS_COMPUTE_32F;
  uint32_t epilogue = CUBLASLT_EPILOGUE_DEFAULT;
  int32_t bias_type = -1;  // cudaDataType_t of the bias cuBLASLt reads; -1 = no bias
  bool convert_bias = false;
  size_t bias_scratch = 0;  // front of the workspace holding the converted bias
  cublasLtMatrixLayoutOpaque_t w_layout{}, a_layout{}, c_layout{};
  bool has_default = false;  // the heuristic's pick with no workspace, for an empty GemmAlgo
  cublasLtMatmulAlgo_t default_algo{};

  cublasLtMatrixLayout_t W() const { return const_cast<cublasLtMatrixLayoutOpaque_t*>(&w_layout); }
  cublasLtMatrixLayout_t A() const { return const_cast<cublasLtMatrixLayoutOpaque_t*>(&a_layout); }
  cublasLtMatrixLayout_t C() const { return const_cast<cublasLtMatrixLayoutOpaque_t*>(&c_layout); }

  // The heuristic and AlgoCheck read the bias pointer only for its alignment: a stand-in with
  // exactly the alignment Run will be given.
  const void* FakeBias() const {
    uintptr_t align = convert_bias ? 256 : static_cast<uintptr_t>(desc.align);
    return reinterpret_cast<const void*>((uintptr_t{1} << 32) + align);
  }

  Status InitOp(const void* bias, cublasLtMatmulDescOpaque_t* op) const {
    CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescInit(op, compute, CUDA_R_32F));
    CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE,
                                                          &epilogue, sizeof(epilogue)));
    if (bias_type >= 0) {
      CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_DATA_TYPE,
                                                            &bias_type, sizeof(bias_type)));
      CUBLAS_RETURN_IF_ERROR(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                            &bias, sizeof(bias)));
    }
    return Status::Ok();
  }
};

struct LtGemm::Impl {
  cublasLtHandle_t handle = nullptr;
  mutable std::mutex mu;
  mutable std::map<PlanKey, std::unique_ptr<Plan>> plans;

  // Up to `max` heuristic results with the given workspace limit; an empty list when the library
  // has none (NOT_SUPPORTED is an answer here, not an error).
  StatusOr<std::vector<cublasLtMatmulHeuristicResult_t>> Heuristic(const Plan& p, int max,
                                                                   size_t workspace) const {
    cublasLtMatmulDescOpaque_t op;
    RETURN_IF_ERROR(p.InitOp(p.FakeBias(), &op));
    cublasLtMatmulPreferenceOpaque_t pref;
    CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceInit(&pref));
    uint64_t ws = workspace;
    CUBLAS_RETURN_IF_ERROR(cublasLtMatmulPreferenceSetAttribute(
        &pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof(ws)));
    uint32_t align = static_cast<uint32_t>(p.desc.align);
    for (auto attr :
         {CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_A_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_B_BYTES,
          CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES}) {
      CUBLAS_RETURN_IF_ERROR(
          cublasLtMatmulPreferenceSetAttribute(&pref, attr, &align, sizeof(align)));
    }
    std::vector<cublasLtMatmulHeuristicResult_t> results(max);
    int count = 0;
    cublasStatus_t st = cublasLtMatmulAlgoGetHeuristic(handle, &op, p.W(), p.A(), p.C(), p.C(),
                                                       &pref, max, results.data(), &count);
    if (st == CUBLAS_STATUS_NOT_SUPPORTED) {
      count = 0;
    } else {
      CUBLAS_RETURN_IF_ERROR(st);
    }
    results.resize(count);
    results.erase(std::remove_if(results.begin(), results.end(),
                                 [](const auto& r) { return r.state != CUBLAS_STATUS_SUCCESS; }),
                  results.end());
    return results;
  }

  StatusOr<std::unique_ptr<Plan>> MakePlan(const GemmDesc& d) const {
    RETURN_IF_ERROR(ValidateGemmDesc(d));
    auto p = std::make_unique<Plan>();
    p->desc = d;
    p->compute = ComputeType(d.compute);
    // Column-major view: W^T is [n, k] ld n, A^T is [k, m] ld lda, C^T is [n, m] ld ldc.
    CUBLAS_RETURN_IF_ERROR(
        cublasLtMatrixLayoutInit(&p->w_layout, CudaType(d.w_type), d.n, d.k, d.n));
    CUBLAS_RETURN_IF_ERROR(
        cublasLtMatrixLayoutInit(&p->a_layout, CudaType(d.a_type), d.k, d.m, d.lda));
    CUBLAS_RETURN_IF_ERROR(
        cublasLtMatrixLayoutInit(&p->c_layout, CudaType(d.c_type), d.n, d.m, d.ldc));
    p->epilogue = d.epilogue == GemmEpilogue::kBias       ? CUBLASLT_EPILOGUE_BIAS
                  : d.epilogue == GemmEpilogue::kBiasRelu ? CUBLASLT_EPILOGUE_RELU_BIAS
                                                          : CUBLASLT_EPILOGUE_DEFAULT;
    if (HasBias(d.epilogue)) {
      p->bias_type = CUDA_R_32F;
      if (d.c_type != DataType::kF32) {
        // The documented rule is "bias has the output's type"; some versions also take FP32, which
        // saves the conversion. Ask rather than assume; any refusal means "convert".
        auto probe = Heuristic(*p, 1, kMaxWorkspace);
        if (!probe.ok() || probe->empty()) {
          p->bias_type = CudaType(d.c_type);
          p->convert_bias = true;
          p->bias_scratch = RoundUp(static_cast<size_t>(d.n) * TypeSize(d.c_type), 256);
        }
      }
    }
    ASSIGN_OR_RETURN(auto def, Heuristic(*p, 1, 0));
    if (!def.empty()) {
      p->has_default = true;
      p->default_algo = def[0].algo;
    }
    return StatusOr<std::unique_ptr<Plan>>(std::move(p));
  }

  StatusOr<const Plan*> GetPlan(const GemmDesc& d) const {
    PlanKey key = KeyOf(d);
    std::lock_guard<std::mutex> lock(mu);
    auto it = plans.find(key);
    if (it != plans.end()) return static_cast<const Plan*>(it->second.get());
    ASSIGN_OR_RETURN(auto plan, MakePlan(d));
    const Plan* raw = plan.get();
    plans.emplace(key, std::move(plan));
    return raw;
  }
};

LtGemm::LtGemm(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

LtGemm::~LtGemm() {
  if (impl_ && impl_->handle) cublasLtDestroy(impl_->handle);
}

StatusOr<std::unique_ptr<LtGemm>> LtGemm::Create() {
  auto impl = std::make_unique<Impl>();
  CUBLAS_RETURN_IF_ERROR(cublasLtCreate(&impl->handle));
  return std::unique_ptr<LtGemm>(new LtGemm(std::move(impl)));
}

std::string LtGemm::Version() {
  size_t v = cublasLtGetVersion();
  return std::to_string(v / 10000) + "." + std::to_string(v / 100 % 100) + "." +
         std::to_string(v % 100);
}

StatusOr<std::vector<GemmAlgo>> LtGemm::Candidates(const GemmDesc& desc, int max) const {
  if (max <= 0) return InvalidArgument("GEMM candidates: max must be > 0");
  ASSIGN_OR_RETURN(const Plan* p, impl_->GetPlan(desc));
  ASSIGN_OR_RETURN(auto results, impl_->Heuristic(*p, max, kMaxWorkspace));
  if (results.empty()) {
    return Unimplemented("GEMM " + desc.Key() + ": cuBLASLt has no algorithm for it");
  }
  std::vector<GemmAlgo> out;
  for (const auto& r : results) {
    GemmAlgo a;
    a.bytes.resize(sizeof(r.algo));
    std::memcpy(a.bytes.data(), &r.algo, sizeof(r.algo));
    a.workspace = r.workspaceSize + p->bias_scratch;
    out.push_back(std::move(a));
  }
  return out;
}

Status LtGemm::Check(const GemmDesc& desc, const GemmAlgo& algo) const {
  ASSIGN_OR_RETURN(const Plan* p, impl_->GetPlan(desc));
  const std::string where = "GEMM " + desc.Key() + ", algorithm " + algo.ToHex() + ": ";
  if (algo.bytes.empty()) {
    if (!p->has_default) return FailedPrecondition(where + "the heuristic has no algorithm");
    return Status::Ok();
  }
  cublasLtMatmulAlgo_t a;
  if (algo.bytes.size() != sizeof(a)) {
    return InvalidArgument(where + "expected " + std::to_string(sizeof(a)) + " bytes");
  }
  std::memcpy(&a, algo.bytes.data(), sizeof(a));
  // The id first: AlgoCheck is documented for configured algorithms, not arbitrary bytes.
  int id = -1;
  size_t written = 0;
  CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof(id), &written));
  std::vector<int> ids(4096);
  int count = 0;
  CUBLAS_RETURN_IF_ERROR(
      cublasLtMatmulAlgoGetIds(impl_->handle, p->compute, CUDA_R_32F, CudaType(desc.w_type),
                               CudaType(desc.a_type), CudaType(desc.c_type), CudaType(desc.c_type),
                               static_cast<int>(ids.size()), ids.data(), &count));
  if (std::find(ids.begin(), ids.begin() + count, id) == ids.begin() + count) {
    return FailedPrecondition(where + "algorithm id " + std::to_string(id) +
                              " is not one this cuBLASLt " + Version() + " has for these types");
  }
  cublasLtMatmulDescOpaque_t op;
  RETURN_IF_ERROR(p->InitOp(p->FakeBias(), &op));
  cublasLtMatmulHeuristicResult_t result{};
  cublasStatus_t st =
      cublasLtMatmulAlgoCheck(impl_->handle, &op, p->W(), p->A(), p->C(), p->C(), &a, &result);
  if (st != CUBLAS_STATUS_SUCCESS) {
    return FailedPrecondition(where + "rejected by cuBLASLt " + Version() +
                              " on this GPU: " + cublasLtGetStatusName(st));
  }
  if (result.workspaceSize + p->bias_scratch > algo.workspace) {
    return FailedPrecondition(
        where + "needs " + std::to_string(result.workspaceSize + p->bias_scratch) +
        " workspace bytes, the choice says " + std::to_string(algo.workspace));
  }
  return Status::Ok();
}

StatusOr<size_t> LtGemm::WorkspaceSize(const GemmDesc& desc, const GemmAlgo& algo) const {
  ASSIGN_OR_RETURN(const Plan* p, impl_->GetPlan(desc));
  return algo.bytes.empty() ? p->bias_scratch : algo.workspace;
}

Status LtGemm::Run(const GemmDesc& desc, const GemmAlgo& algo, const void* a, const void* w,
                   const float* bias, void* c, void* workspace, cudaStream_t stream) const {
  ASSIGN_OR_RETURN(const Plan* p, impl_->GetPlan(desc));
  auto bad = [&](const std::string& why) {
    return InvalidArgument("GEMM " + desc.Key() + ": " + why);
  };
  if (!a || !w || !c) return bad("A, W and C must be device pointers");
  if (HasBias(desc.epilogue) != (bias != nullptr)) {
    return bad(HasBias(desc.epilogue) ? "the epilogue needs a bias"
                                      : "bias given without a bias epilogue");
  }
  const std::pair<const void*, const char*> ptrs[] = {{a, "A"}, {w, "W"}, {c, "C"}, {bias, "bias"}};
  for (const auto& [ptr, name] : ptrs) {
    if (ptr && AlignmentOf(ptr) < desc.align) {
      return bad(std::string(name) + " is " + std::to_string(AlignmentOf(ptr)) +
                 "-byte aligned, less than align");
    }
  }
  cublasLtMatmulAlgo_t chosen;
  size_t cublas_ws = 0;
  if (algo.bytes.empty()) {
    if (!p->has_default) return Unimplemented("GEMM " + desc.Key() + ": no heuristic algorithm");
    chosen = p->default_algo;
  } else {
    if (algo.bytes.size() != sizeof(chosen)) return bad("algorithm has the wrong size");
    if (algo.workspace < p->bias_scratch) return bad("algorithm workspace below the bias scratch");
    std::memcpy(&chosen, algo.bytes.data(), sizeof(chosen));
    cublas_ws = algo.workspace - p->bias_scratch;
  }
  size_t needed = cublas_ws + p->bias_scratch;
  if (needed > 0 && (!workspace || AlignmentOf(workspace) < 256)) {
    return bad("needs a 256-byte aligned workspace of " + std::to_string(needed) + " bytes");
  }
  const void* bias_ptr = bias;
  if (p->convert_bias) {
    int64_t n = desc.n;
    unsigned blocks = static_cast<unsigned>((n + 255) / 256);
    if (desc.c_type == DataType::kF16) {
      ConvertBiasKernel<<<blocks, 256, 0, stream>>>(bias, static_cast<__half*>(workspace), n);
    } else {
      ConvertBiasKernel<<<blocks, 256, 0, stream>>>(bias, static_cast<__nv_bfloat16*>(workspace),
                                                    n);
    }
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    bias_ptr = workspace;
  }
  cublasLtMatmulDescOpaque_t op;
  RETURN_IF_ERROR(p->InitOp(bias_ptr, &op));
  const float alpha = 1.f, beta = 0.f;
  void* ws = cublas_ws ? static_cast<char*>(workspace) + p->bias_scratch : nullptr;
  CUBLAS_RETURN_IF_ERROR(cublasLtMatmul(impl_->handle, &op, &alpha, w, p->W(), a, p->A(), &beta, c,
                                        p->C(), c, p->C(), &chosen, ws, cublas_ws, stream));
  return Status::Ok();
}

StatusOr<double> TimeOnStream(const std::function<Status()>& fn, cudaStream_t stream, int reps) {
  if (reps <= 0) return InvalidArgument("TimeOnStream: reps must be > 0");
  // Events between consecutive runs: one sync at the end, and each interval is one run.
  std::vector<cudaEvent_t> events(reps + 1, nullptr);
  auto destroy = [&] {
    for (cudaEvent_t e : events) {
      if (e) cudaEventDestroy(e);
    }
  };
  auto timed = [&]() -> StatusOr<double> {
    for (auto& e : events) CUDA_RETURN_IF_ERROR(cudaEventCreate(&e));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(events[0], stream));
    for (int i = 0; i < reps; ++i) {
      RETURN_IF_ERROR(fn());
      CUDA_RETURN_IF_ERROR(cudaEventRecord(events[i + 1], stream));
    }
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(events[reps]));
    std::vector<float> ms(reps);
    for (int i = 0; i < reps; ++i) {
      CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms[i], events[i], events[i + 1]));
    }
    std::nth_element(ms.begin(), ms.begin() + reps / 2, ms.end());
    return static_cast<double>(ms[reps / 2]);
  };
  // Preferred: `kPerGraph` calls captured into one CUDA graph, each replay timed with events and
  // divided by kPerGraph. That is how the runtime launches (graph per bucket) and leaves out the
  // host's launch overhead, which for microsecond kernels would otherwise dominate and reorder
  // the candidates. Falls back to one event pair per call when `fn` cannot be captured.
  constexpr int kPerGraph = 20;
  auto graphed = [&]() -> StatusOr<double> {
    cudaGraph_t graph = nullptr;
    CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal));
    Status st;
    for (int i = 0; i < kPerGraph && st.ok(); ++i) (void)(st = fn());
    cudaError_t end = cudaStreamEndCapture(stream, &graph);
    RETURN_IF_ERROR(st);
    CUDA_RETURN_IF_ERROR(end);
    cudaGraphExec_t exec = nullptr;
    cudaError_t inst = cudaGraphInstantiate(&exec, graph, 0);
    cudaGraphDestroy(graph);
    CUDA_RETURN_IF_ERROR(inst);
    const int samples = std::max(5, reps / 4);
    std::vector<float> ms(samples);
    cudaEvent_t a = nullptr, b = nullptr;
    Status ok = [&]() -> Status {
      CUDA_RETURN_IF_ERROR(cudaEventCreate(&a));
      CUDA_RETURN_IF_ERROR(cudaEventCreate(&b));
      CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec, stream));  // warm
      for (int i = 0; i < samples; ++i) {
        CUDA_RETURN_IF_ERROR(cudaEventRecord(a, stream));
        CUDA_RETURN_IF_ERROR(cudaGraphLaunch(exec, stream));
        CUDA_RETURN_IF_ERROR(cudaEventRecord(b, stream));
        CUDA_RETURN_IF_ERROR(cudaEventSynchronize(b));
        CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms[i], a, b));
      }
      return Status::Ok();
    }();
    cudaStreamSynchronize(stream);
    if (a) cudaEventDestroy(a);
    if (b) cudaEventDestroy(b);
    cudaGraphExecDestroy(exec);
    RETURN_IF_ERROR(ok);
    std::nth_element(ms.begin(), ms.begin() + samples / 2, ms.end());
    return static_cast<double>(ms[samples / 2]) / kPerGraph;
  };
  StatusOr<double> g = graphed();
  if (g.ok()) {
    destroy();
    return g;
  }
  cudaGetLastError();  // a failed capture leaves a sticky-free error behind; clear it
  StatusOr<double> result = timed();
  if (!result.ok()) cudaStreamSynchronize(stream);  // nothing may still use the events
  destroy();
  return result;
}

}  // namespace clickrt::cuda
