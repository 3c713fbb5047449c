// The feature schema (models/<name>/schema.json, written by python/clickrt_zoo) and the assembly
// of model input tensors from raw feature rows.
//
// Schema (schema_version 1): {"inputs": [{"name", "dtype", "shape": ["batch", n...], "fields":
// [{"name", "kind": "dense"|"categorical"|"sequence", "default", "encoding": "vocab"|"hash"|
// "identity", "size", "tokens", "length", "separator", "padding_id", ...}]}], "outputs": [...]}.
// One field fills one column of its input (a sequence field fills `length` columns).
//
// Encodings of a raw text value: dense -> float (transform applied here only when
// transform_in_model is false); vocab -> index of the token in `tokens` (+1; 0 = out of
// vocabulary / missing, as the trainer encodes it); hash -> stable hash mod size; identity ->
// the integer itself (out of [0, size) -> 0). A missing value takes the field's default and is
// counted in AssemblyStats::missing. An empty value counts as missing too. A sequence value is
// `separator`-joined raw values, most recent first: each is encoded like a categorical value,
// the list is cut to `length` and padded with `padding_id`. A field with `derive`
// ("hour_of_day", "weekday": Avazu) takes its value from the row's "hour" (YYMMDDHH) when the
// row does not hold the field itself.
//
// Assembly works on encoded rows: Encode turns a raw row into every field's encoded columns
// (ids or floats, as the input tensor holds them), whether the row holds the field, and what the
// encoding counted. A stored row's encoding is made once and kept on the row (Encoded), so a
// ranking request only copies columns: for each field, from the first of a candidate's layers
// that holds it. The result and the stats are exactly those of encoding every candidate's
// values afresh.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "base/tensor.h"
#include "clickrt/status.h"
#include "features/feature_store.h"

namespace clickrt::features {

struct AssemblyStats {
  int64_t rows = 0;
  int64_t missing = 0;       // field values absent from every source (default used)
  int64_t out_of_vocab = 0;  // present but not in the vocabulary / identity range
  int64_t invalid = 0;       // present but unreadable (a dense value that is not a number, an
                             // identity id that is not an integer): default / id 0 used
};

// A row encoded for one schema (opaque; made by Schema::Encode / Encoded, read by its Assemble).
class EncodedRow;
using EncodedRowPtr = std::shared_ptr<const EncodedRow>;

// The sources of a batch: row i of the batch is assembled from `depth` encoded rows, looked up
// front to back (the first one holding a field wins), e.g. {request context, item row, user
// row}; a null entry is a source that does not exist (a row missing from the store).
struct AssemblyLayers {
  size_t depth = 1;
  std::vector<const EncodedRow*> rows;  // row i's sources at [i * depth, (i + 1) * depth)
};

class Schema {
 public:
  // Parses and validates; errors name the file and the field.
  static StatusOr<std::shared_ptr<const Schema>> Load(const std::string& path);
  static StatusOr<std::shared_ptr<const Schema>> Parse(const std::string& json_text,
                                                       const std::string& source);

  // The model input names, in schema order.
  std::vector<std::string> input_names() const;
  // Every field name, inputs in schema order and fields in column order (what a feature row
  // may hold; a derived field's source, e.g. Avazu's "hour", is listed instead of it).
  std::vector<std::string> field_names() const;

  // Encodes a raw row (e.g. a request's context) for this schema.
  EncodedRowPtr Encode(const FeatureRow& row) const;
  // A stored row's encoding for this schema: made on first use and kept with the row, so every
  // later call returns it at the cost of two loads (never stale: a stored row never changes).
  // The result does not own it: use it while the row is held and this schema is alive. A row
  // keeps StoredRow::kEncodingSlots encodings; a slot whose schema is gone is reused. With every
  // slot held by other live schemas, the row is encoded afresh each call (the result owns it).
  EncodedRowPtr Encoded(const StoredRow& row) const;

  // Builds one batch: row i of every input tensor from the layered sources of row i (see
  // AssemblyLayers); every source must have been encoded by this schema. Counts into `stats`
  // (may be null) what the encodings of the winning values counted, once per batch row.
  // Result: input name -> tensor [rows, ...].
  StatusOr<std::map<std::string, Tensor>> Assemble(const AssemblyLayers& layers,
                                                   AssemblyStats* stats) const;

  struct Impl;
  ~Schema();

 private:
  explicit Schema(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clickrt::features
