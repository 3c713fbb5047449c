// `clickrt bench`: time an engine the way trtexec does: warm-up, then timed runs, latency
// percentiles, throughput, and with --profile the time per layer.
#include <algorithm>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <memory>
#include <numeric>

#include <nlohmann/json.hpp>

#include "commands.h"
#include "gpu.h"
#include "runtime/cpu_engine.h"
#include "tensor_io.h"

namespace clickrt::cli {
namespace {

struct BenchCmd {
  std::string engine, inputs, save_inputs;
  int64_t batch = 1;
  int iterations = 0;      // 0 = run for --duration
  double duration_s = 3.0;
  int warmup = 20;
  int threads = 0;
  int device = 0;
  bool profile = false, json = false;
};

Status Bench(const BenchCmd& c) {
  if (gpu::IsCudaEngine(c.engine)) {
    gpu::BenchArgs a;
    a.engine = c.engine;
    a.inputs = c.inputs;
    a.batch = c.batch;
    a.iterations = c.iterations;
    a.duration_s = c.duration_s;
    a.warmup = c.warmup;
    a.device = c.device;
    a.profile = c.profile;
    a.json = c.json;
    return gpu::BenchCuda(a);
  }
  runtime::CpuEngineOptions eo;
  eo.threads = c.threads;
  eo.profile = c.profile;
  ASSIGN_OR_RETURN(auto eng, runtime::CpuEngine::Load(c.engine, eo));
  reference::TensorMap inputs;
  if (!c.inputs.empty()) {
    ASSIGN_OR_RETURN(inputs, LoadInputs(c.inputs, eng->graph()));
  } else {
    ASSIGN_OR_RETURN(inputs, SyntheticInputs(eng->graph(), c.batch, 42));
  }
  if (!c.save_inputs.empty()) {
    std::ofstream f(c.save_inputs);
    f << TensorsToJson(inputs) << "\n";
    if (!f) return NotFound("cannot write '" + c.save_inputs + "'");
  }
  int64_t batch = inputs.empty() ? 1 : inputs.begin()->second.rank() ? inputs.begin()->second.dim(0) : 1;
  for (int i = 0; i < c.warmup; ++i) {
    ASSIGN_OR_RETURN(auto out, eng->Run(inputs));
  }
  eng->ResetTimings();
  std::vector<double> lat_ms;
  const auto start = std::chrono::steady_clock::now();
  for (int i = 0;; ++i) {
    if (c.iterations > 0 && i >= c.iterations) break;
    auto t0 = std::chrono::steady_clock::now();
    if (c.iterations == 0 && std::chrono::duration<double>(t0 - start).count() >= c.duration_s && i >= 10) break;
    ASSIGN_OR_RETURN(auto out, eng->Run(inputs));
    lat_ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
  }
  const double total_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const double mean = std::accumulate(lat_ms.begin(), lat_ms.end(), 0.0) / static_cast<double>(lat_ms.size());
  const double qps = static_cast<double>(lat_ms.size()) / total_s;
  const auto& meta = eng->program().meta;
  if (c.json) {
    nlohmann::json j = {{"engine", c.engine}, {"batch", batch}, {"iterations", lat_ms.size()},
                        {"threads", c.threads}, {"isa", meta.cpu_isa},
                        {"latency_ms", {{"min", Percentile(lat_ms, 0)}, {"p50", Percentile(lat_ms, 0.5)},
                                        {"p90", Percentile(lat_ms, 0.9)}, {"p99", Percentile(lat_ms, 0.99)},
                                        {"max", Percentile(lat_ms, 1)}, {"mean", mean}}},
                        {"batches_per_s", qps}, {"samples_per_s", qps * static_cast<double>(batch)}};
    std::cout << j.dump() << "\n";
    return Status::Ok();
  }
  std::cout << std::fixed << std::setprecision(4);
  std::cout << "engine " << c.engine << " (" << meta.backend << ", " << meta.cpu_isa << ", "
            << meta.precision << "), batch " << batch << ", " << lat_ms.size() << " runs after "
            << c.warmup << " warm-up runs\n";
  std::cout << "latency ms: min " << Percentile(lat_ms, 0) << "  p50 " << Percentile(lat_ms, 0.5)
            << "  p90 " << Percentile(lat_ms, 0.9) << "  p99 " << Percentile(lat_ms, 0.99) << "  max "
            << Percentile(lat_ms, 1) << "  mean " << mean << "\n";
  std::cout << std::setprecision(1) << "throughput: " << qps << " batches/s, "
            << qps * static_cast<double>(batch) << " samples/s\n";
  if (c.profile) {
    auto t = eng->Timings();
    double sum = 0;
    for (const auto& l : t) sum += l.total_ms;
    std::cout << "\nper-layer profile (mean ms per run, share of layer time):\n";
    std::cout << std::setprecision(4);
    for (const auto& l : t) {
      if (l.calls == 0) continue;
      std::cout << "  " << std::setw(9) << l.total_ms / static_cast<double>(l.calls) << "  "
                << std::setw(5) << std::setprecision(1) << 100.0 * l.total_ms / sum << "%  "
                << std::setprecision(4) << l.op << " '" << l.name << "' [" << l.kernel << "]\n";
    }
  }
  return Status::Ok();
}

}  // namespace

double Percentile(std::vector<double> v, double q) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  return v[std::min(i, v.size() - 1)];
}

void RegisterBench(CLI::App& app, int* exit_code) {
  auto c = std::make_shared<BenchCmd>();
  CLI::App* cmd = app.add_subcommand("bench", "Time an engine: latency percentiles, throughput, "
                                              "per-layer profile (cuda engines: H2D, GPU compute, D2H, "
                                              "end-to-end, GPU memory)");
  cmd->add_option("engine", c->engine, "Engine file (from clickrt build)")->required();
  cmd->add_option("--batch", c->batch, "Batch size of the synthetic inputs")->capture_default_str();
  cmd->add_option("--inputs", c->inputs, "Use these inputs (as for clickrt run) instead of synthetic ones");
  cmd->add_option("--iterations", c->iterations, "Timed runs (0: run for --duration)")->capture_default_str();
  cmd->add_option("--duration", c->duration_s, "Seconds of timed runs when --iterations is 0")->capture_default_str();
  cmd->add_option("--warmup", c->warmup, "Untimed runs first")->capture_default_str();
  cmd->add_option("--threads", c->threads, "CPU threads (0: all this process may use)")->capture_default_str();
  cmd->add_option("--device", c->device, "GPU index for a cuda engine")->capture_default_str();
  cmd->add_option("--save-inputs", c->save_inputs, "Write the inputs used as JSON (for peers)");
  cmd->add_flag("--profile", c->profile, "Also print the time per layer (cuda: per GPU step, without CUDA graphs)");
  cmd->add_flag("--json", c->json, "One JSON line instead of text");
  cmd->callback([c, exit_code] {
    Status s = Bench(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
