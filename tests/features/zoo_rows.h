// Helpers for tests against the bundled models' fixtures (models/<name>/): raw val.tsv rows as
// feature rows, and the comparison with the python reader's tensors (val_inputs/*.pb).
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <fstream>
#include <nlohmann/json.hpp>

#include "features/schema.h"
#include "import/onnx/onnx_importer.h"

namespace clickrt::features::testing {

inline const std::string kModels = std::string(CLICKRT_SOURCE_DIR) + "/models/";

// Field name -> column of the data file, from the schema's "column" entries.
inline std::map<std::string, int> Columns(const std::string& schema_path) {
  std::ifstream in(schema_path);
  nlohmann::json doc = nlohmann::json::parse(in);
  std::map<std::string, int> columns;
  for (const auto& input : doc["inputs"]) {
    for (const auto& f : input["fields"]) columns[f["name"]] = f["column"];
  }
  return columns;
}

inline std::vector<FeatureRow> ReadRows(const std::string& tsv,
                                        const std::map<std::string, int>& cols) {
  std::ifstream in(tsv);
  std::vector<FeatureRow> rows;
  std::string line;
  while (std::getline(in, line)) {
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string::npos; start = tab + 1) {
      parts.push_back(line.substr(start, tab - start));
    }
    parts.push_back(line.substr(start));
    FeatureRow row;
    for (const auto& [name, col] : cols) row[name] = parts.at(col);
    rows.push_back(std::move(row));
  }
  return rows;
}

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
