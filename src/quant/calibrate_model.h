// The whole calibration of a model as one call, cache included: what `clickrt calibrate` runs and
// what `clickrt build --precision int8 --calib DATA` can call.
//
//  1. the model's graph after the pass pipeline (the values INT8 layers read exist only there);
//  2. the data set is read once to count its rows and fingerprint them (DataSummary);
//  3. the cache key (calibration_cache.h) from the model file's SHA-256, the calibrator and its
//     parameters, CLICKRT_VERSION, the batch size, the rows and their fingerprint;
//  4. an existing cache file with that key is used as is (reused = true). One with another key, or
//     a malformed one, is an error (FailedPrecondition / DataLoss naming the field or line) unless
//     `overwrite`: it is never silently ignored and never silently used;
//  5. otherwise the two calibration passes (calibrator.h), and the cache file is written.
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "ir/graph.h"
#include "passes/pipeline.h"
#include "quant/calibration_cache.h"
#include "quant/calibrator.h"
#include "quant/dataset.h"

namespace clickrt::quant {

struct CalibrationJob {
  DatasetOptions data;
  CalibratorOptions calibrator;
  std::vector<std::string> values;  // empty = CalibrationTargets(graph)
  std::string cache;                // cache file; "" = none (always calibrate, write nothing)
  bool overwrite = false;           // replace a cache made for another key (or a corrupt one)
  // Progress lines ("pass 1/2 (ranges): 50% (1024/2000 rows)"). May be empty.
  std::function<void(const std::string&)> log;
};

struct CalibrationResult {
  CalibrationTable table;
  CalibrationKey key;
  DataSummary data;
  std::string data_description;  // Dataset::Describe()
  bool reused = false;           // read from job.cache
  bool wrote_cache = false;
};

// Calibrates `graph` (after the pass pipeline) of the model whose .onnx file hashes to
// `model_sha256`.
StatusOr<CalibrationResult> RunCalibration(const ir::Graph& graph, const std::string& model_sha256,
                                           const CalibrationJob& job);

// Imports `onnx_path`, runs the pass pipeline with `pipeline`, then RunCalibration. `optimized`
// (may be null) receives the graph the scales belong to.
StatusOr<CalibrationResult> CalibrateModel(const std::string& onnx_path,
                                           const passes::PipelineOptions& pipeline,
                                           const CalibrationJob& job,
                                           std::unique_ptr<ir::Graph>* optimized = nullptr);

}  // namespace clickrt::quant
