// A histogram of |x| and the three ways of choosing a clipping threshold from it.
//
// The histogram covers [0, range] in `bins` equal bins (range = the tensor's max |x|, found by a
// first pass over the data; see calibrator.h). Value v lands in bin floor(|v| / width), the last
// bin also taking |v| >= range. Thresholds (the float value that maps to int8 127):
//
//  minmax      range (= amax): nothing is clipped.
//  percentile  the upper edge of the first bin at which the cumulative count reaches p% of all
//              values (to a relative 1e-12, so that 99.9% of 2000 is 1998): at least p% of the |x|
//              lie at or below it (resolution: one bin width).
//  entropy     TensorRT's entropy calibration: for each candidate i in [levels, bins]:
//                P = bins [0, i), the counts of bins >= i (the values that would be clipped)
//                    added to bin i-1;
//                Q = bins [0, i) (without the outliers) merged into `levels` groups (bin j goes to
//                    group floor(j * levels / i)), each group's sum then spread evenly over its
//                    bins where P is non-zero (bins where P is zero stay zero);
//                a bin where Q is 0 but P is not (bin i-1 when the outliers lie beyond empty
//                bins) is smoothed to a count of 1e-4, as MXNet's and TVM's KL calibrations do;
//                KL(P || Q) = sum over P > 0 of p * ln(p / q), P and Q each normalized to sum 1.
//              The i of least divergence wins (the smallest on a tie); threshold = (i + 0.5) *
//              width, capped at range. Falls back to range when no candidate has a value below it.
//              The threshold is therefore at least (levels + 0.5) / bins of the range.
// An empty histogram, or one of range 0, gives threshold 0.
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "clickrt/status.h"

namespace clickrt::quant {

class Histogram {
 public:
  static constexpr int kDefaultBins = 2048;

  // range >= 0; bins >= 1.
  explicit Histogram(double range = 0, int bins = kDefaultBins);

  // Adds |v| for every v (every v != 0 with skip_zeros). Non-finite values are the caller's to
  // reject (they land in the last bin).
  void Add(std::span<const float> values, bool skip_zeros = false);
  // Adds `count` values to bin `bin` (tests, merging).
  void AddToBin(int bin, int64_t count);

  int bins() const { return static_cast<int>(counts_.size()); }
  double range() const { return range_; }
  double bin_width() const { return range_ / static_cast<double>(counts_.size()); }
  int64_t total() const { return total_; }
  const std::vector<int64_t>& counts() const { return counts_; }

  // The fraction of values above `threshold`, counting a bin that straddles it in proportion
  // (values are taken as uniform within a bin).
  double FractionAbove(double threshold) const;

 private:
  double range_;
  double inv_width_;  // bins / range (0 when range is 0)
  std::vector<int64_t> counts_;
  int64_t total_ = 0;
};

double MinMaxThreshold(const Histogram& h);
// percentile in (0, 100]; InvalidArgument otherwise.
StatusOr<double> PercentileThreshold(const Histogram& h, double percentile);
// levels >= 1 and <= bins; InvalidArgument otherwise. *divergence (may be null) receives the KL
// divergence of the chosen candidate.
StatusOr<double> EntropyThreshold(const Histogram& h, int levels = 128,
                                  double* divergence = nullptr);

}  // namespace clickrt::quant
