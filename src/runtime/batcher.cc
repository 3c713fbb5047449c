// The dynamic batcher. Workers share one queue (a FIFO per priority level) under one mutex; the
// worker that finds a batch ready takes it, wakes another idle one if requests are left (they
// may be the next batch) and runs it without the lock.
//
// Wake-ups are kept to the ones that change something, since each costs a context switch on
// the cores the engine runs on: of the idle workers, at most one (the timer) waits for the time
// the queued batch is due; the others sleep until woken. A request wakes an idle worker only
// when no worker times the queue yet, when it makes the batch ready, or when its own timeout
// comes before the timer's wake-up. A busy worker looks at the queue again when its batch is
// done, so while every worker is busy no request wakes anyone.
#include "runtime/batcher.h"

#include <algorithm>
#include <cstring>
#include <deque>
#include <thread>

namespace clickrt::runtime {
namespace {

using TimePoint = BatcherClock::time_point;
using reference::TensorMap;

class SteadyClock final : public BatcherClock {
 public:
  time_point Now() override { return std::chrono::steady_clock::now(); }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 time_point until) override {
    if (until == time_point::max()) {
      cv.wait(lock);  // wait_until(max) overflows converting to the futex clock
    } else {
      cv.wait_until(lock, until);
    }
  }
};

Status Code(StatusCode code, std::string message) { return Status(code, std::move(message)); }

int64_t Micros(std::chrono::steady_clock::duration d) {
  return std::chrono::duration_cast<std::chrono::microseconds>(d).count();
}

struct Pending {
  BatchRequest request;
  int64_t rows = 0;
  TimePoint arrival, deadline;
  std::promise<StatusOr<TensorMap>> promise;
};
using PendingList = std::vector<std::unique_ptr<Pending>>;

// Requests merge only when every input matches in name, dtype and all dims but the first.
bool SameSignature(const TensorMap& a, const TensorMap& b) {
  if (a.size() != b.size()) return false;
  for (auto ia = a.begin(), ib = b.begin(); ia != a.end(); ++ia, ++ib) {
    if (ia->first != ib->first || ia->second.dtype() != ib->second.dtype() ||
        ia->second.rank() != ib->second.rank()) {
      return false;
    }
    for (int d = 1; d < ia->second.rank(); ++d) {
      if (ia->second.dim(d) != ib->second.dim(d)) return false;
    }
  }
  return true;
}

StatusOr<TensorMap> Concatenate(const PendingList& batch, int64_t rows) {
  if (batch.size() == 1) return batch[0]->request.inputs;
  TensorMap merged;
  for (const auto& [name, first] : batch[0]->request.inputs) {
    Dims dims = first.dims();
    dims[0] = rows;
    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(first.dtype(), dims));
    char* dst = static_cast<char*>(t.raw());
    for (const auto& p : batch) {
      const Tensor& part = p->request.inputs.at(name);
      std::memcpy(dst, part.raw(), part.nbytes());
      dst += part.nbytes();
    }
    merged.emplace(name, std::move(t));
  }
  return merged;
}

}  // namespace

std::shared_ptr<BatcherClock> SystemClock() {
  static const std::shared_ptr<BatcherClock> clock = std::make_shared<SteadyClock>();
  return clock;
}

struct DynamicBatcher::Impl {
  BatcherOptions options;
  RunFn run;
  std::shared_ptr<BatcherClock> clock;
  BatchObserver observer;

  mutable std::mutex mutex;
  std::condition_variable cv;
  std::map<int, std::deque<std::unique_ptr<Pending>>> queue;  // priority -> arrival order
  int64_t queued_rows = 0;
  bool stopping = false;
  std::vector<std::thread> workers;
  int idle = 0;            // workers waiting on `cv`
  bool timer_set = false;  // an idle worker waits for `timer_at`
  TimePoint timer_at = TimePoint::max();

  void WorkerLoop();
  // Moves requests past their deadline to `expired`; returns the earliest remaining deadline.
  TimePoint ExpireLocked(TimePoint now, PendingList* expired);
  // The batch the queue would give now: its first `count` requests (in priority then arrival
  // order), whether it is due, else when it will be.
  struct Plan {
    size_t count = 0;
    bool due = false;
    TimePoint wake = TimePoint::max();
  };
  Plan PlanLocked(TimePoint now) const;
  // The batch to run now, or nothing and `*wake` = when to look again.
  PendingList TakeBatchLocked(TimePoint now, TimePoint* wake);
  void RunBatch(PendingList batch, TimePoint now);
};

TimePoint DynamicBatcher::Impl::ExpireLocked(TimePoint now, PendingList* expired) {
  TimePoint earliest = TimePoint::max();
  for (auto level = queue.begin(); level != queue.end();) {
    auto& fifo = level->second;
    for (auto it = fifo.begin(); it != fifo.end();) {
      if ((*it)->deadline <= now) {
        queued_rows -= (*it)->rows;
        expired->push_back(std::move(*it));
        it = fifo.erase(it);
      } else {
        earliest = std::min(earliest, (*it)->deadline);
        ++it;
      }
    }
    level = fifo.empty() ? queue.erase(level) : std::next(level);
  }
  return earliest;
}

DynamicBatcher::Impl::Plan DynamicBatcher::Impl::PlanLocked(TimePoint now) const {
  // The candidate: requests in priority then arrival order, whole, while they fit and match the
  // first one's signature.
  Plan plan;
  int64_t rows = 0;
  bool blocked = false;  // a queued request was left out: waiting cannot make this batch larger
  TimePoint oldest = TimePoint::max();
  const TensorMap* signature = nullptr;
  for (const auto& [priority, fifo] : queue) {
    oldest = std::min(oldest, fifo.front()->arrival);
    for (const auto& p : fifo) {
      if (blocked) break;
      if (signature == nullptr) signature = &p->request.inputs;
      if (rows + p->rows > options.max_batch || !SameSignature(*signature, p->request.inputs)) {
        blocked = true;
        break;
      }
      rows += p->rows;
      ++plan.count;
    }
  }
  const auto& preferred = options.preferred_batch_sizes;
  bool full = blocked || rows == options.max_batch;
  bool at_preferred = std::find(preferred.begin(), preferred.end(), rows) != preferred.end();
  bool waited_enough = now >= oldest + options.max_queue_delay;
  plan.due = full || at_preferred || waited_enough;
  if (!plan.due) plan.wake = oldest + options.max_queue_delay;
  return plan;
}

PendingList DynamicBatcher::Impl::TakeBatchLocked(TimePoint now, TimePoint* wake) {
  const Plan plan = PlanLocked(now);
  PendingList batch;
  if (!plan.due) {
    *wake = plan.wake;
    return batch;
  }
  for (auto level = queue.begin(); level != queue.end() && batch.size() < plan.count;) {
    auto& fifo = level->second;
    while (!fifo.empty() && batch.size() < plan.count) {
      queued_rows -= fifo.front()->rows;
      batch.push_back(std::move(fifo.front()));
      fifo.pop_front();
    }
    level = fifo.empty() ? queue.erase(level) : std::next(level);
  }
  return batch;
}

void DynamicBatcher::Impl::RunBatch(PendingList batch, TimePoint now) {
  BatchInfo info;
  info.requests = static_cast<int64_t>(batch.size());
  TimePoint oldest = TimePoint::max();
  for (const auto& p : batch) {
    info.rows += p->rows;
    oldest = std::min(oldest, p->arrival);
  }
  info.oldest_wait = std::chrono::duration_cast<std::chrono::microseconds>(now - oldest);
  if (observer) observer(info);

  auto fail_all = [&](const Status& status) {
    for (auto& p : batch) p->promise.set_value(status);
  };
  auto merged = Concatenate(batch, info.rows);
  if (!merged.ok()) return fail_all(merged.status());
  StatusOr<TensorMap> result = Internal("batcher: the run function returned nothing");
  try {
    result = run(merged.value());
  } catch (const std::exception& e) {
    result = Internal(std::string("batcher: the run function threw: ") + e.what());
  } catch (...) {
    result = Internal("batcher: the run function threw");
  }
  if (!result.ok()) return fail_all(result.status());
  TensorMap& outputs = result.value();
  for (const auto& [name, t] : outputs) {
    if (t.rank() < 1 || t.dim(0) != info.rows) {
      return fail_all(Internal("batcher: output '" + name + "' is " + t.Describe() + ", expected " +
                               std::to_string(info.rows) + " rows"));
    }
  }
  if (batch.size() == 1) return batch[0]->promise.set_value(std::move(outputs));
  // Each caller gets views of its rows; the views keep the whole output alive.
  int64_t first_row = 0;
  for (auto& p : batch) {
    TensorMap mine;
    for (auto& [name, t] : outputs) {
      Dims dims = t.dims();
      const size_t row_bytes = t.nbytes() / static_cast<size_t>(info.rows);
      dims[0] = p->rows;
      void* data = static_cast<char*>(t.raw()) + row_bytes * first_row;
      mine.emplace(name, Tensor::View(t.dtype(), dims, data, std::make_shared<Tensor>(t)));
    }
    first_row += p->rows;
    p->promise.set_value(std::move(mine));
  }
}

void DynamicBatcher::Impl::WorkerLoop() {
  std::unique_lock lock(mutex);
  // Waits on `cv` until `until`; as the timer when `timed` (see the top of this file).
  auto wait = [&](TimePoint until, bool timed) {
    if (timed) {
      timer_set = true;
      timer_at = until;
    }
    ++idle;
    clock->WaitUntil(cv, lock, timed ? until : TimePoint::max());
    --idle;
    if (timed && timer_at == until) {
      timer_set = false;
      timer_at = TimePoint::max();
    }
  };
  while (!stopping) {
    TimePoint now = clock->Now();
    PendingList expired;
    TimePoint earliest_deadline = ExpireLocked(now, &expired);
    if (!expired.empty()) {
      lock.unlock();
      for (auto& p : expired) {
        p->promise.set_value(Code(
            StatusCode::kDeadlineExceeded,
            "request of " + std::to_string(p->rows) + " rows waited " +
                std::to_string(Micros(now - p->arrival)) + " us in the batcher queue, past its " +
                std::to_string(Micros(p->deadline - p->arrival)) + " us timeout"));
      }
      lock.lock();
      continue;
    }
    if (queue.empty()) {
      wait(TimePoint::max(), false);
      continue;
    }
    TimePoint wake = TimePoint::max();
    PendingList batch = TakeBatchLocked(now, &wake);
    if (batch.empty()) {
      // A worker that must look sooner than the timer does takes its place.
      const TimePoint until = std::min(wake, earliest_deadline);
      wait(until, !timer_set || until < timer_at);
      continue;
    }
    if (!queue.empty() && idle > 0) cv.notify_one();
    lock.unlock();
    RunBatch(std::move(batch), now);
    lock.lock();
  }
}

DynamicBatcher::DynamicBatcher(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

StatusOr<std::unique_ptr<DynamicBatcher>> DynamicBatcher::Create(
    const BatcherOptions& options, RunFn run, std::shared_ptr<BatcherClock> clock,
    BatchObserver observer) {
  auto bad = [](const std::string& m) { return InvalidArgument("batcher: " + m); };
  if (!run) return bad("no run function");
  if (!clock) return bad("no clock");
  if (options.max_batch < 1) return bad("max_batch must be >= 1");
  int64_t previous = 0;
  for (int64_t size : options.preferred_batch_sizes) {
    if (size <= previous || size > options.max_batch) {
      return bad("preferred batch sizes must increase and lie in [1, max_batch=" +
                 std::to_string(options.max_batch) + "], got " + std::to_string(size));
    }
    previous = size;
  }
  if (options.max_queue_delay.count() < 0) return bad("max_queue_delay must be >= 0");
  if (options.max_queue_size < options.max_batch) {
    return bad("max_queue_size (" + std::to_string(options.max_queue_size) +
               " rows) must hold at least one max_batch (" + std::to_string(options.max_batch) +
               ")");
  }
  if (options.default_timeout.count() <= 0) return bad("default_timeout must be positive");
  if (options.workers < 1) return bad("workers must be >= 1");
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->run = std::move(run);
  impl->clock = std::move(clock);
  impl->observer = std::move(observer);
  Impl* raw = impl.get();
  for (int i = 0; i < options.workers; ++i) raw->workers.emplace_back([raw] { raw->WorkerLoop(); });
  return std::unique_ptr<DynamicBatcher>(new DynamicBatcher(std::move(impl)));
}

DynamicBatcher::~DynamicBatcher() {
  PendingList left;
  {
    std::lock_guard lock(impl_->mutex);
    impl_->stopping = true;
    for (auto& [priority, fifo] : impl_->queue) {
      for (auto& p : fifo) left.push_back(std::move(p));
    }
    impl_->queue.clear();
    impl_->queued_rows = 0;
  }
  impl_->cv.notify_all();
  for (auto& p : left) {
    p->promise.set_value(
        Code(StatusCode::kUnavailable, "batcher shut down before the request ran"));
  }
  for (auto& w : impl_->workers) w.join();
}

std::future<StatusOr<TensorMap>> DynamicBatcher::Submit(BatchRequest request) {
  auto pending = std::make_unique<Pending>();
  auto future = pending->promise.get_future();
  auto refuse = [&](StatusCode code, const std::string& m) {
    pending->promise.set_value(Code(code, "batcher: " + m));
    return std::move(future);
  };
  if (request.inputs.empty()) return refuse(StatusCode::kInvalidArgument, "request has no inputs");
  int64_t rows = -1;
  for (const auto& [name, t] : request.inputs) {
    if (t.rank() < 1) {
      return refuse(StatusCode::kInvalidArgument, "input '" + name + "' is a scalar, not rows");
    }
    if (rows >= 0 && t.dim(0) != rows) {
      return refuse(StatusCode::kInvalidArgument, "inputs disagree on the row count: '" + name +
                                                      "' has " + std::to_string(t.dim(0)) +
                                                      ", others " + std::to_string(rows));
    }
    rows = t.dim(0);
  }
  if (rows < 1) return refuse(StatusCode::kInvalidArgument, "request has no rows");
  const BatcherOptions& options = impl_->options;
  if (rows > options.max_batch) {
    return refuse(StatusCode::kInvalidArgument,
                  "request of " + std::to_string(rows) + " rows exceeds max_batch " +
                      std::to_string(options.max_batch) + " (requests are never split)");
  }
  bool wake = false;
  {
    std::lock_guard lock(impl_->mutex);
    if (impl_->stopping) return refuse(StatusCode::kUnavailable, "shutting down");
    if (impl_->queued_rows + rows > options.max_queue_size) {
      return refuse(StatusCode::kResourceExhausted,
                    "queue full: " + std::to_string(impl_->queued_rows) + " rows queued, " +
                        std::to_string(rows) + " more would pass max_queue_size " +
                        std::to_string(options.max_queue_size));
    }
    pending->rows = rows;
    pending->arrival = impl_->clock->Now();
    auto timeout = request.timeout.count() > 0 ? request.timeout : options.default_timeout;
    pending->deadline = pending->arrival + timeout;
    int priority = request.priority;
    const TimePoint deadline = pending->deadline;
    pending->request = std::move(request);
    impl_->queued_rows += rows;
    impl_->queue[priority].push_back(std::move(pending));
    // Wake an idle worker only if this request changes what one would do now.
    wake = impl_->idle > 0 && (!impl_->timer_set || deadline < impl_->timer_at ||
                               impl_->PlanLocked(impl_->clock->Now()).due);
  }
  if (wake) impl_->cv.notify_one();
  return future;
}

int64_t DynamicBatcher::queued_rows() const {
  std::lock_guard lock(impl_->mutex);
  return impl_->queued_rows;
}

void DynamicBatcher::Poke() {
  std::lock_guard lock(impl_->mutex);
  impl_->cv.notify_all();
}

}  // namespace clickrt::runtime
