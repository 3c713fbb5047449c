// The model repository `clickrt serve` loads at start-up, and loads / unloads versions of while
// serving (admin API, polling: server/admin.h).
//
// Layout (as in Triton and KServe): `<repo>/<model>/<version>/`, where <version> is a positive
// integer; the highest version answers a request that names none. A version folder holds:
//   model.engine   an engine file (clickrt build), or
//   model.onnx     built at load with the compiler (batch profile 1:min(64,max):max_batch)
//   schema.json    the feature schema (features/schema.h); its inputs must be the engine's
//   features.json  optional: which schema fields come from the user row, the item row and the
//                  request context ({"user": [names], "item": [names], "context": [names]});
//                  when present, a ranking request's context may only name context fields
//   config.json    optional: the serving config below; unknown keys are errors (typos)
// Names starting with '.' are skipped; anything else malformed fails the load with a message
// naming the path.
#pragma once

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <shared_mutex>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "features/schema.h"
#include "runtime/batcher.h"
#include "runtime/inference_engine.h"
#include "server/health.h"

namespace clickrt::server {

class Metrics;

// config.json. Every key is optional.
struct ModelConfig {
  int64_t max_batch = 0;                       // "max_batch"; 0 = the engine's profile max
  std::vector<int64_t> preferred_batch_sizes;  // "preferred_batch_sizes"
  int64_t max_queue_delay_us = 500;            // "max_queue_delay_us"
  int64_t queue_size = 16384;                  // "queue_size": rows waiting, then 429
  int64_t timeout_ms = 1000;                   // "timeout_ms": queue + compute per request
  int instance_count = 1;                      // "instance_count": batches run in parallel
  int64_t candidates_limit = 1000;             // "candidates_limit": per ranking request
  int64_t feature_timeout_ms = 50;             // "feature_timeout_ms": one MultiGet's deadline
  std::string score_output;                    // "score_output": "" = the first output
  int64_t build_max_batch = 512;               // "build_max_batch": profile max for model.onnx
};
// Errors name `source` and the key.
StatusOr<ModelConfig> ParseModelConfig(const std::string& json_text, const std::string& source);

// features.json: the schema fields each source holds.
struct FeatureSources {
  std::set<std::string> user, item, context;
};
StatusOr<FeatureSources> ParseFeatureSources(const std::string& json_text,
                                             const std::string& source);

// One loaded version: engine, schema, batcher. Shared by the requests using it.
struct ModelVersion {
  std::string name, version, dir;
  ModelConfig config;
  std::unique_ptr<runtime::InferenceEngine> engine;
  std::vector<runtime::IoSpec> inputs, outputs;
  std::shared_ptr<const features::Schema> schema;
  std::optional<FeatureSources> sources;
  std::set<std::string> schema_fields;  // every field a feature row or a context may name
  std::string source_file;              // model.engine or model.onnx it came from
  std::unique_ptr<runtime::DynamicBatcher> batcher;

  ~ModelVersion();  // the batcher goes first: it calls into the engine

  // Checks `inputs` against the engine's inputs (names, dtypes, ranks, fixed dims, one batch
  // size >= 1) and returns the batch size. Errors name the input.
  StatusOr<int64_t> CheckInputs(const std::map<std::string, Tensor>& inputs) const;
  // Scores through the batcher; a request larger than max_batch is split into max_batch
  // chunks whose outputs are joined back in order.
  StatusOr<std::map<std::string, Tensor>> Infer(std::map<std::string, Tensor> inputs,
                                                int priority = 0) const;
  int64_t max_batch() const { return config.max_batch; }
};

struct RepositoryOptions {
  runtime::EngineLoadOptions engine;
  Metrics* metrics = nullptr;  // batch, queue and compute metrics; null = none
  // Progress lines while loading (model builds take seconds); null = silent.
  std::function<void(const std::string&)> progress;
  FallbackPolicy fallback;  // GPU engines behind a probed CPU fallback (server/health.h)
};

// Thread-safe: versions are loaded and unloaded while requests are served. A request holds a
// shared_ptr to its version, so an unloaded version drains: requests in flight finish on it and
// it is freed with the last one.
//
// The default version (a request that names none) is the pinned one (SetDefault, set when a
// canary is promoted) until it is unloaded or a higher version is loaded, else the highest loaded
// version that is not a canary candidate.
class ModelRepository {
 public:
  static StatusOr<std::unique_ptr<ModelRepository>> Load(const std::string& root,
                                                         const RepositoryOptions& options);
  // `version` "" = the default. NotFound names the model / version and what exists.
  StatusOr<std::shared_ptr<const ModelVersion>> Find(const std::string& model,
                                                     const std::string& version) const;
  // For a ranking request that names no model: the only model, else InvalidArgument.
  StatusOr<std::string> DefaultModel() const;
  std::vector<std::string> ModelNames() const;
  // Versions of `model`, highest first.
  std::vector<std::string> Versions(const std::string& model) const;
  const std::string& root() const { return root_; }

  // Loads (or reloads) <root>/<model>/<version>; `version` "" = every version folder of the
  // model that is not loaded yet. A failure leaves the serving versions untouched, is logged
  // (progress), counted (clickrt_model_load_failures_total) and kept for Index(). Returns the
  // versions loaded.
  StatusOr<std::vector<std::string>> LoadVersion(const std::string& model,
                                                 const std::string& version);
  // Stops routing to a version (`version` "" = every version of the model); requests in flight
  // finish on it. Returns the versions unloaded.
  StatusOr<std::vector<std::string>> UnloadVersion(const std::string& model,
                                                   const std::string& version);
  // Rescans the root: loads version folders that appeared (a folder that failed is retried
  // only when its files change) and unloads the ones that disappeared. Lines describing each
  // change go to the progress callback.
  void Rescan();

  // Pins the default version of a model (it must be loaded).
  Status SetDefault(const std::string& model, const std::string& version);
  // Excludes a version from the default (the canary candidate); "" clears it.
  void SetCandidate(const std::string& model, const std::string& version);

  struct IndexEntry {
    std::string name, version, state, reason;  // state: READY, UNAVAILABLE
    bool is_default = false;
  };
  // Every version loaded or present on disk, with its state (KServe repository index).
  std::vector<IndexEntry> Index() const;

 private:
  using VersionMap = std::map<int64_t, std::shared_ptr<ModelVersion>>;
  std::shared_ptr<ModelVersion> DefaultOf(const std::string& model, const VersionMap& v) const;
  StatusOr<std::shared_ptr<ModelVersion>> LoadOne(const std::string& model, int64_t version);
  StatusOr<std::vector<std::string>> Unload(const std::string& model, const std::string& version);

  std::string root_;
  RepositoryOptions options_;
  mutable std::shared_mutex mu_;
  // model -> version number -> loaded version.
  std::map<std::string, VersionMap> models_;
  std::map<std::string, int64_t> pinned_, candidate_;
  // "<model>/<version>" -> the last load error and the folder's fingerprint when it failed.
  std::map<std::string, std::pair<std::string, std::string>> failed_;
};

// A model or version name an admin request may use: [A-Za-z0-9_.-]{1,128}, not starting with
// '.', no "..": it stays inside the repository root.
Status ValidateRepositoryName(const std::string& name, const char* what);

// Loads one version folder (exposed for tests).
StatusOr<std::shared_ptr<ModelVersion>> LoadModelVersion(const std::string& dir,
                                                         const std::string& name,
                                                         const std::string& version,
                                                         const RepositoryOptions& options);

}  // namespace clickrt::server
