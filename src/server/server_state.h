// What the HTTP and gRPC front ends share (internal to src/server).
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <string>

#include "server/admin.h"
#include "server/rank.h"
#include "server/server.h"

namespace grpc {
class Server;
}
namespace httplib {
class Server;
}

namespace clickrt::server {

struct ServerState {
  ServerOptions options;
  std::unique_ptr<ModelRepository> repo;
  std::unique_ptr<features::FeatureStore> store;
  std::shared_ptr<Metrics> metrics;
  std::unique_ptr<Ranker> ranker;
  std::unique_ptr<RequestLog> request_log;  // null = off
  std::atomic<bool> ready{false};
  std::unique_ptr<CanaryController> canary;  // routes and judges canary traffic (admin.h)
  std::unique_ptr<RepositoryPoller> poller;  // null unless options.poll_interval_s > 0

  // Counts one answered request. `model`/`version` are "" when the request named none that
  // exists (unknown names are not used as labels: a client could make them unbounded).
  void Record(const std::string& model, const std::string& version, const std::string& endpoint,
              const std::string& protocol, const std::string& code, bool failed,
              const std::string& reason, std::chrono::steady_clock::time_point start) const;
  // Refreshes the queue-depth gauges (before /metrics renders).
  void UpdateGauges() const;
};

// Front ends; each returns after binding (serving goes on in its own threads).
Status StartHttp(ServerState* state, std::unique_ptr<httplib::Server>* server, int* port);
// `services` keeps the gRPC service objects alive; it must outlive `server`.
Status StartGrpc(ServerState* state, std::unique_ptr<grpc::Server>* server,
                 std::shared_ptr<void>* services, int* port);
// The HTTP server's listen loop (run on its own thread by Server).
void RunHttp(httplib::Server* server);

// Short reason labels for failure metrics: "invalid_argument", "not_found", ...
std::string ReasonLabel(StatusCode code);

}  // namespace clickrt::server
