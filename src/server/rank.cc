#include "server/rank.h"

#include <algorithm>
#include <chrono>

#include "server/server_metrics.h"

namespace clickrt::server {
StatusOr<std::shared_ptr<const ModelVersion>> Ranker::Resolve(const RankRequest& req) const {
  std::string model = req.model;
  if (model.empty()) {
    ASSIGN_OR_RETURN(model, repo_->DefaultModel());
  }
  return repo_->Find(model, req.version);
}

StatusOr<RankResponse> Ranker::Rank(const RankRequest& req) const {
  ASSIGN_OR_RETURN(auto mv, Resolve(req));
  const int64_t n = static_cast<int64_t>(req.candidates.size());
  if (n == 0) return InvalidArgument("\"candidates\" is empty");
  if (n > mv->config.candidates_limit) {
    return InvalidArgument(std::to_string(n) + " candidates exceed the limit of " +
                           std::to_string(mv->config.candidates_limit) + " for model '" + mv->name +
                           "'");
  }
  for (const auto& [name, value] : req.context) {
    if (mv->sources ? !mv->sources->context.count(name) : !mv->schema_fields.count(name)) {
      return InvalidArgument("context." + name + " is not a " +
                             (mv->sources ? "context feature (features.json)" : "schema field") +
                             " of model '" + mv->name + "'");
    }
  }
  std::vector<std::string> keys;
  keys.reserve(n + 1);
  keys.push_back("user:" + req.user_id);
  for (const std::string& c : req.candidates) keys.push_back("item:" + c);
  const auto t0 = features::Clock::now();
  auto rows = store_->MultiGet(keys, t0 + std::chrono::milliseconds(mv->config.feature_timeout_ms));
  if (metrics_) {
    metrics_->Observe(metric::kFeatureFetch, {{"store", store_->kind()}},
                      std::chrono::duration<double>(features::Clock::now() - t0).count());
  }
  if (!rows.ok()) return rows.status().WithContext("feature store (" + store_->kind() + ")");
  if (static_cast<int64_t>(rows->size()) != n + 1) {
    return Internal("the feature store answered " + std::to_string(rows->size()) + " rows for " +
                    std::to_string(n + 1) + " keys");
  }
  RankResponse resp;
  resp.model = mv->name;
  resp.version = mv->version;
  resp.candidates = n;
  // Stored rows carry their encodings (made once per row and schema); only the request's
  // context is encoded here. Layers per candidate: {context, item, user}.
  const features::Schema& schema = *mv->schema;
  std::vector<features::EncodedRowPtr> encoded(n + 2);
  if (!req.context.empty()) encoded[0] = schema.Encode(req.context);
  for (int64_t i = 0; i <= n; ++i) {
    if ((*rows)[i]) encoded[i + 1] = schema.Encoded(*(*rows)[i]);
  }
  const features::EncodedRow* user = encoded[1].get();
  int64_t missing_user = user ? 0 : 1, missing_items = 0;
  features::AssemblyLayers layers;
  layers.depth = 3;
  layers.rows.resize(3 * n);
  for (int64_t i = 0; i < n; ++i) {
    const features::EncodedRow* item = encoded[i + 2].get();
    if (!item) ++missing_items;
    layers.rows[3 * i] = encoded[0].get();
    layers.rows[3 * i + 1] = item;
    layers.rows[3 * i + 2] = user;
  }
  resp.missing_rows = missing_user + missing_items;
  if (metrics_) {
    if (missing_user)
      metrics_->Increment(metric::kFeatureMisses, {{"model", mv->name}, {"kind", "user"}});
    if (missing_items) {
      metrics_->Increment(metric::kFeatureMisses, {{"model", mv->name}, {"kind", "item"}},
                          static_cast<double>(missing_items));
    }
  }
  features::AssemblyStats stats;
  ASSIGN_OR_RETURN(auto inputs, schema.Assemble(layers, &stats));
  resp.missing_features = stats.missing;
  if (metrics_ && stats.missing > 0) {
    metrics_->Increment(metric::kFeatureDefaults, {{"model", mv->name}},
                        static_cast<double>(stats.missing));
  }
  // Logged rows keep a reference to the inputs (tensors share their buffers: no copy).
  const std::vector<int64_t> logged = log_ ? log_->Sample(n) : std::vector<int64_t>();
  reference::TensorMap log_inputs;
  if (!logged.empty()) log_inputs = inputs;
  ASSIGN_OR_RETURN(auto outputs, mv->Infer(std::move(inputs)));
  auto it = outputs.find(mv->config.score_output);
  if (it == outputs.end())
    return Internal("the engine did not return '" + mv->config.score_output + "'");
  const Tensor& score = it->second;
  if (score.dtype() != DType::kFloat32 || score.rank() < 1 || score.dim(0) != n) {
    return Internal("score output '" + mv->config.score_output + "' is " + score.Describe() +
                    ", expected float32 [" + std::to_string(n) + ", ...]");
  }
  const int64_t width = n == 0 ? 0 : score.size() / n;
  std::vector<int64_t> order(n);
  for (int64_t i = 0; i < n; ++i) order[i] = i;
  auto ctr = [&](int64_t i) { return score.data<float>()[i * width]; };
  const int64_t k = req.k == 0 ? n : std::min(req.k, n);
  std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int64_t a, int64_t b) {
    if (ctr(a) != ctr(b)) return ctr(a) > ctr(b);
    return req.candidates[a] < req.candidates[b];
  });
  resp.results.reserve(k);
  for (int64_t i = 0; i < k; ++i) resp.results.push_back({req.candidates[order[i]], ctr(order[i])});
  if (!logged.empty()) {
    std::vector<float> ctrs;
    for (int64_t row : logged) ctrs.push_back(ctr(row));
    log_->Log(mv->name, mv->version, req.user_id, req.candidates, log_inputs, logged, ctrs);
  }
  if (metrics_) {
    metrics_->Increment(metric::kCandidates, {{"model", mv->name}, {"version", mv->version}},
                        static_cast<double>(n));
  }
  return resp;
}

}  // namespace clickrt::server
