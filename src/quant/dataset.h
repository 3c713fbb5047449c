// Calibration and evaluation data: batches of model inputs and, where the source has them, labels
// (click = 1, no click = 0). `clickrt calibrate` and `clickrt eval` read their --data through it.
//
// Sources (DatasetOptions::path; the kind is detected from the path unless `format` names it):
//
//  "tensors"      a folder of ONNX TensorProto files, one per model input, `<input>.pb` (or ONNX
//                 test-data style `input_<i>.pb`), each holding every row [N, ...] — e.g.
//                 models/<name>/val_inputs. Labels (N floats, any shape): the `labels` option, else
//                 `<dir>/labels.pb`, else, for a folder named `<prefix>_inputs`, the sibling file
//                 `<prefix>_labels.pb` (val_inputs -> ../val_labels.pb); none if neither exists.
//  "tsv"          a Criteo-style tab-separated file (`*.tsv`, e.g. models/<name>/val.tsv): one
//                 example per line, columns named by the schema's "column" entries and the label
//                 by its "label" column (features/tsv_rows.h); assembled into tensors by
//                 features::Schema exactly as the server assembles requests. Schema: the `schema`
//                 option, else `<tsv dir>/schema.json`.
//  "request_log"  the server's sampled request log (server/request_log.h): `requests.log` (read
//                 with its rotated siblings requests.log.<k>, oldest first, so records come in
//                 time order), a folder holding requests.log, or one `*.jsonl` /
//                 `requests.log.<k>` file. One JSON object per line: "inputs" {input name: that
//                 row's values, flattened}, "time" (unix seconds), optional "label" (a number 0/1
//                 or a bool). With hours > 0 only records with time >= now - hours * 3600 are kept
//                 (a record without a numeric "time" is then an error). `edge_cases`: a file of
//                 hand-picked rows appended after the log's records, never cut by time: JSON
//                 lines of the same form, or a `*.tsv` (read as above with the schema) — e.g. new
//                 ads the recent traffic misses.
//
// Every input is checked against the model's (name, dtype, the non-batch dims); a malformed file is
// an error naming the file and, for line-based files, the line (1-based). Batches hold
// `batch_size` rows, the last one may be smaller; `max_rows` > 0 stops after that many rows. Rows
// flow across source boundaries (a batch may hold the log's last rows and the edge cases' first).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "ir/graph.h"
#include "reference/executor.h"
#include "runtime/inference_engine.h"

namespace clickrt::quant {

struct DatasetOptions {
  std::string path;
  std::string format = "auto";  // "auto" | "tensors" | "tsv" | "request_log"
  std::string schema;           // tsv (and a tsv edge-case file): schema.json
  std::string labels;           // tensors: the labels file ("" = found as described above)
  int64_t batch_size = 256;
  int64_t max_rows = 0;  // 0 = every row
  // request_log: keep the records of the last `hours` (0 = all); `now_unix` is "now" for that cut
  // (0 = the system clock; tests pass a fixed time).
  double hours = 0;
  double now_unix = 0;
  std::string edge_cases;  // request_log: JSONL or TSV appended ("" = none)
  // Every row must carry a label (evaluation): a row without one is an error naming it.
  bool require_labels = false;
  // Called after each batch with the rows returned since Open / Reset. May be empty.
  std::function<void(int64_t rows)> progress;
};

// One batch. labels: empty when the source has no labels; else one per row (NaN for a request-log
// record without "label" when labels are not required).
struct Batch {
  reference::TensorMap inputs;  // input name -> [rows, ...]
  std::vector<float> labels;
  int64_t rows = 0;
};

// The model inputs a dataset must produce. dims[0] is the batch (any value); another dim < 0 is
// unknown (not checked; a request log cannot be read for such an input).
std::vector<runtime::IoSpec> InputSpecs(const ir::Graph& graph);

class Dataset {
 public:
  // Opens the source and checks what can be checked up front (files exist, schema inputs match
  // `inputs`, tensor files' dtypes and shapes). Errors name the path.
  static StatusOr<std::unique_ptr<Dataset>> Open(const DatasetOptions& options,
                                                 std::vector<runtime::IoSpec> inputs);
  ~Dataset();

  // Fills *batch with the next rows; false (and batch->rows == 0) at the end.
  StatusOr<bool> Next(Batch* batch);
  // Back to the first row.
  Status Reset();

  const std::string& kind() const;  // "tensors" | "tsv" | "request_log"
  // Whether rows can carry labels (tensors: a labels file was found; tsv: the schema names a label
  // column; request_log: always, per record).
  bool has_labels() const;
  // "models/deepfm/val.tsv (tsv, schema models/deepfm/schema.json)": for messages and the cache.
  std::string Describe() const;
  int64_t rows_read() const;  // since Open / Reset
  const DatasetOptions& options() const;
  const std::vector<runtime::IoSpec>& inputs() const;

  struct Impl;

 private:
  explicit Dataset(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// What a full read of a dataset gives: its row count and a fingerprint of the inputs.
struct DataSummary {
  int64_t rows = 0;
  int64_t labelled = 0;  // rows with a (non-NaN) label
  // SHA-256 (hex) of the inputs in row order: for each input, in InputSpecs order, its name,
  // dtype and non-batch dims, and the SHA-256 of all its rows' bytes. Independent of the batch
  // size.
  std::string inputs_sha256;
};

// Reads `data` from the start to the end, then Reset()s it.
StatusOr<DataSummary> ScanDataset(Dataset& data);

}  // namespace clickrt::quant
