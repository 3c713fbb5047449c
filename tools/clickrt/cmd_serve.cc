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
  cmd->callback([c, exit_code] {
    Status s = Serve(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
