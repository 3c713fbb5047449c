#include "quant_build.h"

#include <cstdio>
#include <iostream>

#include "engine/engine_file.h"
#include "engine/sha256.h"
#include "import/onnx/onnx_importer.h"
#include "passes/pipeline.h"
#include "quant/calibrate_model.h"
#include "quant/dataset.h"
#include "quant/metrics.h"
#include "quant/precision_search.h"
#include "quant/quantize_graph.h"
#include "runtime/cpu_engine.h"

namespace clickrt::cli {
namespace {

void Say(const std::string& s) { std::cerr << s << "\n"; }

// The engine's meta.calibration_sha256: SHA-256 of the table's canonical text, one line per
// value "name scale" (scale as a C99 hex float) after "calibrator param".
std::string TableSha256(const quant::CalibrationTable& t) {
  std::string text = t.calibrator + " " + t.param + "\n";
  for (const auto& [name, scale] : t.scale) {
    char buf[48];
    std::snprintf(buf, sizeof buf, "%a", static_cast<double>(scale));
    text += name + " " + buf + "\n";
  }
  return engine::Sha256Hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(text.data()), text.size()));
}

passes::PipelineOptions Pipeline(const compiler::BuildOptions& o) {
  passes::PipelineOptions po;
  po.batch = {o.profile.min, o.profile.max};
  return po;
}

// AUC on `data` of the cpu engine built from `onnx` with the assignment `q`.
StatusOr<double> CpuAuc(const std::string& onnx, const compiler::BuildOptions& base,
                        const quant::QuantizeOptions& q, quant::Dataset& data) {
  compiler::BuildOptions bo = base;
  bo.progress = nullptr;
  const bool any_int8 = base.precision == "int8" && q.int8_layers;
  bo.precision = any_int8 ? "int8" : "fp32";
  bo.after_passes = quant::AssignmentHook(q);
  ASSIGN_OR_RETURN(compiler::BuildResult r, compiler::Build(onnx, bo));
  ASSIGN_OR_RETURN(std::string bytes, engine::SerializeEngine(r.program, r.weights));
  ASSIGN_OR_RETURN(auto loaded, engine::LoadEngineFromBytes(bytes));
  ASSIGN_OR_RETURN(auto eng, runtime::CpuEngine::Create(std::move(loaded)));
  ASSIGN_OR_RETURN(quant::ScoredData scored,
                   quant::ScoreDataset(data, [&](const reference::TensorMap& in) {
                     return eng->Run(in);
                   }));
  return quant::Auc(scored.scores, scored.labels);
}

}  // namespace

bool WantsQuantization(const std::string& precision, const QuantFlags& f) {
  return precision == "int8" || precision == "fp8" || f.embeddings != "fp32" ||
         !f.calib.data.empty() || !f.eval.empty();
}

StatusOr<quant::CalibrationJob> MakeCalibrationJob(const CalibFlags& f,
                                                   std::function<void(const std::string&)> log) {
  quant::CalibrationJob job;
  job.data.path = f.data;
  job.data.format = f.format;
  job.data.schema = f.schema;
  job.data.labels = f.labels;
  job.data.batch_size = f.batch;
  job.data.max_rows = f.max_rows;
  job.data.hours = f.hours;
  job.data.edge_cases = f.edge_cases;
  ASSIGN_OR_RETURN(job.calibrator.kind, quant::ParseCalibrator(f.calibrator));
  job.calibrator.percentile = f.percentile;
  job.calibrator.skip_zeros = f.skip_zeros;
  job.cache = f.cache;
  job.overwrite = f.overwrite;
  job.log = std::move(log);
  return job;
}

Status PrepareQuantization(const std::string& onnx, const QuantFlags& f, compiler::BuildOptions* o) {
  ASSIGN_OR_RETURN(const quant::EmbeddingFormat emb, quant::ParseEmbeddingFormat(f.embeddings));
  if (o->precision == "fp8") {
    return Unimplemented("precision fp8 is not built yet (INT8 and row-wise embeddings are)");
  }
  const bool int8 = o->precision == "int8";
  if (!int8 && !f.calib.data.empty()) {
    return InvalidArgument("--calib is for --precision int8 (precision is " + o->precision + ")");
  }
  quant::QuantizeOptions q;
  q.int8_layers = int8;
  q.embeddings = emb;
  auto extra = std::make_shared<nlohmann::json>(nlohmann::json::object());
  std::unique_ptr<ir::Graph> graph;  // after the passes; the calibration's, else imported below
  if (int8) {
    if (f.calib.data.empty()) {
      return InvalidArgument(
          "--precision int8 needs --calib DATA (a folder of <input>.pb tensors, a .tsv with its "
          "schema, or the server's request log) for the activation scales");
    }
    ASSIGN_OR_RETURN(quant::CalibrationJob job,
                     MakeCalibrationJob(f.calib, [](const std::string& s) { Say("  calibrate: " + s); }));
    Say("[0/4] calibration (" + f.calib.calibrator + ") from " + f.calib.data);
    auto cr = quant::CalibrateModel(onnx, Pipeline(*o), job, &graph);
    if (!cr.ok()) return cr.status().WithContext("calibration");
    q.act_scales = cr->table.scale;
    o->calibration_sha256 = TableSha256(cr->table);
    (*extra)["calibration"] = {{"calibrator", cr->table.calibrator},
                               {"param", cr->table.param},
                               {"rows", cr->table.rows},
                               {"data", cr->data_description},
                               {"data_sha256", cr->key.data_sha256},
                               {"cache_reused", cr->reused}};
  }
  if (!f.eval.empty()) {
    if (o->backend != "cpu") {
      return Unimplemented(
          "the accuracy gate (--eval) builds and runs cpu engines only; for a cuda engine, "
          "compare it with `clickrt eval ENGINE --data DATA --baseline FLOAT_ENGINE`");
    }
    if (!graph) {
      ASSIGN_OR_RETURN(graph, onnx_import::ImportModel(onnx));
      RETURN_IF_ERROR(passes::RunPipeline(*graph, Pipeline(*o), nullptr));
    }
    quant::DatasetOptions dopt;
    dopt.path = f.eval;
    dopt.schema = f.calib.schema;
    dopt.require_labels = true;
    ASSIGN_OR_RETURN(auto data, quant::Dataset::Open(dopt, quant::InputSpecs(*graph)));
    std::vector<quant::QuantizableLayer> layers;
    if (int8) layers = quant::QuantizableLayers(*graph);
    quant::SearchOptions so;
    so.max_auc_drop = f.max_auc_drop;
    so.allow_mixed = !f.no_mixed;
    so.base = q;
    so.progress = [](const std::string& s) { Say("  gate: " + s); };
    Say("[0/4] accuracy gate on " + data->Describe());
    auto sr = quant::SearchPrecision(layers, so, [&](const quant::QuantizeOptions& cand) {
      return CpuAuc(onnx, *o, cand, *data);
    });
    if (!sr.ok()) return sr.status().WithContext("accuracy gate");
    std::cerr << sr->report;
    q = sr->chosen;
    std::vector<std::string> kept(q.keep_float.begin(), q.keep_float.end());
    (*extra)["gate"] = {{"data", data->Describe()},
                        {"max_auc_drop", f.max_auc_drop},
                        {"float_auc", sr->float_auc},
                        {"all_int8_auc", sr->all_int8_auc},
                        {"chosen_auc", sr->chosen_auc},
                        {"kept_float", kept},
                        {"engines_evaluated", sr->evaluations}};
  }
  // The assignment's report plus the calibration and gate figures, in meta.extra.
  o->after_passes = [hook = quant::AssignmentHook(q), extra](ir::Graph& g) -> StatusOr<nlohmann::json> {
    ASSIGN_OR_RETURN(nlohmann::json j, hook(g));
    j.update(*extra);
    return j;
  };
  return Status::Ok();
}

}  // namespace clickrt::cli
