#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/device.h"

namespace clickrt::cuda {

std::vector<DeviceInfo> ListDevices() {
  std::vector<DeviceInfo> out;
  int count = 0;
  if (cudaGetDeviceCount(&count) != cudaSuccess) {
    cudaGetLastError();  // clear the sticky "no device" error
    return out;
  }
  for (int i = 0; i < count; ++i) {
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
    out.push_back({i, p.name, p.major, p.minor, p.totalGlobalMem, p.multiProcessorCount});
  }
  return out;
}

static std::string VersionString(int v) {
  return std::to_string(v / 1000) + "." + std::to_string((v % 1000) / 10);
}

std::string RuntimeVersion() {
  int v = 0;
  cudaRuntimeGetVersion(&v);
  return VersionString(v);
}

std::string DriverVersion() {
  int v = 0;
  if (cudaDriverGetVersion(&v) != cudaSuccess || v == 0) return "none";
  return VersionString(v);
}

}  // namespace clickrt::cuda
