// `clickrt loadtest`: drive a local `clickrt serve` with ranking or KServe infer requests.
//
// Closed loop: N clients, each sends its next request when the previous one is answered.
// Open loop: requests are scheduled at fixed intervals (1/rate) whatever the replies; a worker
// pool sends them, and latency counts from the scheduled time, so a server that falls behind
// shows its queueing in the percentiles (no coordinated omission).
// Only loopback addresses are accepted: this is a benchmark tool, not a traffic generator.
#include <httplib.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "commands.h"

namespace clickrt::cli {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

struct LoadCmd {
  std::string url = "http://127.0.0.1:8000";
  std::string mode = "closed", endpoint = "rank", model, features;
  double rate = 100, duration_s = 0;
  int clients = 4, connections = 64;
  int64_t requests = 0, candidates = 100, users = 1000, items = 10000, id_range = 4;
  int timeout_ms = 5000;
  uint64_t seed = 1;
  bool json_out = false;
};

struct Target {
  std::string host;
  int port = 0;
};

StatusOr<Target> ParseLoopbackUrl(const std::string& url) {
  const std::string scheme = "http://";
  if (url.rfind(scheme, 0) != 0)
    return InvalidArgument("--url must start with http://, got " + url);
  std::string rest = url.substr(scheme.size());
  if (auto slash = rest.find('/'); slash != std::string::npos) rest = rest.substr(0, slash);
  Target t;
  std::string port = "80";
  if (!rest.empty() && rest[0] == '[') {
    auto close = rest.find(']');
    if (close == std::string::npos) return InvalidArgument("--url has an unclosed '[': " + url);
    t.host = rest.substr(1, close - 1);
    if (close + 1 < rest.size() && rest[close + 1] == ':') port = rest.substr(close + 2);
  } else if (auto colon = rest.rfind(':'); colon != std::string::npos) {
    t.host = rest.substr(0, colon);
    port = rest.substr(colon + 1);
  } else {
    t.host = rest;
  }
  if (t.host != "127.0.0.1" && t.host != "localhost" && t.host != "::1") {
    return InvalidArgument("--url host '" + t.host +
                           "' is not a loopback address (127.0.0.1, localhost, ::1): loadtest only "
                           "drives a local server");
  }
  if (port.empty() || port.size() > 5 ||
      port.find_first_not_of("0123456789") != std::string::npos || std::stoi(port) < 1 ||
      std::stoi(port) > 65535) {
    return InvalidArgument("--url has a bad port '" + port + "'");
  }
  t.port = std::stoi(port);
  return t;
}

// User and item ids: from a feature file's keys ("user:<id>", "item:<id>") or u<i> / ad<i>.
Status LoadIds(const LoadCmd& c, std::vector<std::string>* users, std::vector<std::string>* items) {
  if (!c.features.empty()) {
    std::ifstream in(c.features);
    if (!in) return NotFound("cannot read --features '" + c.features + "'");
    std::string line;
    while (std::getline(in, line)) {
      std::string key;
      if (!line.empty() && line[0] == '{') {
        json j = json::parse(line, nullptr, false);
        if (j.is_object() && j.contains("key") && j["key"].is_string())
          key = j["key"].get<std::string>();
      } else {
        key = line.substr(0, line.find('\t'));
      }
      if (key.rfind("user:", 0) == 0) users->push_back(key.substr(5));
      if (key.rfind("item:", 0) == 0) items->push_back(key.substr(5));
    }
    if (users->empty() || items->empty()) {
      return InvalidArgument("--features '" + c.features + "' holds no user: or item: keys");
    }
    return Status::Ok();
  }
  for (int64_t i = 0; i < c.users; ++i) users->push_back("u" + std::to_string(i));
  for (int64_t i = 0; i < c.items; ++i) items->push_back("ad" + std::to_string(i));
  return Status::Ok();
}

// A pool of request bodies made up front, so the send loop only sends.
StatusOr<std::vector<std::string>> MakeBodies(const LoadCmd& c, const Target& t,
                                              std::string* path) {
  std::mt19937_64 rng(c.seed);
  std::vector<std::string> bodies;
  constexpr int kBodies = 64;
  if (c.endpoint == "rank") {
    *path = "/v1/rank";
    std::vector<std::string> users, items;
    RETURN_IF_ERROR(LoadIds(c, &users, &items));
    for (int b = 0; b < kBodies; ++b) {
      json j = {{"user_id", users[rng() % users.size()]}, {"k", 10}};
      if (!c.model.empty()) j["model"] = c.model;
      json cands = json::array();
      for (int64_t i = 0; i < c.candidates; ++i) cands.push_back(items[rng() % items.size()]);
      j["candidates"] = std::move(cands);
      bodies.push_back(j.dump());
    }
    return bodies;
  }
  if (c.endpoint != "infer") return InvalidArgument("--endpoint must be rank or infer");
  if (c.model.empty()) return InvalidArgument("--endpoint infer needs --model");
  *path = "/v2/models/" + c.model + "/infer";
  httplib::Client cli(t.host, t.port);
  auto res = cli.Get("/v2/models/" + c.model);
  if (!res)
    return Status(StatusCode::kUnavailable,
                  "GET /v2/models/" + c.model + ": " + httplib::to_string(res.error()));
  if (res->status != 200) return NotFound("GET /v2/models/" + c.model + ": " + res->body);
  json meta = json::parse(res->body, nullptr, false);
  if (meta.is_discarded() || !meta.contains("inputs"))
    return Internal("bad model metadata: " + res->body);
  std::uniform_real_distribution<float> uni(0, 1);
  for (int b = 0; b < kBodies; ++b) {
    json inputs = json::array();
    for (const json& in : meta["inputs"]) {
      std::vector<int64_t> shape = in["shape"].get<std::vector<int64_t>>();
      int64_t n = 1;
      for (auto& d : shape) {
        if (d < 0) d = c.candidates;
        n *= d;
      }
      const std::string dt = in["datatype"].get<std::string>();
      json data = json::array();
      for (int64_t i = 0; i < n; ++i) {
        if (dt == "FP32" || dt == "FP64") {
          data.push_back(uni(rng));
        } else {
          data.push_back(static_cast<int64_t>(rng() % static_cast<uint64_t>(c.id_range)));
        }
      }
      inputs.push_back({{"name", in["name"]}, {"datatype", dt}, {"shape", shape}, {"data", data}});
    }
    bodies.push_back(json({{"inputs", inputs}}).dump());
  }
  return bodies;
}

struct Results {
  std::mutex mu;
  std::vector<double> latency_ms;  // successful requests
  std::map<std::string, int64_t> errors;
  int64_t ok = 0;
  void Add(double ms, const std::string& error) {
    std::lock_guard<std::mutex> lock(mu);
    if (error.empty()) {
      ++ok;
      latency_ms.push_back(ms);
    } else {
      ++errors[error];
    }
  }
};

std::string Send(httplib::Client& cli, const std::string& path, const std::string& body) {
  auto res = cli.Post(path, body, "application/json");
  if (!res) return "transport_" + httplib::to_string(res.error());
  if (res->status != 200) return "http_" + std::to_string(res->status);
  return "";
}

double Percentile(std::vector<double>& v, double q) {
  if (v.empty()) return 0;
  size_t i = static_cast<size_t>(q * static_cast<double>(v.size() - 1) + 0.5);
  std::nth_element(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(i), v.end());
  return v[i];
}

Status Loadtest(LoadCmd c) {
  ASSIGN_OR_RETURN(Target t, ParseLoopbackUrl(c.url));
  if (c.mode != "open" && c.mode != "closed")
    return InvalidArgument("--mode must be open or closed");
  if (c.candidates < 1) return InvalidArgument("--candidates must be at least 1");
  if (c.mode == "open" && !(c.rate > 0)) return InvalidArgument("--rate must be positive");
  if (c.clients < 1 || c.connections < 1)
    return InvalidArgument("--clients and --connections must be >= 1");
  if (c.duration_s <= 0 && c.requests <= 0) c.duration_s = 10;
  std::string path;
  ASSIGN_OR_RETURN(auto bodies, MakeBodies(c, t, &path));

  Results results;
  std::atomic<int64_t> next{0};
  const auto start = Clock::now();
  const auto end = c.duration_s > 0 ? start + std::chrono::duration_cast<Clock::duration>(
                                                  std::chrono::duration<double>(c.duration_s))
                                    : Clock::time_point::max();
  const int64_t limit = c.requests > 0 ? c.requests : INT64_MAX;
  const bool open = c.mode == "open";
  const auto interval = std::chrono::duration<double>(open ? 1.0 / c.rate : 0);
  auto worker = [&](int w) {
    httplib::Client cli(t.host, t.port);
    cli.set_keep_alive(true);
    cli.set_tcp_nodelay(true);  // headers and body go out in separate writes
    cli.set_read_timeout(std::chrono::milliseconds(c.timeout_ms));
    cli.set_write_timeout(std::chrono::milliseconds(c.timeout_ms));
    cli.set_connection_timeout(std::chrono::milliseconds(c.timeout_ms));
    for (;;) {
      const int64_t i = next.fetch_add(1);
      if (i >= limit) return;
      Clock::time_point t0 = Clock::now();
      if (open) {
        t0 = start + std::chrono::duration_cast<Clock::duration>(interval * static_cast<double>(i));
        if (t0 >= end) return;
        std::this_thread::sleep_until(t0);
      } else if (t0 >= end) {
        return;
      }
      const std::string error = Send(cli, path, bodies[static_cast<size_t>(i) % bodies.size()]);
      results.Add(std::chrono::duration<double, std::milli>(Clock::now() - t0).count(), error);
    }
  };
  std::vector<std::thread> threads;
  const int n = open ? c.connections : c.clients;
  for (int w = 0; w < n; ++w) threads.emplace_back(worker, w);
  for (auto& th : threads) th.join();
  const double elapsed = std::chrono::duration<double>(Clock::now() - start).count();

  int64_t errors = 0;
  for (const auto& [k, v] : results.errors) errors += v;
  const int64_t total = results.ok + errors;
  const double qps = static_cast<double>(total) / elapsed;
  const double cps = static_cast<double>(results.ok * c.candidates) / elapsed;
  auto& lat = results.latency_ms;
  const double p50 = Percentile(lat, 0.5), p90 = Percentile(lat, 0.9), p99 = Percentile(lat, 0.99);
  const double mx = lat.empty() ? 0 : *std::max_element(lat.begin(), lat.end());
  if (c.json_out) {
    json j = {{"url", c.url},
              {"endpoint", c.endpoint},
              {"mode", c.mode},
              {"concurrency", n},
              {"target_rate", open ? c.rate : 0.0},
              {"candidates", c.candidates},
              {"duration_s", elapsed},
              {"requests", total},
              {"ok", results.ok},
              {"errors", errors},
              {"errors_by_kind", results.errors},
              {"qps", qps},
              {"candidates_per_s", cps},
              {"latency_ms", {{"p50", p50}, {"p90", p90}, {"p99", p99}, {"max", mx}}}};
    std::cout << j.dump() << "\n";
    return Status::Ok();
  }
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "loadtest " << c.endpoint << " " << c.url << ": " << c.mode << " loop, "
            << (open ? std::to_string(c.connections) + " connections at " +
                           std::to_string(static_cast<int64_t>(c.rate)) + " req/s"
                     : std::to_string(c.clients) + " clients")
            << ", " << c.candidates << " candidates, " << elapsed << " s\n";
  std::cout << "requests " << total << " (ok " << results.ok << ", errors " << errors
            << "); achieved " << qps << " req/s, " << cps << " candidates/s\n";
  std::cout << std::setprecision(3) << "latency ms: p50 " << p50 << "  p90 " << p90 << "  p99 "
            << p99 << "  max " << mx << "\n";
  for (const auto& [k, v] : results.errors) std::cout << "errors " << k << ": " << v << "\n";
  return Status::Ok();
}

}  // namespace

void RegisterLoadtest(CLI::App& app, int* exit_code) {
  auto c = std::make_shared<LoadCmd>();
  CLI::App* cmd = app.add_subcommand(
      "loadtest", "Load a local clickrt serve (open or closed loop); report QPS and latency");
  cmd->add_option("--url", c->url, "Server base URL (loopback only)")->capture_default_str();
  cmd->add_option("--mode", c->mode, "open (fixed --rate) or closed (--clients)")
      ->capture_default_str();
  cmd->add_option("--rate", c->rate, "Open loop: requests per second")->capture_default_str();
  cmd->add_option("--clients", c->clients, "Closed loop: concurrent clients")
      ->capture_default_str();
  cmd->add_option("--connections", c->connections, "Open loop: sending connections")
      ->capture_default_str();
  cmd->add_option("--duration", c->duration_s, "Seconds to run (default 10 when --requests is 0)");
  cmd->add_option("--requests", c->requests, "Stop after this many requests");
  cmd->add_option("--endpoint", c->endpoint, "rank or infer")->capture_default_str();
  cmd->add_option("--model", c->model, "Model name (required for infer)");
  cmd->add_option("--candidates", c->candidates, "Candidates (rows) per request")
      ->capture_default_str();
  cmd->add_option("--features", c->features, "Take user / item ids from this feature file's keys");
  cmd->add_option("--users", c->users, "Without --features: user ids u0..u<N-1>")
      ->capture_default_str();
  cmd->add_option("--items", c->items, "Without --features: ad ids ad0..ad<N-1>")
      ->capture_default_str();
  cmd->add_option("--id-range", c->id_range, "infer: integer inputs uniform in [0, N)")
      ->capture_default_str();
  cmd->add_option("--timeout-ms", c->timeout_ms, "Per-request timeout")->capture_default_str();
  cmd->add_option("--seed", c->seed, "Random seed of the request bodies")->capture_default_str();
  cmd->add_flag("--json", c->json_out, "One JSON line instead of text");
  cmd->callback([c, exit_code] {
    Status s = Loadtest(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
