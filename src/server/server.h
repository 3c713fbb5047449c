// `clickrt serve`: the KServe v2 HTTP/REST and gRPC front ends plus the ranking API, over a
// loaded model repository and a feature store.
//
// HTTP (cpp-httplib):
//   GET  /v2/health/live, /v2/health/ready, /v2
//   GET  /v2/models/{m}[/versions/{v}]            model metadata
//   GET  /v2/models/{m}[/versions/{v}]/ready
//   POST /v2/models/{m}[/versions/{v}]/infer      KServe JSON tensors
//   POST /v1/rank                                 see server/rank.h
//   GET  /metrics                                 Prometheus text
//   /v2/repository/...                            admin API, only with a token (server/admin.h)
// gRPC: inference.GRPCInferenceService (proto/grpc_predict_v2.proto) and clickrt.Ranking/Rank
// (proto/clickrt_rank.proto).
//
// Errors: HTTP 400 bad request, 404 unknown model / version / route, 413 body over the limit,
// 429 queue full, 503 not ready / store down, 504 deadline; the body is {"error": "..."}. gRPC
// uses the matching status codes. Every request is counted in the metrics, good or bad, and a
// bad request never takes the server down: exceptions are caught at the RPC edge only.
#pragma once

#include <memory>
#include <string>

#include "clickrt/status.h"
#include "features/feature_store.h"
#include "server/metrics.h"
#include "server/model_repository.h"
#include "server/request_log.h"

namespace clickrt::server {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int http_port = 8000;               // 0 = any free port (see Server::http_port); -1 = no HTTP
  int grpc_port = 8001;               // likewise for gRPC
  int threads = 64;                   // HTTP connections served at once (keep-alive holds one each)
  size_t max_body_bytes = 16u << 20;  // larger bodies: HTTP 413 / gRPC RESOURCE_EXHAUSTED
  int read_timeout_ms = 5000;         // a client that stalls this long mid-request is dropped
  int write_timeout_ms = 5000;
  int keep_alive_timeout_s = 10;
  bool fault_injection = false;  // serve POST /v2/debug/fault (tests only; server/health.h)
  RequestLogOptions request_log;  // dir "" = no request log (server/request_log.h)
  // Admin API (server/admin.h): off while empty; requests need "Authorization: Bearer <token>".
  std::string admin_token;
  double poll_interval_s = 0;  // rescan the repository this often; 0 = never
};

// What a Status becomes on the wire.
int HttpStatusFor(StatusCode code);

class Server {
 public:
  // Binds both ports and starts serving. The server uses but does not own `metrics`' lifetime
  // beyond its own (shared); it owns the repository and the store.
  static StatusOr<std::unique_ptr<Server>> Start(const ServerOptions& options,
                                                 std::unique_ptr<ModelRepository> repository,
                                                 std::unique_ptr<features::FeatureStore> store,
                                                 std::shared_ptr<Metrics> metrics);
  ~Server();  // Shutdown()

  int http_port() const;
  int grpc_port() const;
  // Stops accepting, finishes requests in flight, joins the threads. Idempotent.
  void Shutdown();

  struct Impl;

 private:
  explicit Server(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clickrt::server
