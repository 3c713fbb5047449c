// Ranking: a user, a request context and candidate ads in; the top k ads by predicted CTR out.
//
//   fetch `user:<id>` and every `item:<ad>` in one MultiGet (deadline: feature_timeout_ms)
//   -> each row's encoding (Schema::Encoded: made once per stored row and schema, kept with the
//      row; only the request's context is encoded per request)
//   -> Schema::Assemble with layers {request context, item row, user row} per candidate
//   -> ModelVersion::Infer (the dynamic batcher; split at max_batch)
//   -> top k by the score output's first column, ties broken by ad id.
// A row missing from the store is not an error: it is counted, and the schema's defaults fill in.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "clickrt/status.h"
#include "features/feature_store.h"
#include "server/model_repository.h"
#include "server/rank_codec.h"
#include "server/request_log.h"

namespace clickrt::server {

class Ranker {
 public:
  // Neither pointer is owned; both outlive the ranker. `metrics` may be null.
  Ranker(const ModelRepository* repository, features::FeatureStore* store, Metrics* metrics)
      : repo_(repository), store_(store), metrics_(metrics) {}
  // Samples the assembled inputs of scored candidates into `log` (not owned; null = off).
  void set_request_log(RequestLog* log) { log_ = log; }

  // InvalidArgument for an empty or oversized candidate list, a bad k or (with features.json) a
  // context field that is not a context feature; NotFound for an unknown model / version;
  // DeadlineExceeded when the store does not answer in time; ResourceExhausted when the queue
  // is full.
  StatusOr<RankResponse> Rank(const RankRequest& request) const;

  // The model version a request resolves to (for labelling metrics of failed requests too).
  StatusOr<std::shared_ptr<const ModelVersion>> Resolve(const RankRequest& request) const;

 private:
  const ModelRepository* repo_;
  features::FeatureStore* store_;
  Metrics* metrics_;
  RequestLog* log_ = nullptr;
};

}  // namespace clickrt::server
