// `clickrt calibrate`: the activation scales of a model's INT8 layers from calibration data,
// written to (or reused from) a calibration cache file. docs/QUANTIZATION.md has examples.
#include <cstdio>
#include <iostream>
#include <memory>

#include "commands.h"
#include "quant_build.h"
#include "quant/calibrate_model.h"

namespace clickrt::cli {
namespace {

struct CalibrateCmd {
  std::string model;
  CalibFlags f;  // f.cache is -o
  bool quiet = false;
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
  std::function<void(const std::string&)> log;
  if (!c.quiet) log = [](const std::string& s) { std::cerr << s << "\n"; };
  ASSIGN_OR_RETURN(quant::CalibrationJob job, MakeCalibrationJob(c.f, log));
  ASSIGN_OR_RETURN(quant::CalibrationResult r,
                   quant::CalibrateModel(c.model, passes::PipelineOptions{}, job));
  PrintTable(r.table);
  std::cerr << (r.reused ? "reused " : "wrote ") << c.f.cache << ": " << r.table.scale.size()
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
  cmd->add_option("--data", c->f.data,
                  "Calibration data: a folder of <input>.pb tensor files, a Criteo-style .tsv "
                  "(with the schema), or a request log (requests.log, *.jsonl)")
      ->required();
  cmd->add_option("-o,--output", c->f.cache, "Calibration cache file to write or reuse")->required();
  cmd->add_option("--schema", c->f.schema, "schema.json for a .tsv (default: beside it)");
  cmd->add_option("--labels", c->f.labels, "Labels file for a tensor folder (not needed here)");
  cmd->add_option("--format", c->f.format, "auto, tensors, tsv or request_log")
      ->capture_default_str();
  cmd->add_option("--calibrator", c->f.calibrator, "percentile, entropy or minmax (percentile by "
                  "default: see docs/QUANTIZATION.md for why)")
      ->capture_default_str();
  cmd->add_option("--percentile", c->f.percentile, "percentile calibrator: percentile of |x|")
      ->capture_default_str();
  cmd->add_flag(
      "--skip-zeros", c->f.skip_zeros,
      "entropy / percentile: leave exact zeros (e.g. after a ReLU) out of the histograms");
  cmd->add_option("--batch", c->f.batch, "Rows per batch")->capture_default_str();
  cmd->add_option("--max-rows", c->f.max_rows, "Use at most this many rows (0: all)");
  cmd->add_option("--hours", c->f.hours, "Request log: only the records of the last H hours");
  cmd->add_option("--edge-cases", c->f.edge_cases,
                  "Request log: a JSONL or .tsv file of rows appended to the log's");
  cmd->add_flag("--overwrite", c->f.overwrite,
                "Recalibrate and replace a cache file made for another model / data / settings");
  cmd->add_flag("-q,--quiet", c->quiet, "No progress lines");
  cmd->callback([c, exit_code] {
    Status s = Calibrate(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
