#include "server/canary_routing.h"

#include <random>

#include "server/server_state.h"

namespace clickrt::server {

void RouteCanary(ServerState* s, std::string_view key, std::shared_ptr<const ModelVersion>* mv) {
  const std::string candidate = s->canary->Route((*mv)->name, key);
  if (candidate.empty()) return;
  if (auto c = s->repo->Find((*mv)->name, candidate); c.ok()) *mv = std::move(c).value();
}

void RouteRankCanary(ServerState* s, RankRequest* request,
                     std::shared_ptr<const ModelVersion>* mv) {
  const std::string before = (*mv)->version;
  RouteCanary(s, request->user_id, mv);
  if ((*mv)->version != before) request->version = (*mv)->version;
}

void ObserveCanary(ServerState* s, const std::string& model, const std::string& version,
                   bool failed, std::chrono::steady_clock::time_point start,
                   const std::vector<float>& ctrs) {
  const double latency_s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  s->canary->Observe(model, version, failed, latency_s, ctrs.data(), ctrs.size());
}

std::string InferRoutingKey(const std::string& request_id) {
  if (!request_id.empty()) return request_id;
  thread_local std::mt19937_64 rng{std::random_device{}()};
  return std::to_string(rng());
}

std::vector<float> InferCtrs(const ModelVersion& m, const std::map<std::string, Tensor>& outputs) {
  std::vector<float> ctrs;
  auto score = outputs.find(m.config.score_output);
  if (score == outputs.end() || score->second.dtype() != DType::kFloat32 ||
      score->second.rank() < 1 || score->second.dim(0) <= 0) {
    return ctrs;
  }
  const int64_t rows = score->second.dim(0), width = score->second.size() / rows;
  ctrs.reserve(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) ctrs.push_back(score->second.data<float>()[r * width]);
  return ctrs;
}

}  // namespace clickrt::server
