// The calibration cache: a CalibrationTable kept in a file so that a rebuild skips the calibration
// runs, valid only for the model, calibrator, clickrt version and data it was made with.
//
// File format, version 1 (UTF-8 text, '\n' line ends, every line terminated, a field's name and
// value separated by one space; the lines in exactly this order):
//
//   clickrt-calibration-cache 1
//   model_sha256 <64 lower-case hex: SHA-256 of the .onnx file's bytes>
//   calibrator <entropy | minmax | percentile>
//   calibrator_param <CalibratorOptions::Param(), e.g. bins=2048,levels=128>
//   clickrt_version <CLICKRT_VERSION, e.g. 0.1.0>
//   batch_size <integer >= 1>
//   rows <integer >= 1: the calibration rows used>
//   data_sha256 <64 lower-case hex: DataSummary::inputs_sha256 of those rows>
//   data <free text to the end of the line: where the rows came from>
//   git_revision <free text to the end of the line: the build that wrote the file>
//   tensors <n>
//   tensor<TAB><value name><TAB><scale><TAB><amax><TAB><clipped>
//   ... (n tensor lines in all, sorted by value name)
//   end
//
// - The key is the seven fields model_sha256 .. data_sha256; a file is used only when all seven
//   equal the caller's. `data` and `git_revision` are for people and not compared.
// - scale, amax, clipped: float32 written as C99 hexadecimal floats (printf "%a"), so they read
//   back bit-exactly; scale finite > 0, amax finite >= 0, clipped (the fraction of values above
//   the threshold) in [0, 1].
// - A value name is non-empty and holds no tab, CR or newline; each appears once.
// - The `tensors` count and the `end` line make a truncated file detectable; nothing follows `end`.
// Saving writes a temporary file in the same folder and renames it over the target, so a reader
// sees the old file or the new one, never a part.
#pragma once

#include <cstdint>
#include <string>

#include "clickrt/status.h"
#include "quant/calibrator.h"

namespace clickrt::quant {

// What a cached table is valid for.
struct CalibrationKey {
  std::string model_sha256;
  std::string calibrator;        // CalibratorName
  std::string calibrator_param;  // CalibratorOptions::Param()
  std::string clickrt_version;   // CLICKRT_VERSION
  int64_t batch_size = 0;
  int64_t rows = 0;
  std::string data_sha256;  // DataSummary::inputs_sha256

  // Every field that differs from `found`, as "calibrator: expected 'entropy', found 'minmax'",
  // joined by "; " ("" when equal).
  std::string Diff(const CalibrationKey& found) const;
  bool operator==(const CalibrationKey& o) const { return Diff(o).empty(); }
};

// A whole cache file.
struct CalibrationCacheFile {
  CalibrationKey key;
  std::string data;          // description of the rows
  std::string git_revision;  // of the writer
  CalibrationTable table;    // calibrator / param / rows equal the key's
};

// Writes `table` under `key` (table.calibrator, .param and .rows must agree with the key:
// InvalidArgument otherwise, and for a name or number the format cannot hold). Atomic; the old
// file is untouched on any error.
Status SaveCalibrationCache(const std::string& path, const CalibrationKey& key,
                            const CalibrationTable& table, const std::string& data_description);

// Reads a cache file without judging its key. NotFound when the file does not exist; DataLoss
// naming the file and line for a malformed, truncated or foreign one.
StatusOr<CalibrationCacheFile> ReadCalibrationCache(const std::string& path);

// The table, when the file's key equals `expected`. Errors: those of ReadCalibrationCache, and
// FailedPrecondition naming every field that differs, with the expected and found values.
StatusOr<CalibrationTable> LoadCalibrationCache(const std::string& path,
                                                const CalibrationKey& expected);

}  // namespace clickrt::quant
