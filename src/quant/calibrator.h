// Post-training calibration: the per-tensor scales of the activations INT8 layers read.
//
// Which tensors: by default CalibrationTargets(graph) — on the graph after the pass pipeline, the
// values quant/quantize_graph.h reads a scale for: the non-constant float32 input each INT8-capable
// layer quantizes (QuantizableLayers: Linear's x, Cross's xl).
//
// How: the reference executor runs the graph over the calibration set twice, watching the target
// values through its observer hook. Pass 1 finds each tensor's amax = max |x|; pass 2 fills a
// histogram of |x| over [0, amax] (2048 bins by default). Two passes rather than a histogram whose
// range grows as larger values appear: the bins are exact and the result does not depend on the
// order of the rows or on the batch size. Each tensor's threshold then comes from its histogram by
// the chosen calibrator (quant/histogram.h): minmax, percentile or entropy; scale = threshold / 127
// (symmetric int8: x_q = clamp(round(x / scale), -127, 127)). A tensor that is zero everywhere
// gets threshold 1 (any scale represents it exactly). A non-finite activation is an error naming
// the tensor: calibrating a model that produces NaN or Inf would hide a bug.
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "ir/graph.h"
#include "quant/dataset.h"
#include "quant/histogram.h"

namespace clickrt::quant {

enum class CalibratorKind { kEntropy, kMinMax, kPercentile };

// "entropy" | "minmax" | "percentile"; InvalidArgument naming the choices otherwise.
StatusOr<CalibratorKind> ParseCalibrator(const std::string& name);
const char* CalibratorName(CalibratorKind kind);

struct CalibratorOptions {
  CalibratorKind kind = CalibratorKind::kEntropy;
  double percentile = 99.99;  // kPercentile: in (0, 100]
  int bins = Histogram::kDefaultBins;
  int levels = 128;  // kEntropy: quantization levels of |x| (int8: 0..127)
  // Leave exact zeros out of the histograms (entropy, percentile): after a ReLU most values are 0,
  // and that one bin dominates P and Q.
  bool skip_zeros = false;

  // The parameters that change the result, canonical, for the calibration cache key:
  // entropy "bins=2048,levels=128"; percentile "percentile=99.99,bins=2048"; minmax "-";
  // ",skip_zeros" appended when set (entropy, percentile).
  std::string Param() const;
  Status Validate() const;
};

// The threshold of one tensor (never above its histogram's range).
StatusOr<double> Threshold(const Histogram& h, const CalibratorOptions& options);

// The result: per value name, the activation scale the INT8 layers use.
struct CalibrationTable {
  std::string calibrator;                // "entropy"
  std::string param;                     // CalibratorOptions::Param()
  std::map<std::string, float> scale;    // threshold / 127, > 0
  std::map<std::string, float> amax;     // max |x| over the calibration set
  std::map<std::string, float> clipped;  // fraction of values with |x| above the threshold
  int64_t rows = 0;                      // calibration rows
};

// The values to calibrate in a graph after the pass pipeline (see the top of this file), each
// once, in graph order.
std::vector<std::string> CalibrationTargets(const ir::Graph& graph);

// What the two passes collect for one tensor.
struct TensorStats {
  float amax = 0;       // over every value
  Histogram histogram;  // of |x| (without zeros when collected with skip_zeros)
};

struct CollectOptions {
  std::vector<std::string> values;  // empty = CalibrationTargets(graph)
  int bins = Histogram::kDefaultBins;
  bool skip_zeros = false;  // see CalibratorOptions
  // Called after each batch: pass (1 = ranges, 2 = histograms) and rows done in that pass.
  std::function<void(int pass, int64_t rows)> progress;
};

// Runs `graph` (reference executor) over `data` twice and collects every value's stats. Errors
// name a value that is not in the graph, not float32, or not finite; data errors pass through.
// `rows` (may be null) receives the number of rows.
StatusOr<std::map<std::string, TensorStats>> CollectStats(const ir::Graph& graph, Dataset& data,
                                                          const CollectOptions& options,
                                                          int64_t* rows);

// Applies a calibrator to collected stats.
StatusOr<CalibrationTable> MakeCalibrationTable(const std::map<std::string, TensorStats>& stats,
                                                const CalibratorOptions& options, int64_t rows);

// CollectStats + MakeCalibrationTable.
StatusOr<CalibrationTable> Calibrate(const ir::Graph& graph, Dataset& data,
                                     const CalibratorOptions& calibrator,
                                     const CollectOptions& collect = {});

}  // namespace clickrt::quant
