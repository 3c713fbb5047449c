// `clickrt serve`: load a model repository and serve it over HTTP (KServe v2 + /v1/rank) and
// gRPC until SIGINT / SIGTERM.
#include <pthread.h>
#include <signal.h>

#include <iostream>
#include <memory>

#include "commands.h"
#include "features/feature_store.h"
#include "server/server.h"
#include "server/server_metrics.h"

namespace clickrt::cli {
namespace {

struct ServeCmd {
  std::string repo, redis, features;
  server::ServerOptions server;
  int engine_threads = 0;
  int64_t max_body_bytes = 16 << 20;
  int64_t probe_interval_ms = 1000, gpu_deadline_ms = 250;
  double request_log_max_mb = 64;
};

Status Serve(const ServeCmd& c) {
  // Block the stop signals before any thread starts so every thread inherits the mask and only
  // the sigwait below receives them.
  sigset_t stop;
  sigemptyset(&stop);
  sigaddset(&stop, SIGINT);
  sigaddset(&stop, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &stop, nullptr);

  auto metrics = std::make_shared<server::Metrics>();
  server::metric::RegisterServerMetrics(metrics.get());

  std::unique_ptr<features::FeatureStore> store;
  if (!c.redis.empty()) {
    ASSIGN_OR_RETURN(features::RedisOptions ro, features::ParseRedisAddress(c.redis));
    ASSIGN_OR_RETURN(store, features::MakeRedisStore(ro));
  } else {
    ASSIGN_OR_RETURN(store, features::MakeMemoryStore());
  }
  if (!c.features.empty()) {
    RETURN_IF_ERROR(features::LoadFeatureFile(c.features, store.get()));
    std::cerr << "serve: loaded features from " << c.features << " into the " << store->kind()
              << " store\n";
  }

  server::RepositoryOptions ro;
  ro.engine.cpu_threads = c.engine_threads;
  ro.fallback.fault_injection = c.server.fault_injection;
  ro.fallback.options.probe_interval = std::chrono::milliseconds(c.probe_interval_ms);
  ro.fallback.options.run_deadline = std::chrono::milliseconds(c.gpu_deadline_ms);
  ro.fallback.options.probe_deadline = std::chrono::milliseconds(c.gpu_deadline_ms);
  if (c.server.fault_injection) std::cerr << "serve: FAULT INJECTION on (tests only)\n";
  ro.metrics = metrics.get();
  ro.progress = [](const std::string& line) { std::cerr << "serve: " << line << "\n"; };
  ASSIGN_OR_RETURN(auto repo, server::ModelRepository::Load(c.repo, ro));
  for (const std::string& m : repo->ModelNames()) {
    for (const std::string& v : repo->Versions(m)) {
      ASSIGN_OR_RETURN(auto mv, repo->Find(m, v));
      std::cerr << "serve: model " << m << " version " << v << " from " << mv->source_file << " ("
                << mv->engine->backend() << ", max batch " << mv->config.max_batch << ")\n";
    }
  }

  server::ServerOptions so = c.server;
  so.max_body_bytes = static_cast<size_t>(c.max_body_bytes);
  so.request_log.max_bytes = static_cast<int64_t>(c.request_log_max_mb * (1 << 20));
  if (!so.request_log.dir.empty()) {
    std::cerr << "serve: request log in " << so.request_log.dir << " (rate "
              << so.request_log.rate << ", " << c.request_log_max_mb << " MB)\n";
  }
  if (!so.admin_token.empty()) std::cerr << "serve: admin API on (bearer token required)\n";
  if (so.poll_interval_s > 0) {
    std::cerr << "serve: rescanning " << c.repo << " every " << so.poll_interval_s << " s\n";
  }
  ASSIGN_OR_RETURN(auto srv, server::Server::Start(so, std::move(repo), std::move(store), metrics));
  // One line on stdout, flushed: scripts wait for it and read the ports (useful with port 0).
  std::cout << "serving http://" << so.host << ":" << srv->http_port() << " grpc " << so.host << ":"
            << srv->grpc_port() << std::endl;

  int sig = 0;
  sigwait(&stop, &sig);
  std::cerr << "serve: signal " << sig << ", shutting down\n";
  srv->Shutdown();
  return Status::Ok();
}

}  // namespace

void RegisterServe(CLI::App& app, int* exit_code) {
  auto c = std::make_shared<ServeCmd>();
  CLI::App* cmd = app.add_subcommand(
      "serve", "Serve a model repository: KServe v2 over HTTP and gRPC, ranking at /v1/rank");
  cmd->add_option("--repo", c->repo, "Model repository: <repo>/<model>/<version>/")->required();
  cmd->add_option("--host", c->server.host, "Address to listen on")->capture_default_str();
  cmd->add_option("--http-port", c->server.http_port, "HTTP port (0: any free port, -1: off)")
      ->capture_default_str();
  cmd->add_option("--grpc-port", c->server.grpc_port, "gRPC port (0: any free port, -1: off)")
      ->capture_default_str();
  cmd->add_option("--redis", c->redis, "Feature store in Redis at host:port (default: in memory)");
  cmd->add_option("--features", c->features,
                  "Load this feature file (key<TAB>name=value...) into the store at start");
  cmd->add_option("--threads", c->server.threads,
                  "HTTP connections served at once (each keep-alive connection holds one)")
      ->capture_default_str();
  cmd->add_option("--engine-threads", c->engine_threads, "CPU engine threads (0: all CPUs)")
      ->capture_default_str();
  cmd->add_option("--max-body-bytes", c->max_body_bytes, "Largest request body (HTTP 413 above)")
      ->capture_default_str();
  cmd->add_option("--read-timeout-ms", c->server.read_timeout_ms,
                  "Drop a client that stalls this long mid-request")
      ->capture_default_str();
  cmd->add_option("--gpu-probe-interval-ms", c->probe_interval_ms,
                  "Known-answer health probe of each GPU engine, this often")
      ->check(CLI::Range(int64_t{1}, int64_t{3'600'000}))
      ->capture_default_str();
  cmd->add_option("--gpu-deadline-ms", c->gpu_deadline_ms,
                  "A GPU call (request or probe) slower than this counts as a hang: the request "
                  "is answered by the CPU engine")
      ->check(CLI::Range(int64_t{1}, int64_t{600'000}))
      ->capture_default_str();
  cmd->add_flag("--fault-injection", c->server.fault_injection,
                "Tests only: serve POST /v2/debug/fault and put every engine behind a fallback");
  cmd->add_option("--request-log", c->server.request_log.dir,
                  "Log a sample of ranking requests' model inputs (JSON lines) into this folder");
  cmd->add_option("--request-log-rate", c->server.request_log.rate,
                  "Fraction of scored candidates logged")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--request-log-max-mb", c->request_log_max_mb,
                  "Size bound of the request log (all rotated files together)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--poll-interval-s", c->server.poll_interval_s,
                  "Rescan --repo this often: load new version folders, unload removed ones "
                  "(0: off)")
      ->check(CLI::NonNegativeNumber)
      ->capture_default_str();
  cmd->add_option("--admin-token", c->server.admin_token,
                  "Enable the admin API (/v2/repository/...: load, unload, index, canary); "
                  "requests need 'Authorization: Bearer TOKEN'. Prefer the env "
                  "CLICKRT_ADMIN_TOKEN (command lines are visible to other users). Default: off")
      ->envname("CLICKRT_ADMIN_TOKEN");
  cmd->callback([c, exit_code] {
    Status s = Serve(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
