// Node attributes <-> JSON, for the engine file's layer table.
#pragma once

#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "ir/graph.h"

namespace clickrt::ir {

// Ints and floats become numbers (floats tagged {"f": x} so they survive a round trip), strings
// strings, lists arrays, tensors {"tensor": {"dtype", "dims", "data"}} (small tensors only).
// A tensor's elements as a flat JSON array (floats as numbers, integers exactly).
nlohmann::json TensorValuesToJson(const Tensor& t);

nlohmann::json AttributesToJson(const std::map<std::string, Attribute>& attrs);
StatusOr<std::map<std::string, Attribute>> AttributesFromJson(const nlohmann::json& j);

}  // namespace clickrt::ir
