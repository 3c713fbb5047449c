#include "server/canary.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>
#include <set>

namespace clickrt::server {
namespace {

using nlohmann::json;

Status ReadNumber(const json &j, const char *key, double lo, double hi, double *out) {
  auto it = j.find(key);
  if (it == j.end()) return Status::Ok();
  if (!it->is_number() || it->get<double>() < lo || it->get<double>() > hi) {
    return InvalidArgument(std::string("canary: \"") + key + "\" must be a number in [" +
                           json(lo).dump() + ", " + json(hi).dump() + "], got " + it->dump());
  }
  *out = it->get<double>();
  return Status::Ok();
}

// FNV-1a then the splitmix64 finalizer: stable across processes and builds
// (unlike std::hash), and the finalizer spreads keys that differ in their last
// characters ("user1", "user2") over the high bits that pick the arm; FNV alone
// leaves them clustered.
uint64_t KeyHash(std::string_view s) {
  uint64_t h = 1469598103934665603ull;
  for (unsigned char c : s) {
    h ^= c;
    h *= 1099511628211ull;
  }
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ull;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebull;
  return h ^ (h >> 31);
}

}  // namespace

StatusOr<CanaryConfig> ParseCanaryConfig(const std::string &text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded() || !j.is_object())
    return InvalidArgument("canary: body must be a JSON object");
  static const std::set<std::string> known = {
      "version",       "share",         "window_s", "min_requests", "max_error_rate_delta",
      "max_p99_ratio", "max_ctr_drift", "max_psi"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (!known.count(it.key())) return InvalidArgument("canary: unknown key \"" + it.key() + "\"");
  }
  CanaryConfig c;
  auto v = j.find("version");
  if (v == j.end() || !(v->is_string() || v->is_number_integer())) {
    return InvalidArgument("canary: \"version\" (the candidate) is required");
  }
  c.version = v->is_string() ? v->get<std::string>() : std::to_string(v->get<int64_t>());
  RETURN_IF_ERROR(ReadNumber(j, "share", 1e-6, 1, &c.share));
  RETURN_IF_ERROR(ReadNumber(j, "window_s", 0, 86400 * 30, &c.window_s));
  double min_requests = static_cast<double>(c.min_requests);
  RETURN_IF_ERROR(ReadNumber(j, "min_requests", 1, 1e12, &min_requests));
  c.min_requests = static_cast<int64_t>(min_requests);
  RETURN_IF_ERROR(ReadNumber(j, "max_error_rate_delta", 0, 1, &c.max_error_rate_delta));
  RETURN_IF_ERROR(ReadNumber(j, "max_p99_ratio", 1, 1e6, &c.max_p99_ratio));
  RETURN_IF_ERROR(ReadNumber(j, "max_ctr_drift", 0, 1e6, &c.max_ctr_drift));
  RETURN_IF_ERROR(ReadNumber(j, "max_psi", 0, 1e6, &c.max_psi));
  return c;
}

double ArmStats::p99_s() const {
  if (latencies_s.empty()) return 0;
  std::vector<double> v = latencies_s;
  const size_t k = std::min(v.size() - 1, static_cast<size_t>(std::ceil(0.99 * v.size())) - 1);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(k), v.end());
  return v[k];
}

double PopulationStabilityIndex(const std::array<int64_t, kPsiBins> &expected,
                                const std::array<int64_t, kPsiBins> &actual) {
  // The epsilon keeps an empty bin on one side from making the index infinite.
  constexpr double kEps = 1e-4;
  double ne = 0, na = 0;
  for (int i = 0; i < kPsiBins; ++i) {
    ne += static_cast<double>(expected[i]);
    na += static_cast<double>(actual[i]);
  }
  if (ne == 0 || na == 0) return 0;
  double psi = 0;
  for (int i = 0; i < kPsiBins; ++i) {
    const double e = expected[i] / ne + kEps, a = actual[i] / na + kEps;
    psi += (a - e) * std::log(a / e);
  }
  return psi;
}

const char *CanaryDecisionName(CanaryDecision d) {
  switch (d) {
    case CanaryDecision::kNone:
      return "none";
    case CanaryDecision::kPromote:
      return "promote";
    case CanaryDecision::kRollback:
      return "rollback";
  }
  return "none";
}

Canary::Canary(std::string model, std::string baseline, CanaryConfig config, NowFn now)
    : model_(std::move(model)),
      baseline_(std::move(baseline)),
      config_(std::move(config)),
      now_(std::move(now)),
      start_(now_()) {}

bool Canary::RoutesToCandidate(std::string_view key) const {
  const double u = static_cast<double>(KeyHash(key) >> 11) * 0x1.0p-53;
  return u < config_.share;
}

void Canary::Record(bool candidate, bool failed, double latency_s, const float *ctrs, size_t n) {
  ArmStats &a = candidate ? cand_ : base_;
  ++a.requests;
  if (failed) ++a.errors;
  if (a.latencies_s.size() < ArmStats::kMaxLatencySamples) a.latencies_s.push_back(latency_s);
  for (size_t i = 0; i < n; ++i) {
    const double c = ctrs[i];
    if (!std::isfinite(c)) continue;
    a.ctr_sum += c;
    ++a.ctr_count;
    const int bin = std::clamp(static_cast<int>(c * kPsiBins), 0, kPsiBins - 1);
    ++a.bins[bin];
  }
}

double Canary::elapsed_s() const { return std::chrono::duration<double>(now_() - start_).count(); }

CanaryVerdict Canary::Evaluate() const {
  CanaryVerdict v;
  const CanaryConfig &c = config_;
  v.error_rate_delta = cand_.error_rate() - base_.error_rate();
  v.p99_ratio = cand_.p99_s() / std::max(base_.p99_s(), 1e-3);
  const double base_ctr = base_.mean_ctr();
  v.ctr_drift = base_ctr > 0 ? std::abs(cand_.mean_ctr() - base_ctr) / base_ctr : 0;
  v.psi = PopulationStabilityIndex(base_.bins, cand_.bins);

  if (cand_.requests >= 20 && v.error_rate_delta > std::max(0.1, 5 * c.max_error_rate_delta)) {
    v.decision = CanaryDecision::kRollback;
    v.reason = "error rate clearly worse (early)";
    return v;
  }
  if (elapsed_s() < c.window_s) {
    v.reason = "window running";
    return v;
  }
  if (cand_.requests < c.min_requests || base_.requests == 0) {
    v.reason = "not enough traffic (candidate " + std::to_string(cand_.requests) + " of " +
               std::to_string(c.min_requests) + ", baseline " + std::to_string(base_.requests) +
               ")";
    return v;
  }
  v.decision = CanaryDecision::kRollback;
  if (v.error_rate_delta > c.max_error_rate_delta) {
    v.reason = "error rate delta above max_error_rate_delta";
  } else if (v.p99_ratio > c.max_p99_ratio) {
    v.reason = "p99 ratio above max_p99_ratio";
  } else if (v.ctr_drift > c.max_ctr_drift) {
    v.reason = "mean CTR drift above max_ctr_drift";
  } else if (v.psi > c.max_psi) {
    v.reason = "PSI above max_psi";
  } else {
    v.decision = CanaryDecision::kPromote;
    v.reason = "all limits hold";
  }
  return v;
}

}  // namespace clickrt::server
