// `clickrt build`'s quantization steps: calibration (or its cache), the precision assignment and
// the accuracy gate (the mixed-precision search), turned into the compiler's after_passes hook.
#pragma once

#include <string>

#include "compiler/compiler.h"

namespace clickrt::cli {

struct QuantFlags {
  std::string calib;        // calibration data (tensor folder, .tsv, request log)
  std::string calib_cache;  // cache file: reused when its key matches, else written
  bool calib_overwrite = false;
  std::string calibrator = "percentile";
  double percentile = 99.99;
  int64_t calib_rows = 0, calib_batch = 256;
  double calib_hours = 0;
  std::string edge_cases, schema;
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
