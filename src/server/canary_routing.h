// How a front end (HTTP or gRPC) takes part in a model's canary (server/admin.h CanaryController).
//
// Only a request that names no version takes part: it is routed with RouteCanary (sticky by its
// key: the ranking request's user_id, an infer request's id) and, once answered, its outcome is
// fed back with ObserveCanary for the comparison of the two arms. A request that names a version
// is answered by that version, never rerouted and never observed. Both front ends call these
// same functions, so a user lands on the same arm over either protocol.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "server/model_repository.h"
#include "server/rank_codec.h"

namespace clickrt::server {

struct ServerState;

// Replaces `*mv` (the version a request without a version resolved to) with the candidate of its
// model's running canary when `key` routes there; leaves it unchanged otherwise (no canary, the
// baseline arm, or a candidate no longer loaded).
void RouteCanary(ServerState* s, std::string_view key, std::shared_ptr<const ModelVersion>* mv);

// RouteCanary for a ranking request (keyed by its user_id, so a user sees one version for the
// whole canary window). When it goes to the candidate, the candidate is named in `request`; the
// baseline is not named (naming the default would fail if it were unloaded meanwhile).
void RouteRankCanary(ServerState* s, RankRequest* request, std::shared_ptr<const ModelVersion>* mv);

// Feeds the model's canary, if one runs, with one answered request that named no version:
// `version` served it, `start` is when it arrived, `ctrs` its predicted CTRs (none on failure).
void ObserveCanary(ServerState* s, const std::string& model, const std::string& version,
                   bool failed, std::chrono::steady_clock::time_point start,
                   const std::vector<float>& ctrs);

// The routing key of an infer request: its id, or a random key when it has none (such requests
// cannot be sticky, but still split by the share).
std::string InferRoutingKey(const std::string& request_id);

// The CTRs of an infer answer for the canary: the first column of `m`'s score output per row;
// empty when that output is missing, not FP32 or has no rows.
std::vector<float> InferCtrs(const ModelVersion& m, const std::map<std::string, Tensor>& outputs);

}  // namespace clickrt::server
