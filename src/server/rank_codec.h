// The ranking API's request and answer, and their JSON form (POST /v1/rank).
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "clickrt/status.h"
#include "features/feature_store.h"

namespace clickrt::server {

struct RankRequest {
  std::string model, version;  // "" = the only model / its highest version
  std::string user_id;
  features::FeatureRow context;
  std::vector<std::string> candidates;
  int64_t k = 0;  // 0 = every candidate
};

struct RankResult {
  std::string ad_id;
  float ctr = 0;
};

struct RankResponse {
  std::string model, version;
  std::vector<RankResult> results;
  int64_t missing_features = 0;  // field values absent from every source
  int64_t missing_rows = 0;      // user / item rows not in the store
  int64_t candidates = 0;
};

// The JSON body of POST /v1/rank: {"model"?, "version"?, "user_id", "context"?: {name: value},
// "candidates": [ad ids], "k"?}. Context values and ids may be strings or numbers (kept as
// their text). Errors name the field.
StatusOr<RankRequest> DecodeRankJson(std::string_view body);
std::string EncodeRankJson(const RankResponse& response);

}  // namespace clickrt::server
