#include "quant/calibrate_model.h"

#include <filesystem>

#include "engine/sha256.h"
#include "import/onnx/onnx_importer.h"

namespace clickrt::quant {

StatusOr<CalibrationResult> RunCalibration(const ir::Graph& graph, const std::string& model_sha256,
                                           const CalibrationJob& job) {
  RETURN_IF_ERROR(job.calibrator.Validate());
  auto say = [&](const std::string& s) {
    if (job.log) job.log(s);
  };
  DatasetOptions dopt = job.data;
  dopt.progress = nullptr;
  ASSIGN_OR_RETURN(auto data, Dataset::Open(dopt, InputSpecs(graph)));
  CalibrationResult r;
  r.data_description = data->Describe();
  ASSIGN_OR_RETURN(r.data, ScanDataset(*data));
  if (r.data.rows == 0)
    return InvalidArgument("calibration data " + r.data_description + " has no rows");
  say("data: " + r.data_description + ": " + std::to_string(r.data.rows) + " rows, sha256 " +
      r.data.inputs_sha256.substr(0, 16) + "...");

  r.key.model_sha256 = model_sha256;
  r.key.calibrator = CalibratorName(job.calibrator.kind);
  r.key.calibrator_param = job.calibrator.Param();
  r.key.clickrt_version = CLICKRT_VERSION;
  r.key.batch_size = job.data.batch_size;
  r.key.rows = r.data.rows;
  r.key.data_sha256 = r.data.inputs_sha256;

  std::error_code ec;
  if (!job.cache.empty() && std::filesystem::exists(job.cache, ec)) {
    auto cached = LoadCalibrationCache(job.cache, r.key);
    if (cached.ok()) {
      r.table = std::move(cached).value();
      r.reused = true;
      say("calibration cache " + job.cache + " matches (" + r.key.calibrator + " " +
          r.key.calibrator_param + ", " + std::to_string(r.key.rows) + " rows): reused");
      return r;
    }
    if (!job.overwrite) {
      return Status(cached.status().code(),
                    cached.status().message() + "; not replaced (overwrite it to recalibrate)");
    }
    say("calibration cache " + job.cache + " is replaced: " + cached.status().message());
  }

  int last_quarter[3] = {-1, -1, -1};  // a line per quarter of the rows, per pass
  CollectOptions collect;
  collect.values = job.values;
  collect.bins = job.calibrator.bins;
  collect.skip_zeros = job.calibrator.skip_zeros;
  collect.progress = [&](int pass, int64_t rows) {
    const int quarter = static_cast<int>(rows * 4 / r.data.rows);
    if (quarter == last_quarter[pass]) return;
    last_quarter[pass] = quarter;
    say("pass " + std::to_string(pass) + "/2 (" + (pass == 1 ? "ranges" : "histograms") +
        "): " + std::to_string(rows * 100 / r.data.rows) + "% (" + std::to_string(rows) + "/" +
        std::to_string(r.data.rows) + " rows)");
  };
  int64_t rows = 0;
  ASSIGN_OR_RETURN(auto stats, CollectStats(graph, *data, collect, &rows));
  if (rows != r.data.rows) {
    return Internal("the data gave " + std::to_string(rows) + " rows, " +
                    std::to_string(r.data.rows) + " when scanned");
  }
  ASSIGN_OR_RETURN(r.table, MakeCalibrationTable(stats, job.calibrator, rows));
  if (!job.cache.empty()) {
    RETURN_IF_ERROR(SaveCalibrationCache(job.cache, r.key, r.table, r.data_description));
    r.wrote_cache = true;
    say("wrote calibration cache " + job.cache + " (" + std::to_string(r.table.scale.size()) +
        " tensors)");
  }
  return r;
}

StatusOr<CalibrationResult> CalibrateModel(const std::string& onnx_path,
                                           const passes::PipelineOptions& pipeline,
                                           const CalibrationJob& job,
                                           std::unique_ptr<ir::Graph>* optimized) {
  ASSIGN_OR_RETURN(std::string sha, engine::Sha256HexOfFile(onnx_path));
  ASSIGN_OR_RETURN(auto graph, onnx_import::ImportModel(onnx_path));
  RETURN_IF_ERROR(passes::RunPipeline(*graph, pipeline, nullptr));
  auto r = RunCalibration(*graph, sha, job);
  if (optimized) *optimized = std::move(graph);
  return r;
}

}  // namespace clickrt::quant
