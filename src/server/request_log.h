// A sampled log of what the model saw: the assembled inputs of ranking requests, one JSON line
// per logged candidate, for offline checks of training/serving skew and replay:
//   {"time": 1764076800.123, "model": "deepfm", "version": "2", "user_id": "7", "ad_id": "42",
//    "inputs": {"dense": [..13 values..], "sparse": [..26 ids..]}, "ctr": 0.031}
// (the row of every input tensor for that candidate; integers stay integers).
//
// Each candidate is logged with probability `rate` (a Bernoulli process across requests). Lines go
// to `<dir>/requests.log`; a file that would pass max_bytes / files is rotated to
// requests.log.1, .1 to .2, ...; the oldest (requests.log.<files-1>) is dropped, so the folder
// never holds more than about max_bytes. Writing happens on the log's own thread: the request
// path only copies the sampled rows into a bounded queue, and a full queue drops records (counted).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "reference/executor.h"

namespace clickrt::server {

struct RequestLogOptions {
  std::string dir;               // "" = no log
  double rate = 0.01;            // in [0, 1]
  int64_t max_bytes = 64 << 20;  // all files together
  int files = 4;                 // requests.log and requests.log.1 .. .<files-1>
  size_t max_queue = 8192;       // records waiting for the writer; more are dropped
  uint64_t seed = 0;             // 0 = from the clock
};

class RequestLog {
 public:
  // Creates `dir` if needed; InvalidArgument for a rate outside [0, 1] or sizes < 1.
  static StatusOr<std::unique_ptr<RequestLog>> Create(const RequestLogOptions& options);
  ~RequestLog();  // writes what is queued, then stops

  // The candidates (row indices in [0, n)) of one request to log.
  std::vector<int64_t> Sample(int64_t n);

  // Queues one record per row in `rows`: that row of every tensor of `inputs` (dim 0 = the
  // candidate), the candidate's ad id and ctrs[i] for rows[i]. Never waits for the disk.
  void Log(const std::string& model, const std::string& version, const std::string& user_id,
           const std::vector<std::string>& ad_ids, const reference::TensorMap& inputs,
           const std::vector<int64_t>& rows, const std::vector<float>& ctrs);

  // Waits until every record queued so far is written and flushed (tests, shutdown).
  void Flush();

  struct Stats {
    int64_t sampled = 0, written = 0, dropped = 0, rotations = 0;
  };
  Stats stats() const;
  const std::string& path() const;  // <dir>/requests.log

  struct Impl;

 private:
  explicit RequestLog(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clickrt::server
