#include "ir/attribute_json.h"

#include <cstring>

namespace clickrt::ir {

using nlohmann::json;

json TensorValuesToJson(const Tensor& t) {
  json data = json::array();
  for (int64_t i = 0; i < t.size(); ++i) {
    if (IsFloating(t.dtype())) {
      data.push_back(t.GetAsDouble(i));
    } else {
      data.push_back(t.GetAsInt64(i));
    }
  }
  return data;
}

namespace {

json TensorToJson(const Tensor& t) {
  return {{"dtype", DTypeName(t.dtype())}, {"dims", t.dims()}, {"data", TensorValuesToJson(t)}};
}

StatusOr<Tensor> TensorFromJson(const json& j) {
  if (!j.is_object() || !j.contains("dtype") || !j.contains("dims") || !j.contains("data") ||
      !j["dtype"].is_string() || !j["dims"].is_array() || !j["data"].is_array()) {
    return DataLoss("malformed tensor attribute");
  }
  ASSIGN_OR_RETURN(DType dt, DTypeFromName(j["dtype"].get<std::string>()));
  Dims dims;
  for (const json& d : j["dims"]) {
    if (!d.is_number_integer()) return DataLoss("malformed tensor attribute dims");
    dims.push_back(d.get<int64_t>());
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(dt, dims));
  const json& data = j["data"];
  if (static_cast<int64_t>(data.size()) != t.size()) return DataLoss("tensor attribute size mismatch");
  for (int64_t i = 0; i < t.size(); ++i) {
    if (!data[i].is_number()) return DataLoss("tensor attribute holds a non-number");
    Tensor one = Tensor::Scalar(dt, data[i].get<double>());
    if (dt == DType::kInt64) *one.data<int64_t>() = data[i].get<int64_t>();
    std::memcpy(static_cast<char*>(t.raw()) + i * DTypeSize(dt), one.raw(), DTypeSize(dt));
  }
  return t;
}

}  // namespace

json AttributesToJson(const std::map<std::string, Attribute>& attrs) {
  json j = json::object();
  for (const auto& [name, a] : attrs) {
    if (auto* i = std::get_if<int64_t>(&a)) {
      j[name] = *i;
    } else if (auto* f = std::get_if<float>(&a)) {
      j[name] = {{"f", *f}};
    } else if (auto* s = std::get_if<std::string>(&a)) {
      j[name] = *s;
    } else if (auto* is = std::get_if<std::vector<int64_t>>(&a)) {
      j[name] = *is;
    } else if (auto* fs = std::get_if<std::vector<float>>(&a)) {
      j[name] = {{"floats", *fs}};
    } else if (auto* ss = std::get_if<std::vector<std::string>>(&a)) {
      j[name] = *ss;
    } else if (auto* t = std::get_if<Tensor>(&a)) {
      j[name] = {{"tensor", TensorToJson(*t)}};
    }
  }
  return j;
}

StatusOr<std::map<std::string, Attribute>> AttributesFromJson(const json& j) {
  std::map<std::string, Attribute> out;
  if (j.is_null()) return out;
  if (!j.is_object()) return DataLoss("layer attributes are not a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    const json& v = it.value();
    if (v.is_number_integer()) {
      out[it.key()] = v.get<int64_t>();
    } else if (v.is_string()) {
      out[it.key()] = v.get<std::string>();
    } else if (v.is_object() && v.contains("f") && v["f"].is_number()) {
      out[it.key()] = v["f"].get<float>();
    } else if (v.is_object() && v.contains("floats") && v["floats"].is_array()) {
      std::vector<float> fs;
      for (const json& e : v["floats"]) {
        if (!e.is_number()) return DataLoss("attribute '" + it.key() + "' holds a non-number");
        fs.push_back(e.get<float>());
      }
      out[it.key()] = fs;
    } else if (v.is_object() && v.contains("tensor")) {
      auto t = TensorFromJson(v["tensor"]);
      if (!t.ok()) return t.status().WithContext("attribute '" + it.key() + "'");
      out[it.key()] = std::move(t).value();
    } else if (v.is_array() && (v.empty() || v[0].is_number_integer())) {
      std::vector<int64_t> is;
      for (const json& e : v) {
        if (!e.is_number_integer()) return DataLoss("attribute '" + it.key() + "' mixes types");
        is.push_back(e.get<int64_t>());
      }
      out[it.key()] = is;
    } else if (v.is_array() && v[0].is_string()) {
      std::vector<std::string> ss;
      for (const json& e : v) {
        if (!e.is_string()) return DataLoss("attribute '" + it.key() + "' mixes types");
        ss.push_back(e.get<std::string>());
      }
      out[it.key()] = ss;
    } else {
      return DataLoss("attribute '" + it.key() + "' has an unrecognized JSON form");
    }
  }
  return out;
}

}  // namespace clickrt::ir
