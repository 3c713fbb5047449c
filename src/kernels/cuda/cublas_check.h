// cuBLAS / cuBLASLt errors as Status, carrying the failing statement, file and line.
#pragma once

#include <cublasLt.h>

#include <string>

#include "clickrt/status.h"

namespace clickrt::cuda {

inline Status CublasStatus(cublasStatus_t status, const char* stmt, const char* file, int line) {
  if (status == CUBLAS_STATUS_SUCCESS) return Status::Ok();
  // NOT_SUPPORTED means "no kernel for this problem here": the caller's input, not a bug.
  StatusCode code =
      status == CUBLAS_STATUS_NOT_SUPPORTED ? StatusCode::kUnimplemented : StatusCode::kInternal;
  return Status(code, std::string("cuBLASLt error ") + cublasLtGetStatusName(status) + " (" +
                          cublasLtGetStatusString(status) + ") in `" + stmt + "` at " + file + ":" +
                          std::to_string(line));
}

}  // namespace clickrt::cuda

#define CUBLAS_RETURN_IF_ERROR(stmt) \
  RETURN_IF_ERROR(::clickrt::cuda::CublasStatus((stmt), #stmt, __FILE__, __LINE__))
