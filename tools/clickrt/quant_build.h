// `clickrt build`'s quantization steps: calibration (or its cache), the precision assignment and
// the accuracy gate (the mixed-precision search), turned into the compiler's after_passes hook.
#pragma once

#include <string>

#include "compiler/compiler.h"
#include "quant/calibrate_model.h"

namespace clickrt::cli {

// Where calibration data comes from and how it is turned into scales: the flags `clickrt
// calibrate` and `clickrt build --precision int8` share.
struct CalibFlags {
  std::string data;  // tensor folder, .tsv, request log
  std::string format = "auto", schema, labels, edge_cases;
  std::string calibrator = "percentile";
  double percentile = 99.99, hours = 0;
  int64_t batch = 256, max_rows = 0;
  bool skip_zeros = false;
  std::string cache;  // calibration cache file ("" = none)
  bool overwrite = false;
};

// The library's job for these flags (progress lines go to `log`; null = silent).
StatusOr<quant::CalibrationJob> MakeCalibrationJob(const CalibFlags& f,
                                                   std::function<void(const std::string&)> log);

struct QuantFlags {
  CalibFlags calib;
  std::string embeddings = "fp32";  // fp32 | int8 | int4
  std::string eval;                 // labelled validation data: runs the accuracy gate
  double max_auc_drop = 0.001;
  bool no_mixed = false;
};

// Whether the flags ask for anything (precision int8 / fp8, or quantized embeddings).
bool WantsQuantization(const std::string& precision, const QuantFlags& f);

// Calibrates (precision int8), runs the accuracy gate when f.eval is set (cpu backend), and sets
// o->after_passes / o->calibration_sha256; the engine's meta.extra.precision_assignment then
// records the assignment, table sizes, the calibration and the gate's AUC figures. Progress goes
// to stderr.
Status PrepareQuantization(const std::string& onnx_path, const QuantFlags& f,
                           compiler::BuildOptions* o);

}  // namespace clickrt::cli
