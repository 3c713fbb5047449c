// Release control for `clickrt serve`: the admin API (load / unload / index /
// canary), the repository poller and the canary controller that routes and
// judges canary traffic.
//
// Admin HTTP routes, registered only when ServerOptions::admin_token is set
// (404 otherwise); every one needs `Authorization: Bearer <token>` (401
// otherwise):
//   POST /v2/repository/models/{m}/load     optional body {"version": "3"}
//   POST /v2/repository/models/{m}/unload   optional body {"version": "3"}
//   GET  /v2/repository/index [{"name","version","state","reason","default"}]
//   POST /v2/repository/models/{m}/canary   body: CanaryConfig
//   (server/canary.h) GET  /v2/repository/models/{m}/canary   the live
//   comparison
// Model and version names are validated (ValidateRepositoryName) before any
// path is built.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "server/canary.h"
#include "server/metrics.h"
#include "server/model_repository.h"

namespace httplib {
class Server;
}

namespace clickrt::server {

struct ServerState;

// Canaries of every model. Thread-safe; Route and Observe are on the request
// path.
class CanaryController {
 public:
  // `log` receives one JSON line per decision; `now` is the canary clock (tests
  // inject one).
  CanaryController(ModelRepository *repo, Metrics *metrics,
                   std::function<void(const std::string &)> log, Canary::NowFn now);

  // Starts a canary of `model` (loading the candidate when it is not loaded).
  // FailedPrecondition when one already runs for the model.
  StatusOr<nlohmann::json> Start(const std::string &model, const CanaryConfig &config);
  // The candidate version for a request that names no version, or "" (the
  // default serves it).
  std::string Route(const std::string &model, std::string_view key) const;
  // One answered request that named no version, on `version` (the candidate or
  // the default).
  void Observe(const std::string &model, const std::string &version, bool failed, double latency_s,
               const float *ctrs, size_t n);
  // The live state, or NotFound when no canary runs (the last decision is
  // included).
  StatusOr<nlohmann::json> State(const std::string &model);

 private:
  struct Entry {
    std::unique_ptr<Canary> canary;
    Canary::Clock::time_point last_eval;  // p99 sorts the samples: judge at most every 200 ms
  };
  nlohmann::json Describe(const Canary &c, const CanaryVerdict &v) const;
  void UpdateGauges(const Canary &c, const CanaryVerdict &v) const;
  // Applies a decision (promote / roll back) and ends the canary. Called with
  // mu_ held.
  void Decide(const std::string &model, const CanaryVerdict &v);

  ModelRepository *repo_;
  Metrics *metrics_;
  std::function<void(const std::string &)> log_;
  Canary::NowFn now_;
  mutable std::mutex mu_;
  std::atomic<int> active_{0};  // lets Route skip the lock when no canary runs
  std::map<std::string, Entry> canaries_;
  std::map<std::string, nlohmann::json> last_decision_;
};

// Rescans the repository every `interval_s` on its own thread until destroyed.
class RepositoryPoller {
 public:
  RepositoryPoller(ModelRepository *repo, double interval_s);
  ~RepositoryPoller();

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

// Registers the admin routes on `http` when state->options.admin_token is set.
void RegisterAdminRoutes(ServerState *state, httplib::Server *http);

// Constant-time comparison of an Authorization header with "Bearer <token>".
bool AdminAuthorized(const std::string &header, const std::string &token);

}  // namespace clickrt::server
