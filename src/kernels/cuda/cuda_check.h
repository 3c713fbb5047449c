// CUDA errors as Status, carrying the failing statement, file and line.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "clickrt/status.h"

namespace clickrt::cuda {

inline Status CudaStatus(cudaError_t err, const char* stmt, const char* file, int line) {
  if (err == cudaSuccess) return Status::Ok();
  return Status(StatusCode::kInternal, std::string("CUDA error ") + cudaGetErrorName(err) + " (" +
                                           cudaGetErrorString(err) + ") in `" + stmt + "` at " +
                                           file + ":" + std::to_string(line));
}

}  // namespace clickrt::cuda

#define CUDA_RETURN_IF_ERROR(stmt) \
  RETURN_IF_ERROR(::clickrt::cuda::CudaStatus((stmt), #stmt, __FILE__, __LINE__))
