#include "server/model_repository.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "compiler/compiler.h"
#include "server/server_metrics.h"

namespace clickrt::server {
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

StatusOr<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return NotFound("cannot read '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// A positive integer of at most 18 digits, or -1.
int64_t ParseVersion(const std::string& s) {
  if (s.empty() || s.size() > 18 || s[0] == '0') return -1;
  for (char c : s) {
    if (c < '0' || c > '9') return -1;
  }
  return std::stoll(s);
}

Status ReadInt(const json& j, const char* key, int64_t lo, int64_t hi, const std::string& src,
               int64_t* out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Ok();
  if (!it->is_number_integer() || it->get<int64_t>() < lo || it->get<int64_t>() > hi) {
    return InvalidArgument(src + ": \"" + key + "\" must be an integer in [" + std::to_string(lo) +
                           ", " + std::to_string(hi) + "], got " + it->dump());
  }
  *out = it->get<int64_t>();
  return Status::Ok();
}

// Rows [begin, end) of a tensor (dim 0), copied.
Tensor SliceRows(const Tensor& t, int64_t begin, int64_t end) {
  Dims d = t.dims();
  const size_t row_bytes = d[0] == 0 ? 0 : t.nbytes() / static_cast<size_t>(d[0]);
  d[0] = end - begin;
  Tensor out = Tensor::Zeros(t.dtype(), d).value();
  std::memcpy(out.raw(), static_cast<const char*>(t.raw()) + row_bytes * begin,
              row_bytes * static_cast<size_t>(end - begin));
  return out;
}

StatusOr<Tensor> ConcatRows(const std::vector<Tensor>& parts) {
  Dims d = parts[0].dims();
  d[0] = 0;
  for (const Tensor& p : parts) d[0] += p.dim(0);
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(parts[0].dtype(), d));
  size_t offset = 0;
  for (const Tensor& p : parts) {
    std::memcpy(static_cast<char*>(out.raw()) + offset, p.raw(), p.nbytes());
    offset += p.nbytes();
  }
  return out;
}

// model.onnx -> an engine file in the temp folder, loaded, then unlinked (the mapping stays).
StatusOr<std::unique_ptr<runtime::InferenceEngine>> BuildAndLoad(const std::string& onnx,
                                                                 int64_t max_batch,
                                                                 const RepositoryOptions& o) {
  compiler::BuildOptions b;
  b.profile = {1, std::min<int64_t>(64, max_batch), max_batch, {}};
  b.progress = o.progress;
  auto built = compiler::Build(onnx, b);
  if (!built.ok()) return built.status().WithContext("building " + onnx);
  static std::atomic<int> counter{0};
  const std::string tmp =
      (fs::temp_directory_path() /
       ("clickrt-serve-" + std::to_string(getpid()) + "-" + std::to_string(counter++) + ".engine"))
          .string();
  RETURN_IF_ERROR(engine::WriteEngine(built->program, built->weights, tmp));
  auto eng = runtime::LoadInferenceEngine(tmp, o.engine);
  std::error_code ec;
  fs::remove(tmp, ec);
  if (!eng.ok()) return eng.status().WithContext("loading the engine built from " + onnx);
  return eng;
}

}  // namespace

StatusOr<ModelConfig> ParseModelConfig(const std::string& text, const std::string& src) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument(src + ": not valid JSON");
  if (!j.is_object()) return InvalidArgument(src + ": must be a JSON object");
  static const std::set<std::string> known = {
      "max_batch",    "preferred_batch_sizes", "max_queue_delay_us", "queue_size",
      "timeout_ms",   "instance_count",        "candidates_limit",   "feature_timeout_ms",
      "score_output", "build_max_batch"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!known.count(it.key())) return InvalidArgument(src + ": unknown key \"" + it.key() + "\"");
  }
  ModelConfig c;
  int64_t instances = c.instance_count;
  RETURN_IF_ERROR(ReadInt(j, "max_batch", 1, 1 << 20, src, &c.max_batch));
  RETURN_IF_ERROR(ReadInt(j, "max_queue_delay_us", 0, 10'000'000, src, &c.max_queue_delay_us));
  RETURN_IF_ERROR(ReadInt(j, "queue_size", 1, int64_t{1} << 30, src, &c.queue_size));
  RETURN_IF_ERROR(ReadInt(j, "timeout_ms", 1, 3'600'000, src, &c.timeout_ms));
  RETURN_IF_ERROR(ReadInt(j, "instance_count", 1, 64, src, &instances));
  RETURN_IF_ERROR(ReadInt(j, "candidates_limit", 1, 1 << 20, src, &c.candidates_limit));
  RETURN_IF_ERROR(ReadInt(j, "feature_timeout_ms", 1, 60'000, src, &c.feature_timeout_ms));
  RETURN_IF_ERROR(ReadInt(j, "build_max_batch", 1, 1 << 20, src, &c.build_max_batch));
  c.instance_count = static_cast<int>(instances);
  if (auto it = j.find("preferred_batch_sizes"); it != j.end()) {
    if (!it->is_array())
      return InvalidArgument(src + ": \"preferred_batch_sizes\" must be an array");
    for (const json& v : *it) {
      if (!v.is_number_integer() || v.get<int64_t>() < 1) {
        return InvalidArgument(src + ": \"preferred_batch_sizes\" holds " + v.dump() +
                               ", not a positive integer");
      }
      if (!c.preferred_batch_sizes.empty() && v.get<int64_t>() <= c.preferred_batch_sizes.back()) {
        return InvalidArgument(src + ": \"preferred_batch_sizes\" must be strictly increasing");
      }
      c.preferred_batch_sizes.push_back(v.get<int64_t>());
    }
  }
  if (auto it = j.find("score_output"); it != j.end()) {
    if (!it->is_string()) return InvalidArgument(src + ": \"score_output\" must be a string");
    c.score_output = it->get<std::string>();
  }
  return c;
}

StatusOr<FeatureSources> ParseFeatureSources(const std::string& text, const std::string& src) {
  json j = json::parse(text, nullptr, false);
  if (j.is_discarded()) return InvalidArgument(src + ": not valid JSON");
  if (!j.is_object()) return InvalidArgument(src + ": must be a JSON object");
  FeatureSources f;
  for (auto [key, set] : {std::pair{"user", &f.user}, {"item", &f.item}, {"context", &f.context}}) {
    auto it = j.find(key);
    if (it == j.end()) continue;
    if (!it->is_array())
      return InvalidArgument(src + ": \"" + key + "\" must be an array of names");
    for (const json& v : *it) {
      if (!v.is_string()) {
        return InvalidArgument(src + ": \"" + key + "\" holds " + v.dump() + ", not a name");
      }
      set->insert(v.get<std::string>());
    }
  }
  return f;
}

ModelVersion::~ModelVersion() { batcher.reset(); }

StatusOr<int64_t> ModelVersion::CheckInputs(const std::map<std::string, Tensor>& in) const {
  int64_t batch = -1;
  for (const auto& [name, t] : in) {
    auto spec = std::find_if(inputs.begin(), inputs.end(),
                             [&](const runtime::IoSpec& s) { return s.name == name; });
    if (spec == inputs.end()) {
      std::string names;
      for (const auto& s : inputs) names += (names.empty() ? "" : ", ") + s.name;
      return InvalidArgument("input '" + name + "' is not an input of model '" + this->name +
                             "' (inputs: " + names + ")");
    }
    if (t.dtype() != spec->dtype) {
      return InvalidArgument("input '" + name + "' has dtype " + DTypeName(t.dtype()) +
                             ", the model expects " + DTypeName(spec->dtype));
    }
    if (t.rank() != static_cast<int>(spec->dims.size())) {
      return InvalidArgument("input '" + name + "' has shape " + DimsToString(t.dims()) +
                             ", the model expects rank " + std::to_string(spec->dims.size()) + " " +
                             DimsToString(spec->dims) + " (-1 = batch)");
    }
    for (int i = 0; i < t.rank(); ++i) {
      if (spec->dims[i] >= 0 && spec->dims[i] != t.dim(i)) {
        return InvalidArgument("input '" + name + "' has shape " + DimsToString(t.dims()) +
                               ", the model expects " + DimsToString(spec->dims) + " (-1 = batch)");
      }
      if (spec->dims[i] == -1) {
        if (batch >= 0 && t.dim(i) != batch) {
          return InvalidArgument("input '" + name + "' has batch " + std::to_string(t.dim(i)) +
                                 ", other inputs have " + std::to_string(batch));
        }
        batch = t.dim(i);
      }
    }
  }
  for (const auto& s : inputs) {
    if (!in.count(s.name)) return InvalidArgument("input '" + s.name + "' is missing");
  }
  if (batch == 0) return InvalidArgument("the batch is empty (0 rows)");
  return batch < 0 ? 1 : batch;
}

StatusOr<std::map<std::string, Tensor>> ModelVersion::Infer(std::map<std::string, Tensor> in,
                                                            int priority) const {
  ASSIGN_OR_RETURN(int64_t rows, CheckInputs(in));
  const int64_t chunk = config.max_batch;
  std::vector<std::future<StatusOr<reference::TensorMap>>> parts;
  for (int64_t begin = 0; begin < rows; begin += chunk) {
    runtime::BatchRequest r;
    r.priority = priority;
    if (rows <= chunk) {
      r.inputs = std::move(in);
    } else {
      for (const auto& [name, t] : in)
        r.inputs[name] = SliceRows(t, begin, std::min(rows, begin + chunk));
    }
    parts.push_back(batcher->Submit(std::move(r)));
  }
  if (parts.size() == 1) return parts[0].get();
  std::map<std::string, std::vector<Tensor>> pieces;
  Status first_error;
  for (auto& f : parts) {
    auto out = f.get();  // wait for every part even after an error: they reference no caller state
    if (!out.ok()) {
      if (first_error.ok()) first_error = out.status();
      continue;
    }
    for (auto& [name, t] : *out) pieces[name].push_back(std::move(t));
  }
  if (!first_error.ok()) return first_error;
  std::map<std::string, Tensor> joined;
  for (auto& [name, list] : pieces) {
    ASSIGN_OR_RETURN(joined[name], ConcatRows(list));
  }
  return joined;
}

StatusOr<std::shared_ptr<ModelVersion>> LoadModelVersion(const std::string& dir,
                                                         const std::string& name,
                                                         const std::string& version,
                                                         const RepositoryOptions& o) {
  auto mv = std::make_shared<ModelVersion>();
  mv->name = name;
  mv->version = version;
  mv->dir = dir;
  const fs::path d(dir);
  if (fs::exists(d / "config.json")) {
    ASSIGN_OR_RETURN(std::string text, ReadFile((d / "config.json").string()));
    ASSIGN_OR_RETURN(mv->config, ParseModelConfig(text, (d / "config.json").string()));
  }
  ModelConfig& c = mv->config;
  ASSIGN_OR_RETURN(mv->engine,
                   LoadVersionEngine(dir, name + "/" + version,
                                     std::max(c.build_max_batch, c.max_batch), o.engine, o.fallback,
                                     [&o](const std::string& onnx, int64_t max_batch) {
                                       return BuildAndLoad(onnx, max_batch, o);
                                     },
                                     &mv->source_file));
  const int64_t engine_max = mv->engine->max_batch();
  if (c.max_batch == 0) c.max_batch = engine_max;
  if (c.max_batch > engine_max) {
    return InvalidArgument(dir + "/config.json: max_batch " + std::to_string(c.max_batch) +
                           " exceeds the engine's batch profile max " + std::to_string(engine_max) +
                           " (" + mv->source_file + ")");
  }
  for (int64_t p : c.preferred_batch_sizes) {
    if (p > c.max_batch) {
      return InvalidArgument(dir + "/config.json: preferred batch size " + std::to_string(p) +
                             " exceeds max_batch " + std::to_string(c.max_batch));
    }
  }
  mv->inputs = mv->engine->inputs();
  mv->outputs = mv->engine->outputs();
  if (mv->outputs.empty()) return InvalidArgument(mv->source_file + ": the engine has no outputs");
  if (c.score_output.empty()) c.score_output = mv->outputs[0].name;
  if (std::none_of(mv->outputs.begin(), mv->outputs.end(),
                   [&](const runtime::IoSpec& s) { return s.name == c.score_output; })) {
    return InvalidArgument(dir + "/config.json: score_output '" + c.score_output +
                           "' is not an output of " + mv->source_file);
  }
  ASSIGN_OR_RETURN(mv->schema, features::Schema::Load((d / "schema.json").string()));
  {
    std::vector<std::string> schema_inputs = mv->schema->input_names(), engine_inputs;
    for (const auto& s : mv->inputs) engine_inputs.push_back(s.name);
    std::sort(schema_inputs.begin(), schema_inputs.end());
    std::sort(engine_inputs.begin(), engine_inputs.end());
    if (schema_inputs != engine_inputs) {
      auto join = [](const std::vector<std::string>& v) {
        std::string s;
        for (const auto& x : v) s += (s.empty() ? "" : ", ") + x;
        return s;
      };
      return InvalidArgument(dir + "/schema.json: inputs {" + join(schema_inputs) +
                             "} differ from the engine's {" + join(engine_inputs) + "}");
    }
  }
  for (const std::string& f : mv->schema->field_names()) mv->schema_fields.insert(f);
  if (fs::exists(d / "features.json")) {
    ASSIGN_OR_RETURN(std::string text, ReadFile((d / "features.json").string()));
    ASSIGN_OR_RETURN(mv->sources, ParseFeatureSources(text, (d / "features.json").string()));
  }

  runtime::BatcherOptions bo;
  bo.max_batch = c.max_batch;
  bo.preferred_batch_sizes = c.preferred_batch_sizes;
  bo.max_queue_delay = std::chrono::microseconds(c.max_queue_delay_us);
  bo.max_queue_size = c.queue_size;
  bo.default_timeout = std::chrono::milliseconds(c.timeout_ms);
  bo.workers = c.instance_count;
  runtime::InferenceEngine* eng = mv->engine.get();
  Metrics* metrics = o.metrics;
  const Labels labels = {{"model", name}, {"version", version}};
  runtime::DynamicBatcher::RunFn run = [eng, metrics, labels](const reference::TensorMap& in) {
    const auto t0 = std::chrono::steady_clock::now();
    auto out = eng->Run(in);
    if (metrics) {
      metrics->Observe(
          metric::kCompute, labels,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
    return out;
  };
  runtime::DynamicBatcher::BatchObserver observer;
  if (metrics) {
    observer = [metrics, labels](const runtime::BatchInfo& b) {
      metrics->Observe(metric::kBatchSize, labels, static_cast<double>(b.rows));
      metrics->Observe(metric::kQueue, labels, static_cast<double>(b.oldest_wait.count()) * 1e-6);
    };
  }
  auto batcher = runtime::DynamicBatcher::Create(bo, std::move(run), runtime::SystemClock(),
                                                 std::move(observer));
  if (!batcher.ok()) return batcher.status().WithContext(dir);
  mv->batcher = std::move(batcher).value();
  if (metrics) {
    metrics->Set(metric::kBackend,
                 {{"model", name}, {"version", version}, {"backend", mv->engine->backend()}}, 1);
    metrics->Set(metric::kReady, labels, 1);
  }
  return mv;
}

namespace {

constexpr char kLoads[] = "clickrt_model_loads_total";                 // model, version
constexpr char kLoadFailures[] = "clickrt_model_load_failures_total";  // model, version

std::string Key(const std::string& model, int64_t v) { return model + "/" + std::to_string(v); }

// Names, sizes and mtimes of a version folder's files: a failed load is retried when it changes.
std::string Fingerprint(const fs::path& dir) {
  std::vector<std::string> parts;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(dir, ec)) {
    std::error_code ec2;
    const auto size = e.is_regular_file(ec2) ? e.file_size(ec2) : 0;
    const auto mtime = fs::last_write_time(e.path(), ec2).time_since_epoch().count();
    parts.push_back(e.path().filename().string() + ":" + std::to_string(size) + ":" +
                    std::to_string(mtime));
  }
  std::sort(parts.begin(), parts.end());
  std::string s;
  for (const auto& p : parts) s += p + ";";
  return s;
}

// Version folders of a model folder: number -> path; folders that are not positive integers are
// reported through `bad`.
std::map<int64_t, fs::path> ListVersions(const fs::path& md, std::vector<std::string>* bad) {
  std::map<int64_t, fs::path> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(md, ec)) {
    const std::string n = e.path().filename().string();
    if (n.empty() || n[0] == '.' || !e.is_directory()) continue;
    const int64_t v = ParseVersion(n);
    if (v < 0) {
      if (bad) bad->push_back(e.path().string());
      continue;
    }
    out[v] = e.path();
  }
  return out;
}

std::vector<std::string> ListModels(const std::string& root) {
  std::vector<std::string> out;
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    if (n.empty() || n[0] == '.' || !e.is_directory()) continue;
    out.push_back(n);
  }
  std::sort(out.begin(), out.end());
  return out;
}

}  // namespace

Status ValidateRepositoryName(const std::string& name, const char* what) {
  const bool chars_ok = std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_' ||
           c == '.' || c == '-';
  });
  if (name.empty() || name.size() > 128 || !chars_ok || name[0] == '.' ||
      name.find("..") != std::string::npos) {
    return InvalidArgument(std::string(what) + " name '" + name.substr(0, 64) +
                           "' is not allowed: use 1 to 128 of [A-Za-z0-9_.-], not starting with "
                           "'.', without '..'");
  }
  return Status::Ok();
}

StatusOr<std::unique_ptr<ModelRepository>> ModelRepository::Load(const std::string& root,
                                                                 const RepositoryOptions& o) {
  std::error_code ec;
  if (!fs::is_directory(root, ec)) {
    return NotFound("model repository '" + root + "' is not a directory");
  }
  if (o.metrics) {
    o.metrics->RegisterCounter(kLoads,
                               "Model versions loaded (at start, by the admin API, polling).");
    o.metrics->RegisterCounter(kLoadFailures,
                               "Model version loads that failed (serving unchanged).");
  }
  auto repo = std::make_unique<ModelRepository>();
  repo->root_ = root;
  repo->options_ = o;
  fs::directory_iterator probe(root, ec);
  if (ec) return NotFound("cannot list model repository '" + root + "': " + ec.message());
  for (const std::string& model : ListModels(root)) {
    const fs::path md = fs::path(root) / model;
    std::vector<std::string> bad;
    const auto versions = ListVersions(md, &bad);
    if (!bad.empty()) {
      return InvalidArgument(bad[0] + ": a version folder must be named by a positive integer");
    }
    if (versions.empty()) {
      return NotFound(md.string() + ": no version folder (expected " + md.string() + "/1/...)");
    }
    for (const auto& [v, path] : versions) {
      if (o.progress) o.progress("loading " + path.string());
      ASSIGN_OR_RETURN(auto mv, LoadModelVersion(path.string(), model, std::to_string(v), o));
      if (o.metrics) o.metrics->Increment(kLoads, {{"model", model}, {"version", mv->version}});
      repo->models_[model][v] = std::move(mv);
    }
  }
  if (repo->models_.empty()) {
    return NotFound("model repository '" + root + "' holds no model (expected <model>/<version>/)");
  }
  return repo;
}

std::shared_ptr<ModelVersion> ModelRepository::DefaultOf(const std::string& model,
                                                         const VersionMap& versions) const {
  if (auto p = pinned_.find(model); p != pinned_.end()) {
    if (auto it = versions.find(p->second); it != versions.end()) return it->second;
  }
  const auto c = candidate_.find(model);
  for (auto r = versions.rbegin(); r != versions.rend(); ++r) {
    if (c == candidate_.end() || c->second != r->first) return r->second;
  }
  return versions.rbegin()->second;  // only the candidate is loaded
}

StatusOr<std::shared_ptr<const ModelVersion>> ModelRepository::Find(
    const std::string& model, const std::string& version) const {
  std::shared_lock lock(mu_);
  auto it = models_.find(model);
  if (it == models_.end() || it->second.empty()) {
    std::string names;
    for (const auto& [n, v] : models_) names += (names.empty() ? "" : ", ") + n;
    return NotFound("unknown model '" + model + "' (serving: " + names + ")");
  }
  if (version.empty()) return std::shared_ptr<const ModelVersion>(DefaultOf(model, it->second));
  const int64_t v = ParseVersion(version);
  auto vit = it->second.find(v);
  if (v < 0 || vit == it->second.end()) {
    std::string vs;
    for (const auto& [n, m] : it->second) vs += (vs.empty() ? "" : ", ") + std::to_string(n);
    return NotFound("model '" + model + "' has no version '" + version + "' (versions: " + vs +
                    ")");
  }
  return std::shared_ptr<const ModelVersion>(vit->second);
}

StatusOr<std::string> ModelRepository::DefaultModel() const {
  std::shared_lock lock(mu_);
  if (models_.size() == 1) return models_.begin()->first;
  return InvalidArgument("the request names no model and " + std::to_string(models_.size()) +
                         " models are served; set \"model\"");
}

std::vector<std::string> ModelRepository::ModelNames() const {
  std::shared_lock lock(mu_);
  std::vector<std::string> v;
  for (const auto& [n, m] : models_) v.push_back(n);
  return v;
}

std::vector<std::string> ModelRepository::Versions(const std::string& model) const {
  std::shared_lock lock(mu_);
  std::vector<std::string> v;
  auto it = models_.find(model);
  if (it == models_.end()) return v;
  for (auto r = it->second.rbegin(); r != it->second.rend(); ++r)
    v.push_back(std::to_string(r->first));
  return v;
}

StatusOr<std::shared_ptr<ModelVersion>> ModelRepository::LoadOne(const std::string& model,
                                                                 int64_t v) {
  const fs::path dir = fs::path(root_) / model / std::to_string(v);
  const std::string key = Key(model, v);
  const Labels labels = {{"model", model}, {"version", std::to_string(v)}};
  if (options_.progress) options_.progress("loading " + dir.string());
  // The build (model.onnx) can take seconds: outside the lock, serving goes on.
  auto mv = LoadModelVersion(dir.string(), model, std::to_string(v), options_);
  std::unique_lock lock(mu_);
  if (!mv.ok()) {
    failed_[key] = {mv.status().message(), Fingerprint(dir)};
    if (options_.metrics) options_.metrics->Increment(kLoadFailures, labels);
    if (options_.progress) {
      options_.progress("load of " + key + " failed, serving unchanged: " + mv.status().message());
    }
    return mv.status().WithContext("loading " + key);
  }
  failed_.erase(key);
  models_[model][v] = *mv;
  // A newer version loaded after a promotion takes over, as it would without the pin.
  if (auto p = pinned_.find(model); p != pinned_.end() && v > p->second) pinned_.erase(p);
  if (options_.metrics) options_.metrics->Increment(kLoads, labels);
  if (options_.progress) {
    options_.progress("loaded " + key + " from " + (*mv)->source_file + " (" +
                      (*mv)->engine->backend() + ")");
  }
  return mv;
}

StatusOr<std::vector<std::string>> ModelRepository::LoadVersion(const std::string& model,
                                                                const std::string& version) {
  RETURN_IF_ERROR(ValidateRepositoryName(model, "model"));
  const fs::path md = fs::path(root_) / model;
  std::error_code ec;
  if (!fs::is_directory(md, ec)) return NotFound("no model folder " + md.string());
  std::vector<int64_t> todo;
  if (!version.empty()) {
    RETURN_IF_ERROR(ValidateRepositoryName(version, "version"));
    const int64_t v = ParseVersion(version);
    if (v < 0) return InvalidArgument("version '" + version + "' is not a positive integer");
    if (!fs::is_directory(md / version, ec)) {
      return NotFound("no version folder " + (md / version).string());
    }
    todo.push_back(v);
  } else {
    const auto on_disk = ListVersions(md, nullptr);
    std::shared_lock lock(mu_);
    auto it = models_.find(model);
    for (const auto& [v, path] : on_disk) {
      if (it == models_.end() || !it->second.count(v)) todo.push_back(v);
    }
    if (todo.empty()) return std::vector<std::string>{};
  }
  std::vector<std::string> loaded;
  for (int64_t v : todo) {
    ASSIGN_OR_RETURN(auto mv, LoadOne(model, v));
    loaded.push_back(mv->version);
  }
  return loaded;
}

StatusOr<std::vector<std::string>> ModelRepository::UnloadVersion(const std::string& model,
                                                                  const std::string& version) {
  RETURN_IF_ERROR(ValidateRepositoryName(model, "model"));
  if (!version.empty()) RETURN_IF_ERROR(ValidateRepositoryName(version, "version"));
  return Unload(model, version);
}

StatusOr<std::vector<std::string>> ModelRepository::Unload(const std::string& model,
                                                           const std::string& version) {
  std::vector<std::shared_ptr<ModelVersion>> dropped;  // freed after the lock is released
  std::vector<std::string> names;
  {
    std::unique_lock lock(mu_);
    auto it = models_.find(model);
    if (it == models_.end()) return NotFound("model '" + model + "' is not loaded");
    if (version.empty()) {
      for (auto& [v, mv] : it->second) dropped.push_back(std::move(mv));
      it->second.clear();
    } else {
      const int64_t v = ParseVersion(version);
      auto vit = it->second.find(v);
      if (v < 0 || vit == it->second.end()) {
        return NotFound("model '" + model + "' has no loaded version '" + version + "'");
      }
      dropped.push_back(std::move(vit->second));
      it->second.erase(vit);
    }
    if (it->second.empty()) models_.erase(it);
    for (const auto& mv : dropped) {
      const int64_t v = ParseVersion(mv->version);
      if (auto p = pinned_.find(model); p != pinned_.end() && p->second == v) pinned_.erase(p);
      if (auto c = candidate_.find(model); c != candidate_.end() && c->second == v) {
        candidate_.erase(c);
      }
      names.push_back(mv->version);
    }
  }
  for (const auto& mv : dropped) {
    if (options_.metrics) {
      options_.metrics->Set(metric::kReady, {{"model", model}, {"version", mv->version}}, 0);
    }
    if (options_.progress) {
      options_.progress("unloaded " + model + "/" + mv->version + " (" +
                        std::to_string(mv.use_count() - 1) + " other holders drain)");
    }
  }
  return names;
}

void ModelRepository::Rescan() {
  std::map<std::string, std::map<int64_t, fs::path>> disk;
  for (const std::string& m : ListModels(root_)) {
    disk[m] = ListVersions(fs::path(root_) / m, nullptr);
  }
  std::vector<std::pair<std::string, int64_t>> to_load, to_unload;
  {
    std::shared_lock lock(mu_);
    for (const auto& [m, versions] : disk) {
      auto it = models_.find(m);
      for (const auto& [v, path] : versions) {
        if (it != models_.end() && it->second.count(v)) continue;
        auto f = failed_.find(Key(m, v));
        if (f != failed_.end() && f->second.second == Fingerprint(path)) continue;
        to_load.push_back({m, v});
      }
    }
    for (const auto& [m, versions] : models_) {
      auto d = disk.find(m);
      for (const auto& [v, mv] : versions) {
        if (d == disk.end() || !d->second.count(v)) to_unload.push_back({m, v});
      }
    }
  }
  for (const auto& [m, v] : to_load) (void)LoadOne(m, v);
  // Unload, not UnloadVersion: names found on disk are real folders, even ones an admin request
  // could not name (models loaded at start-up are not held to the admin name rules).
  for (const auto& [m, v] : to_unload) (void)Unload(m, std::to_string(v));
}

Status ModelRepository::SetDefault(const std::string& model, const std::string& version) {
  std::unique_lock lock(mu_);
  const int64_t v = ParseVersion(version);
  auto it = models_.find(model);
  if (it == models_.end() || !it->second.count(v)) {
    return NotFound("model '" + model + "' has no loaded version '" + version + "'");
  }
  pinned_[model] = v;
  return Status::Ok();
}

void ModelRepository::SetCandidate(const std::string& model, const std::string& version) {
  std::unique_lock lock(mu_);
  if (version.empty()) {
    candidate_.erase(model);
  } else {
    candidate_[model] = ParseVersion(version);
  }
}

std::vector<ModelRepository::IndexEntry> ModelRepository::Index() const {
  std::vector<IndexEntry> out;
  std::map<std::string, std::map<int64_t, fs::path>> disk;
  for (const std::string& m : ListModels(root_))
    disk[m] = ListVersions(fs::path(root_) / m, nullptr);
  std::shared_lock lock(mu_);
  for (const auto& [m, versions] : models_) disk[m];  // loaded models whose folder went away
  for (const auto& [m, on_disk] : disk) {
    std::set<int64_t> all;
    for (const auto& [v, p] : on_disk) all.insert(v);
    auto it = models_.find(m);
    std::shared_ptr<ModelVersion> def;
    if (it != models_.end()) {
      for (const auto& [v, mv] : it->second) all.insert(v);
      if (!it->second.empty()) def = DefaultOf(m, it->second);
    }
    for (int64_t v : all) {
      IndexEntry e;
      e.name = m;
      e.version = std::to_string(v);
      if (it != models_.end() && it->second.count(v)) {
        e.state = "READY";
        e.is_default = def && def->version == e.version;
        if (auto c = candidate_.find(m); c != candidate_.end() && c->second == v) {
          e.reason = "canary candidate";
        }
      } else {
        e.state = "UNAVAILABLE";
        auto f = failed_.find(Key(m, v));
        e.reason = f != failed_.end() ? "load failed: " + f->second.first : "not loaded";
      }
      out.push_back(std::move(e));
    }
  }
  return out;
}

}  // namespace clickrt::server
