// ONNX -> ir::Graph. The only code in clickrt that sees protobuf.
//
// Supports opsets 7..21 of the default domain for the ops in src/ir/op_list.inc (the exporters of
// PyTorch 1.13 and 2.x emit 13..18), initializers stored inline or as external data (mmapped),
// and graph inputs with symbolic dimensions. Nodes of other ops are kept as OpKind::kUnsupported so
// `clickrt info` can list them; ImportOptions::allow_unsupported=false makes them an error.
#pragma once

#include <string>

#include "base/tensor.h"
#include "ir/graph.h"

namespace clickrt::onnx_import {

struct ImportOptions {
  bool allow_unsupported = false;  // keep unknown ops instead of failing
  bool infer_shapes = true;        // run dtype / shape inference after import
};

inline constexpr int kMinOpset = 7;
inline constexpr int kMaxOpset = 21;

// Reads and converts a .onnx file. Errors name the file and, where relevant, the node or tensor.
StatusOr<std::unique_ptr<ir::Graph>> ImportModel(const std::string& path,
                                                  const ImportOptions& options = {});
// Same from bytes in memory; `base_dir` resolves external-data paths.
StatusOr<std::unique_ptr<ir::Graph>> ImportModelFromBytes(const std::string& bytes,
                                                           const std::string& base_dir,
                                                           const ImportOptions& options = {});

// A serialized ONNX TensorProto (the .pb files of ONNX's test data) to a Tensor; `name` receives
// the proto's name field if non-null.
StatusOr<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name = nullptr);
// Writes a Tensor as a serialized TensorProto with the given name.
Status WriteTensorProtoFile(const Tensor& t, const std::string& name, const std::string& path);

}  // namespace clickrt::onnx_import
