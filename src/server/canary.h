// Canary releases: route a share of one model's traffic to a candidate version,
// compare its online figures with the serving (baseline) version, and decide to
// promote or roll back.
//
// Routing is sticky: a request goes to the candidate when a hash of its routing
// key (the ranking request's user_id, an infer request's id) falls below
// `share`, so a user sees one version for the whole window. Each arm tracks
// requests, errors, latencies (p99), the mean predicted CTR and a 10-bin
// histogram of the CTR over [0, 1] (for the population stability index).
//
// Decision, once `window_s` has passed with at least `min_requests` on the
// candidate (and at least one on the baseline): promote when every limit holds,
// roll back otherwise:
//   error rate   candidate - baseline            <= max_error_rate_delta
//   p99 latency  candidate / max(baseline, 1 ms)  <= max_p99_ratio  (the floor
//   keeps microsecond
//                                                                    noise from
//                                                                    deciding)
//   CTR drift    |mean_c - mean_b| / mean_b       <= max_ctr_drift
//   PSI          sum (c_i - b_i) ln(c_i / b_i)    <= max_psi   (bin shares, +
//   1e-4 each)
// Before the window ends the candidate is rolled back early when its error rate
// is clearly worse: at least 20 candidate requests and a rate above the
// baseline's by more than max(0.1, 5 * max_error_rate_delta).
#pragma once

#include <array>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
#include <vector>

#include "clickrt/status.h"

namespace clickrt::server {

struct CanaryConfig {
  std::string version;  // the candidate
  double share = 0.1;   // of users routed to the candidate, (0, 1]
  double window_s = 30;
  int64_t min_requests = 200;
  double max_error_rate_delta = 0.01;
  double max_p99_ratio = 1.5;
  double max_ctr_drift = 0.2;
  double max_psi = 0.2;
};
// The admin request body; unknown keys are errors. "version" is required.
StatusOr<CanaryConfig> ParseCanaryConfig(const std::string &json_text);

inline constexpr int kPsiBins = 10;

// One arm's online figures.
struct ArmStats {
  int64_t requests = 0, errors = 0;
  std::vector<double> latencies_s;  // kept up to kMaxLatencySamples
  double ctr_sum = 0;
  int64_t ctr_count = 0;
  std::array<int64_t, kPsiBins> bins{};

  static constexpr size_t kMaxLatencySamples = 1 << 18;
  double error_rate() const { return requests ? static_cast<double>(errors) / requests : 0; }
  double p99_s() const;
  double mean_ctr() const { return ctr_count ? ctr_sum / ctr_count : 0; }
};

// PSI of `actual` against `expected` over the same bins; 0 when either is
// empty.
double PopulationStabilityIndex(const std::array<int64_t, kPsiBins> &expected,
                                const std::array<int64_t, kPsiBins> &actual);

enum class CanaryDecision { kNone, kPromote, kRollback };
const char *CanaryDecisionName(CanaryDecision d);

struct CanaryVerdict {
  CanaryDecision decision = CanaryDecision::kNone;
  std::string reason;  // which limit failed, or why there is no decision yet
  double error_rate_delta = 0, p99_ratio = 0, ctr_drift = 0, psi = 0;
};

// One model's canary. Not thread-safe: the caller serializes (CanaryController
// holds a lock).
class Canary {
 public:
  using Clock = std::chrono::steady_clock;
  using NowFn = std::function<Clock::time_point()>;

  Canary(std::string model, std::string baseline, CanaryConfig config, NowFn now);

  // Whether the request with this key goes to the candidate (stable across
  // calls and runs).
  bool RoutesToCandidate(std::string_view key) const;
  // One answered request of either arm; `ctrs` are its predicted CTRs (none for
  // a failure).
  void Record(bool candidate, bool failed, double latency_s, const float *ctrs, size_t n);
  // The decision the figures support now (kNone while the window runs or
  // traffic is short).
  CanaryVerdict Evaluate() const;

  const std::string &model() const { return model_; }
  const std::string &baseline() const { return baseline_; }
  const CanaryConfig &config() const { return config_; }
  const ArmStats &baseline_stats() const { return base_; }
  const ArmStats &candidate_stats() const { return cand_; }
  double elapsed_s() const;

 private:
  std::string model_, baseline_;
  CanaryConfig config_;
  NowFn now_;
  Clock::time_point start_;
  ArmStats base_, cand_;
};

}  // namespace clickrt::server
