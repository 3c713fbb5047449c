#include "server/kserve_codec.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

namespace clickrt::server {
namespace {

using nlohmann::json;

// Larger requests are refused before any allocation: the body limit bounds them anyway.
constexpr int64_t kMaxElements = int64_t{1} << 28;
constexpr int kMaxNesting = 16;

// Visits the scalar leaves of a (possibly nested) data array in row-major order without
// recursion; `fn(const json&, int64_t index)` returns Status. Errors name `where`.
template <typename Fn>
Status ForEachLeaf(const json& data, const std::string& where, Fn fn) {
  if (!data.is_array()) return InvalidArgument(where + " must be an array");
  struct Frame {
    const json* array;
    size_t next;
  };
  std::vector<Frame> stack{{&data, 0}};
  int64_t index = 0;
  while (!stack.empty()) {
    Frame& f = stack.back();
    if (f.next == f.array->size()) {
      stack.pop_back();
      continue;
    }
    const json& v = (*f.array)[f.next++];
    if (v.is_array()) {
      if (static_cast<int>(stack.size()) >= kMaxNesting) {
        return InvalidArgument(where + " is nested deeper than " + std::to_string(kMaxNesting));
      }
      stack.push_back({&v, 0});
      continue;
    }
    RETURN_IF_ERROR(fn(v, index));
    ++index;
  }
  return Status::Ok();
}

template <typename T>
Status PutInteger(const json& v, Tensor* t, int64_t i, const std::string& where) {
  int64_t x;
  if (v.is_number_unsigned()) {
    const uint64_t u = v.get<uint64_t>();
    if (u > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return InvalidArgument(where + "[" + std::to_string(i) + "] = " + v.dump() +
                             " is out of range");
    }
    x = static_cast<int64_t>(u);
  } else if (v.is_number_integer()) {
    x = v.get<int64_t>();
  } else if (v.is_boolean()) {
    x = v.get<bool>() ? 1 : 0;
  } else {
    return InvalidArgument(where + "[" + std::to_string(i) + "] = " + v.dump() +
                           " is not an integer");
  }
  if (x < static_cast<int64_t>(std::numeric_limits<T>::min()) ||
      static_cast<uint64_t>(x) > static_cast<uint64_t>(std::numeric_limits<T>::max())) {
    return InvalidArgument(where + "[" + std::to_string(i) + "] = " + v.dump() +
                           " does not fit the datatype");
  }
  t->data<T>()[i] = static_cast<T>(x);
  return Status::Ok();
}

Status PutValue(const json& v, Tensor* t, int64_t i, const std::string& where) {
  const DType d = t->dtype();
  if (IsFloating(d)) {
    if (!v.is_number()) {
      return InvalidArgument(where + "[" + std::to_string(i) + "] = " + v.dump() +
                             " is not a number");
    }
    const double x = v.get<double>();
    switch (d) {
      case DType::kFloat32:
        t->data<float>()[i] = static_cast<float>(x);
        break;
      case DType::kFloat64:
        t->data<double>()[i] = x;
        break;
      case DType::kFloat16:
        t->data<uint16_t>()[i] = FloatToHalf(static_cast<float>(x));
        break;
      case DType::kBFloat16:
        t->data<uint16_t>()[i] = FloatToBFloat16(static_cast<float>(x));
        break;
      default:
        return Internal("unhandled floating dtype");
    }
    return Status::Ok();
  }
  switch (d) {
    case DType::kInt64:
      return PutInteger<int64_t>(v, t, i, where);
    case DType::kInt32:
      return PutInteger<int32_t>(v, t, i, where);
    case DType::kInt8:
      return PutInteger<int8_t>(v, t, i, where);
    case DType::kUInt8:
      return PutInteger<uint8_t>(v, t, i, where);
    case DType::kBool:
      if (!v.is_boolean()) {
        return InvalidArgument(where + "[" + std::to_string(i) + "] = " + v.dump() +
                               " is not true or false");
      }
      t->data<bool>()[i] = v.get<bool>();
      return Status::Ok();
    default:
      return Unimplemented(where + ": datatype " + DTypeName(d) + " is not served");
  }
}

StatusOr<Tensor> DecodeTensor(const json& in, const std::string& where, std::string* name) {
  if (!in.is_object()) return InvalidArgument(where + " must be an object");
  auto n = in.find("name");
  if (n == in.end() || !n->is_string()) return InvalidArgument(where + ".name must be a string");
  *name = n->get<std::string>();
  auto dt = in.find("datatype");
  if (dt == in.end() || !dt->is_string()) {
    return InvalidArgument(where + " ('" + *name + "').datatype must be a string such as \"FP32\"");
  }
  auto dtype = DTypeFromKServe(dt->get<std::string>());
  if (!dtype.ok()) return dtype.status().WithContext(where + " ('" + *name + "')");
  auto sh = in.find("shape");
  if (sh == in.end() || !sh->is_array()) {
    return InvalidArgument(where + " ('" + *name + "').shape must be an array of integers");
  }
  std::vector<int64_t> shape;
  for (const json& d : *sh) {
    if (!d.is_number_integer()) {
      return InvalidArgument(where + " ('" + *name + "').shape holds " + d.dump() +
                             ", not an integer");
    }
    shape.push_back(d.get<int64_t>());
  }
  ASSIGN_OR_RETURN(int64_t count,
                   CheckedElementCount(shape, kMaxElements, where + " ('" + *name + "').shape"));
  auto data = in.find("data");
  if (data == in.end()) return InvalidArgument(where + " ('" + *name + "') has no \"data\"");
  const std::string data_where = where + " ('" + *name + "').data";
  int64_t leaves = 0;
  RETURN_IF_ERROR(ForEachLeaf(*data, data_where, [&](const json& v, int64_t) {
    if (!v.is_number() && !v.is_boolean()) {
      return InvalidArgument(data_where + " holds " + v.dump() + ", not a number");
    }
    ++leaves;
    return Status::Ok();
  }));
  if (leaves != count) {
    return InvalidArgument(data_where + " holds " + std::to_string(leaves) + " values, shape " +
                           DimsToString(shape) + " needs " + std::to_string(count));
  }
  ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(*dtype, shape));
  RETURN_IF_ERROR(ForEachLeaf(
      *data, data_where, [&](const json& v, int64_t i) { return PutValue(v, &t, i, data_where); }));
  return t;
}

json ValuesJson(const Tensor& t) {
  json a = json::array();
  const int64_t n = t.size();
  switch (t.dtype()) {
    case DType::kFloat32:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<float>()[i]);
      break;
    case DType::kBool:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.data<bool>()[i]);
      break;
    case DType::kFloat64:
    case DType::kFloat16:
    case DType::kBFloat16:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.GetAsDouble(i));
      break;
    default:
      for (int64_t i = 0; i < n; ++i) a.push_back(t.GetAsInt64(i));
      break;
  }
  return a;
}

}  // namespace

StatusOr<DType> DTypeFromKServe(std::string_view s) {
  if (s == "FP32") return DType::kFloat32;
  if (s == "INT64") return DType::kInt64;
  if (s == "INT32") return DType::kInt32;
  if (s == "FP64") return DType::kFloat64;
  if (s == "FP16") return DType::kFloat16;
  if (s == "BF16") return DType::kBFloat16;
  if (s == "BOOL") return DType::kBool;
  if (s == "INT8") return DType::kInt8;
  if (s == "UINT8") return DType::kUInt8;
  std::string shown(s.substr(0, 32));
  return InvalidArgument(
      "datatype \"" + shown +
      "\" is not one of FP32, INT64, INT32, FP64, FP16, BF16, BOOL, INT8, UINT8");
}

const char* KServeDatatype(DType d) {
  switch (d) {
    case DType::kFloat32:
      return "FP32";
    case DType::kInt64:
      return "INT64";
    case DType::kInt32:
      return "INT32";
    case DType::kFloat64:
      return "FP64";
    case DType::kFloat16:
      return "FP16";
    case DType::kBFloat16:
      return "BF16";
    case DType::kBool:
      return "BOOL";
    case DType::kInt8:
      return "INT8";
    case DType::kUInt8:
      return "UINT8";
    case DType::kUndefined:
      return "";
  }
  return "";
}

StatusOr<int64_t> CheckedElementCount(const std::vector<int64_t>& shape, int64_t max_elements,
                                      const std::string& where) {
  if (shape.size() > 8) return InvalidArgument(where + " has more than 8 dimensions");
  int64_t count = 1;
  for (int64_t d : shape) {
    if (d < 0) return InvalidArgument(where + " " + DimsToString(shape) + " has a negative dim");
    if (d != 0 && count > max_elements / d) {
      return InvalidArgument(where + " " + DimsToString(shape) + " exceeds " +
                             std::to_string(max_elements) + " elements");
    }
    count *= d;
  }
  return count;
}

StatusOr<InferRequest> DecodeInferJson(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("the request body is not valid JSON");
  if (!j.is_object()) return InvalidArgument("the request body must be a JSON object");
  InferRequest r;
  if (auto id = j.find("id"); id != j.end()) {
    if (!id->is_string()) return InvalidArgument("\"id\" must be a string");
    r.id = id->get<std::string>();
  }
  auto inputs = j.find("inputs");
  if (inputs == j.end() || !inputs->is_array() || inputs->empty()) {
    return InvalidArgument("\"inputs\" must be a non-empty array of tensors");
  }
  for (size_t i = 0; i < inputs->size(); ++i) {
    std::string name;
    ASSIGN_OR_RETURN(Tensor t,
                     DecodeTensor((*inputs)[i], "inputs[" + std::to_string(i) + "]", &name));
    if (!r.inputs.emplace(name, std::move(t)).second) {
      return InvalidArgument("inputs[" + std::to_string(i) + "]: input '" + name + "' given twice");
    }
  }
  if (auto outs = j.find("outputs"); outs != j.end()) {
    if (!outs->is_array()) return InvalidArgument("\"outputs\" must be an array");
    for (size_t i = 0; i < outs->size(); ++i) {
      const json& o = (*outs)[i];
      auto n = o.is_object() ? o.find("name") : o.end();
      if (!o.is_object() || n == o.end() || !n->is_string()) {
        return InvalidArgument("outputs[" + std::to_string(i) + "].name must be a string");
      }
      r.outputs.push_back(n->get<std::string>());
    }
  }
  return r;
}

StatusOr<std::vector<std::string>> SelectOutputs(const std::vector<std::string>& requested,
                                                 const reference::TensorMap& outputs) {
  if (requested.empty()) {
    std::vector<std::string> all;
    for (const auto& [name, t] : outputs) all.push_back(name);
    return all;
  }
  for (const std::string& n : requested) {
    if (!outputs.count(n)) {
      std::string names;
      for (const auto& [name, t] : outputs) names += (names.empty() ? "" : ", ") + name;
      return InvalidArgument("requested output '" + n +
                             "' is not an output of the model (outputs: " + names + ")");
    }
  }
  return requested;
}

StatusOr<std::string> EncodeInferJson(const std::string& model, const std::string& version,
                                      const std::string& id, const reference::TensorMap& outputs,
                                      const std::vector<std::string>& order) {
  ASSIGN_OR_RETURN(std::vector<std::string> names, SelectOutputs(order, outputs));
  json j = {{"model_name", model}, {"model_version", version}};
  if (!id.empty()) j["id"] = id;
  json outs = json::array();
  for (const std::string& n : names) {
    const Tensor& t = outputs.at(n);
    outs.push_back({{"name", n},
                    {"datatype", KServeDatatype(t.dtype())},
                    {"shape", t.dims()},
                    {"data", ValuesJson(t)}});
  }
  j["outputs"] = std::move(outs);
  // Replace invalid UTF-8 (an id echoed back) rather than throw.
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace clickrt::server
