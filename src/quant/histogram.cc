#include "quant/histogram.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

namespace clickrt::quant {

namespace {
// The count a zero bin of Q gets where P is non-zero (MXNet's and TVM's KL calibration smooth the
// same way, with the same epsilon), so a clipped tail lying beyond empty bins costs a finite,
// mass-proportional divergence instead of ruling the candidate out.
constexpr double kSmoothing = 1e-4;
}  // namespace

Histogram::Histogram(double range, int bins)
    : range_(std::max(0.0, range)),
      inv_width_(range > 0 ? std::max(1, bins) / range : 0.0),
      counts_(static_cast<size_t>(std::max(1, bins)), 0) {}

void Histogram::Add(std::span<const float> values, bool skip_zeros) {
  const int last = bins() - 1;
  int64_t added = 0;
  for (float v : values) {
    if (skip_zeros && v == 0.f) continue;
    ++added;
    const double x = std::fabs(static_cast<double>(v)) * inv_width_;
    // Compares before the cast: NaN and huge values go to the last bin without overflow.
    const int bin = x < static_cast<double>(last) ? static_cast<int>(x) : last;
    ++counts_[static_cast<size_t>(bin)];
  }
  total_ += added;
}

void Histogram::AddToBin(int bin, int64_t count) {
  bin = std::clamp(bin, 0, bins() - 1);
  counts_[static_cast<size_t>(bin)] += count;
  total_ += count;
}

double Histogram::FractionAbove(double threshold) const {
  if (total_ == 0 || threshold >= range_) return 0.0;
  if (threshold <= 0) return 1.0;
  const double pos = threshold * inv_width_;
  const int b = std::min(static_cast<int>(pos), bins() - 1);
  double above = static_cast<double>(counts_[b]) * (static_cast<double>(b + 1) - pos);
  for (int j = b + 1; j < bins(); ++j) above += static_cast<double>(counts_[j]);
  return above / static_cast<double>(total_);
}

double MinMaxThreshold(const Histogram& h) { return h.total() > 0 ? h.range() : 0.0; }

StatusOr<double> PercentileThreshold(const Histogram& h, double percentile) {
  if (!(percentile > 0 && percentile <= 100)) {
    return InvalidArgument("percentile must be in (0, 100], got " + std::to_string(percentile));
  }
  if (h.total() == 0 || h.range() <= 0) return 0.0;
  // Relative slack: p% of the count is often not exact in binary (99.9% of 2000).
  const double target = percentile / 100.0 * static_cast<double>(h.total()) * (1 - 1e-12);
  int64_t cumulative = 0;
  for (int i = 0; i < h.bins(); ++i) {
    cumulative += h.counts()[i];
    if (static_cast<double>(cumulative) >= target) {
      return std::min(h.range(), (i + 1) * h.bin_width());
    }
  }
  return h.range();
}

StatusOr<double> EntropyThreshold(const Histogram& h, int levels, double* divergence) {
  const int bins = h.bins();
  if (levels < 1 || levels > bins) {
    return InvalidArgument("entropy calibration needs 1 <= levels <= bins, got levels " +
                           std::to_string(levels) + " for " + std::to_string(bins) + " bins");
  }
  if (divergence) *divergence = 0;
  if (h.total() == 0 || h.range() <= 0) return 0.0;
  const std::vector<int64_t>& c = h.counts();
  // outliers[i] = sum of bins >= i.
  std::vector<double> outliers(static_cast<size_t>(bins) + 1, 0.0);
  for (int j = bins - 1; j >= 0; --j) outliers[j] = outliers[j + 1] + static_cast<double>(c[j]);
  const double total = outliers[0];

  std::vector<double> group_sum(static_cast<size_t>(levels));
  std::vector<int> group_nonzero(static_cast<size_t>(levels));
  double best = std::numeric_limits<double>::infinity();
  int best_i = -1;
  for (int i = levels; i <= bins; ++i) {
    std::fill(group_sum.begin(), group_sum.end(), 0.0);
    std::fill(group_nonzero.begin(), group_nonzero.end(), 0);
    auto group_of = [&](int j) { return static_cast<int>(static_cast<int64_t>(j) * levels / i); };
    auto p_count = [&](int j) {
      return static_cast<double>(c[j]) + (j == i - 1 ? outliers[i] : 0.0);
    };
    double q_total = 0;
    for (int j = 0; j < i; ++j) {
      const int g = group_of(j);
      group_sum[g] += static_cast<double>(c[j]);
      group_nonzero[g] += p_count(j) > 0;
      q_total += static_cast<double>(c[j]);
    }
    if (q_total <= 0) continue;  // nothing below the candidate: Q is empty
    // Q's zeros where P is not (only bin i-1, holding the outliers, can be one) get kSmoothing.
    auto q_count = [&](int j) {
      const int g = group_of(j);
      const double q = group_sum[g] / group_nonzero[g];
      return q > 0 ? q : kSmoothing;
    };
    for (int j = 0; j < i; ++j) {
      if (p_count(j) > 0 && group_sum[group_of(j)] <= 0) q_total += kSmoothing;
    }
    double kl = 0;
    for (int j = 0; j < i; ++j) {
      const double p = p_count(j);
      if (p <= 0) continue;
      const double pn = p / total, qn = q_count(j) / q_total;
      kl += pn * std::log(pn / qn);
    }
    if (kl < best) {
      best = kl;
      best_i = i;
    }
  }
  if (best_i < 0) return h.range();  // no candidate has values below it
  if (divergence) *divergence = best;
  return std::min(h.range(), (best_i + 0.5) * h.bin_width());
}

}  // namespace clickrt::quant
