#include "import/onnx/onnx_importer.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include <onnx/onnx_pb.h>

#include "ops/infer.h"

namespace clickrt::onnx_import {
namespace {

namespace fs = std::filesystem;

// A read-only mmap of a whole file, shared by every tensor viewing it.
struct MappedFile {
  void* addr = nullptr;
  size_t size = 0;
  ~MappedFile() {
    if (addr && size) munmap(addr, size);
  }
};

StatusOr<std::shared_ptr<MappedFile>> MapFile(const std::string& path) {
  int fd = open(path.c_str(), O_RDONLY);
  if (fd < 0) return NotFound("cannot open '" + path + "': " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0) {
    close(fd);
    return NotFound("cannot stat '" + path + "'");
  }
  auto m = std::make_shared<MappedFile>();
  m->size = static_cast<size_t>(st.st_size);
  if (m->size > 0) {
    m->addr = mmap(nullptr, m->size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (m->addr == MAP_FAILED) {
      m->addr = nullptr;
      close(fd);
      return DataLoss("cannot mmap '" + path + "'");
    }
  }
  close(fd);
  return m;
}

class Converter {
 public:
  Converter(std::string base_dir) : base_dir_(std::move(base_dir)) {}

  StatusOr<Tensor> ConvertTensor(const onnx::TensorProto& tp) {
    const std::string where = "tensor '" + tp.name() + "'";
    ASSIGN_OR_RETURN(DType dtype, DTypeFromOnnx(tp.data_type()));
    Dims dims(tp.dims().begin(), tp.dims().end());
    for (int64_t d : dims) {
      if (d < 0) return DataLoss(where + ": negative dimension " + DimsToString(dims));
    }
    const size_t elem = DTypeSize(dtype);
    const int64_t n = NumElements(dims);
    const size_t want = static_cast<size_t>(n) * elem;

    if (tp.data_location() == onnx::TensorProto::EXTERNAL) return ExternalTensor(tp, dtype, dims);

    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(dtype, dims));
    if (tp.has_raw_data()) {
      if (tp.raw_data().size() != want) {
        return DataLoss(where + ": raw_data has " + std::to_string(tp.raw_data().size()) +
                        " bytes, shape " + DimsToString(dims) + " of " + DTypeName(dtype) +
                        " needs " + std::to_string(want));
      }
      if (want) std::memcpy(t.raw(), tp.raw_data().data(), want);
      return t;
    }
    auto count_error = [&](int got) {
      return DataLoss(where + ": holds " + std::to_string(got) + " values, shape " +
                      DimsToString(dims) + " needs " + std::to_string(n));
    };
    switch (dtype) {
      case DType::kFloat32:
        if (tp.float_data_size() != n) return count_error(tp.float_data_size());
        for (int64_t i = 0; i < n; ++i) t.data<float>()[i] = tp.float_data(static_cast<int>(i));
        break;
      case DType::kFloat64:
        if (tp.double_data_size() != n) return count_error(tp.double_data_size());
        for (int64_t i = 0; i < n; ++i) t.data<double>()[i] = tp.double_data(static_cast<int>(i));
        break;
      case DType::kInt64:
        if (tp.int64_data_size() != n) return count_error(tp.int64_data_size());
        for (int64_t i = 0; i < n; ++i) t.data<int64_t>()[i] = tp.int64_data(static_cast<int>(i));
        break;
      case DType::kInt32:
      case DType::kInt8:
      case DType::kUInt8:
      case DType::kBool:
      case DType::kFloat16:
      case DType::kBFloat16:
        if (tp.int32_data_size() != n) return count_error(tp.int32_data_size());
        for (int64_t i = 0; i < n; ++i) {
          int32_t v = tp.int32_data(static_cast<int>(i));
          switch (dtype) {
            case DType::kInt32: t.data<int32_t>()[i] = v; break;
            case DType::kInt8: t.data<int8_t>()[i] = static_cast<int8_t>(v); break;
            case DType::kUInt8: t.data<uint8_t>()[i] = static_cast<uint8_t>(v); break;
            case DType::kBool: t.data<bool>()[i] = v != 0; break;
            default: t.data<uint16_t>()[i] = static_cast<uint16_t>(v); break;
          }
        }
        break;
      case DType::kUndefined:
        return DataLoss(where + ": undefined element type");
    }
    return t;
  }

  Status ConvertAttribute(const onnx::AttributeProto& a, const std::string& node, ir::Attribute* out) {
    switch (a.type()) {
      case onnx::AttributeProto::FLOAT: *out = a.f(); return Status::Ok();
      case onnx::AttributeProto::INT: *out = static_cast<int64_t>(a.i()); return Status::Ok();
      case onnx::AttributeProto::STRING: *out = a.s(); return Status::Ok();
      case onnx::AttributeProto::FLOATS:
        *out = std::vector<float>(a.floats().begin(), a.floats().end());
        return Status::Ok();
      case onnx::AttributeProto::INTS:
        *out = std::vector<int64_t>(a.ints().begin(), a.ints().end());
        return Status::Ok();
      case onnx::AttributeProto::STRINGS:
        *out = std::vector<std::string>(a.strings().begin(), a.strings().end());
        return Status::Ok();
      case onnx::AttributeProto::TENSOR: {
        ASSIGN_OR_RETURN(Tensor t, ConvertTensor(a.t()));
        *out = std::move(t);
        return Status::Ok();
      }
      default:
        return Unimplemented("node '" + node + "': attribute '" + a.name() + "' has type " +
                             onnx::AttributeProto::AttributeType_Name(a.type()) +
                             ", which clickrt does not support");
    }
  }

 private:
  StatusOr<Tensor> ExternalTensor(const onnx::TensorProto& tp, DType dtype, const Dims& dims) {
    const std::string where = "tensor '" + tp.name() + "'";
    std::string location;
    int64_t offset = 0, length = -1;
    for (const auto& kv : tp.external_data()) {
      try {
        if (kv.key() == "location") location = kv.value();
        if (kv.key() == "offset") offset = std::stoll(kv.value());
        if (kv.key() == "length") length = std::stoll(kv.value());
      } catch (const std::exception&) {
        return DataLoss(where + ": external_data '" + kv.key() + "' is not a number: '" +
                        kv.value() + "'");
      }
    }
    if (location.empty()) return DataLoss(where + ": external data without a 'location'");
    if (fs::path(location).is_absolute() || location.find("..") != std::string::npos) {
      return DataLoss(where + ": external data location '" + location +
                      "' must be a relative path inside the model's folder");
    }
    std::string path = (fs::path(base_dir_) / location).string();
    auto it = files_.find(path);
    if (it == files_.end()) {
      auto mapped = MapFile(path);
      if (!mapped.ok()) return mapped.status().WithContext(where + ": external data");
      it = files_.emplace(path, mapped.value()).first;
    }
    std::shared_ptr<MappedFile> file = it->second;
    const size_t want = static_cast<size_t>(NumElements(dims)) * DTypeSize(dtype);
    if (length >= 0 && static_cast<size_t>(length) != want) {
      return DataLoss(where + ": external data length " + std::to_string(length) + " but shape " +
                      DimsToString(dims) + " of " + DTypeName(dtype) + " needs " +
                      std::to_string(want));
    }
    if (offset < 0 || static_cast<size_t>(offset) + want > file->size) {
      return DataLoss(where + ": external data [" + std::to_string(offset) + ", +" +
                      std::to_string(want) + ") runs past the end of '" + path + "' (" +
                      std::to_string(file->size) + " bytes)");
    }
    char* base = static_cast<char*>(file->addr) + offset;
    if (reinterpret_cast<uintptr_t>(base) % DTypeSize(dtype) != 0) {
      // Unaligned data: copy rather than view.
      ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(dtype, dims));
      std::memcpy(t.raw(), base, want);
      return t;
    }
    return Tensor::View(dtype, dims, base, file);
  }

  std::string base_dir_;
  std::map<std::string, std::shared_ptr<MappedFile>> files_;
};

ir::Shape ConvertShape(const onnx::TypeProto& type) {
  ir::Shape s;
  if (!type.has_tensor_type() || !type.tensor_type().has_shape()) return s;
  s.rank_known = true;
  for (const auto& d : type.tensor_type().shape().dim()) {
    if (d.has_dim_value()) {
      s.dims.push_back(ir::Dim::Known(d.dim_value()));
    } else {
      s.dims.push_back(ir::Dim::Symbol(d.dim_param()));
    }
  }
  return s;
}

Status ConvertModel(const onnx::ModelProto& model, const std::string& base_dir,
                    const ImportOptions& options, ir::Graph* g) {
  if (!model.has_graph()) return DataLoss("the model has no graph");
  const onnx::GraphProto& gp = model.graph();
  g->name = gp.name();
  int default_opset = -1;
  for (const auto& os : model.opset_import()) {
    g->opsets[os.domain()] = static_cast<int>(os.version());
    if (os.domain().empty() || os.domain() == "ai.onnx") default_opset = static_cast<int>(os.version());
  }
  // Opsets before 7 changed broadcasting and moved many inputs to attributes; a model that old is
  // accepted only when all its ops read the same in every opset (Not and Identity have one version).
  auto timeless = [&] {
    for (const auto& n : gp.node()) {
      if (n.op_type() != "Not" && n.op_type() != "Identity") return false;
    }
    return true;
  };
  if (default_opset >= 1 && default_opset < kMinOpset && timeless()) {
    // fine: the node semantics do not depend on the opset
  } else if (default_opset >= 0 && (default_opset < kMinOpset || default_opset > kMaxOpset)) {
    return Unimplemented("the model uses ONNX opset " + std::to_string(default_opset) +
                         "; clickrt supports opsets " + std::to_string(kMinOpset) + " to " +
                         std::to_string(kMaxOpset));
  }

  Converter conv(base_dir);
  for (const auto& init : gp.initializer()) {
    if (g->FindValue(init.name())) {
      return InvalidArgument("initializer '" + init.name() + "' is defined twice");
    }
    auto t = conv.ConvertTensor(init);
    if (!t.ok()) return t.status().WithContext("initializer '" + init.name() + "'");
    ir::Value* v = g->AddValue(init.name());
    v->dtype = t->dtype();
    v->shape = ir::Shape::FromDims(t->dims());
    v->constant = std::move(t).value();
  }
  for (const auto& in : gp.input()) {
    if (ir::Value* existing = g->FindValue(in.name())) {
      // An input that is also an initializer (IR < 4 style): a constant with a default value.
      (void)existing;
      continue;
    }
    ir::Value* v = g->AddValue(in.name());
    if (!in.type().has_tensor_type()) {
      return Unimplemented("graph input '" + in.name() + "' is not a tensor (sequence / map inputs "
                           "are not supported)");
    }
    auto dt = DTypeFromOnnx(in.type().tensor_type().elem_type());
    if (!dt.ok()) return dt.status().WithContext("graph input '" + in.name() + "'");
    v->dtype = dt.value();
    v->shape = ConvertShape(in.type());
    v->is_graph_input = true;
    g->inputs.push_back(v);
  }
  for (const auto& np : gp.node()) {
    auto node = std::make_unique<ir::Node>();
    node->op_type = np.op_type();
    node->domain = np.domain() == "ai.onnx" ? "" : np.domain();
    node->name = np.name().empty() ? np.op_type() + "_" + std::to_string(g->nodes().size()) : np.name();
    auto it = g->opsets.find(node->domain);
    node->opset = it == g->opsets.end() ? default_opset : it->second;
    if (node->domain.empty() && default_opset < 0) {
      return InvalidArgument("node '" + node->name + "' uses the default ONNX domain, but the "
                             "model imports no opset of it");
    }
    if (auto op = ir::OpKindFromName(np.op_type(), node->domain)) node->op = *op;
    if (node->op == ir::OpKind::kUnsupported && !options.allow_unsupported) {
      std::string dom = node->domain.empty() ? "" : " (domain '" + node->domain + "')";
      return Unimplemented("node '" + node->name + "': op '" + np.op_type() + "'" + dom +
                           " is not supported by clickrt (run `clickrt info` for the full list)");
    }
    for (const auto& a : np.attribute()) {
      ir::Attribute attr;
      Status s = conv.ConvertAttribute(a, node->name, &attr);
      if (!s.ok()) {
        if (node->op == ir::OpKind::kUnsupported) continue;  // only listed, never run
        return s;
      }
      node->attrs[a.name()] = std::move(attr);
    }
    for (const auto& name : np.input()) {
      if (name.empty()) {
        node->inputs.push_back(nullptr);
        continue;
      }
      ir::Value* v = g->FindValue(name);
      if (v == nullptr) {
        return InvalidArgument("node '" + node->name + "' (" + np.op_type() + ") reads '" + name +
                               "', which no earlier node, input or initializer defines");
      }
      node->inputs.push_back(v);
    }
    for (const auto& name : np.output()) {
      if (name.empty()) {
        node->outputs.push_back(nullptr);
        continue;
      }
      if (g->FindValue(name)) {
        return InvalidArgument("node '" + node->name + "' writes '" + name +
                               "', which is already defined (the graph is not in SSA form)");
      }
      node->outputs.push_back(g->AddValue(name));
    }
    g->AddNode(std::move(node));
  }
  for (const auto& out : gp.output()) {
    ir::Value* v = g->FindValue(out.name());
    if (v == nullptr) return InvalidArgument("graph output '" + out.name() + "' is never defined");
    v->is_graph_output = true;
    if (out.type().has_tensor_type() && v->dtype == DType::kUndefined) {
      auto dt = DTypeFromOnnx(out.type().tensor_type().elem_type());
      if (dt.ok()) v->dtype = dt.value();
    }
    g->outputs.push_back(v);
  }
  RETURN_IF_ERROR(ir::Verify(*g, options.allow_unsupported));
  if (options.infer_shapes) RETURN_IF_ERROR(ops::InferGraph(g));
  return Status::Ok();
}

}  // namespace

StatusOr<std::unique_ptr<ir::Graph>> ImportModelFromBytes(const std::string& bytes,
                                                           const std::string& base_dir,
                                                           const ImportOptions& options) {
  onnx::ModelProto model;
  if (bytes.empty()) return DataLoss("the file is empty");
  if (!model.ParseFromString(bytes)) {
    return DataLoss("not a valid ONNX model: protobuf parsing failed (truncated or corrupt file?)");
  }
  auto g = std::make_unique<ir::Graph>();
  RETURN_IF_ERROR(ConvertModel(model, base_dir, options, g.get()));
  return g;
}

StatusOr<std::unique_ptr<ir::Graph>> ImportModel(const std::string& path,
                                                  const ImportOptions& options) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("model file '" + path + "' does not exist");
  if (fs::is_directory(path, ec)) return InvalidArgument("'" + path + "' is a directory, not a model file");
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open model file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  std::string dir = fs::path(path).parent_path().string();
  auto g = ImportModelFromBytes(ss.str(), dir.empty() ? "." : dir, options);
  if (!g.ok()) return g.status().WithContext(path);
  return g;
}

StatusOr<Tensor> ReadTensorProtoFile(const std::string& path, std::string* name) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot open tensor file '" + path + "'");
  onnx::TensorProto tp;
  if (!tp.ParseFromIstream(&in)) return DataLoss(path + ": not a valid ONNX TensorProto");
  if (name) *name = tp.name();
  Converter conv(fs::path(path).parent_path().string());
  auto t = conv.ConvertTensor(tp);
  if (!t.ok()) return t.status().WithContext(path);
  return t;
}

Status WriteTensorProtoFile(const Tensor& t, const std::string& name, const std::string& path) {
  onnx::TensorProto tp;
  tp.set_name(name);
  tp.set_data_type(static_cast<int32_t>(t.dtype()));
  for (int64_t d : t.dims()) tp.add_dims(d);
  tp.set_raw_data(t.raw(), t.nbytes());
  std::ofstream out(path, std::ios::binary);
  if (!out || !tp.SerializeToOstream(&out)) return NotFound("cannot write '" + path + "'");
  return Status::Ok();
}

}  // namespace clickrt::onnx_import
