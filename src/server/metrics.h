// Prometheus metrics (text exposition format 0.0.4) for /metrics.
//
// Families are registered once by name with their help text; series are looked up by label set
// and are safe to update from many threads (atomics; a histogram takes a short lock).
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

namespace clickrt::server {

using Labels = std::map<std::string, std::string>;

class Metrics {
 public:
  Metrics();
  ~Metrics();
  // Counters only go up.
  void Increment(const std::string& name, const Labels& labels = {}, double by = 1);
  void Set(const std::string& name, const Labels& labels, double value);  // gauge
  // Histograms: `buckets` are the upper bounds (le), fixed at registration.
  void Observe(const std::string& name, const Labels& labels, double value);

  void RegisterCounter(const std::string& name, const std::string& help);
  void RegisterGauge(const std::string& name, const std::string& help);
  void RegisterHistogram(const std::string& name, const std::string& help,
                         std::vector<double> buckets);

  // The whole registry in the Prometheus text format.
  std::string Render() const;

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace clickrt::server
