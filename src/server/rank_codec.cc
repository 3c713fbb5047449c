// The JSON side of the ranking API (fuzzed with the other request decoders).
#include "server/rank_codec.h"

#include <nlohmann/json.hpp>

namespace clickrt::server {
namespace {

using nlohmann::json;

// An id or a feature value: strings as-is, numbers and booleans as their JSON text.
bool ScalarText(const json& v, std::string* out) {
  if (v.is_string()) {
    *out = v.get<std::string>();
    return true;
  }
  if (v.is_number() || v.is_boolean()) {
    *out = v.dump();
    return true;
  }
  return false;
}

}  // namespace

StatusOr<RankRequest> DecodeRankJson(std::string_view body) {
  json j = json::parse(body.begin(), body.end(), nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) return InvalidArgument("the request body is not valid JSON");
  if (!j.is_object()) return InvalidArgument("the request body must be a JSON object");
  RankRequest r;
  if (auto it = j.find("model"); it != j.end()) {
    if (!it->is_string()) return InvalidArgument("\"model\" must be a string");
    r.model = it->get<std::string>();
  }
  if (auto it = j.find("version"); it != j.end()) {
    if (!ScalarText(*it, &r.version) || it->is_boolean()) {
      return InvalidArgument("\"version\" must be a string or an integer");
    }
  }
  auto user = j.find("user_id");
  if (user == j.end() || user->is_boolean() || !ScalarText(*user, &r.user_id) ||
      r.user_id.empty()) {
    return InvalidArgument("\"user_id\" must be a non-empty string or a number");
  }
  if (auto it = j.find("context"); it != j.end()) {
    if (!it->is_object()) return InvalidArgument("\"context\" must be an object {feature: value}");
    for (auto f = it->begin(); f != it->end(); ++f) {
      std::string v;
      if (!ScalarText(f.value(), &v)) {
        return InvalidArgument("context." + f.key() + " must be a string or a number, got " +
                               std::string(f.value().type_name()));
      }
      r.context[f.key()] = std::move(v);
    }
  }
  auto cands = j.find("candidates");
  if (cands == j.end() || !cands->is_array()) {
    return InvalidArgument("\"candidates\" must be an array of ad ids");
  }
  if (cands->empty()) return InvalidArgument("\"candidates\" is empty");
  r.candidates.reserve(cands->size());
  for (size_t i = 0; i < cands->size(); ++i) {
    std::string id;
    if ((*cands)[i].is_boolean() || !ScalarText((*cands)[i], &id) || id.empty()) {
      return InvalidArgument("candidates[" + std::to_string(i) +
                             "] must be a non-empty string or a number");
    }
    r.candidates.push_back(std::move(id));
  }
  if (auto it = j.find("k"); it != j.end()) {
    if (!it->is_number_integer() || it->get<int64_t>() < 1) {
      return InvalidArgument("\"k\" must be a positive integer, got " + it->dump());
    }
    r.k = it->get<int64_t>();
  }
  return r;
}

std::string EncodeRankJson(const RankResponse& r) {
  json results = json::array();
  for (const RankResult& x : r.results) results.push_back({{"ad_id", x.ad_id}, {"ctr", x.ctr}});
  json j = {{"model", r.model},
            {"version", r.version},
            {"results", std::move(results)},
            {"missing_features", r.missing_features},
            {"missing_rows", r.missing_rows},
            {"candidates", r.candidates}};
  return j.dump(-1, ' ', false, json::error_handler_t::replace);
}

}  // namespace clickrt::server
