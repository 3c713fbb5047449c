#include "import/onnx/tensor_dir.h"

#include <filesystem>

#include "import/onnx/onnx_importer.h"

namespace clickrt::onnx_import {
namespace fs = std::filesystem;

StatusOr<std::map<std::string, Tensor>> ReadTensorProtoDir(const std::string& dir,
                                                           const std::vector<std::string>& names) {
  std::map<std::string, Tensor> out;
  std::error_code ec;
  for (size_t i = 0; i < names.size(); ++i) {
    const std::string& name = names[i];
    const fs::path by_name = fs::path(dir) / (name + ".pb");
    const fs::path by_index = fs::path(dir) / ("input_" + std::to_string(i) + ".pb");
    const fs::path file = fs::exists(by_name, ec) ? by_name : by_index;
    if (!fs::exists(file, ec)) {
      return NotFound("missing input '" + name + "': neither " + by_name.string() + " nor " +
                      by_index.string() + " exists");
    }
    ASSIGN_OR_RETURN(Tensor t, ReadTensorProtoFile(file.string()));
    out[name] = std::move(t);
  }
  return out;
}

}  // namespace clickrt::onnx_import
