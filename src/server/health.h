// How the model repository makes a version's engine: GPU engines are served behind a
// runtime::FallbackEngine (a probed primary with a warm CPU engine built from the version's
// model.onnx), so a failing or hung GPU degrades the version to CPU instead of failing requests.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "runtime/fallback_engine.h"
#include "runtime/inference_engine.h"

namespace clickrt::server {

struct FallbackPolicy {
  // `clickrt serve --fault-injection` (tests only): CPU engines are wrapped too, with the engine
  // itself as the "primary", so faults can be injected where no GPU exists; and
  // POST /v2/debug/fault is served.
  bool fault_injection = false;
  runtime::FallbackOptions options;  // `name` is set per version
};

// Builds model.onnx into a CPU engine whose batch profile reaches at least `max_batch`.
using BuildOnnxFn = std::function<StatusOr<std::unique_ptr<runtime::InferenceEngine>>(
    const std::string& onnx, int64_t max_batch)>;

// The engine of the version folder `dir` (`name` labels alerts, e.g. "deepfm/2"):
//   model.engine (cpu)   loaded as is
//   model.engine (cuda)  loaded, wrapped in a FallbackEngine whose CPU engine is built from
//                        model.onnx (required: FailedPrecondition naming the folder otherwise)
//   model.onnx alone     built for the CPU
// With policy.fault_injection every CPU engine is wrapped as well. `source_file` gets the file
// the primary came from.
StatusOr<std::unique_ptr<runtime::InferenceEngine>> LoadVersionEngine(
    const std::string& dir, const std::string& name, int64_t build_max_batch,
    const runtime::EngineLoadOptions& engine_options, const FallbackPolicy& policy,
    const BuildOnnxFn& build, std::string* source_file);

// The FallbackEngine behind `engine`, or null.
runtime::FallbackEngine* AsFallback(runtime::InferenceEngine* engine);

class ModelRepository;
class Metrics;

// "model/version" of every version whose primary is unhealthy (serving from its CPU engine).
std::vector<std::string> DegradedVersions(const ModelRepository& repo);

// Sets clickrt_backend_degraded{model,version} and clickrt_backend_in_use{model,version,backend}
// for every version behind a FallbackEngine (before /metrics renders).
void ExportHealth(const ModelRepository& repo, Metrics* metrics);

// POST /v2/debug/fault (with --fault-injection): body {"model": m, "kind": k, "version": v}
// ("version" optional: every loaded version of m). Returns the "model/version"s injected;
// InvalidArgument for a bad body or kind, NotFound for an unknown model or one with no
// FallbackEngine.
StatusOr<std::vector<std::string>> InjectFault(const ModelRepository& repo,
                                               const std::string& body);

}  // namespace clickrt::server
