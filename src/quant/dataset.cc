// Dataset: one Source per file kind, each yielding blocks of rows; Dataset cuts them into batches.
#include "quant/dataset.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include "engine/sha256.h"
#include "features/schema.h"
#include "features/tsv_rows.h"
#include "import/onnx/onnx_importer.h"
#include "import/onnx/tensor_dir.h"

namespace clickrt::quant {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

constexpr float kNoLabel = std::numeric_limits<float>::quiet_NaN();

struct Block {
  reference::TensorMap inputs;
  std::vector<float> labels;  // empty when the source has no labels
  int64_t rows = 0;
};

std::string SpecString(const runtime::IoSpec& s) {
  std::string d = std::string(DTypeName(s.dtype)) + "[";
  for (size_t i = 0; i < s.dims.size(); ++i) {
    if (i > 0) d += ",";
    d += i == 0          ? std::string("batch")
         : s.dims[i] < 0 ? std::string("?")
                         : std::to_string(s.dims[i]);
  }
  return d + "]";
}

// Checks a tensor of rows against the model's input.
Status CheckAgainstSpec(const runtime::IoSpec& s, const Tensor& t, const std::string& where) {
  bool ok = t.dtype() == s.dtype && t.rank() == static_cast<int>(s.dims.size()) && t.rank() >= 1;
  for (int i = 1; ok && i < t.rank(); ++i) ok = s.dims[i] < 0 || s.dims[i] == t.dim(i);
  if (!ok) {
    return InvalidArgument(where + ": input '" + s.name + "' is " + t.Describe() +
                           ", the model expects " + SpecString(s));
  }
  return Status::Ok();
}

// Rows [begin, begin + n) of t (a copy).
Tensor SliceRows(const Tensor& t, int64_t begin, int64_t n) {
  Dims dims = t.dims();
  const size_t row_bytes = t.dim(0) == 0 ? 0 : t.nbytes() / static_cast<size_t>(t.dim(0));
  dims[0] = n;
  Tensor out = Tensor::Zeros(t.dtype(), dims).value();
  std::memcpy(out.raw(), static_cast<const char*>(t.raw()) + row_bytes * begin, row_bytes * n);
  return out;
}

// Appends `b`'s rows to `a` (same inputs).
Tensor ConcatRows(const Tensor& a, const Tensor& b) {
  Dims dims = a.dims();
  dims[0] = a.dim(0) + b.dim(0);
  Tensor out = Tensor::Zeros(a.dtype(), dims).value();
  std::memcpy(out.raw(), a.raw(), a.nbytes());
  std::memcpy(static_cast<char*>(out.raw()) + a.nbytes(), b.raw(), b.nbytes());
  return out;
}

class Source {
 public:
  virtual ~Source() = default;
  // Up to max_rows rows into *out (replacing it); 0 at the end.
  virtual StatusOr<int64_t> Read(int64_t max_rows, Block* out) = 0;
  virtual Status Reset() = 0;
  virtual bool has_labels() const = 0;
  virtual std::string Describe() const = 0;
};

// ---- a folder of TensorProto files

class TensorSource final : public Source {
 public:
  static StatusOr<std::unique_ptr<Source>> Open(const std::string& dir, std::string labels_path,
                                                const std::vector<runtime::IoSpec>& specs) {
    auto s = std::make_unique<TensorSource>();
    s->dir_ = dir;
    std::vector<std::string> names;
    for (const auto& spec : specs) names.push_back(spec.name);
    auto read = onnx_import::ReadTensorProtoDir(dir, names);
    if (!read.ok()) return read.status().WithContext("data folder '" + dir + "'");
    s->tensors_ = std::move(read).value();
    for (const auto& spec : specs) {
      const Tensor& t = s->tensors_.at(spec.name);
      RETURN_IF_ERROR(CheckAgainstSpec(spec, t, dir + "/" + spec.name + ".pb"));
      if (s->rows_ < 0) s->rows_ = t.dim(0);
      if (t.dim(0) != s->rows_) {
        return InvalidArgument("data folder '" + dir + "': input '" + spec.name + "' has " +
                               std::to_string(t.dim(0)) + " rows, input '" + specs[0].name +
                               "' has " + std::to_string(s->rows_));
      }
    }
    if (s->rows_ < 0) s->rows_ = 0;
    if (labels_path.empty()) {
      fs::path d = fs::path(dir).lexically_normal();
      if (d.filename().empty()) d = d.parent_path();
      std::error_code ec;
      const std::string stem = d.filename().string();
      const std::string suffix = "_inputs";
      if (fs::exists(d / "labels.pb", ec)) {
        labels_path = (d / "labels.pb").string();
      } else if (stem.size() > suffix.size() &&
                 stem.compare(stem.size() - suffix.size(), suffix.size(), suffix) == 0) {
        fs::path sibling =
            d.parent_path() / (stem.substr(0, stem.size() - suffix.size()) + "_labels.pb");
        if (fs::exists(sibling, ec)) labels_path = sibling.string();
      }
    }
    if (!labels_path.empty()) {
      ASSIGN_OR_RETURN(Tensor l, onnx_import::ReadTensorProtoFile(labels_path));
      if (l.size() != s->rows_ || (!IsFloating(l.dtype()) && !IsInteger(l.dtype()))) {
        return InvalidArgument("labels '" + labels_path + "' are " + l.Describe() + ", expected " +
                               std::to_string(s->rows_) + " numbers (one per row of '" + dir +
                               "')");
      }
      for (int64_t i = 0; i < l.size(); ++i) {
        s->labels_.push_back(static_cast<float>(l.GetAsDouble(i)));
      }
      s->labels_path_ = labels_path;
    }
    return std::unique_ptr<Source>(std::move(s));
  }

  StatusOr<int64_t> Read(int64_t max_rows, Block* out) override {
    const int64_t n = std::min(max_rows, rows_ - pos_);
    *out = Block();
    if (n <= 0) return int64_t{0};
    for (const auto& [name, t] : tensors_) out->inputs[name] = SliceRows(t, pos_, n);
    if (!labels_.empty()) out->labels.assign(labels_.begin() + pos_, labels_.begin() + pos_ + n);
    out->rows = n;
    pos_ += n;
    return n;
  }
  Status Reset() override {
    pos_ = 0;
    return Status::Ok();
  }
  bool has_labels() const override { return !labels_.empty(); }
  std::string Describe() const override {
    return dir_ + " (tensors, " + std::to_string(rows_) + " rows" +
           (labels_path_.empty() ? ", no labels" : ", labels " + labels_path_) + ")";
  }

 private:
  std::string dir_, labels_path_;
  reference::TensorMap tensors_;
  std::vector<float> labels_;
  int64_t rows_ = -1, pos_ = 0;
};

// ---- a Criteo-style TSV assembled by the schema

class TsvSource final : public Source {
 public:
  static StatusOr<std::unique_ptr<Source>> Open(const std::string& path, std::string schema_path,
                                                const std::vector<runtime::IoSpec>& specs) {
    auto s = std::make_unique<TsvSource>();
    std::error_code ec;
    if (schema_path.empty()) {
      fs::path guess = fs::path(path).parent_path() / "schema.json";
      if (!fs::exists(guess, ec)) {
        return InvalidArgument("data file '" + path + "' is a TSV: it needs the model's schema " +
                               "(--schema schema.json; none at " + guess.string() + ")");
      }
      schema_path = guess.string();
    }
    s->path_ = path;
    s->schema_path_ = schema_path;
    s->specs_ = specs;
    ASSIGN_OR_RETURN(s->schema_, features::Schema::Load(schema_path));
    ASSIGN_OR_RETURN(features::TsvLayout layout, features::ReadTsvLayout(schema_path));
    s->has_labels_ = layout.label_column >= 0;
    const std::vector<std::string> names = s->schema_->input_names();
    for (const auto& spec : specs) {
      if (std::find(names.begin(), names.end(), spec.name) == names.end()) {
        return InvalidArgument("schema '" + schema_path + "' does not build the model input '" +
                               spec.name + "'");
      }
    }
    ASSIGN_OR_RETURN(s->reader_, features::TsvRowReader::Open(path, std::move(layout)));
    return std::unique_ptr<Source>(std::move(s));
  }

  StatusOr<int64_t> Read(int64_t max_rows, Block* out) override {
    *out = Block();
    std::vector<features::FeatureRow> rows;
    const int64_t first_line = reader_->line() + 1;
    ASSIGN_OR_RETURN(int64_t n,
                     reader_->Read(max_rows, &rows, has_labels_ ? &out->labels : nullptr));
    if (n == 0) return n;
    std::vector<features::EncodedRowPtr> encoded;
    features::AssemblyLayers layers;
    encoded.reserve(rows.size());
    for (const auto& r : rows) {
      encoded.push_back(schema_->Encode(r));
      layers.rows.push_back(encoded.back().get());
    }
    auto assembled = schema_->Assemble(layers, nullptr);
    const std::string where =
        path_ + ":" + std::to_string(first_line) + "-" + std::to_string(reader_->line());
    if (!assembled.ok()) return assembled.status().WithContext(where);
    for (const auto& spec : specs_) {
      Tensor& t = assembled->at(spec.name);
      RETURN_IF_ERROR(CheckAgainstSpec(spec, t, "schema '" + schema_path_ + "'"));
      out->inputs[spec.name] = std::move(t);
    }
    out->rows = n;
    return n;
  }
  Status Reset() override { return reader_->Rewind(); }
  bool has_labels() const override { return has_labels_; }
  std::string Describe() const override {
    return path_ + " (tsv, schema " + schema_path_ + (has_labels_ ? "" : ", no labels") + ")";
  }

 private:
  std::string path_, schema_path_;
  std::vector<runtime::IoSpec> specs_;
  std::shared_ptr<const features::Schema> schema_;
  std::unique_ptr<features::TsvRowReader> reader_;
  bool has_labels_ = false;
};

// ---- JSON lines: the request log and edge-case files

class JsonLinesSource final : public Source {
 public:
  // `min_time`: keep records with time >= min_time (NaN: keep all, "time" not needed).
  static StatusOr<std::unique_ptr<Source>> Open(std::vector<std::string> files, double min_time,
                                                bool require_labels,
                                                const std::vector<runtime::IoSpec>& specs,
                                                std::string description) {
    auto s = std::make_unique<JsonLinesSource>();
    s->files_ = std::move(files);
    s->min_time_ = min_time;
    s->require_labels_ = require_labels;
    s->specs_ = specs;
    s->description_ = std::move(description);
    for (const auto& spec : specs) {
      int64_t width = 1;
      for (size_t i = 1; i < spec.dims.size(); ++i) {
        if (spec.dims[i] < 0) {
          return Unimplemented("input '" + spec.name + "' is " + SpecString(spec) +
                               ": a JSON-lines file cannot be read for an input of unknown width");
        }
        width *= spec.dims[i];
      }
      if (spec.dtype != DType::kFloat32 && spec.dtype != DType::kInt64 &&
          spec.dtype != DType::kInt32) {
        return Unimplemented("input '" + spec.name + "' is " + DTypeName(spec.dtype) +
                             ": JSON-lines files hold float32, int64 or int32 inputs");
      }
      s->widths_.push_back(width);
    }
    for (const auto& f : s->files_) {
      std::ifstream probe(f);
      if (!probe) return NotFound("cannot open data file '" + f + "'");
    }
    return std::unique_ptr<Source>(std::move(s));
  }

  StatusOr<int64_t> Read(int64_t max_rows, Block* out) override {
    *out = Block();
    std::vector<std::vector<char>> bytes(specs_.size());
    int64_t n = 0;
    std::string text;
    while (n < max_rows) {
      if (!in_.is_open()) {
        if (file_ >= files_.size()) break;
        in_.open(files_[file_], std::ios::binary);
        line_ = 0;
        if (!in_) return NotFound("cannot open data file '" + files_[file_] + "'");
      }
      if (!std::getline(in_, text)) {
        if (in_.bad()) return DataLoss("read error in '" + files_[file_] + "'");
        in_.close();
        in_.clear();
        ++file_;
        continue;
      }
      ++line_;
      if (!text.empty() && text.back() == '\r') text.pop_back();
      if (text.find_first_not_of(" \t") == std::string::npos) continue;
      const std::string where = files_[file_] + ":" + std::to_string(line_);
      json rec = json::parse(text, nullptr, /*allow_exceptions=*/false);
      if (rec.is_discarded() || !rec.is_object()) {
        return InvalidArgument(where + ": not a JSON object");
      }
      if (!std::isnan(min_time_)) {
        auto t = rec.find("time");
        if (t == rec.end() || !t->is_number()) {
          return InvalidArgument(where + ": no numeric \"time\" (needed for the hours cut)");
        }
        if (t->get<double>() < min_time_) continue;
      }
      float label = kNoLabel;
      if (auto l = rec.find("label"); l != rec.end() && !l->is_null()) {
        if (l->is_boolean()) {
          label = l->get<bool>() ? 1.f : 0.f;
        } else if (l->is_number()) {
          label = l->get<float>();
        } else {
          return InvalidArgument(where + ": \"label\" is " + l->dump() + ", not a number");
        }
      }
      if (require_labels_ && std::isnan(label)) return InvalidArgument(where + ": no \"label\"");
      auto inputs = rec.find("inputs");
      if (inputs == rec.end() || !inputs->is_object()) {
        return InvalidArgument(where + ": no \"inputs\" object");
      }
      for (size_t k = 0; k < specs_.size(); ++k) {
        const runtime::IoSpec& spec = specs_[k];
        auto v = inputs->find(spec.name);
        if (v == inputs->end() || !v->is_array() || static_cast<int64_t>(v->size()) != widths_[k]) {
          return InvalidArgument(where + ": input '" + spec.name + "' must be an array of " +
                                 std::to_string(widths_[k]) + " values (the row of " +
                                 SpecString(spec) + ")");
        }
        std::vector<char>& b = bytes[k];
        for (const json& e : *v) {
          if (spec.dtype == DType::kFloat32) {
            if (!e.is_number()) {
              return InvalidArgument(where + ": input '" + spec.name + "' holds " + e.dump());
            }
            const float f = e.get<float>();
            b.insert(b.end(), reinterpret_cast<const char*>(&f),
                     reinterpret_cast<const char*>(&f) + sizeof f);
          } else {
            if (!e.is_number_integer()) {
              return InvalidArgument(where + ": input '" + spec.name + "' is " +
                                     DTypeName(spec.dtype) + " but holds " + e.dump());
            }
            if (spec.dtype == DType::kInt64) {
              const int64_t i = e.get<int64_t>();
              b.insert(b.end(), reinterpret_cast<const char*>(&i),
                       reinterpret_cast<const char*>(&i) + sizeof i);
            } else {
              const int32_t i = e.get<int32_t>();
              b.insert(b.end(), reinterpret_cast<const char*>(&i),
                       reinterpret_cast<const char*>(&i) + sizeof i);
            }
          }
        }
      }
      out->labels.push_back(label);
      ++n;
    }
    for (size_t k = 0; k < specs_.size(); ++k) {
      Dims dims = specs_[k].dims;
      dims[0] = n;
      ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(specs_[k].dtype, dims));
      if (n > 0) std::memcpy(t.raw(), bytes[k].data(), t.nbytes());
      out->inputs[specs_[k].name] = std::move(t);
    }
    out->rows = n;
    return n;
  }
  Status Reset() override {
    in_.close();
    in_.clear();
    file_ = 0;
    line_ = 0;
    return Status::Ok();
  }
  bool has_labels() const override { return true; }
  std::string Describe() const override { return description_; }

 private:
  std::vector<std::string> files_;
  double min_time_ = 0;
  bool require_labels_ = false;
  std::vector<runtime::IoSpec> specs_;
  std::vector<int64_t> widths_;
  std::string description_;
  size_t file_ = 0;
  std::ifstream in_;
  int64_t line_ = 0;
};

bool EndsWith(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() &&
         s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

bool IsRequestLogName(const std::string& name) {
  return name == "requests.log" || name.rfind("requests.log.", 0) == 0 || EndsWith(name, ".jsonl");
}

StatusOr<std::string> DetectFormat(const std::string& path) {
  std::error_code ec;
  if (!fs::exists(path, ec)) return NotFound("data '" + path + "' does not exist");
  if (fs::is_directory(path, ec)) {
    if (fs::exists(fs::path(path) / "requests.log", ec)) return std::string("request_log");
    for (const auto& e : fs::directory_iterator(path, ec)) {
      if (e.path().extension() == ".pb") return std::string("tensors");
    }
    return InvalidArgument("data folder '" + path +
                           "' holds neither TensorProto files (*.pb) nor a requests.log");
  }
  const std::string name = fs::path(path).filename().string();
  if (EndsWith(name, ".tsv")) return std::string("tsv");
  if (IsRequestLogName(name)) return std::string("request_log");
  return InvalidArgument("cannot tell what kind of data '" + path +
                         "' is: expected a folder of <input>.pb files, a *.tsv file, or a "
                         "request log (requests.log, requests.log.<k>, *.jsonl)");
}

// requests.log -> its rotated siblings, oldest (highest k) first, then itself.
std::vector<std::string> RequestLogFiles(const std::string& path) {
  fs::path p(path);
  std::error_code ec;
  if (fs::is_directory(p, ec)) p /= "requests.log";
  if (p.filename() != "requests.log") return {p.string()};
  std::vector<std::pair<int64_t, std::string>> rotated;
  const fs::path dir = p.parent_path().empty() ? fs::path(".") : p.parent_path();
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    const std::string name = e.path().filename().string();
    if (name.rfind("requests.log.", 0) != 0) continue;
    const std::string k = name.substr(13);
    if (k.empty() || k.find_first_not_of("0123456789") != std::string::npos || k.size() > 9)
      continue;
    rotated.push_back({std::stoll(k), (p.parent_path() / name).string()});
  }
  std::sort(rotated.begin(), rotated.end(), std::greater<>());
  std::vector<std::string> files;
  for (auto& r : rotated) files.push_back(std::move(r.second));
  files.push_back(p.string());
  return files;
}

}  // namespace

std::vector<runtime::IoSpec> InputSpecs(const ir::Graph& graph) {
  std::vector<runtime::IoSpec> specs;
  for (const ir::Value* v : graph.inputs) {
    runtime::IoSpec s{v->name, v->dtype, {}};
    if (v->shape.rank_known) {
      for (size_t i = 0; i < v->shape.dims.size(); ++i) {
        s.dims.push_back(i == 0 ? -1 : v->shape.dims[i].known() ? v->shape.dims[i].value : -1);
      }
    }
    specs.push_back(std::move(s));
  }
  return specs;
}

struct Dataset::Impl {
  DatasetOptions o;
  std::vector<runtime::IoSpec> specs;
  std::string kind;
  std::vector<std::unique_ptr<Source>> sources;
  size_t current = 0;
  int64_t rows_read = 0;
  bool has_labels = false;
};

Dataset::Dataset(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Dataset::~Dataset() = default;

StatusOr<std::unique_ptr<Dataset>> Dataset::Open(const DatasetOptions& options,
                                                 std::vector<runtime::IoSpec> inputs) {
  if (options.batch_size < 1) {
    return InvalidArgument("batch size must be >= 1, got " + std::to_string(options.batch_size));
  }
  if (options.max_rows < 0) return InvalidArgument("max rows must be >= 0");
  if (!(options.hours >= 0)) return InvalidArgument("hours must be >= 0");
  if (inputs.empty()) return InvalidArgument("the model has no inputs to read data for");
  for (const auto& s : inputs) {
    if (s.dims.empty()) {
      return InvalidArgument("model input '" + s.name +
                             "' has no batch dimension (rank unknown or 0)");
    }
  }
  auto impl = std::make_unique<Impl>();
  impl->o = options;
  impl->specs = std::move(inputs);
  if (options.format == "auto") {
    ASSIGN_OR_RETURN(impl->kind, DetectFormat(options.path));
  } else if (options.format == "tensors" || options.format == "tsv" ||
             options.format == "request_log") {
    impl->kind = options.format;
  } else {
    return InvalidArgument("unknown data format '" + options.format +
                           "' (auto, tensors, tsv, request_log)");
  }
  if (impl->kind != "request_log" && (options.hours > 0 || !options.edge_cases.empty())) {
    return InvalidArgument("hours and edge cases apply to request logs; '" + options.path +
                           "' is " + impl->kind + " data");
  }
  const auto& specs = impl->specs;
  if (impl->kind == "tensors") {
    ASSIGN_OR_RETURN(auto s, TensorSource::Open(options.path, options.labels, specs));
    impl->sources.push_back(std::move(s));
  } else if (impl->kind == "tsv") {
    ASSIGN_OR_RETURN(auto s, TsvSource::Open(options.path, options.schema, specs));
    impl->sources.push_back(std::move(s));
  } else {
    double min_time = std::numeric_limits<double>::quiet_NaN();
    std::string desc = options.path + " (request log";
    if (options.hours > 0) {
      const double now =
          options.now_unix > 0
              ? options.now_unix
              : std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch())
                    .count();
      min_time = now - options.hours * 3600.0;
      char buf[64];
      std::snprintf(buf, sizeof buf, ", last %g h", options.hours);
      desc += buf;
    }
    desc += ")";
    ASSIGN_OR_RETURN(auto s, JsonLinesSource::Open(RequestLogFiles(options.path), min_time,
                                                   options.require_labels, specs, desc));
    impl->sources.push_back(std::move(s));
    if (!options.edge_cases.empty()) {
      const std::string& e = options.edge_cases;
      std::error_code ec;
      if (!fs::exists(e, ec)) return NotFound("edge-case file '" + e + "' does not exist");
      if (EndsWith(e, ".tsv")) {
        ASSIGN_OR_RETURN(auto t, TsvSource::Open(e, options.schema, specs));
        impl->sources.push_back(std::move(t));
      } else {
        ASSIGN_OR_RETURN(auto t,
                         JsonLinesSource::Open({e}, std::numeric_limits<double>::quiet_NaN(),
                                               options.require_labels, specs, e + " (edge cases)"));
        impl->sources.push_back(std::move(t));
      }
    }
  }
  for (const auto& s : impl->sources) {
    impl->has_labels = impl->has_labels || s->has_labels();
    if (options.require_labels && !s->has_labels()) {
      return InvalidArgument("data " + s->Describe() + " has no labels; evaluation needs them");
    }
  }
  return std::unique_ptr<Dataset>(new Dataset(std::move(impl)));
}

StatusOr<bool> Dataset::Next(Batch* batch) {
  Impl& m = *impl_;
  *batch = Batch();
  int64_t want = m.o.batch_size;
  if (m.o.max_rows > 0) want = std::min(want, m.o.max_rows - m.rows_read);
  while (batch->rows < want && m.current < m.sources.size()) {
    Source& src = *m.sources[m.current];
    Block block;
    ASSIGN_OR_RETURN(int64_t n, src.Read(want - batch->rows, &block));
    if (n == 0) {
      ++m.current;
      continue;
    }
    if (m.has_labels && block.labels.empty()) block.labels.assign(n, kNoLabel);
    if (batch->rows == 0) {
      batch->inputs = std::move(block.inputs);
    } else {
      for (auto& [name, t] : batch->inputs) t = ConcatRows(t, block.inputs.at(name));
    }
    batch->labels.insert(batch->labels.end(), block.labels.begin(), block.labels.end());
    batch->rows += n;
  }
  if (batch->rows == 0) return false;
  m.rows_read += batch->rows;
  if (m.o.progress) m.o.progress(m.rows_read);
  return true;
}

Status Dataset::Reset() {
  for (auto& s : impl_->sources) RETURN_IF_ERROR(s->Reset());
  impl_->current = 0;
  impl_->rows_read = 0;
  return Status::Ok();
}

const std::string& Dataset::kind() const { return impl_->kind; }
bool Dataset::has_labels() const { return impl_->has_labels; }
int64_t Dataset::rows_read() const { return impl_->rows_read; }
const DatasetOptions& Dataset::options() const { return impl_->o; }
const std::vector<runtime::IoSpec>& Dataset::inputs() const { return impl_->specs; }

std::string Dataset::Describe() const {
  std::string d;
  for (const auto& s : impl_->sources) d += (d.empty() ? "" : " + ") + s->Describe();
  if (impl_->o.max_rows > 0) d += ", at most " + std::to_string(impl_->o.max_rows) + " rows";
  return d;
}

StatusOr<DataSummary> ScanDataset(Dataset& data) {
  RETURN_IF_ERROR(data.Reset());
  const auto& specs = data.inputs();
  std::vector<engine::Sha256> hashers(specs.size());
  DataSummary summary;
  Batch b;
  while (true) {
    ASSIGN_OR_RETURN(bool more, data.Next(&b));
    if (!more) break;
    for (size_t k = 0; k < specs.size(); ++k) {
      const Tensor& t = b.inputs.at(specs[k].name);
      hashers[k].Update(std::span<const uint8_t>(static_cast<const uint8_t*>(t.raw()), t.nbytes()));
    }
    summary.rows += b.rows;
    for (float l : b.labels) summary.labelled += !std::isnan(l);
  }
  engine::Sha256 all;
  for (size_t k = 0; k < specs.size(); ++k) {
    std::string line = specs[k].name + " " + DTypeName(specs[k].dtype) + " " +
                       SpecString(specs[k]) + " " + engine::DigestHex(hashers[k].Finish()) + "\n";
    all.Update(line);
  }
  summary.inputs_sha256 = engine::DigestHex(all.Finish());
  RETURN_IF_ERROR(data.Reset());
  return summary;
}

}  // namespace clickrt::quant
