// GPU discovery. Never sees the IR; used by the CLI, the runtime and the tests.
#pragma once

#include <string>
#include <vector>

#include "clickrt/status.h"

namespace clickrt::cuda {

struct DeviceInfo {
  int index = 0;
  std::string name;
  int sm_major = 0, sm_minor = 0;
  size_t total_memory = 0;
  int multiprocessors = 0;
};

// The visible GPUs; an empty list (not an error) where there is no driver or no GPU.
std::vector<DeviceInfo> ListDevices();
// "13.0" style runtime and driver versions.
std::string RuntimeVersion();
std::string DriverVersion();

// y = sigmoid(x) on the GPU for n floats in host memory (a known-answer probe of the device).
Status SigmoidOnDevice(const float* x, float* y, int64_t n, int device);

}  // namespace clickrt::cuda
