#include "server/health.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "server/model_repository.h"
#include "server/server_metrics.h"

namespace clickrt::server {
namespace fs = std::filesystem;
using runtime::InferenceEngine;

namespace {

// One engine seen through two handles (fault injection over a CPU engine: primary and fallback
// are the same engine; Run() is thread-safe).
class SharedEngine final : public InferenceEngine {
 public:
  explicit SharedEngine(std::shared_ptr<InferenceEngine> e) : e_(std::move(e)) {}
  StatusOr<reference::TensorMap> Run(const reference::TensorMap& in) override {
    return e_->Run(in);
  }
  const engine::Program& program() const override { return e_->program(); }
  std::vector<runtime::IoSpec> inputs() const override { return e_->inputs(); }
  std::vector<runtime::IoSpec> outputs() const override { return e_->outputs(); }
  std::string backend() const override { return e_->backend(); }

 private:
  std::shared_ptr<InferenceEngine> e_;
};

StatusOr<std::unique_ptr<InferenceEngine>> Wrap(std::unique_ptr<InferenceEngine> primary,
                                                std::unique_ptr<InferenceEngine> cpu,
                                                const std::string& name,
                                                const FallbackPolicy& policy) {
  runtime::FallbackOptions fo = policy.options;
  fo.name = name;
  ASSIGN_OR_RETURN(auto f, runtime::FallbackEngine::Create(std::move(primary), std::move(cpu), fo));
  return std::unique_ptr<InferenceEngine>(std::move(f));
}

StatusOr<std::unique_ptr<InferenceEngine>> WrapSelf(std::unique_ptr<InferenceEngine> e,
                                                    const std::string& name,
                                                    const FallbackPolicy& policy) {
  std::shared_ptr<InferenceEngine> shared(std::move(e));
  return Wrap(std::make_unique<SharedEngine>(shared), std::make_unique<SharedEngine>(shared), name,
              policy);
}

}  // namespace

StatusOr<std::unique_ptr<InferenceEngine>> LoadVersionEngine(
    const std::string& dir, const std::string& name, int64_t build_max_batch,
    const runtime::EngineLoadOptions& engine_options, const FallbackPolicy& policy,
    const BuildOnnxFn& build, std::string* source_file) {
  const fs::path d(dir);
  const std::string onnx = (d / "model.onnx").string();
  std::unique_ptr<InferenceEngine> eng;
  if (fs::exists(d / "model.engine")) {
    *source_file = (d / "model.engine").string();
    std::string backend;
    {  // the header alone, so a missing model.onnx is reported before a GPU load
      ASSIGN_OR_RETURN(auto header, engine::LoadEngine(*source_file));
      backend = header->program().meta.backend;
    }
    if (backend != "cpu" && !fs::exists(onnx)) {
      return FailedPrecondition(dir + ": a " + backend +
                                " engine is served with a CPU fallback built from model.onnx, "
                                "and this folder has no model.onnx");
    }
    ASSIGN_OR_RETURN(eng, runtime::LoadInferenceEngine(*source_file, engine_options));
    if (eng->backend() != "cpu") {
      ASSIGN_OR_RETURN(auto cpu, build(onnx, std::max(build_max_batch, eng->max_batch())));
      return Wrap(std::move(eng), std::move(cpu), name, policy);
    }
  } else if (fs::exists(onnx)) {
    *source_file = onnx;
    ASSIGN_OR_RETURN(eng, build(onnx, build_max_batch));
  } else {
    return NotFound(dir + ": holds neither model.engine nor model.onnx");
  }
  if (policy.fault_injection) return WrapSelf(std::move(eng), name, policy);
  return eng;
}

runtime::FallbackEngine* AsFallback(InferenceEngine* engine) {
  return dynamic_cast<runtime::FallbackEngine*>(engine);
}

namespace {

// Every loaded version of `model` ("" = every model) with its FallbackEngine.
template <typename Fn>
void ForEachFallback(const ModelRepository& repo, const std::string& model, Fn fn) {
  for (const std::string& m : repo.ModelNames()) {
    if (!model.empty() && m != model) continue;
    for (const std::string& v : repo.Versions(m)) {
      auto mv = repo.Find(m, v);
      if (!mv.ok()) continue;
      if (runtime::FallbackEngine* f = AsFallback((*mv)->engine.get())) fn(m, v, f);
    }
  }
}

}  // namespace

std::vector<std::string> DegradedVersions(const ModelRepository& repo) {
  std::vector<std::string> out;
  ForEachFallback(repo, "",
                  [&](const std::string& m, const std::string& v, runtime::FallbackEngine* f) {
                    if (!f->healthy()) out.push_back(m + "/" + v);
                  });
  return out;
}

void ExportHealth(const ModelRepository& repo, Metrics* metrics) {
  if (!metrics) return;
  ForEachFallback(
      repo, "", [&](const std::string& m, const std::string& v, runtime::FallbackEngine* f) {
        const bool healthy = f->healthy();
        metrics->Set(metric::kBackendDegraded, {{"model", m}, {"version", v}}, healthy ? 0 : 1);
        // With --fault-injection over a CPU engine both are "cpu": the in-use one wins.
        metrics->Set(metric::kBackendInUse,
                     {{"model", m}, {"version", v}, {"backend", f->backend()}}, healthy ? 1 : 0);
        metrics->Set(metric::kBackendInUse, {{"model", m}, {"version", v}, {"backend", "cpu"}},
                     healthy && f->backend() != "cpu" ? 0 : 1);
      });
}

StatusOr<std::vector<std::string>> InjectFault(const ModelRepository& repo,
                                               const std::string& body) {
  using nlohmann::json;
  json j = json::parse(body, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("the body must be a JSON object");
  auto str = [&](const char* key) {
    auto it = j.find(key);
    return it != j.end() && it->is_string() ? it->get<std::string>() : std::string();
  };
  const std::string model = str("model"), kind = str("kind"), version = str("version");
  if (model.empty() || kind.empty()) {
    return InvalidArgument(
        "the body needs \"model\" and \"kind\" (cuda_error, hang, corrupt, clear)");
  }
  std::vector<std::string> done;
  Status first;
  ForEachFallback(repo, model,
                  [&](const std::string& m, const std::string& v, runtime::FallbackEngine* f) {
                    if (!version.empty() && v != version) return;
                    Status s = f->Inject(kind);
                    if (s.ok()) {
                      done.push_back(m + "/" + v);
                    } else if (first.ok()) {
                      first = s;
                    }
                  });
  if (!first.ok()) return first;
  if (done.empty()) {
    return NotFound("model '" + model + "'" + (version.empty() ? "" : " version " + version) +
                    " has no engine with a fallback (is the server run with --fault-injection?)");
  }
  return done;
}

}  // namespace clickrt::server
