// LoadInferenceEngine: reads the backend from the engine file and hands it to that runtime.
#include "runtime/inference_engine.h"

#include <map>
#include <mutex>

#include "runtime/cpu_engine.h"

namespace clickrt::runtime {
namespace {

std::vector<IoSpec> Specs(const engine::Program& p, const std::vector<int32_t>& ids) {
  std::vector<IoSpec> v;
  v.reserve(ids.size());
  for (int32_t id : ids) {
    const engine::TensorDesc& d = p.tensors[id];
    v.push_back({d.name, d.dtype, d.dims});
  }
  return v;
}

class CpuInferenceEngine final : public InferenceEngine {
 public:
  explicit CpuInferenceEngine(std::unique_ptr<CpuEngine> engine) : engine_(std::move(engine)) {}
  StatusOr<reference::TensorMap> Run(const reference::TensorMap& inputs) override {
    return engine_->Run(inputs);
  }
  const engine::Program& program() const override { return engine_->program(); }
  std::vector<IoSpec> inputs() const override { return Specs(program(), program().inputs); }
  std::vector<IoSpec> outputs() const override { return Specs(program(), program().outputs); }
  std::string backend() const override { return "cpu"; }

 private:
  std::unique_ptr<CpuEngine> engine_;
};

std::map<std::string, EngineLoaderFn>& Loaders() {
  static std::map<std::string, EngineLoaderFn> loaders;
  return loaders;
}
std::mutex& LoaderMutex() {
  static std::mutex mu;
  return mu;
}

}  // namespace

void RegisterEngineLoader(const std::string& backend, EngineLoaderFn loader) {
  std::lock_guard<std::mutex> l(LoaderMutex());
  Loaders()[backend] = std::move(loader);
}

StatusOr<std::unique_ptr<InferenceEngine>> LoadInferenceEngine(const std::string& path,
                                                               const EngineLoadOptions& options) {
  // The metadata says which runtime to use; that runtime's loader validates the whole file
  // (checksum included), so the weights are hashed once. A probe that fails is answered with the
  // full load's error, so a corrupt file is reported as such (checksum first), not as bad JSON.
  std::string backend;
  {
    engine::Expectations metadata_only;
    metadata_only.verify_checksum = false;
    auto probe = engine::LoadEngine(path, metadata_only);
    if (!probe.ok()) return engine::LoadEngine(path).status();
    backend = (*probe)->program().meta.backend;
  }
  if (backend != "cpu") {
    EngineLoaderFn loader;
    {
      std::lock_guard<std::mutex> l(LoaderMutex());
      auto it = Loaders().find(backend);
      if (it != Loaders().end()) loader = it->second;
    }
    if (loader) return loader(path, options);
  }
  if (backend == "cuda") {
    return Unimplemented("engine " + path +
                         " was built for the cuda backend; this build has no CUDA runtime");
  }
  if (backend != "cpu") {
    return InvalidArgument("engine " + path + " names an unknown backend '" + backend + "'");
  }
  CpuEngineOptions cpu;
  cpu.threads = options.cpu_threads;
  ASSIGN_OR_RETURN(auto eng, CpuEngine::Load(path, cpu));
  return std::unique_ptr<InferenceEngine>(new CpuInferenceEngine(std::move(eng)));
}

}  // namespace clickrt::runtime
