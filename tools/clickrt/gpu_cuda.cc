// The CLI's GPU parts in a build with CUDA: cuda builds with autotuning, GPU bench, the loader.
#include <algorithm>
#include <chrono>
#include <filesystem>
#include <iomanip>
#include <iostream>
#include <numeric>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "compiler/timing_cache.h"
#include "engine/engine_file.h"
#include "gpu.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "runtime/cuda_engine.h"
#include "tensor_io.h"

namespace clickrt::cli::gpu {
namespace {

class CacheView : public runtime::TimingCacheView {
 public:
  explicit CacheView(compiler::TimingCache* c) : c_(c) {}
  bool Find(const std::string& key, std::string* choice, double* ms) const override {
    auto e = c_->Find(key);
    if (!e) return false;
    *choice = e->choice;
    *ms = e->ms;
    return true;
  }
  void Put(const std::string& key, const std::string& choice, double ms) override { c_->Put(key, {choice, ms}); }

 private:
  compiler::TimingCache* c_;
};

double Seconds(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

void Install() {
  runtime::RegisterEngineLoader("cuda", [](const std::string& path, const runtime::EngineLoadOptions& o)
                                            -> StatusOr<std::unique_ptr<runtime::InferenceEngine>> {
    runtime::CudaEngineOptions co;
    co.device = o.device;
    co.contexts = o.contexts;
    ASSIGN_OR_RETURN(auto e, runtime::CudaEngine::Load(path, co));
    return std::unique_ptr<runtime::InferenceEngine>(e.release());
  });
}

bool IsCudaEngine(const std::string& path) {
  engine::Expectations e;
  e.verify_checksum = false;
  auto eng = engine::LoadEngine(path, e);
  return eng.ok() && (*eng)->program().meta.backend == "cuda";
}

Status BuildCuda(const std::string& model, compiler::BuildOptions o, const std::string& output,
                 const std::string& timing_cache, int device, bool dump_graph) {
  const auto t0 = std::chrono::steady_clock::now();
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  const auto devs = cuda::ListDevices();
  auto dev = std::find_if(devs.begin(), devs.end(), [&](const cuda::DeviceInfo& d) { return d.index == device; });
  if (dev == devs.end()) {
    return FailedPrecondition("--backend cuda needs a GPU: no GPU with index " + std::to_string(device) + " (" +
                              std::to_string(devs.size()) + " visible); the autotuner times kernels on it");
  }
  o.gpu.name = dev->name;
  o.gpu.sm_arch = "sm_" + std::to_string(dev->sm_major) + std::to_string(dev->sm_minor);
  o.gpu.cuda_version = cuda::RuntimeVersion();
  o.gpu.cublaslt_version = cuda::LtGemm::Version();
  ASSIGN_OR_RETURN(compiler::BuildResult r, compiler::Build(model, o));
  if (dump_graph) {
    std::cout << "== graph before passes\n" << r.graph_before << "\n== graph after passes\n" << r.graph_after;
  }
  // Timing cache: reused when it was made on this GPU / CUDA / cuBLASLt / clickrt; a stale one is
  // reported and replaced, never trusted.
  compiler::TimingContext ctx{o.gpu.name, o.gpu.sm_arch, o.gpu.cuda_version, o.gpu.cublaslt_version, CLICKRT_VERSION};
  compiler::TimingCache cache(ctx);
  if (!timing_cache.empty()) {
    bool stale = false;
    auto loaded = compiler::TimingCache::Load(timing_cache, ctx, &stale);
    if (loaded.ok()) {
      cache = std::move(loaded).value();
      if (stale) {
        say("timing cache " + timing_cache + " is stale (built for " + cache.stale_context()->Describe() +
            ", this is " + ctx.Describe() + "): ignoring it and re-timing");
      } else {
        say("timing cache " + timing_cache + ": " + std::to_string(cache.size()) + " entries");
      }
    } else if (loaded.status().code() != StatusCode::kNotFound) {
      return loaded.status();
    }
  }
  // Autotune on the engine as the runtime will run it.
  ASSIGN_OR_RETURN(std::string bytes, engine::SerializeEngine(r.program, r.weights));
  ASSIGN_OR_RETURN(auto loaded, engine::LoadEngineFromBytes(bytes));
  runtime::CudaEngineOptions co;
  co.device = device;
  ASSIGN_OR_RETURN(auto eng, runtime::CudaEngine::Create(loaded, co));
  say("[5/5] autotune on " + o.gpu.name + ": buckets " + [&] {
    std::string b;
    for (int64_t x : r.program.meta.profile.buckets) b += (b.empty() ? "" : ",") + std::to_string(x);
    return b;
  }());
  CacheView view(&cache);
  runtime::CudaEngine::TuneReport rep;
  ASSIGN_OR_RETURN(nlohmann::json choices, eng->Tune(&view, &rep));
  for (const auto& l : rep.lines) say(l);
  say("      " + std::to_string(rep.gemms_timed) + " GEMMs timed, " + std::to_string(rep.cache_hits) +
      " timing-cache hits");
  r.program.meta.extra["cuda"] = choices;
  for (auto& l : r.program.layers) {
    auto it = choices["layers"].find(l.name);
    if (it != choices["layers"].end()) l.kernel = it->get<std::string>();
  }
  if (!timing_cache.empty()) RETURN_IF_ERROR(cache.Save(timing_cache));
  RETURN_IF_ERROR(engine::WriteEngine(r.program, r.weights, output));
  std::ostringstream os;
  os << std::fixed << std::setprecision(1) << Seconds(t0);
  std::cerr << "wrote " << output << ": " << r.program.layers.size() << " layers, " << eng->Describe().size() - 1
            << " GPU steps, " << o.precision << ", " << o.gpu.name << " (" << o.gpu.sm_arch << "), batch "
            << o.profile.min << ":" << o.profile.opt << ":" << o.profile.max << ", built in " << os.str() << " s\n";
  return Status::Ok();
}

Status BenchCuda(const BenchArgs& a) {
  runtime::CudaEngineOptions co;
  co.device = a.device;
  co.profile = a.profile;
  size_t free0 = 0, total = 0;
  cudaSetDevice(a.device);
  cudaMemGetInfo(&free0, &total);
  ASSIGN_OR_RETURN(auto eng, runtime::CudaEngine::Load(a.engine, co));
  reference::TensorMap inputs;
  if (!a.inputs.empty()) {
    ASSIGN_OR_RETURN(inputs, LoadInputs(a.inputs, eng->graph()));
  } else {
    ASSIGN_OR_RETURN(inputs, SyntheticInputs(eng->graph(), a.batch, 42));
  }
  const int64_t batch = inputs.begin()->second.dim(0);
  runtime::GpuRunTimes t;
  for (int i = 0; i < a.warmup; ++i) RETURN_IF_ERROR(eng->RunTimed(inputs, &t).status());
  size_t free1 = 0;
  cudaMemGetInfo(&free1, &total);
  std::vector<double> h2d, comp, d2h, e2e;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (a.iterations > 0 && i >= a.iterations) break;
    if (a.iterations == 0 && Seconds(start) >= a.duration_s && i >= 10) break;
    RETURN_IF_ERROR(eng->RunTimed(inputs, &t).status());
    h2d.push_back(t.h2d_ms);
    comp.push_back(t.compute_ms);
    d2h.push_back(t.d2h_ms);
    e2e.push_back(t.end_to_end_ms);
  }
  const double total_s = Seconds(start);
  const double bps = static_cast<double>(e2e.size()) / total_s;
  const auto& meta = eng->program().meta;
  const double mem_mb = static_cast<double>(free0 - free1) / 1e6;
  auto stats = [](const std::vector<double>& v) {
    const double mean = std::accumulate(v.begin(), v.end(), 0.0) / static_cast<double>(v.size());
    return nlohmann::json{{"min", Percentile(v, 0)},    {"p50", Percentile(v, 0.5)}, {"p90", Percentile(v, 0.9)},
                          {"p99", Percentile(v, 0.99)}, {"max", Percentile(v, 1)},   {"mean", mean}};
  };
  if (a.json) {
    nlohmann::json j = {{"engine", a.engine},
                        {"backend", "cuda"},
                        {"gpu", meta.gpu_name},
                        {"precision", meta.precision},
                        {"batch", batch},
                        {"bucket", t.bucket},
                        {"iterations", e2e.size()},
                        {"h2d_ms", stats(h2d)},
                        {"gpu_compute_ms", stats(comp)},
                        {"d2h_ms", stats(d2h)},
                        {"latency_ms", stats(e2e)},
                        {"batches_per_s", bps},
                        {"samples_per_s", bps * static_cast<double>(batch)},
                        {"gpu_compute_samples_per_s", static_cast<double>(batch) / (Percentile(comp, 0.5) / 1e3)},
                        {"gpu_memory_mb", mem_mb},
                        {"weights_mb", static_cast<double>(eng->weight_bytes()) / 1e6}};
    std::cout << j.dump() << "\n";
    return Status::Ok();
  }
  std::cout << std::fixed << std::setprecision(4);
  std::cout << "engine " << a.engine << " (cuda, " << meta.gpu_name << ", " << meta.precision << "), batch "
            << batch << " (bucket " << t.bucket << "), " << e2e.size() << " runs after " << a.warmup
            << " warm-up runs\n";
  auto line = [&](const char* what, const std::vector<double>& v) {
    std::cout << std::setw(12) << what << " ms: min " << Percentile(v, 0) << "  p50 " << Percentile(v, 0.5)
              << "  p90 " << Percentile(v, 0.9) << "  p99 " << Percentile(v, 0.99) << "  max " << Percentile(v, 1)
              << "\n";
  };
  line("H2D", h2d);
  line("GPU compute", comp);
  line("D2H", d2h);
  line("end-to-end", e2e);
  std::cout << std::setprecision(1) << "throughput: " << bps << " batches/s, " << bps * static_cast<double>(batch)
            << " samples/s end to end; " << static_cast<double>(batch) / (Percentile(comp, 0.5) / 1e3)
            << " samples/s of GPU compute\n";
  std::cout << "GPU memory: " << mem_mb << " MB in use by the engine (weights "
            << static_cast<double>(eng->weight_bytes()) / 1e6 << " MB)\n";
  if (a.profile) {
    std::cout << "\nper-step GPU profile (mean ms per run; steps launched one by one, no CUDA graph):\n"
              << std::setprecision(4);
    for (const auto& s : eng->Timings()) {
      if (s.calls == 0) continue;
      std::cout << "  " << std::setw(9) << s.total_ms / static_cast<double>(s.calls) << "  [" << s.kernel << "] "
                << s.name << "\n";
    }
  }
  return Status::Ok();
}

}  // namespace clickrt::cli::gpu
