// `clickrt eval`: AUC and log loss of an engine (or an ONNX model on the reference executor) on
// labelled data, and with --baseline the difference from another one (e.g. the FP32 engine).
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <iostream>
#include <memory>
#include <nlohmann/json.hpp>

#include "commands.h"
#include "engine/engine_file.h"
#include "import/onnx/onnx_importer.h"
#include "quant/dataset.h"
#include "quant/metrics.h"
#include "reference/executor.h"
#include "runtime/inference_engine.h"

namespace clickrt::cli {
namespace {

struct EvalCmd {
  std::string model, baseline, data, schema, labels, format = "auto", output, edge_cases;
  int64_t batch = 256, max_rows = 0;
  double hours = 0;
  int threads = 0, device = 0;
  bool json = false;
};

// An engine file or an ONNX model (reference executor) behind one RunFn.
struct Scorer {
  std::string path, what;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<reference::Executor> exec;
  std::unique_ptr<runtime::InferenceEngine> engine;
  std::vector<runtime::IoSpec> inputs;
  int64_t min_batch = 1, max_batch = 0;  // 0: no limit

  StatusOr<reference::TensorMap> Run(const reference::TensorMap& in) {
    if (exec) return exec->Run(in);
    const int64_t rows = in.begin()->second.dim(0);
    if (rows >= min_batch) return engine->Run(in);
    // A last batch below the engine's profile: pad with copies of the last row, drop their scores.
    reference::TensorMap padded;
    for (const auto& [name, t] : in) {
      Dims dims = t.dims();
      dims[0] = min_batch;
      ASSIGN_OR_RETURN(Tensor p, Tensor::Zeros(t.dtype(), dims));
      const size_t row = t.nbytes() / static_cast<size_t>(rows);
      std::memcpy(p.raw(), t.raw(), t.nbytes());
      for (int64_t r = rows; r < min_batch; ++r) {
        std::memcpy(static_cast<char*>(p.raw()) + row * r,
                    static_cast<const char*>(t.raw()) + row * (rows - 1), row);
      }
      padded[name] = std::move(p);
    }
    ASSIGN_OR_RETURN(auto out, engine->Run(padded));
    for (auto& [name, t] : out) {
      Dims dims = t.dims();
      dims[0] = rows;
      ASSIGN_OR_RETURN(Tensor s, Tensor::Zeros(t.dtype(), dims));
      std::memcpy(s.raw(), t.raw(), s.nbytes());
      t = std::move(s);
    }
    return out;
  }
};

bool IsOnnx(const std::string& path) {
  return path.size() >= 5 && path.compare(path.size() - 5, 5, ".onnx") == 0;
}

StatusOr<std::unique_ptr<Scorer>> LoadScorer(const std::string& path, const EvalCmd& c) {
  auto s = std::make_unique<Scorer>();
  s->path = path;
  if (IsOnnx(path)) {
    ASSIGN_OR_RETURN(s->graph, onnx_import::ImportModel(path));
    ASSIGN_OR_RETURN(s->exec, reference::Executor::Create(s->graph.get()));
    s->inputs = quant::InputSpecs(*s->graph);
    s->what = "reference executor";
    return s;
  }
  runtime::EngineLoadOptions eo;
  eo.cpu_threads = c.threads;
  eo.device = c.device;
  eo.contexts = 1;
  ASSIGN_OR_RETURN(s->engine, runtime::LoadInferenceEngine(path, eo));
  s->inputs = s->engine->inputs();
  s->min_batch = std::max<int64_t>(1, s->engine->program().meta.profile.min);
  s->max_batch = s->engine->max_batch();
  s->what = s->engine->backend() + " engine";
  return s;
}

struct Evaluated {
  quant::ScoredData scored;
  quant::BinaryMetrics metrics;
  double seconds = 0;
};

StatusOr<Evaluated> EvaluateOne(Scorer& s, quant::Dataset& data, const std::string& output) {
  Evaluated e;
  const auto t0 = std::chrono::steady_clock::now();
  auto scored = quant::ScoreDataset(
      data, [&](const reference::TensorMap& in) { return s.Run(in); }, output);
  if (!scored.ok()) return scored.status().WithContext(s.path);
  e.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  e.scored = std::move(scored).value();
  auto m = quant::EvaluateScores(e.scored.scores, e.scored.labels);
  if (!m.ok()) return m.status().WithContext(s.path);
  e.metrics = m.value();
  return e;
}

Status Eval(const EvalCmd& c) {
  ASSIGN_OR_RETURN(auto model, LoadScorer(c.model, c));
  std::unique_ptr<Scorer> baseline;
  if (!c.baseline.empty()) {
    ASSIGN_OR_RETURN(baseline, LoadScorer(c.baseline, c));
    for (const auto& in : model->inputs) {
      auto it = std::find_if(baseline->inputs.begin(), baseline->inputs.end(),
                             [&](const runtime::IoSpec& b) { return b.name == in.name; });
      if (it == baseline->inputs.end() || it->dtype != in.dtype) {
        return InvalidArgument("the baseline " + c.baseline + " does not take input '" + in.name +
                               "' as " + DTypeName(in.dtype));
      }
    }
  }
  quant::DatasetOptions d;
  d.path = c.data;
  d.format = c.format;
  d.schema = c.schema;
  d.labels = c.labels;
  d.batch_size = c.batch;
  for (const Scorer* s : {model.get(), baseline.get()}) {
    if (s && s->max_batch > 0) d.batch_size = std::min(d.batch_size, s->max_batch);
  }
  d.max_rows = c.max_rows;
  d.hours = c.hours;
  d.edge_cases = c.edge_cases;
  d.require_labels = true;
  ASSIGN_OR_RETURN(auto data, quant::Dataset::Open(d, model->inputs));
  ASSIGN_OR_RETURN(Evaluated m, EvaluateOne(*model, *data, c.output));
  std::optional<Evaluated> b;
  double max_diff = 0;
  if (baseline) {
    ASSIGN_OR_RETURN(b, EvaluateOne(*baseline, *data, c.output));
    for (size_t i = 0; i < m.scored.scores.size(); ++i) {
      max_diff = std::max(max_diff,
                          std::fabs(static_cast<double>(m.scored.scores[i]) - b->scored.scores[i]));
    }
  }
  const std::string desc = data->Describe();
  if (c.json) {
    auto one = [](const std::string& path, const std::string& what, const Evaluated& e) {
      return nlohmann::json{{"path", path},
                            {"runner", what},
                            {"auc", e.metrics.auc},
                            {"logloss", e.metrics.logloss},
                            {"seconds", e.seconds}};
    };
    nlohmann::json j = {{"data", desc},
                        {"rows", m.metrics.rows},
                        {"positives", m.metrics.positives},
                        {"model", one(c.model, model->what, m)}};
    if (b) {
      j["baseline"] = one(c.baseline, baseline->what, *b);
      j["auc_drop"] = b->metrics.auc - m.metrics.auc;
      j["logloss_increase"] = m.metrics.logloss - b->metrics.logloss;
      j["max_abs_score_diff"] = max_diff;
    }
    std::cout << j.dump() << "\n";
    return Status::Ok();
  }
  std::printf("data: %s: %lld rows, %lld positives\n", desc.c_str(),
              static_cast<long long>(m.metrics.rows), static_cast<long long>(m.metrics.positives));
  std::printf("%-9s %-44s %-20s %10s %10s %9s\n", "", "file", "runner", "AUC", "logloss",
              "seconds");
  auto row = [](const char* role, const std::string& path, const std::string& what,
                const Evaluated& e) {
    std::printf("%-9s %-44s %-20s %10.6f %10.6f %9.3f\n", role, path.c_str(), what.c_str(),
                e.metrics.auc, e.metrics.logloss, e.seconds);
  };
  row("model", c.model, model->what, m);
  if (b) {
    row("baseline", c.baseline, baseline->what, *b);
    std::printf(
        "AUC drop (baseline - model): %.6f   logloss increase: %.6f   max |score diff|: %.3g\n",
        b->metrics.auc - m.metrics.auc, m.metrics.logloss - b->metrics.logloss, max_diff);
  }
  return Status::Ok();
}

}  // namespace

void RegisterEval(CLI::App& app, int* exit_code) {
  auto c = std::make_shared<EvalCmd>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "AUC and log loss of an engine (or an ONNX model, reference executor) on labelled "
      "data; with --baseline, the difference from another engine");
  cmd->add_option("model", c->model, "Engine file, or an ONNX model (.onnx)")->required();
  cmd->add_option("--data", c->data,
                  "Labelled data: a folder of <input>.pb files (labels.pb, or ../val_labels.pb "
                  "beside a val_inputs folder), a Criteo-style .tsv (with the schema), or a "
                  "request log whose records carry \"label\"")
      ->required();
  cmd->add_option("--baseline", c->baseline, "Engine or ONNX model to compare with (e.g. FP32)");
  cmd->add_option("--schema", c->schema, "schema.json for a .tsv (default: beside it)");
  cmd->add_option("--labels", c->labels, "Labels file for a tensor folder");
  cmd->add_option("--format", c->format, "auto, tensors, tsv or request_log")
      ->capture_default_str();
  cmd->add_option("--output", c->output,
                  "The model output holding the scores (default: the only one)");
  cmd->add_option("--batch", c->batch, "Rows per batch (at most the engine's max batch)")
      ->capture_default_str();
  cmd->add_option("--max-rows", c->max_rows, "Use at most this many rows (0: all)");
  cmd->add_option("--hours", c->hours, "Request log: only the records of the last H hours");
  cmd->add_option("--edge-cases", c->edge_cases, "Request log: a JSONL or .tsv file appended");
  cmd->add_option("--threads", c->threads, "CPU threads for a cpu engine (0: all)");
  cmd->add_option("--device", c->device, "GPU index for a cuda engine");
  cmd->add_flag("--json", c->json, "Print one line of JSON");
  cmd->callback([c, exit_code] {
    Status s = Eval(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
