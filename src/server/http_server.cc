// The HTTP/REST front end: KServe v2 routes, /v1/rank and /metrics on cpp-httplib.
#include <httplib.h>

#include <nlohmann/json.hpp>

#include "server/canary_routing.h"
#include "server/health.h"
#include "server/kserve_codec.h"
#include "server/server_state.h"

namespace clickrt::server {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

constexpr char kJson[] = "application/json";

// What a handler answers; the route wrapper writes it and records the metrics.
struct Reply {
  int status = 200;
  std::string body;
  std::string content_type = kJson;
  std::string model, version;  // labels; "" when unknown
  StatusCode error = StatusCode::kOk;
};

Reply For(const ModelVersion& m) {
  Reply r;
  r.model = m.name;
  r.version = m.version;
  return r;
}

std::string Dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

Reply ErrorReply(const Status& s, Reply r = {}) {
  r.status = HttpStatusFor(s.code());
  r.error = s.code();
  r.body = Dump({{"error", s.message()}, {"code", StatusCodeName(s.code())}});
  r.content_type = kJson;
  return r;
}

using Handler = std::function<Reply(const httplib::Request&)>;

// Wraps a handler: the one place exceptions are caught, and where every request is counted.
httplib::Server::Handler Route(ServerState* s, std::string endpoint, Handler fn) {
  return [s, endpoint = std::move(endpoint), fn = std::move(fn)](const httplib::Request& req,
                                                                 httplib::Response& res) {
    const auto start = Clock::now();
    Reply r;
    try {
      r = fn(req);
    } catch (const std::exception& e) {
      r = ErrorReply(Internal(std::string("unexpected exception: ") + e.what()));
    } catch (...) {
      r = ErrorReply(Internal("unexpected exception"));
    }
    res.status = r.status;
    res.set_content(r.body, r.content_type);
    s->Record(r.model, r.version, endpoint, "http", std::to_string(r.status),
              r.error != StatusCode::kOk, ReasonLabel(r.error), start);
  };
}

std::string Match(const httplib::Request& req, size_t i) {
  return i < req.matches.size() ? std::string(req.matches[i]) : std::string();
}

StatusOr<std::shared_ptr<const ModelVersion>> FindModel(ServerState* s,
                                                        const httplib::Request& req) {
  return s->repo->Find(Match(req, 1), Match(req, 2));
}

json TensorsMeta(const std::vector<runtime::IoSpec>& specs) {
  json a = json::array();
  for (const auto& x : specs) {
    a.push_back({{"name", x.name}, {"datatype", KServeDatatype(x.dtype)}, {"shape", x.dims}});
  }
  return a;
}

Reply Metadata(ServerState* s, const httplib::Request& req) {
  auto mv = FindModel(s, req);
  if (!mv.ok()) return ErrorReply(mv.status());
  const ModelVersion& m = **mv;
  Reply r = For(m);
  json j = {{"name", m.name},
            {"versions", s->repo->Versions(m.name)},
            {"platform", "clickrt_" + m.engine->backend()},
            {"inputs", TensorsMeta(m.inputs)},
            {"outputs", TensorsMeta(m.outputs)},
            {"parameters",
             {{"version", m.version},
              {"max_batch", m.config.max_batch},
              {"source", m.source_file},
              {"backend", m.engine->backend()}}}};
  r.body = Dump(j);
  return r;
}

Reply ModelReady(ServerState* s, const httplib::Request& req) {
  auto mv = FindModel(s, req);
  if (!mv.ok()) return ErrorReply(mv.status());
  Reply r = For(**mv);
  r.body = Dump({{"name", (*mv)->name}, {"version", (*mv)->version}, {"ready", s->ready.load()}});
  if (!s->ready) r.status = 503;
  return r;
}

Reply Infer(ServerState* s, const httplib::Request& req) {
  const auto start = Clock::now();
  auto mv = FindModel(s, req);
  if (!mv.ok()) return ErrorReply(mv.status());
  auto decoded = DecodeInferJson(req.body);
  if (!decoded.ok()) return ErrorReply(decoded.status(), For(**mv));
  const bool routed = Match(req, 2).empty();  // canaries see requests that name no version
  if (routed) RouteCanary(s, InferRoutingKey(decoded->id), &*mv);
  const ModelVersion& m = **mv;
  Reply labels = For(m);
  auto out = m.Infer(std::move(decoded->inputs));
  if (!out.ok()) {
    if (routed) ObserveCanary(s, m.name, m.version, true, start, {});
    return ErrorReply(out.status(), labels);
  }
  if (routed) ObserveCanary(s, m.name, m.version, false, start, InferCtrs(m, *out));
  auto body = EncodeInferJson(m.name, m.version, decoded->id, *out, decoded->outputs);
  if (!body.ok()) return ErrorReply(body.status(), labels);
  labels.body = std::move(body).value();
  return labels;
}

Reply Rank(ServerState* s, const httplib::Request& req) {
  const auto start = Clock::now();
  auto decoded = DecodeRankJson(req.body);
  if (!decoded.ok()) return ErrorReply(decoded.status());
  Reply labels;
  const bool routed = decoded->version.empty();
  auto mv = s->ranker->Resolve(*decoded);
  if (mv.ok()) {
    if (routed) RouteRankCanary(s, &*decoded, &*mv);
    labels.model = (*mv)->name;
    labels.version = (*mv)->version;
  }
  auto ranked = s->ranker->Rank(*decoded);
  if (!ranked.ok()) {
    if (routed && mv.ok()) ObserveCanary(s, labels.model, labels.version, true, start, {});
    return ErrorReply(ranked.status(), labels);
  }
  if (routed) {
    std::vector<float> ctrs;
    for (const auto& r : ranked->results) ctrs.push_back(r.ctr);
    ObserveCanary(s, labels.model, labels.version, false, start, ctrs);
  }
  labels.body = EncodeRankJson(*ranked);
  return labels;
}

}  // namespace

Status StartHttp(ServerState* s, std::unique_ptr<httplib::Server>* out, int* port) {
  auto http = std::make_unique<httplib::Server>();
  const ServerOptions& o = s->options;
  const int threads = std::max(1, o.threads);
  http->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  http->set_payload_max_length(o.max_body_bytes);
  http->set_read_timeout(std::chrono::milliseconds(o.read_timeout_ms));
  http->set_write_timeout(std::chrono::milliseconds(o.write_timeout_ms));
  http->set_keep_alive_timeout(o.keep_alive_timeout_s);
  http->set_keep_alive_max_count(1u << 30);
  http->set_tcp_nodelay(true);

  auto health = [s](bool ready_check) {
    return [s, ready_check](const httplib::Request&) {
      Reply r;
      const bool ok = ready_check ? s->ready.load() : true;
      json body = {{ready_check ? "ready" : "live", ok}};
      // A version whose GPU failed still serves (from its CPU engine): ready stays 200 and
      // names it, so a balancer keeps routing here while an operator is alerted.
      if (ready_check && ok) {
        if (auto degraded = DegradedVersions(*s->repo); !degraded.empty())
          body["degraded"] = degraded;
      }
      r.body = Dump(body);
      if (!ok) r.status = 503;
      return r;
    };
  };
  http->Get("/v2/health/live", Route(s, "health", health(false)));
  http->Get("/v2/health/ready", Route(s, "health", health(true)));
  if (s->options.fault_injection) {
    http->Post("/v2/debug/fault", Route(s, "debug_fault", [s](const httplib::Request& req) {
                 Reply r;
                 auto done = InjectFault(*s->repo, req.body);
                 if (!done.ok()) return ErrorReply(done.status());
                 r.body = Dump({{"injected", *done}});
                 return r;
               }));
  }
  http->Get(
      "/v2", Route(s, "server_metadata", [](const httplib::Request&) {
        Reply r;
        r.body = Dump({{"name", "clickrt"},
                       {"version", CLICKRT_VERSION},
                       {"extensions", json::array({"model_repository_readonly", "clickrt_rank"})}});
        return r;
      }));
  const std::string model = R"(/v2/models/([^/]+)(?:/versions/([^/]+))?)";
  http->Get(model, Route(s, "model_metadata", [s](const auto& req) { return Metadata(s, req); }));
  http->Get(model + "/ready",
            Route(s, "model_ready", [s](const auto& req) { return ModelReady(s, req); }));
  http->Post(model + "/infer", Route(s, "infer", [s](const auto& req) { return Infer(s, req); }));
  http->Post("/v1/rank", Route(s, "rank", [s](const auto& req) { return Rank(s, req); }));
  RegisterAdminRoutes(s, http.get());  // only with an admin token
  http->Get("/metrics", [s](const httplib::Request&, httplib::Response& res) {
    s->UpdateGauges();
    res.set_content(s->metrics ? s->metrics->Render() : std::string(), "text/plain; version=0.0.4");
  });
  // Responses httplib makes itself (no route, 413 body too large, 400 unreadable request) get
  // a JSON error body and are counted like the others.
  http->set_error_handler([s](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return;  // a route already answered
    std::string msg;
    switch (res.status) {
      case 404:
        msg = "no route for " + req.method + " " + req.path.substr(0, 200);
        break;
      case 413:
        msg = "request body exceeds the limit of " + std::to_string(s->options.max_body_bytes) +
              " bytes";
        break;
      default:
        msg = "cannot read the request (" + std::to_string(res.status) + ")";
        break;
    }
    res.set_content(Dump({{"error", msg}}), kJson);
    s->Record("", "", "other", "http", std::to_string(res.status), true,
              res.status == 413   ? "body_too_large"
              : res.status == 404 ? "no_route"
                                  : "bad_request",
              Clock::now());
  });
  const int p = o.http_port == 0 ? http->bind_to_any_port(o.host)
                                 : (http->bind_to_port(o.host, o.http_port) ? o.http_port : -1);
  if (p < 0) {
    return Status(StatusCode::kUnavailable,
                  "cannot listen for HTTP on " + o.host + ":" + std::to_string(o.http_port));
  }
  *port = p;
  *out = std::move(http);
  return Status::Ok();
}

void RunHttp(httplib::Server* http) { http->listen_after_bind(); }

}  // namespace clickrt::server
