// The CUDA runtime (see cuda_engine.h): contexts, CUDA graphs per bucket, I/O, autotuning.
#include "runtime/cuda_engine.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <mutex>

#include "kernels/cuda/autotune.h"
#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"
#include "runtime/cpu_engine.h"
#include "runtime/cuda_plan.h"

namespace clickrt::runtime {

using gpu::LaunchCtx;
using gpu::Plan;

std::string CudaSmArch(int device) {
  for (const auto& d : cuda::ListDevices()) {
    if (d.index == device) return "sm_" + std::to_string(d.sm_major) + std::to_string(d.sm_minor);
  }
  return "";
}

namespace {

constexpr size_t kWorkspaceBytes = 32u << 20;  // cuBLASLt's recommendation for Hopper

struct Context {
  cudaStream_t stream = nullptr;
  char* arena = nullptr;
  std::vector<char*> d_inputs;
  std::vector<char*> h_inputs, h_outputs;  // pinned
  int64_t* d_error = nullptr;
  int64_t* h_error = nullptr;  // pinned int64[2]
  void* workspace = nullptr;
  std::map<int64_t, cudaGraphExec_t> graphs;
  cudaEvent_t ev[4] = {};
  cudaEvent_t prof[2] = {};  // per-step profiling
  ~Context() {
    for (auto& [b, g] : graphs) cudaGraphExecDestroy(g);
    for (cudaEvent_t e : ev) {
      if (e) cudaEventDestroy(e);
    }
    for (cudaEvent_t e : prof) {
      if (e) cudaEventDestroy(e);
    }
    for (char* p : d_inputs) cudaFree(p);
    for (char* p : h_inputs) cudaFreeHost(p);
    for (char* p : h_outputs) cudaFreeHost(p);
    cudaFree(arena);
    cudaFree(d_error);
    cudaFreeHost(h_error);
    cudaFree(workspace);
    if (stream) cudaStreamDestroy(stream);
  }
};

int64_t RowBytes(const Plan::Io& io, const Plan& p) {
  const gpu::Val& v = p.vals[io.val];
  return v.cols * static_cast<int64_t>(DTypeSize(io.dtype));
}

}  // namespace

struct CudaEngine::Impl {
  std::shared_ptr<engine::LoadedEngine> eng;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<Plan> plan;
  std::unique_ptr<cuda::LtGemm> lt;
  CudaEngineOptions options;
  char* d_consts = nullptr;
  std::vector<int64_t> buckets;
  std::mutex mu;
  std::vector<std::unique_ptr<Context>> idle;
  int64_t context_bytes = 0;
  std::vector<GpuStepTiming> timings;
  std::mutex timing_mu;

  ~Impl() {
    idle.clear();
    if (d_consts) cudaFree(d_consts);
  }
  StatusOr<std::unique_ptr<Context>> MakeContext();
  StatusOr<std::unique_ptr<Context>> Take() {
    {
      std::lock_guard<std::mutex> l(mu);
      if (!idle.empty()) {
        auto c = std::move(idle.back());
        idle.pop_back();
        return c;
      }
    }
    return MakeContext();
  }
  void Give(std::unique_ptr<Context> c) {
    std::lock_guard<std::mutex> l(mu);
    idle.push_back(std::move(c));
  }
  LaunchCtx Launch(Context& c, int64_t bucket) const {
    LaunchCtx lc;
    lc.arena = c.arena;
    lc.inputs = c.d_inputs;
    lc.consts = d_consts;
    lc.error = c.d_error;
    lc.workspace = c.workspace;
    lc.lt = lt.get();
    lc.stream = c.stream;
    lc.bucket = bucket;
    return lc;
  }
  Status RunSteps(Context& c, int64_t bucket);
  Status Compute(Context& c, int64_t bucket);
  int64_t BucketFor(int64_t rows) const {
    for (int64_t b : buckets) {
      if (b >= rows) return b;
    }
    return buckets.back();
  }
  StatusOr<reference::TensorMap> Run(const reference::TensorMap& inputs, GpuRunTimes* times);
  void ApplyTuning(const nlohmann::json& choices);
};

StatusOr<std::unique_ptr<Context>> CudaEngine::Impl::MakeContext() {
  CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  auto c = std::make_unique<Context>();
  const int64_t max = plan->max_rows;
  CUDA_RETURN_IF_ERROR(cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking));
  CUDA_RETURN_IF_ERROR(cudaMalloc(&c->arena, std::max<int64_t>(plan->arena_bytes, 256)));
  // Padding columns of GEMM inputs read as zeros (their buffers are never shared).
  CUDA_RETURN_IF_ERROR(cudaMemset(c->arena, 0, std::max<int64_t>(plan->arena_bytes, 256)));
  int64_t bytes = plan->arena_bytes + kWorkspaceBytes;
  for (const auto& io : plan->inputs) {
    const int64_t n = RowBytes(io, *plan) * max;
    char* d = nullptr;
    char* h = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMalloc(&d, n));
    c->d_inputs.push_back(d);
    CUDA_RETURN_IF_ERROR(cudaMemset(d, 0, n));
    CUDA_RETURN_IF_ERROR(cudaMallocHost(&h, n));
    c->h_inputs.push_back(h);
    bytes += n;
  }
  for (const auto& io : plan->outputs) {
    char* h = nullptr;
    CUDA_RETURN_IF_ERROR(cudaMallocHost(&h, RowBytes(io, *plan) * max));
    c->h_outputs.push_back(h);
  }
  CUDA_RETURN_IF_ERROR(cudaMalloc(&c->d_error, 16));
  CUDA_RETURN_IF_ERROR(cudaMallocHost(&c->h_error, 16));
  CUDA_RETURN_IF_ERROR(cudaMalloc(&c->workspace, kWorkspaceBytes));
  for (cudaEvent_t& e : c->ev) CUDA_RETURN_IF_ERROR(cudaEventCreate(&e));
  for (cudaEvent_t& e : c->prof) CUDA_RETURN_IF_ERROR(cudaEventCreate(&e));
  context_bytes = bytes;
  return c;
}

Status CudaEngine::Impl::RunSteps(Context& c, int64_t bucket) {
  LaunchCtx lc = Launch(c, bucket);
  if (!options.profile) {
    for (auto& s : plan->steps) RETURN_IF_ERROR(s->launch(*plan, lc, *s).WithContext("step '" + s->name + "'"));
    return Status::Ok();
  }
  for (size_t i = 0; i < plan->steps.size(); ++i) {
    auto& s = plan->steps[i];
    CUDA_RETURN_IF_ERROR(cudaEventRecord(c.prof[0], c.stream));
    RETURN_IF_ERROR(s->launch(*plan, lc, *s).WithContext("step '" + s->name + "'"));
    CUDA_RETURN_IF_ERROR(cudaEventRecord(c.prof[1], c.stream));
    CUDA_RETURN_IF_ERROR(cudaEventSynchronize(c.prof[1]));
    float ms = 0;
    CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&ms, c.prof[0], c.prof[1]));
    std::lock_guard<std::mutex> l(timing_mu);
    timings[i].total_ms += ms;
    timings[i].calls += 1;
  }
  return Status::Ok();
}

Status CudaEngine::Impl::Compute(Context& c, int64_t bucket) {
  if (!options.capture_graphs || options.profile) return RunSteps(c, bucket);
  auto it = c.graphs.find(bucket);
  if (it == c.graphs.end()) {
    // One eager run first: cuBLASLt sets up a new shape's descriptors on the host, which must
    // not happen during capture.
    RETURN_IF_ERROR(RunSteps(c, bucket));
    cudaGraph_t g = nullptr;
    CUDA_RETURN_IF_ERROR(cudaStreamBeginCapture(c.stream, cudaStreamCaptureModeThreadLocal));
    Status st = RunSteps(c, bucket);
    cudaError_t end = cudaStreamEndCapture(c.stream, &g);
    RETURN_IF_ERROR(st);
    CUDA_RETURN_IF_ERROR(end);
    cudaGraphExec_t exec = nullptr;
    cudaError_t inst = cudaGraphInstantiate(&exec, g, 0);
    cudaGraphDestroy(g);
    CUDA_RETURN_IF_ERROR(inst);
    it = c.graphs.emplace(bucket, exec).first;
  }
  CUDA_RETURN_IF_ERROR(cudaGraphLaunch(it->second, c.stream));
  return Status::Ok();
}

StatusOr<reference::TensorMap> CudaEngine::Impl::Run(const reference::TensorMap& inputs, GpuRunTimes* times) {
  const auto t0 = std::chrono::steady_clock::now();
  RETURN_IF_ERROR(reference::CheckInputs(*graph, inputs));
  const auto& prof = eng->program().meta.profile;
  int64_t rows = -1;
  for (const auto& io : plan->inputs) rows = inputs.at(io.name).dim(0);
  if (rows < prof.min || rows > prof.max) {
    return InvalidArgument("batch " + std::to_string(rows) + " is outside the engine's profile [" +
                           std::to_string(prof.min) + ", " + std::to_string(prof.max) + "]");
  }
  const int64_t bucket = BucketFor(rows);
  CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  ASSIGN_OR_RETURN(std::unique_ptr<Context> c, Take());
  struct Return {
    Impl* impl;
    std::unique_ptr<Context>* c;
    ~Return() {
      if (*c) impl->Give(std::move(*c));
    }
  } give_back{this, &c};
  for (size_t i = 0; i < plan->inputs.size(); ++i) {
    const auto& io = plan->inputs[i];
    const int64_t rb = RowBytes(io, *plan);
    std::memcpy(c->h_inputs[i], inputs.at(io.name).raw(), rb * rows);
  }
  CUDA_RETURN_IF_ERROR(cudaEventRecord(c->ev[0], c->stream));
  for (size_t i = 0; i < plan->inputs.size(); ++i) {
    const int64_t rb = RowBytes(plan->inputs[i], *plan);
    CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(c->d_inputs[i], c->h_inputs[i], rb * rows, cudaMemcpyHostToDevice, c->stream));
    // Padding rows read as zeros (valid ids, finite values); their results are dropped.
    if (bucket > rows) {
      CUDA_RETURN_IF_ERROR(cudaMemsetAsync(c->d_inputs[i] + rb * rows, 0, rb * (bucket - rows), c->stream));
    }
  }
  CUDA_RETURN_IF_ERROR(cudaMemsetAsync(c->d_error, 0xff, 16, c->stream));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(c->ev[1], c->stream));
  RETURN_IF_ERROR(Compute(*c, bucket));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(c->ev[2], c->stream));
  LaunchCtx lc = Launch(*c, bucket);
  for (size_t i = 0; i < plan->outputs.size(); ++i) {
    const auto& io = plan->outputs[i];
    const gpu::Val& v = plan->vals[io.val];
    const int64_t rb = RowBytes(io, *plan);
    CUDA_RETURN_IF_ERROR(cudaMemcpy2DAsync(c->h_outputs[i], rb, plan->ptr(lc, v), plan->bufs[v.buf].ld * 4, rb, rows,
                                           cudaMemcpyDeviceToHost, c->stream));
  }
  CUDA_RETURN_IF_ERROR(cudaMemcpyAsync(c->h_error, c->d_error, 16, cudaMemcpyDeviceToHost, c->stream));
  CUDA_RETURN_IF_ERROR(cudaEventRecord(c->ev[3], c->stream));
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(c->stream));
  if (c->h_error[0] >= 0 && c->h_error[0] < rows) {
    return Status(StatusCode::kOutOfRange, "embedding id at row " + std::to_string(c->h_error[0]) + ", field " +
                                               std::to_string(c->h_error[1]) + " is outside its table");
  }
  reference::TensorMap out;
  for (size_t i = 0; i < plan->outputs.size(); ++i) {
    const auto& io = plan->outputs[i];
    Dims dims = io.dims;
    for (auto& d : dims) {
      if (d < 0) d = rows;
    }
    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(io.dtype, dims));
    std::memcpy(t.raw(), c->h_outputs[i], t.nbytes());
    out.emplace(io.name, std::move(t));
  }
  if (times) {
    float a = 0, b = 0, d = 0;
    CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&a, c->ev[0], c->ev[1]));
    CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&b, c->ev[1], c->ev[2]));
    CUDA_RETURN_IF_ERROR(cudaEventElapsedTime(&d, c->ev[2], c->ev[3]));
    times->h2d_ms = a;
    times->compute_ms = b;
    times->d2h_ms = d;
    times->bucket = bucket;
    times->end_to_end_ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  }
  return out;
}

// meta.extra["cuda"] = {"gemm": {site key: algo hex}, "variant": {step name: {bucket: gpu::Variant}},
//                       "layers": {layer name: kernel}}.
void CudaEngine::Impl::ApplyTuning(const nlohmann::json& choices) {
  if (!choices.is_object()) return;
  const nlohmann::json& gemm = choices.value("gemm", nlohmann::json::object());
  const nlohmann::json& variants = choices.value("variant", nlohmann::json::object());
  for (auto& s : plan->steps) {
    for (auto& site : s->gemms) {
      for (int64_t b : buckets) {
        auto it = gemm.find(site.key(b));
        if (it == gemm.end() || !it->is_string()) continue;
        auto algo = cuda::GemmAlgo::FromHex(it->get<std::string>());
        if (algo.ok() && lt->Check([&] { auto d = site.desc; d.m = b; return d; }(), *algo).ok()) {
          site.algo[b] = *algo;
        }
      }
    }
    auto f = variants.find(s->name);
    if (f != variants.end() && f->is_object()) {
      for (auto& [k, v] : f->items()) {
        if (v.is_number_integer()) s->variant[std::stoll(k)] = v.get<int>();
      }
    }
  }
}

CudaEngine::CudaEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CudaEngine::~CudaEngine() = default;

StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::Load(const std::string& path, const CudaEngineOptions& options) {
  const std::string arch = CudaSmArch(options.device);
  if (arch.empty()) {
    return Status(StatusCode::kFailedPrecondition,
                  "cannot load cuda engine " + path + ": no GPU with index " + std::to_string(options.device));
  }
  engine::Expectations expect;
  expect.backend = "cuda";
  expect.sm_arch = arch;
  const std::string rt = cuda::RuntimeVersion();
  expect.cuda_major = rt.substr(0, rt.find('.'));
  ASSIGN_OR_RETURN(auto eng, engine::LoadEngine(path, expect));
  return Create(std::move(eng), options);
}

StatusOr<std::unique_ptr<CudaEngine>> CudaEngine::Create(std::shared_ptr<engine::LoadedEngine> eng,
                                                         const CudaEngineOptions& options) {
  if (eng->program().meta.backend != "cuda") {
    return Status(StatusCode::kFailedPrecondition, "engine " + eng->source() + " was built for the " +
                                                       eng->program().meta.backend + " backend, not cuda");
  }
  auto impl = std::make_unique<Impl>();
  impl->eng = eng;
  impl->options = options;
  CUDA_RETURN_IF_ERROR(cudaSetDevice(options.device));
  ASSIGN_OR_RETURN(impl->graph, RaiseProgram(*eng));
  ASSIGN_OR_RETURN(impl->plan, gpu::BuildPlan(eng->program(), *impl->graph));
  ASSIGN_OR_RETURN(impl->lt, cuda::LtGemm::Create());
  const auto& prof = eng->program().meta.profile;
  impl->buckets = prof.buckets;
  if (impl->buckets.empty() || impl->buckets.back() != prof.max) impl->buckets.push_back(prof.max);
  const auto& consts = impl->plan->consts;
  CUDA_RETURN_IF_ERROR(cudaMalloc(&impl->d_consts, std::max<size_t>(consts.size(), 256)));
  CUDA_RETURN_IF_ERROR(cudaMemcpy(impl->d_consts, consts.data(), consts.size(), cudaMemcpyHostToDevice));
  const nlohmann::json& extra = eng->program().meta.extra;
  if (extra.is_object() && extra.contains("cuda")) impl->ApplyTuning(extra["cuda"]);
  for (const auto& s : impl->plan->steps) impl->timings.push_back({s->name, s->kernel, 0, 0});
  for (int i = 0; i < std::max(1, options.contexts); ++i) {
    ASSIGN_OR_RETURN(auto c, impl->MakeContext());
    impl->Give(std::move(c));
  }
  return std::unique_ptr<CudaEngine>(new CudaEngine(std::move(impl)));
}

StatusOr<reference::TensorMap> CudaEngine::Run(const reference::TensorMap& inputs) {
  return impl_->Run(inputs, nullptr);
}
StatusOr<reference::TensorMap> CudaEngine::RunTimed(const reference::TensorMap& inputs, GpuRunTimes* times) {
  return impl_->Run(inputs, times);
}

const engine::Program& CudaEngine::program() const { return impl_->eng->program(); }
const ir::Graph& CudaEngine::graph() const { return *impl_->graph; }

std::vector<IoSpec> CudaEngine::inputs() const {
  std::vector<IoSpec> v;
  for (const auto& io : impl_->plan->inputs) v.push_back({io.name, io.dtype, io.dims});
  return v;
}
std::vector<IoSpec> CudaEngine::outputs() const {
  std::vector<IoSpec> v;
  for (const auto& io : impl_->plan->outputs) v.push_back({io.name, io.dtype, io.dims});
  return v;
}

int64_t CudaEngine::weight_bytes() const { return static_cast<int64_t>(impl_->plan->consts.size()); }
int64_t CudaEngine::context_bytes() const { return impl_->context_bytes; }

std::vector<GpuStepTiming> CudaEngine::Timings() const {
  std::lock_guard<std::mutex> l(impl_->timing_mu);
  return impl_->timings;
}

std::vector<std::string> CudaEngine::Describe() const {
  std::vector<std::string> v;
  for (const auto& s : impl_->plan->steps) {
    std::string line = s->kernel + ": " + s->name;
    for (const auto& g : s->gemms) {
      line += " [gemm " + std::to_string(g.desc.k) + "x" + std::to_string(g.desc.n) + "]";
    }
    v.push_back(line);
  }
  v.push_back("arena " + std::to_string(impl_->plan->arena_bytes) + " bytes, weights " +
              std::to_string(impl_->plan->consts.size()) + " bytes");
  return v;
}

StatusOr<nlohmann::json> CudaEngine::Tune(TimingCacheView* cache, TuneReport* report) {
  Impl& im = *impl_;
  CUDA_RETURN_IF_ERROR(cudaSetDevice(im.options.device));
  ASSIGN_OR_RETURN(std::unique_ptr<Context> c, im.Take());
  nlohmann::json gemm = nlohmann::json::object(), variants = nlohmann::json::object();
  for (int64_t b : im.buckets) {
    for (auto& s : im.plan->steps) {
      for (auto& site : s->gemms) {
        const std::string key = site.key(b);
        std::string choice;
        double ms = 0;
        if (cache && cache->Find(key, &choice, &ms)) {
          auto algo = cuda::GemmAlgo::FromHex(choice);
          cuda::GemmDesc d = site.desc;
          d.m = b;
          if (algo.ok() && im.lt->Check(d, *algo).ok()) {
            site.algo[b] = *algo;
            gemm[key] = choice;
            if (report) report->cache_hits++;
            continue;
          }
        }
        cuda::GemmDesc d = site.desc;
        d.m = b;
        ASSIGN_OR_RETURN(cuda::GemmChoice best, cuda::AutotuneGemm(*im.lt, d, 16, c->stream));
        site.algo[b] = best.algo;
        gemm[key] = best.algo.ToHex();
        if (cache) cache->Put(key, best.algo.ToHex(), best.ms);
        if (report) {
          report->gemms_timed++;
          report->lines.push_back("  batch " + std::to_string(b) + " " + s->name + ": gemm m=" + std::to_string(b) +
                                  " n=" + std::to_string(d.n) + " k=" + std::to_string(d.k) + " -> " +
                                  std::to_string(best.ms * 1000.0).substr(0, 6) + " us (" +
                                  std::to_string(best.tried) + " candidates)");
        }
      }
    }
    // Each step's variants (cuBLASLt, fused MLP, skinny kernels), timed as they will run.
    for (auto& s : im.plan->steps) {
      std::vector<int> cands;
      for (int v : s->variants) {
        if (v == gpu::kCublasLt || (v == gpu::kSkinny && b <= cuda::SkinnyGemmArgs::kMaxRows) ||
            (v == gpu::kFusedMlp && b <= cuda::MlpArgs::kMaxRows)) {
          cands.push_back(v);
        }
      }
      if (cands.size() < 2) continue;
      LaunchCtx lc = im.Launch(*c, b);
      std::string sig = s->kernel;
      for (const auto& g : s->gemms) sig += "|" + g.key(b);
      int best = gpu::kCublasLt;
      double best_ms = 1e30;
      std::string line = "  batch " + std::to_string(b) + " " + s->name + ":";
      for (int v : cands) {
        s->variant[b] = v;
        const std::string key = std::string("variant:") + gpu::VariantName(v) + ":" + sig;
        std::string choice;
        double ms = 0;
        if (cache && cache->Find(key, &choice, &ms)) {
          if (report) report->cache_hits++;
        } else {
          gpu::Step& st = *s;
          auto fn = [&]() { return st.launch(*im.plan, lc, st); };
          RETURN_IF_ERROR(fn());
          ASSIGN_OR_RETURN(ms, cuda::TimeOnStream(fn, c->stream, 50));
          if (cache) cache->Put(key, "timed", ms);
        }
        line += std::string(" ") + gpu::VariantName(v) + " " + std::to_string(ms * 1000).substr(0, 6) + " us";
        if (ms < best_ms) {
          best_ms = ms;
          best = v;
        }
      }
      s->variant[b] = best;
      variants[s->name][std::to_string(b)] = best;
      if (report) report->lines.push_back(line + " -> " + gpu::VariantName(best));
    }
  }
  CUDA_RETURN_IF_ERROR(cudaStreamSynchronize(c->stream));
  for (auto& [b, g] : c->graphs) cudaGraphExecDestroy(g);
  c->graphs.clear();  // recaptured with the tuned choices
  im.Give(std::move(c));
  // The kernel of every layer, for the engine's layer list (`clickrt inspect`).
  nlohmann::json layers = nlohmann::json::object();
  for (const auto& s : im.plan->steps) {
    // e.g. "cuda_mlp[1:skinny 8:skinny 64:fused_mlp 512:cublaslt ...]"
    std::string k = "cuda_" + s->kernel;
    if (!s->variants.empty()) {
      k += "[";
      for (size_t i = 0; i < im.buckets.size(); ++i) {
        k += (i ? " " : "") + std::to_string(im.buckets[i]) + ":" + gpu::VariantName(s->VariantFor(im.buckets[i]));
      }
      k += "]";
    }
    size_t pos = 0;
    while (pos <= s->name.size()) {
      size_t e = s->name.find('+', pos);
      std::string part = s->name.substr(pos, e == std::string::npos ? std::string::npos : e - pos);
      part = part.substr(0, part.find(':'));
      if (!part.empty() && !layers.contains(part)) layers[part] = k;
      if (e == std::string::npos) break;
      pos = e + 1;
    }
  }
  return nlohmann::json{{"gemm", gemm}, {"variant", variants}, {"layers", layers}};
}

}  // namespace clickrt::runtime
