#include "tensor_io.h"

#include <filesystem>
#include <fstream>
#include <iomanip>
#include <random>
#include <ostream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "import/onnx/onnx_importer.h"
#include "import/onnx/tensor_dir.h"
#include "ir/attribute_json.h"

namespace clickrt::cli {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

Status Flatten(const json& j, size_t depth, Dims* dims, std::vector<const json*>* leaves,
               const std::string& name) {
  if (j.is_array()) {
    if (depth == dims->size()) {
      if (!leaves->empty() && depth > 0) {
        return InvalidArgument("input '" + name + "': nested arrays are ragged");
      }
      dims->push_back(static_cast<int64_t>(j.size()));
    } else if ((*dims)[depth] != static_cast<int64_t>(j.size())) {
      return InvalidArgument("input '" + name + "': nested arrays are ragged (" +
                             std::to_string(j.size()) + " vs " + std::to_string((*dims)[depth]) +
                             " at depth " + std::to_string(depth) + ")");
    }
    for (const json& e : j) RETURN_IF_ERROR(Flatten(e, depth + 1, dims, leaves, name));
    return Status::Ok();
  }
  if (!j.is_number() && !j.is_boolean()) {
    return InvalidArgument("input '" + name + "': expected numbers, found " + std::string(j.type_name()));
  }
  if (depth != dims->size()) return InvalidArgument("input '" + name + "': nested arrays are ragged");
  leaves->push_back(&j);
  return Status::Ok();
}

StatusOr<Tensor> FromJsonValue(const json& j, DType dtype, const std::string& name) {
  Dims dims;
  std::vector<const json*> leaves;
  RETURN_IF_ERROR(Flatten(j, 0, &dims, &leaves, name));
  ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(dtype, dims));
  for (size_t i = 0; i < leaves.size(); ++i) {
    const json& v = *leaves[i];
    double d = v.is_boolean() ? (v.get<bool>() ? 1.0 : 0.0) : v.get<double>();
    switch (dtype) {
      case DType::kFloat32: t.data<float>()[i] = static_cast<float>(d); break;
      case DType::kFloat64: t.data<double>()[i] = d; break;
      case DType::kInt64:
        if (!v.is_number_integer()) return InvalidArgument("input '" + name + "' is int64 but holds " + v.dump());
        t.data<int64_t>()[i] = v.get<int64_t>();
        break;
      case DType::kInt32:
        if (!v.is_number_integer()) return InvalidArgument("input '" + name + "' is int32 but holds " + v.dump());
        t.data<int32_t>()[i] = v.get<int32_t>();
        break;
      case DType::kBool: t.data<bool>()[i] = d != 0; break;
      default:
        return Unimplemented("input '" + name + "': JSON input of dtype " + DTypeName(dtype) +
                             " is not supported; use a .pb tensor file");
    }
  }
  return t;
}

}  // namespace

StatusOr<Tensor> TensorFromJson(const std::string& text, DType dtype, const std::string& name) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("input '" + name + "': not valid JSON");
  return FromJsonValue(j, dtype, name);
}

StatusOr<reference::TensorMap> LoadInputs(const std::string& path, const ir::Graph& graph) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("inputs '" + path + "' do not exist");
  if (fs::is_directory(path, ec)) {
    std::vector<std::string> names;
    for (const ir::Value* v : graph.inputs) names.push_back(v->name);
    return onnx_import::ReadTensorProtoDir(path, names);
  }
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  json j = json::parse(ss.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return InvalidArgument(path + ": expected a JSON object {\"input_name\": [[...]], ...}");
  }
  reference::TensorMap out;
  for (auto it = j.begin(); it != j.end(); ++it) {
    const ir::Value* v = graph.FindValue(it.key());
    if (v == nullptr || !v->is_graph_input) {
      std::string names;
      for (const ir::Value* g : graph.inputs) names += (names.empty() ? "" : ", ") + g->name;
      return InvalidArgument(path + ": unknown input '" + it.key() + "'; the model's inputs are: " + names);
    }
    const json& val = it.value();
    if (val.is_object()) {  // {"dtype", "shape", "data"}: the form TensorsToJson writes
      if (!val.contains("shape") || !val.contains("data") || !val["shape"].is_array() ||
          !val["data"].is_array()) {
        return InvalidArgument(path + ": input '" + it.key() + "' needs \"shape\" and \"data\" arrays");
      }
      auto flat = FromJsonValue(val["data"], v->dtype, it.key());
      if (!flat.ok()) return flat.status().WithContext(path);
      Dims dims;
      for (const json& d : val["shape"]) {
        if (!d.is_number_integer()) return InvalidArgument(path + ": bad shape for '" + it.key() + "'");
        dims.push_back(d.get<int64_t>());
      }
      auto shaped = flat->Reshaped(dims);
      if (!shaped.ok()) return shaped.status().WithContext(path + ": input '" + it.key() + "'");
      out[it.key()] = std::move(shaped).value();
      continue;
    }
    auto t = FromJsonValue(val, v->dtype, it.key());
    if (!t.ok()) return t.status().WithContext(path);
    out[it.key()] = std::move(t).value();
  }
  return out;
}

StatusOr<reference::TensorMap> SyntheticInputs(const ir::Graph& graph, int64_t batch, uint64_t seed) {
  reference::TensorMap out;
  std::mt19937_64 rng(seed);
  for (const ir::Value* v : graph.inputs) {
    if (!v->shape.rank_known) return InvalidArgument("input '" + v->name + "' has an unknown rank");
    Dims dims;
    for (size_t i = 0; i < v->shape.dims.size(); ++i) {
      const ir::Dim& d = v->shape.dims[i];
      if (d.known()) {
        dims.push_back(d.value);
      } else if (i == 0) {
        dims.push_back(batch);
      } else {
        return InvalidArgument("input '" + v->name + "' has an unknown dimension " + std::to_string(i) +
                               "; pass --inputs");
      }
    }
    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(v->dtype, dims));
    // Per-position upper bound for ids: from the op that reads this input as indices.
    std::vector<int64_t> bound;
    for (const ir::Node* n : v->consumers) {
      if (n->op == ir::OpKind::kEmbeddingLookup && n->input(1) == v) {
        const ir::Value* sizes = n->input(3);
        if (sizes && sizes->constant) {
          bound = sizes->constant->ToInt64Vector().value();
        } else if (n->inputs[0]->constant) {
          bound.assign(1, n->inputs[0]->constant->dim(0));
        }
      } else if (n->op == ir::OpKind::kGather && n->input(1) == v && n->inputs[0]->constant &&
                 n->inputs[0]->constant->rank() >= 1) {
        bound.assign(1, n->inputs[0]->constant->dim(0));
      } else if (n->op == ir::OpKind::kLess && n->input(0) == v && n->input(1)->constant &&
                 IsInteger(n->input(1)->constant->dtype())) {
        bound = n->input(1)->constant->ToInt64Vector().value();  // ids < sizes: the vocabularies
      }
    }
    const int64_t inner = dims.empty() ? 1 : dims.back();
    for (int64_t i = 0; i < t.size(); ++i) {
      switch (v->dtype) {
        case DType::kFloat32:
          t.data<float>()[i] = std::uniform_real_distribution<float>(0.f, 1.f)(rng);
          break;
        case DType::kInt64:
        case DType::kInt32: {
          int64_t b = bound.empty() ? 1 : bound.size() == 1 ? bound[0] : bound[static_cast<size_t>(i % inner) % bound.size()];
          int64_t id = b > 0 ? static_cast<int64_t>(rng() % static_cast<uint64_t>(b)) : 0;
          if (v->dtype == DType::kInt64) t.data<int64_t>()[i] = id; else t.data<int32_t>()[i] = static_cast<int32_t>(id);
          break;
        }
        default:
          break;  // zeros
      }
    }
    out[v->name] = std::move(t);
  }
  return out;
}

void PrintTensor(std::ostream& os, const std::string& name, const Tensor& t, int64_t max_values) {
  os << name << ": " << t.Describe() << "\n";
  const int64_t n = std::min<int64_t>(t.size(), max_values);
  const int64_t row = t.rank() >= 1 && t.dims().back() > 0 ? t.dims().back() : 1;
  os << std::setprecision(7);
  for (int64_t i = 0; i < n; ++i) {
    os << (i % row == 0 ? "  " : " ");
    if (IsFloating(t.dtype())) {
      os << t.GetAsDouble(i);
    } else {
      os << t.GetAsInt64(i);
    }
    if ((i + 1) % row == 0 || i + 1 == n) os << "\n";
  }
  if (n < t.size()) os << "  ... (" << t.size() - n << " more)\n";
}

std::string TensorsToJson(const reference::TensorMap& tensors) {
  json j = json::object();
  for (const auto& [name, t] : tensors) {
    j[name] = {{"dtype", DTypeName(t.dtype())}, {"shape", t.dims()}, {"data", ir::TensorValuesToJson(t)}};
  }
  return j.dump();
}

}  // namespace clickrt::cli
