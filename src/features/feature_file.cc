// The feature file reader (format in feature_store.h): tab-separated rows or JSON Lines.
#include <fstream>
#include <nlohmann/json.hpp>

#include "features/feature_store.h"

namespace clickrt::features {
namespace {

using nlohmann::json;

Status LineError(const std::string& path, int64_t line_no, const std::string& why) {
  return InvalidArgument(path + ": line " + std::to_string(line_no) + ": " + why);
}

Status ParseTsvLine(const std::string& line, const std::string& path, int64_t line_no,
                    std::pair<std::string, FeatureRow>* out) {
  size_t tab = line.find('\t');
  if (tab == std::string::npos) {
    return LineError(path, line_no, "expected <key>\\t<name>=<value>..., found no tab");
  }
  out->first = line.substr(0, tab);
  if (out->first.empty()) return LineError(path, line_no, "empty key");
  size_t pos = tab + 1;
  while (pos <= line.size()) {
    size_t end = line.find('\t', pos);
    if (end == std::string::npos) end = line.size();
    std::string_view item(line.data() + pos, end - pos);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos || eq == 0) {
      return LineError(path, line_no,
                       "column " + std::to_string(out->second.size() + 2) +
                           " is not <name>=<value>: '" + std::string(item) + "'");
    }
    std::string name(item.substr(0, eq));
    if (!out->second.emplace(name, std::string(item.substr(eq + 1))).second) {
      return LineError(path, line_no, "feature '" + name + "' given twice");
    }
    pos = end + 1;
  }
  return Status::Ok();
}

Status ParseJsonLine(const std::string& line, const std::string& path, int64_t line_no,
                     std::pair<std::string, FeatureRow>* out) {
  json doc = json::parse(line, nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object()) {
    return LineError(path, line_no, "not a JSON object");
  }
  auto key = doc.find("key");
  auto features = doc.find("features");
  if (key == doc.end() || !key->is_string() || key->get<std::string>().empty()) {
    return LineError(path, line_no, "\"key\" must be a non-empty string");
  }
  if (features == doc.end() || !features->is_object()) {
    return LineError(path, line_no, "\"features\" must be an object");
  }
  out->first = key->get<std::string>();
  for (const auto& [name, value] : features->items()) {
    // Numbers are accepted for convenience and kept as their JSON text ("12", "0.5").
    if (value.is_string()) {
      out->second[name] = value.get<std::string>();
    } else if (value.is_number()) {
      out->second[name] = value.dump();
    } else if (value.is_null()) {
      out->second[name] = "";
    } else {
      return LineError(path, line_no, "feature '" + name + "' must be a string or a number");
    }
  }
  return Status::Ok();
}

}  // namespace

Status ReadFeatureFile(const std::string& path, size_t batch_rows,
                       const std::function<Status(FeatureBatch&)>& sink) {
  std::ifstream in(path);
  if (!in) return NotFound("cannot open feature file " + path);
  if (batch_rows == 0) batch_rows = 1;
  FeatureBatch batch;
  std::string line;
  int64_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || line[0] == '#') continue;
    std::pair<std::string, FeatureRow> row;
    if (line[0] == '{') {
      RETURN_IF_ERROR(ParseJsonLine(line, path, line_no, &row));
    } else {
      RETURN_IF_ERROR(ParseTsvLine(line, path, line_no, &row));
    }
    batch.push_back(std::move(row));
    if (batch.size() >= batch_rows) {
      RETURN_IF_ERROR(sink(batch));
      batch.clear();
    }
  }
  if (in.bad()) return DataLoss("read error in feature file " + path);
  if (!batch.empty()) RETURN_IF_ERROR(sink(batch));
  return Status::Ok();
}

Status LoadFeatureFile(const std::string& path, FeatureStore* store,
                       Clock::duration per_batch_timeout) {
  return ReadFeatureFile(path, 1000, [&](FeatureBatch& batch) {
    return store->MultiPut(batch, Clock::now() + per_batch_timeout).WithContext(path);
  });
}

}  // namespace clickrt::features
