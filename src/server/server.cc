#include "server/server.h"

#include <grpcpp/grpcpp.h>
#include <httplib.h>

#include <algorithm>
#include <cctype>
#include <iostream>
#include <thread>

#include "server/health.h"
#include "server/server_metrics.h"
#include "server/server_state.h"

namespace clickrt::server {

int HttpStatusFor(StatusCode code) {
  switch (code) {
    case StatusCode::kOk:
      return 200;
    case StatusCode::kInvalidArgument:
      return 400;
    case StatusCode::kOutOfRange:
      return 400;
    case StatusCode::kDataLoss:
      return 400;
    case StatusCode::kFailedPrecondition:
      return 400;
    case StatusCode::kNotFound:
      return 404;
    case StatusCode::kUnimplemented:
      return 501;
    case StatusCode::kResourceExhausted:
      return 429;
    case StatusCode::kDeadlineExceeded:
      return 504;
    case StatusCode::kUnavailable:
      return 503;
    case StatusCode::kInternal:
      return 500;
  }
  return 500;
}

std::string ReasonLabel(StatusCode code) {
  std::string s = StatusCodeName(code);
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

void ServerState::Record(const std::string& model, const std::string& version,
                         const std::string& endpoint, const std::string& protocol,
                         const std::string& code, bool failed, const std::string& reason,
                         std::chrono::steady_clock::time_point start) const {
  if (!metrics) return;
  Labels l = {{"model", model},
              {"version", version},
              {"endpoint", endpoint},
              {"protocol", protocol},
              {"code", code}};
  metrics->Increment(metric::kRequests, l);
  if (failed) {
    l["reason"] = reason;
    metrics->Increment(metric::kFailures, l);
  }
  metrics->Observe(metric::kLatency, {{"model", model}, {"endpoint", endpoint}},
                   std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

void ServerState::UpdateGauges() const {
  if (!metrics) return;
  for (const std::string& m : repo->ModelNames()) {
    for (const std::string& v : repo->Versions(m)) {
      auto mv = repo->Find(m, v);
      if (!mv.ok()) continue;
      metrics->Set(metric::kQueueDepth, {{"model", m}, {"version", v}},
                   static_cast<double>((*mv)->batcher->queued_rows()));
    }
  }
  ExportHealth(*repo, metrics.get());
  if (request_log) {
    const RequestLog::Stats st = request_log->stats();
    for (auto [state, n] : {std::pair{"sampled", st.sampled}, {"written", st.written},
                            {"dropped", st.dropped}}) {
      metrics->Set(metric::kRequestLogRecords, {{"state", state}}, static_cast<double>(n));
    }
  }
}

struct Server::Impl {
  ServerState state;
  std::unique_ptr<httplib::Server> http;
  std::shared_ptr<void> grpc_services;  // outlives `grpc` (declared first, destroyed last)
  std::unique_ptr<grpc::Server> grpc;
  std::thread http_thread;
  int http_port = -1, grpc_port = -1;
  bool stopped = false;
};

Server::Server(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Server::~Server() { Shutdown(); }

StatusOr<std::unique_ptr<Server>> Server::Start(const ServerOptions& options,
                                                std::unique_ptr<ModelRepository> repository,
                                                std::unique_ptr<features::FeatureStore> store,
                                                std::shared_ptr<Metrics> metrics) {
  if (!repository || !store) return InvalidArgument("a server needs a repository and a store");
  auto impl = std::make_unique<Impl>();
  ServerState& s = impl->state;
  s.options = options;
  s.repo = std::move(repository);
  s.store = std::move(store);
  s.metrics = std::move(metrics);
  s.ranker = std::make_unique<Ranker>(s.repo.get(), s.store.get(), s.metrics.get());
  if (!options.request_log.dir.empty()) {
    ASSIGN_OR_RETURN(s.request_log, RequestLog::Create(options.request_log));
    s.ranker->set_request_log(s.request_log.get());
  }
  s.canary = std::make_unique<CanaryController>(
      s.repo.get(), s.metrics.get(), [](const std::string& line) { std::cerr << line << "\n"; },
      [] { return std::chrono::steady_clock::now(); });
  if (options.poll_interval_s > 0) {
    s.poller = std::make_unique<RepositoryPoller>(s.repo.get(), options.poll_interval_s);
  }
  std::unique_ptr<Server> server(new Server(std::move(impl)));
  Impl& m = *server->impl_;
  if (options.grpc_port >= 0)
    RETURN_IF_ERROR(StartGrpc(&m.state, &m.grpc, &m.grpc_services, &m.grpc_port));
  if (options.http_port >= 0) {
    RETURN_IF_ERROR(StartHttp(&m.state, &m.http, &m.http_port));
    httplib::Server* http = m.http.get();
    m.http_thread = std::thread([http] { RunHttp(http); });
  }
  m.state.ready = true;
  return server;
}

int Server::http_port() const { return impl_->http_port; }
int Server::grpc_port() const { return impl_->grpc_port; }

void Server::Shutdown() {
  Impl& m = *impl_;
  if (m.stopped) return;
  m.stopped = true;
  m.state.ready = false;
  m.state.poller.reset();  // no load may start while the front ends wind down
  if (m.http) m.http->stop();
  if (m.http_thread.joinable()) m.http_thread.join();
  if (m.grpc) {
    m.grpc->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
    m.grpc->Wait();
  }
}

}  // namespace clickrt::server
