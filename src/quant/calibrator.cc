#include "quant/calibrator.h"

#include <charconv>
#include <cmath>
#include <set>
#include <unordered_map>

#include "quant/quantize_graph.h"
#include "reference/executor.h"

namespace clickrt::quant {

namespace {

// Shortest text that reads back to the same double.
std::string ShortestDouble(double v) {
  char buf[64];
  auto [end, ec] = std::to_chars(buf, buf + sizeof buf, v);
  return ec == std::errc() ? std::string(buf, end) : std::to_string(v);
}

}  // namespace

StatusOr<CalibratorKind> ParseCalibrator(const std::string& name) {
  if (name == "entropy") return CalibratorKind::kEntropy;
  if (name == "minmax") return CalibratorKind::kMinMax;
  if (name == "percentile") return CalibratorKind::kPercentile;
  return InvalidArgument("unknown calibrator '" + name + "' (entropy, minmax, percentile)");
}

const char* CalibratorName(CalibratorKind kind) {
  switch (kind) {
    case CalibratorKind::kEntropy:
      return "entropy";
    case CalibratorKind::kMinMax:
      return "minmax";
    case CalibratorKind::kPercentile:
      return "percentile";
  }
  return "?";
}

std::string CalibratorOptions::Param() const {
  const std::string zeros = skip_zeros ? ",skip_zeros" : "";
  switch (kind) {
    case CalibratorKind::kEntropy:
      return "bins=" + std::to_string(bins) + ",levels=" + std::to_string(levels) + zeros;
    case CalibratorKind::kMinMax:
      return "-";
    case CalibratorKind::kPercentile:
      return "percentile=" + ShortestDouble(percentile) + ",bins=" + std::to_string(bins) + zeros;
  }
  return "?";
}

Status CalibratorOptions::Validate() const {
  if (bins < 1) return InvalidArgument("calibration bins must be >= 1");
  if (kind == CalibratorKind::kPercentile && !(percentile > 0 && percentile <= 100)) {
    return InvalidArgument("percentile must be in (0, 100], got " + ShortestDouble(percentile));
  }
  if (kind == CalibratorKind::kEntropy && (levels < 1 || levels > bins)) {
    return InvalidArgument("entropy calibration needs 1 <= levels <= bins");
  }
  return Status::Ok();
}

StatusOr<double> Threshold(const Histogram& h, const CalibratorOptions& o) {
  switch (o.kind) {
    case CalibratorKind::kEntropy:
      return EntropyThreshold(h, o.levels);
    case CalibratorKind::kMinMax:
      return MinMaxThreshold(h);
    case CalibratorKind::kPercentile:
      return PercentileThreshold(h, o.percentile);
  }
  return Internal("unknown calibrator");
}

std::vector<std::string> CalibrationTargets(const ir::Graph& graph) {
  // Exactly the values quantize_graph reads a scale for: one definition of what a GEMM layer
  // quantizes.
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const QuantizableLayer& l : QuantizableLayers(graph)) {
    const ir::Value* v = graph.FindValue(l.input);
    if (v == nullptr || v->constant || v->dtype != DType::kFloat32) continue;
    if (seen.insert(l.input).second) names.push_back(l.input);
  }
  return names;
}

StatusOr<std::map<std::string, TensorStats>> CollectStats(const ir::Graph& graph, Dataset& data,
                                                          const CollectOptions& options,
                                                          int64_t* rows_out) {
  std::vector<std::string> values =
      options.values.empty() ? CalibrationTargets(graph) : options.values;
  if (values.empty()) {
    return InvalidArgument("the graph has no values to calibrate (no Linear or Cross layer " +
                           std::string("with a float32 activation input)"));
  }
  std::unordered_map<std::string, size_t> index;
  for (size_t i = 0; i < values.size(); ++i) {
    const ir::Value* v = graph.FindValue(values[i]);
    if (v == nullptr) return NotFound("value '" + values[i] + "' is not in the graph");
    if (v->dtype != DType::kFloat32) {
      return InvalidArgument("value '" + values[i] + "' is " + DTypeName(v->dtype) +
                             "; only float32 activations are calibrated");
    }
    if (v->constant) return InvalidArgument("value '" + values[i] + "' is a constant");
    index[values[i]] = i;
  }
  ASSIGN_OR_RETURN(auto exec, reference::Executor::Create(&graph));

  std::vector<float> amax(values.size(), 0.f);
  std::vector<Histogram> hists;
  std::vector<bool> seen(values.size(), false);
  Status observed;  // the first error inside the observer
  int64_t rows = 0;

  for (int pass = 1; pass <= 2; ++pass) {
    RETURN_IF_ERROR(data.Reset());
    if (pass == 2) {
      for (size_t i = 0; i < values.size(); ++i) hists.emplace_back(amax[i], options.bins);
    }
    auto observe = [&](const std::string& name, const Tensor& t) {
      auto it = index.find(name);
      if (it == index.end() || !observed.ok()) return;
      const size_t i = it->second;
      seen[i] = true;
      if (t.dtype() != DType::kFloat32) {
        observed = Internal("value '" + name + "' was computed as " + t.Describe());
        return;
      }
      std::span<const float> x = t.span<float>();
      if (pass == 1) {
        float m = amax[i];
        for (float v : x) {
          const float a = std::fabs(v);
          if (!(a <= m)) {  // also true for NaN
            if (!std::isfinite(a)) {
              observed = InvalidArgument("value '" + name + "' holds a non-finite number (" +
                                         std::to_string(v) + ") at calibration row " +
                                         std::to_string(rows) + " or after");
              return;
            }
            m = a;
          }
        }
        amax[i] = m;
      } else {
        hists[i].Add(x, options.skip_zeros);
      }
    };
    Batch b;
    int64_t done = 0;
    while (true) {
      ASSIGN_OR_RETURN(bool more, data.Next(&b));
      if (!more) break;
      auto out = exec->Run(b.inputs, observe);
      if (!out.ok()) {
        return out.status().WithContext("calibration rows " + std::to_string(done) + ".." +
                                        std::to_string(done + b.rows - 1));
      }
      RETURN_IF_ERROR(observed);
      done += b.rows;
      if (options.progress) options.progress(pass, done);
    }
    rows = done;
  }
  if (rows == 0) return InvalidArgument("the calibration data has no rows");
  for (size_t i = 0; i < values.size(); ++i) {
    if (!seen[i]) return Internal("value '" + values[i] + "' was never computed");
  }
  RETURN_IF_ERROR(data.Reset());
  std::map<std::string, TensorStats> stats;
  for (size_t i = 0; i < values.size(); ++i) {
    stats[values[i]] = TensorStats{amax[i], std::move(hists[i])};
  }
  if (rows_out) *rows_out = rows;
  return stats;
}

StatusOr<CalibrationTable> MakeCalibrationTable(const std::map<std::string, TensorStats>& stats,
                                                const CalibratorOptions& options, int64_t rows) {
  RETURN_IF_ERROR(options.Validate());
  CalibrationTable table;
  table.calibrator = CalibratorName(options.kind);
  table.param = options.Param();
  table.rows = rows;
  for (const auto& [name, s] : stats) {
    ASSIGN_OR_RETURN(double threshold, Threshold(s.histogram, options));
    if (options.kind == CalibratorKind::kMinMax) threshold = s.amax;  // exact, not via double
    table.amax[name] = s.amax;
    table.clipped[name] = static_cast<float>(s.histogram.FractionAbove(threshold));
    if (!(threshold > 0)) threshold = 1.0;  // all zero: any scale is exact
    table.scale[name] = static_cast<float>(threshold / 127.0);
  }
  return table;
}

StatusOr<CalibrationTable> Calibrate(const ir::Graph& graph, Dataset& data,
                                     const CalibratorOptions& calibrator,
                                     const CollectOptions& collect) {
  RETURN_IF_ERROR(calibrator.Validate());
  CollectOptions c = collect;
  c.bins = calibrator.bins;
  c.skip_zeros = calibrator.skip_zeros;
  int64_t rows = 0;
  ASSIGN_OR_RETURN(auto stats, CollectStats(graph, data, c, &rows));
  return MakeCalibrationTable(stats, calibrator, rows);
}

}  // namespace clickrt::quant
