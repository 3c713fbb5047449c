// `clickrt calibrate`: the activation scales of a model's INT8 layers from calibration data,
// written to (or reused from) a calibration cache file. docs/QUANTIZATION.md has examples.
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "quant/calibrate_model.h"

namespace clickrt::cli {
namespace {

struct CalibrateCmd {
  std::string model, data, schema, labels, format = "auto", output, edge_cases;
  std::string calibrator = "percentile";
  double percentile = 99.99, hours = 0;
  int64_t batch = 256, max_rows = 0;
  bool overwrite = false, quiet = false, skip_zeros = false;
};

void PrintTable(const quant::CalibrationTable& t) {
  std::printf("%-48s %14s %14s %14s %9s\n", "tensor", "amax", "threshold", "scale", "clipped%");
  for (const auto& [name, scale] : t.scale) {
    const float amax = t.amax.count(name) ? t.amax.at(name) : 0.f;
    const float clipped = t.clipped.count(name) ? t.clipped.at(name) : 0.f;
    std::printf("%-48s %14.6g %14.6g %14.6g %9.4f\n", name.c_str(), amax, scale * 127.0, scale,
                clipped * 100.0);
  }
}

Status Calibrate(const CalibrateCmd& c) {
  quant::CalibrationJob job;
  job.data.path = c.data;
  job.data.format = c.format;
  job.data.schema = c.schema;
  job.data.labels = c.labels;
  job.data.batch_size = c.batch;
  job.data.max_rows = c.max_rows;
  job.data.hours = c.hours;
  job.data.edge_cases = c.edge_cases;
  ASSIGN_OR_RETURN(job.calibrator.kind, quant::ParseCalibrator(c.calibrator));
  job.calibrator.percentile = c.percentile;
  job.calibrator.skip_zeros = c.skip_zeros;
  job.cache = c.output;
  job.overwrite = c.overwrite;
  if (!c.quiet) job.log = [](const std::string& s) { std::cerr << s << "\n"; };
  ASSIGN_OR_RETURN(quant::CalibrationResult r,
                   quant::CalibrateModel(c.model, passes::PipelineOptions{}, job));
  PrintTable(r.table);
  std::cerr << (r.reused ? "reused " : "wrote ") << c.output << ": " << r.table.scale.size()
            << " tensors, " << r.key.calibrator << " (" << r.key.calibrator_param << "), "
            << r.key.rows << " rows\n";
  return Status::Ok();
}

}  // namespace

void RegisterCalibrate(CLI::App& app, int* exit_code) {
  auto c = std::make_shared<CalibrateCmd>();
  CLI::App* cmd = app.add_subcommand(
      "calibrate",
      "Compute the INT8 activation scales of a model's Linear / Cross layers from calibration "
      "data into a calibration cache file (reused when it matches)");
  cmd->add_option("model", c->model, "ONNX model file")->required();
  cmd->add_option("--data", c->data,
                  "Calibration data: a folder of <input>.pb tensor files, a Criteo-style .tsv "
                  "(with the schema), or a request log (requests.log, *.jsonl)")
      ->required();
  cmd->add_option("-o,--output", c->output, "Calibration cache file to write or reuse")->required();
  cmd->add_option("--schema", c->schema, "schema.json for a .tsv (default: beside it)");
  cmd->add_option("--labels", c->labels, "Labels file for a tensor folder (not needed here)");
  cmd->add_option("--format", c->format, "auto, tensors, tsv or request_log")
      ->capture_default_str();
  cmd->add_option("--calibrator", c->calibrator, "percentile, entropy or minmax (percentile by "
                  "default: see docs/QUANTIZATION.md for why)")
      ->capture_default_str();
  cmd->add_option("--percentile", c->percentile, "percentile calibrator: percentile of |x|")
      ->capture_default_str();
  cmd->add_flag(
      "--skip-zeros", c->skip_zeros,
      "entropy / percentile: leave exact zeros (e.g. after a ReLU) out of the histograms");
  cmd->add_option("--batch", c->batch, "Rows per batch")->capture_default_str();
  cmd->add_option("--max-rows", c->max_rows, "Use at most this many rows (0: all)");
  cmd->add_option("--hours", c->hours, "Request log: only the records of the last H hours");
  cmd->add_option("--edge-cases", c->edge_cases,
                  "Request log: a JSONL or .tsv file of rows appended to the log's");
  cmd->add_flag("--overwrite", c->overwrite,
                "Recalibrate and replace a cache file made for another model / data / settings");
  cmd->add_flag("-q,--quiet", c->quiet, "No progress lines");
  cmd->callback([c, exit_code] {
    Status s = Calibrate(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
