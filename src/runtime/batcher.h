// The dynamic batcher: merges requests from many callers into one engine call and splits the
// results back (Triton's dynamic batching, for CTR rows).
//
// A request is `rows` rows of every engine input (the first dimension of each tensor). The
// batcher keeps a queue ordered by priority (lower value first), then arrival. A batch takes
// whole requests from the front of the queue while they fit in max_batch and match the first
// one's inputs (names, dtypes, dims after the first). It runs when any of these holds:
//   - it is full: max_batch rows, or the next queued request does not fit beside it (a request
//     never splits: it goes whole into one batch; a request larger than max_batch is refused
//     with InvalidArgument naming both sizes);
//   - its rows equal a preferred batch size (counting everything queued at that moment);
//   - the oldest request has waited max_queue_delay.
// A request that waits past its own timeout is answered DeadlineExceeded without running; one
// that would take the queue past max_queue_size rows is refused ResourceExhausted at once.
// `workers` batches run in parallel (one per engine execution context). Each caller's outputs
// are views of its rows of the batch's outputs (no copy).
//
// Time comes from an injectable clock so the timing rules are tested without sleeping.
#pragma once

#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "base/tensor.h"
#include "clickrt/status.h"
#include "reference/executor.h"

namespace clickrt::runtime {

class BatcherClock {
 public:
  using time_point = std::chrono::steady_clock::time_point;
  virtual ~BatcherClock() = default;
  virtual time_point Now() = 0;
  // Waits on `cv` (with `lock` held) until notified or `until` (by this clock) has come.
  virtual void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                         time_point until) = 0;
};
std::shared_ptr<BatcherClock> SystemClock();

struct BatcherOptions {
  int64_t max_batch = 512;
  std::vector<int64_t> preferred_batch_sizes;  // increasing, each <= max_batch; may be empty
  std::chrono::microseconds max_queue_delay{200};
  int64_t max_queue_size = 16384;  // rows; at least max_batch
  std::chrono::microseconds default_timeout{1'000'000};
  int workers = 1;
};

// What one batch looked like (for metrics): rows, requests merged, time in queue of the oldest.
struct BatchInfo {
  int64_t rows = 0, requests = 0;
  std::chrono::microseconds oldest_wait{0};
};

struct BatchRequest {
  reference::TensorMap inputs;           // every tensor's dim 0 = rows
  int priority = 0;                      // lower runs first
  std::chrono::microseconds timeout{0};  // 0 = options.default_timeout
};

class DynamicBatcher {
 public:
  using RunFn = std::function<StatusOr<reference::TensorMap>(const reference::TensorMap&)>;
  using BatchObserver = std::function<void(const BatchInfo&)>;

  static StatusOr<std::unique_ptr<DynamicBatcher>> Create(
      const BatcherOptions& options, RunFn run, std::shared_ptr<BatcherClock> clock = SystemClock(),
      BatchObserver observer = nullptr);
  ~DynamicBatcher();  // answers every queued request Unavailable, joins the workers

  // Enqueues; the future yields this request's rows of every output.
  std::future<StatusOr<reference::TensorMap>> Submit(BatchRequest request);

  int64_t queued_rows() const;
  // Wakes the scheduler (tests advance a manual clock, then call this).
  void Poke();

  struct Impl;

 private:
  explicit DynamicBatcher(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace clickrt::runtime
