#include "engine/engine_file.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>

#include "engine/sha256.h"

namespace clickrt::engine {

using nlohmann::json;

namespace {

constexpr size_t kChecksumOffset = 56;

struct Header {
  uint32_t format_version = 0, header_bytes = 0;
  uint64_t json_offset = 0, json_bytes = 0, weights_offset = 0, weights_bytes = 0;
  uint64_t file_bytes = 0, checksum = 0;
};

void PutLE(uint8_t* p, uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint64_t GetLE(const uint8_t* p, int bytes) {
  uint64_t v = 0;
  for (int i = 0; i < bytes; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

std::string EncodeHeader(const Header& h) {
  uint8_t b[kHeaderBytes] = {};
  std::memcpy(b, kMagic, sizeof(kMagic));
  PutLE(b + 8, h.format_version, 4);
  PutLE(b + 12, h.header_bytes, 4);
  PutLE(b + 16, h.json_offset, 8);
  PutLE(b + 24, h.json_bytes, 8);
  PutLE(b + 32, h.weights_offset, 8);
  PutLE(b + 40, h.weights_bytes, 8);
  PutLE(b + 48, h.file_bytes, 8);
  PutLE(b + 56, h.checksum, 8);
  return std::string(reinterpret_cast<const char*>(b), sizeof(b));
}

Header DecodeHeader(const uint8_t* b) {
  Header h;
  h.format_version = static_cast<uint32_t>(GetLE(b + 8, 4));
  h.header_bytes = static_cast<uint32_t>(GetLE(b + 12, 4));
  h.json_offset = GetLE(b + 16, 8);
  h.json_bytes = GetLE(b + 24, 8);
  h.weights_offset = GetLE(b + 32, 8);
  h.weights_bytes = GetLE(b + 40, 8);
  h.file_bytes = GetLE(b + 48, 8);
  h.checksum = GetLE(b + 56, 8);
  return h;
}

uint64_t AlignUp(uint64_t v) {
  return (v + kWeightAlignment - 1) / kWeightAlignment * kWeightAlignment;
}

uint64_t ChecksumOf(const Sha256::Digest& d) { return GetLE(d.data(), 8); }

// The checksum of a complete file image (its checksum field read as zero).
uint64_t FileChecksum(const uint8_t* file, size_t size) {
  static constexpr uint8_t kZeros[8] = {};
  Sha256 hasher;
  hasher.Update(std::span<const uint8_t>(file, kChecksumOffset));
  hasher.Update(std::span<const uint8_t>(kZeros, 8));
  hasher.Update(std::span<const uint8_t>(file + kHeaderBytes, size - kHeaderBytes));
  return ChecksumOf(hasher.Finish());
}

std::string Hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "0x%016llx", static_cast<unsigned long long>(v));
  return buf;
}

// ---------------------------------------------------------------- Program <-> JSON

json ToJson(const Program& p) {
  const Metadata& m = p.meta;
  json meta = json::object();
  meta["format_version"] = kFormatVersion;
  meta["clickrt_version"] = m.clickrt_version;
  meta["git_revision"] = m.git_revision;
  meta["build_time_utc"] = m.build_time_utc;
  meta["model_sha256"] = m.model_sha256;
  meta["precision"] = m.precision;
  meta["profile"] = {{"min", m.profile.min},
                     {"opt", m.profile.opt},
                     {"max", m.profile.max},
                     {"buckets", m.profile.buckets}};
  meta["backend"] = m.backend;
  meta["cpu_isa"] = m.cpu_isa;
  meta["gpu_name"] = m.gpu_name;
  meta["sm_arch"] = m.sm_arch;
  meta["cuda_version"] = m.cuda_version;
  meta["cublaslt_version"] = m.cublaslt_version;
  meta["calibration_sha256"] = m.calibration_sha256;
  meta["arena_bytes"] = m.arena_bytes;
  meta["arena_bytes_no_reuse"] = m.arena_bytes_no_reuse;
  meta["extra"] = m.extra;

  json tensors = json::array();
  for (const TensorDesc& t : p.tensors) {
    tensors.push_back({{"name", t.name},
                       {"dtype", DTypeName(t.dtype)},
                       {"dims", t.dims},
                       {"weight_offset", t.weight_offset},
                       {"weight_bytes", t.weight_bytes},
                       {"arena_offset", t.arena_offset}});
  }
  json layers = json::array();
  for (const Layer& l : p.layers) {
    layers.push_back({{"name", l.name},
                      {"op", l.op},
                      {"domain", l.domain},
                      {"inputs", l.inputs},
                      {"outputs", l.outputs},
                      {"attrs", l.attrs},
                      {"kernel", l.kernel}});
  }
  return {{"meta", std::move(meta)},
          {"tensors", std::move(tensors)},
          {"layers", std::move(layers)},
          {"inputs", p.inputs},
          {"outputs", p.outputs}};
}

// Reads typed fields out of the parsed document; every error names the field's full path.
class JsonReader {
 public:
  static Status Bad(const std::string& path, const std::string& what) {
    return DataLoss("engine JSON: field '" + path + "' " + what);
  }

  static Status Child(const json& obj, const std::string& prefix, const char* key,
                      const json** out) {
    auto it = obj.find(key);
    if (it == obj.end()) return Bad(prefix + key, "is missing");
    *out = &*it;
    return Status::Ok();
  }
  static Status Object(const json& obj, const std::string& prefix, const char* key,
                       const json** out) {
    RETURN_IF_ERROR(Child(obj, prefix, key, out));
    if (!(*out)->is_object()) return Bad(prefix + key, TypeError(**out, "an object"));
    return Status::Ok();
  }
  static Status Array(const json& obj, const std::string& prefix, const char* key,
                      const json** out) {
    RETURN_IF_ERROR(Child(obj, prefix, key, out));
    if (!(*out)->is_array()) return Bad(prefix + key, TypeError(**out, "an array"));
    return Status::Ok();
  }
  static Status String(const json& obj, const std::string& prefix, const char* key,
                       std::string* out) {
    const json* v;
    RETURN_IF_ERROR(Child(obj, prefix, key, &v));
    if (!v->is_string()) return Bad(prefix + key, TypeError(*v, "a string"));
    *out = v->get_ref<const std::string&>();
    return Status::Ok();
  }
  static Status Int(const json& v, const std::string& path, int64_t lo, int64_t hi, int64_t* out) {
    if (!v.is_number_integer()) return Bad(path, TypeError(v, "an integer"));
    bool in_range;
    if (v.is_number_unsigned()) {
      uint64_t u = v.get<uint64_t>();
      in_range = u <= static_cast<uint64_t>(hi);
      *out = in_range ? static_cast<int64_t>(u) : 0;
    } else {
      *out = v.get<int64_t>();
      in_range = *out >= lo && *out <= hi;
    }
    if (!in_range) {
      return Bad(path, "is " + v.dump() + ", outside [" + std::to_string(lo) + ", " +
                           std::to_string(hi) + "]");
    }
    return Status::Ok();
  }
  static Status Int(const json& obj, const std::string& prefix, const char* key, int64_t* out) {
    const json* v;
    RETURN_IF_ERROR(Child(obj, prefix, key, &v));
    return Int(*v, prefix + key, std::numeric_limits<int64_t>::min(),
               std::numeric_limits<int64_t>::max(), out);
  }
  template <typename T>
  static Status IntList(const json& obj, const std::string& prefix, const char* key,
                        std::vector<T>* out) {
    const json* arr;
    RETURN_IF_ERROR(Array(obj, prefix, key, &arr));
    out->clear();
    out->reserve(arr->size());
    for (size_t i = 0; i < arr->size(); ++i) {
      int64_t x;
      RETURN_IF_ERROR(Int((*arr)[i], prefix + key + "[" + std::to_string(i) + "]",
                          std::numeric_limits<T>::min(), std::numeric_limits<T>::max(), &x));
      out->push_back(static_cast<T>(x));
    }
    return Status::Ok();
  }

 private:
  static std::string TypeError(const json& v, const char* expected) {
    return std::string("is ") + (v.is_null() ? "null" : std::string("a ") + v.type_name()) +
           ", expected " + expected;
  }
};

Status MetaFromJson(const json& doc, Metadata* m) {
  using R = JsonReader;
  const json* meta;
  RETURN_IF_ERROR(R::Object(doc, "", "meta", &meta));
  const std::string p = "meta.";
  int64_t version;
  const json* v;
  RETURN_IF_ERROR(R::Child(*meta, p, "format_version", &v));
  RETURN_IF_ERROR(
      R::Int(*v, p + "format_version", 0, std::numeric_limits<uint32_t>::max(), &version));
  m->format_version = static_cast<uint32_t>(version);
  RETURN_IF_ERROR(R::String(*meta, p, "clickrt_version", &m->clickrt_version));
  RETURN_IF_ERROR(R::String(*meta, p, "git_revision", &m->git_revision));
  RETURN_IF_ERROR(R::String(*meta, p, "build_time_utc", &m->build_time_utc));
  RETURN_IF_ERROR(R::String(*meta, p, "model_sha256", &m->model_sha256));
  RETURN_IF_ERROR(R::String(*meta, p, "precision", &m->precision));
  const json* profile;
  RETURN_IF_ERROR(R::Object(*meta, p, "profile", &profile));
  RETURN_IF_ERROR(R::Int(*profile, p + "profile.", "min", &m->profile.min));
  RETURN_IF_ERROR(R::Int(*profile, p + "profile.", "opt", &m->profile.opt));
  RETURN_IF_ERROR(R::Int(*profile, p + "profile.", "max", &m->profile.max));
  RETURN_IF_ERROR(R::IntList(*profile, p + "profile.", "buckets", &m->profile.buckets));
  RETURN_IF_ERROR(R::String(*meta, p, "backend", &m->backend));
  RETURN_IF_ERROR(R::String(*meta, p, "cpu_isa", &m->cpu_isa));
  RETURN_IF_ERROR(R::String(*meta, p, "gpu_name", &m->gpu_name));
  RETURN_IF_ERROR(R::String(*meta, p, "sm_arch", &m->sm_arch));
  RETURN_IF_ERROR(R::String(*meta, p, "cuda_version", &m->cuda_version));
  RETURN_IF_ERROR(R::String(*meta, p, "cublaslt_version", &m->cublaslt_version));
  RETURN_IF_ERROR(R::String(*meta, p, "calibration_sha256", &m->calibration_sha256));
  RETURN_IF_ERROR(R::Int(*meta, p, "arena_bytes", &m->arena_bytes));
  RETURN_IF_ERROR(R::Int(*meta, p, "arena_bytes_no_reuse", &m->arena_bytes_no_reuse));
  RETURN_IF_ERROR(R::Child(*meta, p, "extra", &v));
  m->extra = *v;
  return Status::Ok();
}

Status ProgramFromJson(const json& doc, Program* program) {
  using R = JsonReader;
  if (!doc.is_object()) return DataLoss("engine JSON: the document is not an object");
  RETURN_IF_ERROR(MetaFromJson(doc, &program->meta));

  const json* tensors;
  RETURN_IF_ERROR(R::Array(doc, "", "tensors", &tensors));
  program->tensors.resize(tensors->size());
  for (size_t i = 0; i < tensors->size(); ++i) {
    const json& t = (*tensors)[i];
    const std::string p = "tensors[" + std::to_string(i) + "]";
    if (!t.is_object()) return R::Bad(p, "is not an object");
    TensorDesc& d = program->tensors[i];
    RETURN_IF_ERROR(R::String(t, p + ".", "name", &d.name));
    std::string dtype;
    RETURN_IF_ERROR(R::String(t, p + ".", "dtype", &dtype));
    StatusOr<DType> parsed = DTypeFromName(dtype);
    if (!parsed.ok()) return R::Bad(p + ".dtype", "is '" + dtype + "', not a clickrt dtype");
    d.dtype = parsed.value();
    RETURN_IF_ERROR(R::IntList(t, p + ".", "dims", &d.dims));
    RETURN_IF_ERROR(R::Int(t, p + ".", "weight_offset", &d.weight_offset));
    RETURN_IF_ERROR(R::Int(t, p + ".", "weight_bytes", &d.weight_bytes));
    RETURN_IF_ERROR(R::Int(t, p + ".", "arena_offset", &d.arena_offset));
  }

  const json* layers;
  RETURN_IF_ERROR(R::Array(doc, "", "layers", &layers));
  program->layers.resize(layers->size());
  for (size_t i = 0; i < layers->size(); ++i) {
    const json& l = (*layers)[i];
    const std::string p = "layers[" + std::to_string(i) + "]";
    if (!l.is_object()) return R::Bad(p, "is not an object");
    Layer& layer = program->layers[i];
    RETURN_IF_ERROR(R::String(l, p + ".", "name", &layer.name));
    RETURN_IF_ERROR(R::String(l, p + ".", "op", &layer.op));
    RETURN_IF_ERROR(R::String(l, p + ".", "domain", &layer.domain));
    RETURN_IF_ERROR(R::IntList(l, p + ".", "inputs", &layer.inputs));
    RETURN_IF_ERROR(R::IntList(l, p + ".", "outputs", &layer.outputs));
    const json* attrs;
    RETURN_IF_ERROR(R::Child(l, p + ".", "attrs", &attrs));
    layer.attrs = *attrs;
    RETURN_IF_ERROR(R::String(l, p + ".", "kernel", &layer.kernel));
  }
  RETURN_IF_ERROR(R::IntList(doc, "", "inputs", &program->inputs));
  RETURN_IF_ERROR(R::IntList(doc, "", "outputs", &program->outputs));
  return Status::Ok();
}

// ---------------------------------------------------------------- validation

// Bytes of `t` with the batch dimension (-1) taken as `batch`; false on overflow.
bool TensorBytes(const TensorDesc& t, int64_t batch, int64_t* bytes) {
  int64_t n = static_cast<int64_t>(DTypeSize(t.dtype));
  for (int64_t d : t.dims) {
    // -2 (a dynamic non-batch dim) counts as 1: such tensors are never in the arena.
    if (__builtin_mul_overflow(n, d == -1 ? batch : d == -2 ? 1 : d, &n)) return false;
  }
  *bytes = n;
  return true;
}

std::string TensorName(const Program& p, size_t i) {
  return "tensor " + std::to_string(i) + " '" + p.tensors[i].name + "'";
}

// The structural checks shared by the writer (InvalidArgument) and the loader (DataLoss):
// "" when `p` is valid for a weights blob of `weights_bytes`, else what is wrong.
std::string ValidateProgram(const Program& p, uint64_t weights_bytes) {
  const Profile& pr = p.meta.profile;
  auto profile_text = [&] {
    return " (min " + std::to_string(pr.min) + ", opt " + std::to_string(pr.opt) + ", max " +
           std::to_string(pr.max) + ")";
  };
  if (!(pr.min >= 1 && pr.min <= pr.opt && pr.opt <= pr.max)) {
    return "batch profile must have 1 <= min <= opt <= max" + profile_text();
  }
  for (size_t i = 0; i < pr.buckets.size(); ++i) {
    int64_t b = pr.buckets[i];
    if (b < pr.min || b > pr.max || (i > 0 && b <= pr.buckets[i - 1])) {
      return "batch profile buckets must increase strictly within [min, max]: bucket " +
             std::to_string(i) + " is " + std::to_string(b) + profile_text();
    }
  }
  if (p.meta.arena_bytes < 0 || p.meta.arena_bytes_no_reuse < 0) {
    return "arena sizes must not be negative";
  }
  if (p.tensors.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return "too many tensors";
  }
  const auto n = static_cast<int64_t>(p.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const TensorDesc& t = p.tensors[i];
    if (t.dtype == DType::kUndefined || DTypeSize(t.dtype) == 0) {
      return TensorName(p, i) + " has no dtype";
    }
    bool has_batch = false, has_dynamic = false;
    for (int64_t d : t.dims) {
      if (d < -2) return TensorName(p, i) + " has a negative dimension in " + DimsToString(t.dims);
      has_batch |= d == -1;
      has_dynamic |= d == -2;
    }
    if (has_dynamic && (t.weight_offset >= 0 || t.arena_offset >= 0)) {
      return TensorName(p, i) + " has a dynamic dimension (-2) but is a constant or in the arena";
    }
    int64_t bytes;
    if (!TensorBytes(t, p.meta.profile.max, &bytes)) {
      return TensorName(p, i) + ": size of " + DimsToString(t.dims) + " overflows";
    }
    if (t.weight_offset >= 0) {
      if (has_batch) return TensorName(p, i) + " is a constant with a batch dimension (-1)";
      if (t.arena_offset != -1) return TensorName(p, i) + " is a constant and also in the arena";
      if (t.weight_offset % static_cast<int64_t>(kWeightAlignment) != 0) {
        return TensorName(p, i) + ": weight offset " + std::to_string(t.weight_offset) +
               " is not a multiple of " + std::to_string(kWeightAlignment);
      }
      if (t.weight_bytes != bytes) {
        return TensorName(p, i) + ": weight_bytes is " + std::to_string(t.weight_bytes) + ", but " +
               DTypeName(t.dtype) + DimsToString(t.dims) + " is " + std::to_string(bytes) +
               " bytes";
      }
      if (static_cast<uint64_t>(t.weight_offset) > weights_bytes ||
          static_cast<uint64_t>(t.weight_bytes) > weights_bytes - t.weight_offset) {
        return TensorName(p, i) + ": weight range [" + std::to_string(t.weight_offset) + ", " +
               std::to_string(t.weight_offset + t.weight_bytes) +
               ") is outside the weights blob (" + std::to_string(weights_bytes) + " bytes)";
      }
    } else if (t.weight_offset != -1 || t.weight_bytes != 0) {
      return TensorName(p, i) + ": weight_offset must be -1 and weight_bytes 0 for a non-constant";
    }
    if (t.arena_offset < -1) return TensorName(p, i) + ": negative arena offset";
    if (t.arena_offset >= 0 &&
        (t.arena_offset > p.meta.arena_bytes || bytes > p.meta.arena_bytes - t.arena_offset)) {
      return TensorName(p, i) + ": arena range [" + std::to_string(t.arena_offset) + ", +" +
             std::to_string(bytes) + ") at batch " + std::to_string(p.meta.profile.max) +
             " is outside the arena (" + std::to_string(p.meta.arena_bytes) + " bytes)";
    }
  }
  for (size_t i = 0; i < p.layers.size(); ++i) {
    const Layer& l = p.layers[i];
    const std::string where = "layer " + std::to_string(i) + " '" + l.name + "' (" + l.op + ")";
    for (const auto* list : {&l.inputs, &l.outputs}) {
      for (size_t k = 0; k < list->size(); ++k) {
        int32_t x = (*list)[k];
        if (x < -1 || x >= n) {
          return where + ": " + (list == &l.inputs ? "input " : "output ") + std::to_string(k) +
                 " is tensor index " + std::to_string(x) + ", outside [-1, " + std::to_string(n) +
                 ")";
        }
      }
    }
    if (!l.attrs.is_null() && !l.attrs.is_object()) {
      return where + ": attrs must be an object or null, not " + l.attrs.type_name();
    }
  }
  for (const auto* list : {&p.inputs, &p.outputs}) {
    for (size_t k = 0; k < list->size(); ++k) {
      int32_t x = (*list)[k];
      if (x < 0 || x >= n) {
        return std::string("graph ") + (list == &p.inputs ? "input " : "output ") +
               std::to_string(k) + " is tensor index " + std::to_string(x) + ", outside [0, " +
               std::to_string(n) + ")";
      }
    }
  }
  return "";
}

// ---------------------------------------------------------------- expectations

std::string CudaMajor(const std::string& version) { return version.substr(0, version.find('.')); }

Status CheckExpectations(const Metadata& m, const Expectations& e) {
  const std::string rebuild = "; rebuild the engine for this machine with `clickrt build`";
  if (!e.backend.empty() && m.backend != e.backend) {
    return FailedPrecondition("engine was built for backend '" + m.backend +
                              "', this runtime is '" + e.backend + "'" + rebuild);
  }
  if (m.backend == "cpu" && !m.cpu_isa.empty() && !e.cpu_isas.empty()) {
    bool found = false;
    std::string supported;
    for (const std::string& isa : e.cpu_isas) {
      found |= isa == m.cpu_isa;
      supported += (supported.empty() ? "" : ", ") + isa;
    }
    if (!found) {
      return FailedPrecondition("engine was built for CPU ISA '" + m.cpu_isa +
                                "', this CPU supports: " + supported + rebuild);
    }
  }
  if (m.backend == "cuda") {
    if (!e.sm_arch.empty() && m.sm_arch != e.sm_arch) {
      std::string gpu = m.gpu_name.empty() ? "" : " (" + m.gpu_name + ")";
      return FailedPrecondition("engine was built for " + m.sm_arch + gpu + ", this GPU is " +
                                e.sm_arch + rebuild);
    }
    if (!e.cuda_major.empty() && CudaMajor(m.cuda_version) != e.cuda_major) {
      return FailedPrecondition("engine was built with CUDA " + m.cuda_version + " (major " +
                                CudaMajor(m.cuda_version) + "), this runtime has CUDA major " +
                                e.cuda_major + rebuild);
    }
  }
  return Status::Ok();
}

// ---------------------------------------------------------------- foreign files

std::string Printable(const uint8_t* p, size_t n) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    if (p[i] >= 0x20 && p[i] < 0x7f && p[i] != '"' && p[i] != '\\') {
      out.push_back(static_cast<char>(p[i]));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\x%02x", p[i]);
      out += buf;
    }
  }
  return out;
}

// A guess at what a non-engine file is, for the error message ("" when unknown).
std::string GuessFileKind(const uint8_t* p, size_t n) {
  auto starts = [&](std::string_view s) {
    return n >= s.size() && std::memcmp(p, s.data(), s.size()) == 0;
  };
  // ONNX ModelProto: field 1 (ir_version, varint 3..12) then field 2..8 (producer, opset, graph).
  if (n >= 3 && p[0] == 0x08 && p[1] >= 3 && p[1] <= 12 &&
      (p[2] == 0x12 || p[2] == 0x1a || p[2] == 0x22 || p[2] == 0x2a || p[2] == 0x3a ||
       p[2] == 0x42)) {
    return "an ONNX model; compile it with `clickrt build`";
  }
  if (starts("ftrt") || starts("ptrt")) return "a TensorRT plan";
  if (starts("PK\x03\x04")) return "a zip archive, e.g. a PyTorch checkpoint";
  if (n >= 2 && p[0] == 0x80 && p[1] >= 2 && p[1] <= 5) return "a Python pickle";
  if (starts("GGUF")) return "a GGUF model";
  if (starts("\x89HDF")) return "an HDF5 file";
  if (starts("{") || starts("[")) return "a JSON document";
  return "";
}

}  // namespace

// ---------------------------------------------------------------- loading

// Validates a complete file image and fills an engine that already owns the bytes.
class EngineLoader {
 public:
  static Status Parse(const uint8_t* data, size_t size, const Expectations& expect,
                      LoadedEngine* engine) {
    if (size == 0) return DataLoss("the file is empty (0 bytes)");
    size_t magic_n = std::min(size, sizeof(kMagic));
    if (std::memcmp(data, kMagic, magic_n) != 0) {
      std::string guess = GuessFileKind(data, size);
      return InvalidArgument("not a clickrt engine file: magic is \"" + Printable(data, magic_n) +
                             "\", expected \"CLKRTENG\"" +
                             (guess.empty() ? "" : " (looks like " + guess + ")"));
    }
    if (size < kHeaderBytes) {
      return DataLoss("truncated: the file is " + std::to_string(size) +
                      " bytes, shorter than the " + std::to_string(kHeaderBytes) +
                      "-byte engine header");
    }
    Header h = DecodeHeader(data);
    if (h.format_version != kFormatVersion) {
      return FailedPrecondition("engine format version " + std::to_string(h.format_version) +
                                " is not supported: this clickrt reads format version " +
                                std::to_string(kFormatVersion) +
                                "; rebuild the engine with this clickrt's `clickrt build`");
    }
    if (h.header_bytes != kHeaderBytes || h.json_offset != kHeaderBytes) {
      return DataLoss("corrupt header: header_bytes " + std::to_string(h.header_bytes) +
                      " and json_offset " + std::to_string(h.json_offset) + ", expected " +
                      std::to_string(kHeaderBytes));
    }
    if (h.file_bytes != size) {
      return DataLoss((h.file_bytes > size ? "truncated: the header says the file is "
                                           : "trailing bytes: the header says the file is ") +
                      std::to_string(h.file_bytes) + " bytes, it is " + std::to_string(size) +
                      " bytes");
    }
    // file_bytes == size now bounds every region; check the arithmetic without overflow.
    if (h.json_bytes > size - kHeaderBytes ||
        h.weights_offset != AlignUp(kHeaderBytes + h.json_bytes) || h.weights_offset > size ||
        h.weights_bytes != size - h.weights_offset) {
      return DataLoss("corrupt header: json_bytes " + std::to_string(h.json_bytes) +
                      ", weights_offset " + std::to_string(h.weights_offset) + ", weights_bytes " +
                      std::to_string(h.weights_bytes) + " do not fit a file of " +
                      std::to_string(size) + " bytes");
    }
    if (expect.verify_checksum) {
      uint64_t actual = FileChecksum(data, size);
      if (actual != h.checksum) {
        return DataLoss("checksum mismatch: the header says " + Hex(h.checksum) +
                        ", the contents hash to " + Hex(actual) + " (corrupt file)");
      }
    }
    const char* json_begin = reinterpret_cast<const char*>(data + kHeaderBytes);
    json doc = json::parse(json_begin, json_begin + h.json_bytes, nullptr,
                           /*allow_exceptions=*/false);
    if (doc.is_discarded()) return DataLoss("engine JSON: the document does not parse");
    Program& program = engine->program_;
    RETURN_IF_ERROR(ProgramFromJson(doc, &program));
    if (program.meta.format_version != h.format_version) {
      return DataLoss("meta.format_version is " + std::to_string(program.meta.format_version) +
                      ", the header says " + std::to_string(h.format_version));
    }
    std::string invalid = ValidateProgram(program, h.weights_bytes);
    if (!invalid.empty()) return DataLoss("invalid program: " + invalid);
    RETURN_IF_ERROR(CheckExpectations(program.meta, expect));
    engine->weights_ = std::span<const uint8_t>(data + h.weights_offset, h.weights_bytes);
    return Status::Ok();
  }

  static std::shared_ptr<LoadedEngine> New() {
    return std::shared_ptr<LoadedEngine>(new LoadedEngine());
  }
  static void SetMapping(LoadedEngine* e, void* base, size_t bytes) {
    e->map_base_ = base;
    e->map_bytes_ = bytes;
  }
  static void SetOwned(LoadedEngine* e, void* owned) { e->owned_ = owned; }
  static void SetSource(LoadedEngine* e, std::string source) { e->source_ = std::move(source); }
};

LoadedEngine::~LoadedEngine() {
  if (map_base_ != nullptr) munmap(map_base_, map_bytes_);
  std::free(owned_);
}

StatusOr<Tensor> LoadedEngine::Weight(int32_t tensor_index) const {
  if (tensor_index < 0 || static_cast<size_t>(tensor_index) >= program_.tensors.size()) {
    return OutOfRange("tensor index " + std::to_string(tensor_index) + " is outside [0, " +
                      std::to_string(program_.tensors.size()) + ")");
  }
  const TensorDesc& t = program_.tensors[tensor_index];
  if (!t.is_constant()) {
    return InvalidArgument(TensorName(program_, tensor_index) + " is not a constant");
  }
  // Validated at load: the range is inside the blob and the dims have no -1.
  auto* data = const_cast<uint8_t*>(weights_.data() + t.weight_offset);
  std::shared_ptr<void> owner = std::const_pointer_cast<LoadedEngine>(shared_from_this());
  return Tensor::View(t.dtype, t.dims, data, std::move(owner));
}

StatusOr<std::shared_ptr<LoadedEngine>> LoadEngine(const std::string& path,
                                                   const Expectations& expect) {
  const std::string context = "engine '" + path + "'";
  int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    int err = errno;
    std::string why = context + ": " + std::strerror(err);
    if (err == ENOENT || err == ENOTDIR) return NotFound(why);
    return FailedPrecondition(why);
  }
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return InvalidArgument(context + ": not a regular file");
  }
  auto size = static_cast<size_t>(st.st_size);
  std::shared_ptr<LoadedEngine> engine = EngineLoader::New();
  EngineLoader::SetSource(engine.get(), path);
  const uint8_t* data = nullptr;
  if (size > 0) {
    void* base = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
    int err = errno;
    close(fd);
    if (base == MAP_FAILED) {
      return Status(StatusCode::kResourceExhausted, context + ": mmap of " + std::to_string(size) +
                                                        " bytes failed: " + std::strerror(err));
    }
    EngineLoader::SetMapping(engine.get(), base, size);
    data = static_cast<const uint8_t*>(base);
  } else {
    close(fd);
  }
  try {
    RETURN_IF_ERROR(EngineLoader::Parse(data, size, expect, engine.get()).WithContext(context));
  } catch (const std::exception& e) {  // e.g. bad_alloc: nothing may escape the API
    return Internal(context + ": " + e.what());
  }
  return engine;
}

StatusOr<std::shared_ptr<LoadedEngine>> LoadEngineFromBytes(std::string_view bytes,
                                                            const Expectations& expect) {
  const std::string context = "engine <memory>";
  std::shared_ptr<LoadedEngine> engine = EngineLoader::New();
  EngineLoader::SetSource(engine.get(), "<memory>");
  const uint8_t* data = nullptr;
  if (!bytes.empty()) {
    void* owned = std::aligned_alloc(kWeightAlignment, AlignUp(bytes.size()));
    if (owned == nullptr) {
      return Status(StatusCode::kResourceExhausted,
                    context + ": cannot allocate " + std::to_string(bytes.size()) + " bytes");
    }
    EngineLoader::SetOwned(engine.get(), owned);
    std::memcpy(owned, bytes.data(), bytes.size());
    data = static_cast<const uint8_t*>(owned);
  }
  try {
    RETURN_IF_ERROR(
        EngineLoader::Parse(data, bytes.size(), expect, engine.get()).WithContext(context));
  } catch (const std::exception& e) {
    return Internal(context + ": " + e.what());
  }
  return engine;
}

// ---------------------------------------------------------------- writing

namespace {

// Header + JSON + padding, with the checksum over those and `weights` filled in.
StatusOr<std::string> EncodePrefix(const Program& program, std::span<const uint8_t> weights) {
  std::string invalid = ValidateProgram(program, weights.size());
  if (!invalid.empty()) return InvalidArgument("cannot write engine: " + invalid);
  std::string json_text;
  try {
    json_text = ToJson(program).dump();
  } catch (const json::exception& e) {  // a string that is not UTF-8
    return InvalidArgument(std::string("cannot write engine: ") + e.what());
  }
  Header h;
  h.format_version = kFormatVersion;
  h.header_bytes = kHeaderBytes;
  h.json_offset = kHeaderBytes;
  h.json_bytes = json_text.size();
  h.weights_offset = AlignUp(kHeaderBytes + json_text.size());
  h.weights_bytes = weights.size();
  h.file_bytes = h.weights_offset + h.weights_bytes;
  std::string prefix = EncodeHeader(h);  // checksum field still zero
  prefix += json_text;
  prefix.resize(h.weights_offset, '\0');
  Sha256 hasher;
  hasher.Update(prefix);
  hasher.Update(weights);
  PutLE(reinterpret_cast<uint8_t*>(prefix.data()) + kChecksumOffset, ChecksumOf(hasher.Finish()),
        8);
  return prefix;
}

Status IoError(const std::string& what, const std::string& path, int err) {
  std::string message = what + " '" + path + "': " + std::strerror(err);
  if (err == ENOENT || err == ENOTDIR) return NotFound(message);
  if (err == ENOSPC || err == EDQUOT) return Status(StatusCode::kResourceExhausted, message);
  return FailedPrecondition(message);
}

}  // namespace

StatusOr<std::string> SerializeEngine(const Program& program, std::span<const uint8_t> weights) {
  try {
    ASSIGN_OR_RETURN(std::string bytes, EncodePrefix(program, weights));
    bytes.append(reinterpret_cast<const char*>(weights.data()), weights.size());
    return bytes;
  } catch (const std::exception& e) {
    return Internal(std::string("cannot serialize engine: ") + e.what());
  }
}

Status WriteEngine(const Program& program, std::span<const uint8_t> weights,
                   const std::string& path) {
  std::string prefix;
  try {
    ASSIGN_OR_RETURN(prefix, EncodePrefix(program, weights));
  } catch (const std::exception& e) {
    return Internal(std::string("cannot serialize engine: ") + e.what());
  }
  const std::string tmp = path + ".tmp." + std::to_string(getpid());
  int fd = open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) return IoError("cannot create", tmp, errno);
  auto write_all = [fd](const void* p, size_t n) {
    const auto* c = static_cast<const char*>(p);
    while (n > 0) {
      ssize_t w = write(fd, c, n);
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;
      c += w;
      n -= static_cast<size_t>(w);
    }
    return true;
  };
  bool ok = write_all(prefix.data(), prefix.size()) && write_all(weights.data(), weights.size()) &&
            fsync(fd) == 0;
  int err = errno;
  if (close(fd) != 0 && ok) {
    ok = false;
    err = errno;
  }
  if (!ok) {
    unlink(tmp.c_str());
    return IoError("cannot write", tmp, err);
  }
  if (rename(tmp.c_str(), path.c_str()) != 0) {
    err = errno;
    unlink(tmp.c_str());
    return IoError("cannot rename '" + tmp + "' to", path, err);
  }
  return Status::Ok();
}

std::string ProgramToJson(const Program& program, bool pretty) {
  return ToJson(program).dump(pretty ? 2 : -1, ' ', false, json::error_handler_t::replace);
}

}  // namespace clickrt::engine
