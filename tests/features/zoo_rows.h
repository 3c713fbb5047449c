// Helpers for tests against the bundled models' fixtures (models/<name>/): the comparison with the
// python reader's tensors (val_inputs/*.pb). Raw val.tsv rows come from features/tsv_rows.h.
#pragma once

#include <gtest/gtest.h>

#include <cstring>

#include "features/schema.h"
#include "import/onnx/onnx_importer.h"

namespace clickrt::features::testing {

inline const std::string kModels = std::string(CLICKRT_SOURCE_DIR) + "/models/";

inline void ExpectSameAsPython(const std::map<std::string, Tensor>& got, const std::string& model,
                               const std::vector<std::string>& names) {
  for (const auto& name : names) {
    SCOPED_TRACE(model + " input " + name);
    auto want = onnx_import::ReadTensorProtoFile(kModels + model + "/val_inputs/" + name + ".pb");
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    const Tensor& g = got.at(name);
    ASSERT_EQ(g.dtype(), want->dtype());
    ASSERT_EQ(g.dims(), want->dims());
    if (std::memcmp(g.raw(), want->raw(), g.nbytes()) == 0) continue;
    for (int64_t i = 0; i < g.size(); ++i) {
      ASSERT_EQ(g.GetAsDouble(i), want->GetAsDouble(i)) << "first difference at element " << i;
    }
  }
}

}  // namespace clickrt::features::testing
