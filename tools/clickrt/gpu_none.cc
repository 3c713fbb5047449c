// The CLI's GPU parts in a build without CUDA.
#include "gpu.h"

#include "engine/engine_file.h"

namespace clickrt::cli::gpu {

void Install() {}

Status BuildCuda(const std::string&, compiler::BuildOptions, const std::string&, const std::string&, int, bool) {
  return Unimplemented("this clickrt was built without CUDA: --backend cuda is not available");
}

Status BenchCuda(const BenchArgs& args) {
  return Unimplemented("engine " + args.engine + " is a cuda engine; this clickrt was built without CUDA");
}

bool IsCudaEngine(const std::string& path) {
  engine::Expectations e;
  e.verify_checksum = false;
  auto eng = engine::LoadEngine(path, e);
  return eng.ok() && (*eng)->program().meta.backend == "cuda";
}

}  // namespace clickrt::cli::gpu
