// KServe v2 / Open Inference Protocol tensors <-> clickrt tensors, for JSON (HTTP) bodies.
// The protobuf (gRPC) side is in kserve_proto_codec.h.
//
// A request's tensors are checked here only for self-consistency (datatype known, data count
// equal to the shape's element count); ModelVersion::CheckInputs checks them against the model.
// Decoders never throw and never allocate more than the body implies: they are fuzzed
// (fuzz/request_decoders_fuzz.cc).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "base/tensor.h"
#include "clickrt/status.h"
#include "reference/executor.h"

namespace clickrt::server {

// "FP32" <-> kFloat32, "INT64" <-> kInt64, ... (BOOL, UINT8, INT8, INT32, FP16, FP64, BF16).
StatusOr<DType> DTypeFromKServe(std::string_view datatype);
const char* KServeDatatype(DType dtype);

struct InferRequest {
  std::string id;
  reference::TensorMap inputs;
  std::vector<std::string> outputs;  // the requested outputs; empty = all
  bool raw = false;                  // inputs came as raw bytes (gRPC): answer in raw bytes too
};

// The JSON body of POST /v2/models/{m}/infer: {"id"?, "inputs": [{"name", "shape",
// "datatype", "data": flat or nested array}], "outputs"?: [{"name"}]}. Errors name the JSON path
// ("inputs[1].data[3]") and what is wrong.
StatusOr<InferRequest> DecodeInferJson(std::string_view body);

// {"model_name", "model_version", "id"?, "outputs": [{"name", "datatype", "shape", "data"}]},
// outputs in `order` (all of `outputs` when empty).
StatusOr<std::string> EncodeInferJson(const std::string& model, const std::string& version,
                                      const std::string& id, const reference::TensorMap& outputs,
                                      const std::vector<std::string>& order);

// Checks a request's shape, returns its element count; `where` prefixes errors. Rejects negative
// dims, more than 8 dims and counts above `max_elements`.
StatusOr<int64_t> CheckedElementCount(const std::vector<int64_t>& shape, int64_t max_elements,
                                      const std::string& where);

// The outputs a reply carries: `requested` (each must exist) or all, in the model's order.
StatusOr<std::vector<std::string>> SelectOutputs(const std::vector<std::string>& requested,
                                                 const reference::TensorMap& outputs);

}  // namespace clickrt::server
