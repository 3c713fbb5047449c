// A folder of ONNX TensorProto files as a set of named tensors: what `clickrt run --inputs DIR`
// and the calibration / evaluation data sets (src/quant/dataset.h) read.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "base/tensor.h"

namespace clickrt::onnx_import {

// For each name in `names` (position i), reads `<dir>/<name>.pb`, or, where that file does not
// exist, the ONNX test-data style `<dir>/input_<i>.pb`. NotFound naming both paths when neither
// exists; a file's read error names the file.
StatusOr<std::map<std::string, Tensor>> ReadTensorProtoDir(const std::string& dir,
                                                           const std::vector<std::string>& names);

}  // namespace clickrt::onnx_import
