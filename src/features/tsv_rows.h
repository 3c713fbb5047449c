// Raw feature rows from a tab-separated data file (the Criteo-style val.tsv of models/<name>/):
// one example per line, columns located by the schema's "column" entries.
//
// The layout comes from the same schema.json the Schema class reads: every field's "column"
// (0-based) and, if present, "label": {"column": c}. A line is split on '\t' (a trailing '\r' is
// dropped); an empty column is kept as an empty value, which Schema::Assemble counts as missing.
// A line with too few columns, or a label that is not a number, is an error naming the file and
// the line (1-based).
#pragma once

#include <cstdint>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "features/feature_store.h"

namespace clickrt::features {

struct TsvLayout {
  std::map<std::string, int> columns;  // field name -> column
  int label_column = -1;               // -1: the file has no label
};

// Reads the layout from schema.json. Errors name the file and the field without a "column".
StatusOr<TsvLayout> ReadTsvLayout(const std::string& schema_path);

// Streams rows of one file, in file order.
class TsvRowReader {
 public:
  static StatusOr<std::unique_ptr<TsvRowReader>> Open(const std::string& path, TsvLayout layout);

  // Appends up to `max_rows` rows to *rows (and, when the layout has a label column and `labels`
  // is non-null, their labels to *labels). Returns how many were read; 0 at the end of the file.
  // Blank lines are skipped.
  StatusOr<int64_t> Read(int64_t max_rows, std::vector<FeatureRow>* rows,
                         std::vector<float>* labels);
  // Back to the first line.
  Status Rewind();
  // The number of the last line read (1-based; 0 before the first).
  int64_t line() const { return line_; }
  const std::string& path() const { return path_; }

 private:
  TsvRowReader(std::string path, TsvLayout layout);

  std::string path_;
  TsvLayout layout_;
  int max_column_ = 0;
  std::ifstream in_;
  int64_t line_ = 0;
};

// Every row of a file (tests, small files). `labels` may be null.
StatusOr<std::vector<FeatureRow>> ReadTsvRows(const std::string& path, const TsvLayout& layout,
                                              std::vector<float>* labels = nullptr);

}  // namespace clickrt::features
