#include "server/server_metrics.h"

namespace clickrt::server::metric {

void RegisterServerMetrics(Metrics* m) {
  // Latency buckets from 100 us to 5 s: a batched CTR request lives in the low milliseconds.
  const std::vector<double> seconds = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
                                       0.05,   0.1,     0.25,   0.5,   1,      2.5,   5};
  m->RegisterCounter(kRequests, "Requests answered, by model, version, endpoint and status code.");
  m->RegisterCounter(kFailures, "Requests that failed, by model, version, endpoint, code, reason.");
  m->RegisterCounter(kFeatureMisses, "Feature rows not found in the store (user or item).");
  m->RegisterCounter(kFeatureDefaults, "Feature values absent from every source (default used).");
  m->RegisterCounter(kCandidates, "Candidate ads scored by ranking requests.");
  m->RegisterHistogram(kLatency, "End-to-end request latency in seconds.", seconds);
  m->RegisterHistogram(kQueue, "Time the oldest request of a batch waited in the queue.", seconds);
  m->RegisterHistogram(kFeatureFetch, "Feature store MultiGet latency in seconds.", seconds);
  m->RegisterHistogram(kCompute, "Engine time per batch in seconds.", seconds);
  m->RegisterHistogram(kBatchSize, "Rows per engine batch.",
                       {1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 4096});
  m->RegisterGauge(kQueueDepth, "Rows waiting in the dynamic batcher's queue.");
  m->RegisterGauge(kBackend, "The backend serving a model version (value 1).");
  m->RegisterGauge(kReady, "1 when the model version is loaded and serving.");
  m->RegisterGauge(kBackendDegraded, "1 while a version's GPU is unhealthy (CPU serves).");
  m->RegisterGauge(kBackendInUse, "1 for the backend serving a version with a CPU fallback.");
  m->RegisterGauge(kRequestLogRecords, "Request log records: sampled, written, dropped.");
}

}  // namespace clickrt::server::metric
