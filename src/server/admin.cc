#include "server/admin.h"

#include <httplib.h>

#include <iostream>

#include "server/server_state.h"

namespace clickrt::server {
namespace {

using nlohmann::json;

constexpr char kJson[] = "application/json";
constexpr char kDecisions[] = "clickrt_canary_decisions_total";  // model, version, decision
constexpr char kActive[] = "clickrt_canary_active";              // model, version
constexpr char kArmRequests[] = "clickrt_canary_requests";       // model, version, arm
constexpr char kArmErrorRate[] = "clickrt_canary_error_rate";    // model, version, arm
constexpr char kArmP99[] = "clickrt_canary_p99_seconds";         // model, version, arm
constexpr char kArmCtr[] = "clickrt_canary_mean_ctr";            // model, version, arm
constexpr char kPsi[] = "clickrt_canary_psi";                    // model, version

std::string Dump(const json &j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

json ArmJson(const std::string &version, const ArmStats &a) {
  return {{"version", version},           {"requests", a.requests}, {"errors", a.errors},
          {"error_rate", a.error_rate()}, {"p99_s", a.p99_s()},     {"mean_ctr", a.mean_ctr()},
          {"ctr_samples", a.ctr_count},   {"ctr_histogram", a.bins}};
}

}  // namespace

CanaryController::CanaryController(ModelRepository *repo, Metrics *metrics,
                                   std::function<void(const std::string &)> log, Canary::NowFn now)
    : repo_(repo), metrics_(metrics), log_(std::move(log)), now_(std::move(now)) {
  if (metrics_) {
    metrics_->RegisterCounter(kDecisions, "Canary decisions, by model, candidate and decision.");
    metrics_->RegisterGauge(kActive, "1 while a canary of the candidate version runs.");
    metrics_->RegisterGauge(kArmRequests, "Requests seen by a running canary, by arm.");
    metrics_->RegisterGauge(kArmErrorRate, "Error rate of a running canary, by arm.");
    metrics_->RegisterGauge(kArmP99, "p99 latency (s) of a running canary, by arm.");
    metrics_->RegisterGauge(kArmCtr, "Mean predicted CTR of a running canary, by arm.");
    metrics_->RegisterGauge(kPsi, "PSI of the candidate's CTR histogram against the baseline's.");
  }
}

StatusOr<json> CanaryController::Start(const std::string &model, const CanaryConfig &config) {
  RETURN_IF_ERROR(ValidateRepositoryName(model, "model"));
  RETURN_IF_ERROR(ValidateRepositoryName(config.version, "version"));
  {
    std::lock_guard lock(mu_);
    if (canaries_.count(model)) {
      return Status(StatusCode::kFailedPrecondition,
                    "a canary of model '" + model + "' is already running");
    }
  }
  // Load outside the lock (a build from model.onnx takes seconds).
  if (!repo_->Find(model, config.version).ok()) {
    RETURN_IF_ERROR(repo_->LoadVersion(model, config.version).status());
  }
  std::lock_guard lock(mu_);
  if (canaries_.count(model)) {
    return Status(StatusCode::kFailedPrecondition,
                  "a canary of model '" + model + "' is already running");
  }
  repo_->SetCandidate(model, config.version);
  auto base = repo_->Find(model, "");
  if (!base.ok() || (*base)->version == config.version) {
    repo_->SetCandidate(model, "");
    return Status(StatusCode::kFailedPrecondition,
                  "model '" + model + "' has no other version to compare candidate " +
                      config.version + " with");
  }
  Entry e;
  e.canary = std::make_unique<Canary>(model, (*base)->version, config, now_);
  e.last_eval = now_();
  json j = Describe(*e.canary, e.canary->Evaluate());
  canaries_[model] = std::move(e);
  ++active_;
  last_decision_.erase(model);
  if (metrics_) metrics_->Set(kActive, {{"model", model}, {"version", config.version}}, 1);
  if (log_) log_(Dump({{"event", "canary_start"}, {"canary", j}}));
  return j;
}

std::string CanaryController::Route(const std::string &model, std::string_view key) const {
  if (active_.load(std::memory_order_relaxed) == 0) return "";
  std::lock_guard lock(mu_);
  auto it = canaries_.find(model);
  if (it == canaries_.end()) return "";
  return it->second.canary->RoutesToCandidate(key) ? it->second.canary->config().version : "";
}

void CanaryController::Observe(const std::string &model, const std::string &version, bool failed,
                               double latency_s, const float *ctrs, size_t n) {
  if (active_.load(std::memory_order_relaxed) == 0) return;
  std::lock_guard lock(mu_);
  auto it = canaries_.find(model);
  if (it == canaries_.end()) return;
  Canary &c = *it->second.canary;
  c.Record(version == c.config().version, failed, latency_s, ctrs, n);
  const auto now = now_();
  if (now - it->second.last_eval < std::chrono::milliseconds(200)) return;
  it->second.last_eval = now;
  const CanaryVerdict v = c.Evaluate();
  UpdateGauges(c, v);
  if (v.decision != CanaryDecision::kNone) Decide(model, v);
}

StatusOr<json> CanaryController::State(const std::string &model) {
  std::lock_guard lock(mu_);
  auto it = canaries_.find(model);
  if (it == canaries_.end()) {
    auto d = last_decision_.find(model);
    if (d != last_decision_.end()) return json{{"running", false}, {"last_decision", d->second}};
    return NotFound("no canary of model '" + model + "' has run");
  }
  const CanaryVerdict v = it->second.canary->Evaluate();
  UpdateGauges(*it->second.canary, v);
  json j = Describe(*it->second.canary, v);
  if (v.decision != CanaryDecision::kNone) {
    Decide(model, v);
    j["running"] = false;
  }
  return j;
}

json CanaryController::Describe(const Canary &c, const CanaryVerdict &v) const {
  const CanaryConfig &k = c.config();
  return {{"model", c.model()},
          {"running", true},
          {"elapsed_s", c.elapsed_s()},
          {"config",
           {{"version", k.version},
            {"share", k.share},
            {"window_s", k.window_s},
            {"min_requests", k.min_requests},
            {"max_error_rate_delta", k.max_error_rate_delta},
            {"max_p99_ratio", k.max_p99_ratio},
            {"max_ctr_drift", k.max_ctr_drift},
            {"max_psi", k.max_psi}}},
          {"baseline", ArmJson(c.baseline(), c.baseline_stats())},
          {"candidate", ArmJson(k.version, c.candidate_stats())},
          {"decision", CanaryDecisionName(v.decision)},
          {"reason", v.reason},
          {"error_rate_delta", v.error_rate_delta},
          {"p99_ratio", v.p99_ratio},
          {"ctr_drift", v.ctr_drift},
          {"psi", v.psi}};
}

void CanaryController::UpdateGauges(const Canary &c, const CanaryVerdict &v) const {
  if (!metrics_) return;
  const std::string &cand = c.config().version;
  for (const auto &[arm, stats] :
       {std::pair<const char *, const ArmStats *>{"baseline", &c.baseline_stats()},
        {"candidate", &c.candidate_stats()}}) {
    const Labels l = {{"model", c.model()}, {"version", cand}, {"arm", arm}};
    metrics_->Set(kArmRequests, l, static_cast<double>(stats->requests));
    metrics_->Set(kArmErrorRate, l, stats->error_rate());
    metrics_->Set(kArmP99, l, stats->p99_s());
    metrics_->Set(kArmCtr, l, stats->mean_ctr());
  }
  metrics_->Set(kPsi, {{"model", c.model()}, {"version", cand}}, v.psi);
}

void CanaryController::Decide(const std::string &model, const CanaryVerdict &v) {
  auto it = canaries_.find(model);
  const Canary &c = *it->second.canary;
  const std::string cand = c.config().version;
  json j = Describe(c, v);
  j["running"] = false;
  if (v.decision == CanaryDecision::kPromote) {
    repo_->SetCandidate(model, "");
    if (Status s = repo_->SetDefault(model, cand); !s.ok()) j["apply_error"] = s.message();
  } else {
    repo_->SetCandidate(model, "");
    // Unloaded: requests on it finish, new ones go to the baseline.
    if (auto s = repo_->UnloadVersion(model, cand); !s.ok()) {
      j["apply_error"] = s.status().message();
    }
  }
  if (metrics_) {
    metrics_->Increment(
        kDecisions,
        {{"model", model}, {"version", cand}, {"decision", CanaryDecisionName(v.decision)}});
    metrics_->Set(kActive, {{"model", model}, {"version", cand}}, 0);
  }
  if (log_) log_(Dump({{"event", "canary_decision"}, {"canary", j}}));
  last_decision_[model] = j;
  canaries_.erase(it);
  --active_;
}

RepositoryPoller::RepositoryPoller(ModelRepository *repo, double interval_s) {
  const auto interval = std::chrono::duration<double>(interval_s);
  thread_ = std::thread([this, repo, interval] {
    std::unique_lock lock(mu_);
    while (!cv_.wait_for(lock, interval, [this] { return stop_; })) {
      lock.unlock();
      repo->Rescan();
      lock.lock();
    }
  });
}

RepositoryPoller::~RepositoryPoller() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

bool AdminAuthorized(const std::string &header, const std::string &token) {
  const std::string expected = "Bearer " + token;
  // Compare every byte whatever the mismatch, so the time taken says nothing
  // about the token.
  unsigned diff = header.size() != expected.size();
  for (size_t i = 0; i < expected.size(); ++i) {
    diff |= static_cast<unsigned char>(expected[i]) ^
            static_cast<unsigned char>(i < header.size() ? header[i] : 0);
  }
  return !token.empty() && diff == 0;
}

namespace {

struct AdminReply {
  int status = 200;
  json body;
};

AdminReply Error(const Status &s) {
  return {HttpStatusFor(s.code()), {{"error", s.message()}, {"code", StatusCodeName(s.code())}}};
}

// The optional {"version": ...} of load / unload; "" when absent.
StatusOr<std::string> BodyVersion(const std::string &body) {
  if (body.empty()) return std::string();
  json j = json::parse(body, nullptr, false);
  if (j.is_discarded() || !j.is_object()) return InvalidArgument("body must be a JSON object");
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (it.key() != "version") return InvalidArgument("unknown key \"" + it.key() + "\"");
  }
  auto v = j.find("version");
  if (v == j.end()) return std::string();
  if (v->is_number_integer()) return std::to_string(v->get<int64_t>());
  if (!v->is_string()) return InvalidArgument("\"version\" must be a string");
  std::string s = v->get<std::string>();
  RETURN_IF_ERROR(ValidateRepositoryName(s, "version"));
  return s;
}

AdminReply LoadOrUnload(ServerState *s, const std::string &model, const std::string &body,
                        bool load) {
  if (Status st = ValidateRepositoryName(model, "model"); !st.ok()) return Error(st);
  auto version = BodyVersion(body);
  if (!version.ok()) return Error(version.status());
  auto done =
      load ? s->repo->LoadVersion(model, *version) : s->repo->UnloadVersion(model, *version);
  if (!done.ok()) return Error(done.status());
  return {200, {{"model", model}, {load ? "loaded" : "unloaded", *done}}};
}

}  // namespace

void RegisterAdminRoutes(ServerState *s, httplib::Server *http) {
  if (s->options.admin_token.empty()) return;
  using Fn = std::function<AdminReply(const httplib::Request &, const std::string &model)>;
  auto route = [s](std::string endpoint, Fn fn) {
    return [s, endpoint = std::move(endpoint), fn = std::move(fn)](const httplib::Request &req,
                                                                   httplib::Response &res) {
      const auto start = std::chrono::steady_clock::now();
      AdminReply r;
      if (!AdminAuthorized(req.get_header_value("Authorization"), s->options.admin_token)) {
        r = {401, {{"error", "admin API: missing or wrong bearer token"}}};
        res.set_header("WWW-Authenticate", "Bearer");
      } else {
        try {
          r = fn(req, req.matches.size() > 1 ? std::string(req.matches[1]) : std::string());
        } catch (const std::exception &e) {
          r = Error(Internal(std::string("unexpected exception: ") + e.what()));
        }
      }
      res.status = r.status;
      res.set_content(Dump(r.body), kJson);
      s->Record("", "", endpoint, "http", std::to_string(r.status), r.status >= 400,
                r.status == 401   ? "unauthorized"
                : r.status >= 400 ? "admin_error"
                                  : "",
                start);
    };
  };
  const std::string m = "/v2/repository/models/([^/]+)";
  http->Post(m + "/load", route("admin_load", [s](const auto &req, const std::string &model) {
               return LoadOrUnload(s, model, req.body, true);
             }));
  http->Post(m + "/unload", route("admin_unload", [s](const auto &req, const std::string &model) {
               return LoadOrUnload(s, model, req.body, false);
             }));
  http->Get("/v2/repository/index", route("admin_index", [s](const auto &, const std::string &) {
              json a = json::array();
              for (const auto &e : s->repo->Index()) {
                json x = {{"name", e.name},
                          {"version", e.version},
                          {"state", e.state},
                          {"default", e.is_default}};
                if (!e.reason.empty()) x["reason"] = e.reason;
                a.push_back(std::move(x));
              }
              return AdminReply{200, a};
            }));
  http->Post(m + "/canary", route("admin_canary", [s](const auto &req, const std::string &model) {
               if (Status st = ValidateRepositoryName(model, "model"); !st.ok()) return Error(st);
               auto config = ParseCanaryConfig(req.body);
               if (!config.ok()) return Error(config.status());
               auto started = s->canary->Start(model, *config);
               return started.ok() ? AdminReply{200, *started} : Error(started.status());
             }));
  http->Get(m + "/canary", route("admin_canary", [s](const auto &, const std::string &model) {
              if (Status st = ValidateRepositoryName(model, "model"); !st.ok()) return Error(st);
              auto state = s->canary->State(model);
              return state.ok() ? AdminReply{200, *state} : Error(state.status());
            }));
}

}  // namespace clickrt::server
