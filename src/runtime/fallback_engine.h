// FallbackEngine: a primary engine (a GPU) with a warm CPU engine of the same model behind it.
//
// Run() goes to the primary while it is healthy. A primary call that fails with a device error
// (Internal, Unavailable, DataLoss, DeadlineExceeded: not a bad-input error, which is returned
// as is) or that does not return within `run_deadline` (a hang) marks the primary unhealthy,
// logs an alert line, and the same request is run once more on the CPU engine, so requests in
// flight are answered. While unhealthy every Run() goes to the CPU engine.
//
// A probe thread runs a known-answer inference on the primary every `probe_interval`: fixed
// inputs whose outputs were recorded at Create(), compared within `probe_tolerance`, under
// `probe_deadline`. A failed, wrong or late probe marks the primary unhealthy;
// `recover_after` consecutive good probes while unhealthy send traffic back to it.
//
// Primary calls run on the engine's own worker threads so that the caller can stop waiting at
// the deadline; a hung call keeps its worker (more are made on demand), and no new probe is
// started while an earlier one is still stuck.
//
// Inject() (tests, `clickrt serve --fault-injection`) makes every primary call fail with a CUDA
// error ("cuda_error"), block until cleared ("hang"), or return perturbed outputs ("corrupt",
// seen only by the probe); "clear" removes the fault. Any two engines can be combined, so the
// switching logic is tested with a CPU engine standing in for the GPU.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "runtime/inference_engine.h"

namespace clickrt::runtime {

struct FallbackOptions {
  std::string name;  // in alert lines, e.g. "deepfm/2"
  std::chrono::milliseconds run_deadline{250};
  std::chrono::milliseconds probe_interval{1000};
  std::chrono::milliseconds probe_deadline{250};
  int recover_after = 3;          // consecutive good probes that end the fallback
  double probe_tolerance = 1e-3;  // max |got - recorded| per output element
  // Alert lines ("primary unhealthy: ...", "primary recovered ..."); null = std::cerr.
  std::function<void(const std::string&)> alert;
};

class FallbackEngine final : public InferenceEngine {
 public:
  // Fails when the engines' inputs or outputs differ, or when the primary cannot answer the
  // known-answer inputs (they are recorded here).
  static StatusOr<std::unique_ptr<FallbackEngine>> Create(std::unique_ptr<InferenceEngine> primary,
                                                          std::unique_ptr<InferenceEngine> cpu,
                                                          const FallbackOptions& options);
  ~FallbackEngine() override;  // stops the probe; wakes injected hangs and joins the workers

  StatusOr<reference::TensorMap> Run(const reference::TensorMap& inputs) override;
  const engine::Program& program() const override;
  std::vector<IoSpec> inputs() const override;
  std::vector<IoSpec> outputs() const override;
  // The primary's backend (what the version was deployed on); backend_in_use() says which runs.
  std::string backend() const override;

  bool healthy() const;
  std::string backend_in_use() const;

  // "cuda_error", "hang", "corrupt" or "clear"; anything else is InvalidArgument.
  Status Inject(const std::string& kind);

  struct Stats {
    int64_t primary_runs = 0, primary_failures = 0, cpu_runs = 0, retried = 0;
    int64_t probes = 0, probe_failures = 0, failovers = 0, recoveries = 0;
  };
  Stats stats() const;

  struct Impl;

 private:
  explicit FallbackEngine(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clickrt::runtime
