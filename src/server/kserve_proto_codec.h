// KServe v2 gRPC messages (proto/grpc_predict_v2.proto) <-> clickrt tensors.
#pragma once

#include <string>
#include <vector>

#include "grpc_predict_v2.pb.h"
#include "server/kserve_codec.h"

namespace clickrt::server {

// Typed `contents` or `raw_input_contents` (one entry per input, little-endian row-major; then no
// input may carry contents). Errors name the input ("inputs[1] 'sparse'") and what is wrong.
StatusOr<InferRequest> DecodeInferProto(const inference::ModelInferRequest& request);

// Outputs in `order` (all when empty); raw_output_contents when `raw`, else typed contents.
Status EncodeInferProto(const std::string& model, const std::string& version,
                        const InferRequest& request, const reference::TensorMap& outputs,
                        inference::ModelInferResponse* response);

}  // namespace clickrt::server
