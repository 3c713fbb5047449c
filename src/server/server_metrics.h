// The metric families the server exports on /metrics, registered in one place.
#pragma once

#include "server/metrics.h"

namespace clickrt::server::metric {

// Counters.
inline constexpr char kRequests[] = "clickrt_requests_total";  // model, version, endpoint, code
inline constexpr char kFailures[] = "clickrt_request_failures_total";         // ... and reason
inline constexpr char kFeatureMisses[] = "clickrt_feature_misses_total";      // model, kind
inline constexpr char kFeatureDefaults[] = "clickrt_feature_defaults_total";  // model
inline constexpr char kCandidates[] = "clickrt_candidates_scored_total";      // model, version
// Histograms (seconds, rows).
inline constexpr char kLatency[] = "clickrt_request_duration_seconds";  // model, endpoint
inline constexpr char kQueue[] = "clickrt_queue_duration_seconds";      // model, version
inline constexpr char kFeatureFetch[] = "clickrt_feature_fetch_duration_seconds";  // store
inline constexpr char kCompute[] = "clickrt_compute_duration_seconds";             // model, version
inline constexpr char kBatchSize[] = "clickrt_batch_size_rows";                    // model, version
// Gauges.
inline constexpr char kQueueDepth[] = "clickrt_queue_depth_rows";  // model, version
inline constexpr char kBackend[] = "clickrt_model_backend_info";   // model, version, backend
inline constexpr char kReady[] = "clickrt_model_ready";            // model, version
inline constexpr char kBackendDegraded[] = "clickrt_backend_degraded";  // model, version
inline constexpr char kBackendInUse[] = "clickrt_backend_in_use";  // model, version, backend
inline constexpr char kRequestLogRecords[] = "clickrt_request_log_records";  // state

// Registers every family above (idempotent per registry).
void RegisterServerMetrics(Metrics* metrics);

}  // namespace clickrt::server::metric
