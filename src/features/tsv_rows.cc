#include "features/tsv_rows.h"

#include <charconv>
#include <cmath>
#include <nlohmann/json.hpp>
#include <sstream>

namespace clickrt::features {
using nlohmann::json;

StatusOr<TsvLayout> ReadTsvLayout(const std::string& schema_path) {
  std::ifstream in(schema_path, std::ios::binary);
  if (!in) return NotFound("cannot open schema " + schema_path);
  std::stringstream text;
  text << in.rdbuf();
  json doc = json::parse(text.str(), nullptr, /*allow_exceptions=*/false);
  if (doc.is_discarded() || !doc.is_object() || !doc.contains("inputs") ||
      !doc["inputs"].is_array()) {
    return InvalidArgument(schema_path + ": not a schema (a JSON object with \"inputs\")");
  }
  TsvLayout layout;
  for (const json& input : doc["inputs"]) {
    if (!input.is_object() || !input.contains("fields") || !input["fields"].is_array()) {
      return InvalidArgument(schema_path + ": an input without \"fields\"");
    }
    for (const json& f : input["fields"]) {
      const std::string name = f.is_object() && f.contains("name") && f["name"].is_string()
                                   ? f["name"].get<std::string>()
                                   : std::string();
      if (name.empty()) return InvalidArgument(schema_path + ": a field without a name");
      if (!f.contains("column") || !f["column"].is_number_integer() || f["column"].get<int>() < 0) {
        return InvalidArgument(schema_path + ": field '" + name +
                               "' has no \"column\" (a data-file column index >= 0)");
      }
      layout.columns[name] = f["column"].get<int>();
    }
  }
  if (doc.contains("label")) {
    const json& l = doc["label"];
    if (!l.is_object() || !l.contains("column") || !l["column"].is_number_integer() ||
        l["column"].get<int>() < 0) {
      return InvalidArgument(schema_path + ": \"label\" needs a \"column\" >= 0");
    }
    layout.label_column = l["column"].get<int>();
  }
  return layout;
}

TsvRowReader::TsvRowReader(std::string path, TsvLayout layout)
    : path_(std::move(path)), layout_(std::move(layout)) {
  max_column_ = layout_.label_column;
  for (const auto& [name, col] : layout_.columns) max_column_ = std::max(max_column_, col);
}

StatusOr<std::unique_ptr<TsvRowReader>> TsvRowReader::Open(const std::string& path,
                                                           TsvLayout layout) {
  std::unique_ptr<TsvRowReader> r(new TsvRowReader(path, std::move(layout)));
  r->in_.open(path, std::ios::binary);
  if (!r->in_) return NotFound("cannot open data file '" + path + "'");
  return r;
}

Status TsvRowReader::Rewind() {
  in_.clear();
  in_.seekg(0);
  line_ = 0;
  if (!in_) return DataLoss("cannot rewind data file '" + path_ + "'");
  return Status::Ok();
}

StatusOr<int64_t> TsvRowReader::Read(int64_t max_rows, std::vector<FeatureRow>* rows,
                                     std::vector<float>* labels) {
  int64_t n = 0;
  std::string text;
  std::vector<std::string_view> parts;
  while (n < max_rows && std::getline(in_, text)) {
    ++line_;
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.empty()) continue;
    parts.clear();
    std::string_view line(text);
    size_t start = 0;
    for (size_t tab; (tab = line.find('\t', start)) != std::string_view::npos; start = tab + 1) {
      parts.push_back(line.substr(start, tab - start));
    }
    parts.push_back(line.substr(start));
    const std::string where = path_ + ":" + std::to_string(line_);
    if (static_cast<int>(parts.size()) <= max_column_) {
      return InvalidArgument(where + ": " + std::to_string(parts.size()) +
                             " tab-separated columns, the schema reads column " +
                             std::to_string(max_column_));
    }
    FeatureRow row;
    for (const auto& [name, col] : layout_.columns) row[name] = std::string(parts[col]);
    if (layout_.label_column >= 0 && labels != nullptr) {
      std::string_view l = parts[layout_.label_column];
      float v = 0;
      auto [end, ec] = std::from_chars(l.data(), l.data() + l.size(), v);
      if (ec != std::errc() || end != l.data() + l.size() || !std::isfinite(v)) {
        return InvalidArgument(where + ": label (column " + std::to_string(layout_.label_column) +
                               ") is '" + std::string(l) + "', not a number");
      }
      labels->push_back(v);
    }
    rows->push_back(std::move(row));
    ++n;
  }
  if (in_.bad())
    return DataLoss("read error in '" + path_ + "' after line " + std::to_string(line_));
  return n;
}

StatusOr<std::vector<FeatureRow>> ReadTsvRows(const std::string& path, const TsvLayout& layout,
                                              std::vector<float>* labels) {
  ASSIGN_OR_RETURN(auto reader, TsvRowReader::Open(path, layout));
  std::vector<FeatureRow> rows;
  while (true) {
    ASSIGN_OR_RETURN(int64_t n, reader->Read(4096, &rows, labels));
    if (n == 0) break;
  }
  return rows;
}

}  // namespace clickrt::features
