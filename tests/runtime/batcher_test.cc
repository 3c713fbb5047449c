// The dynamic batcher's rules, driven by a manual clock: nothing here sleeps to make time pass.
// A test waits (in real time) only for things that must happen; "must not happen yet" is
// checked after a short real wait, which can only produce a false pass, never a false failure.
#include "runtime/batcher.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>

namespace clickrt::runtime {
namespace {

using namespace std::chrono_literals;
using reference::TensorMap;

class ManualClock : public BatcherClock {
 public:
  time_point Now() override {
    std::lock_guard lock(mutex_);
    return now_;
  }
  void WaitUntil(std::condition_variable& cv, std::unique_lock<std::mutex>& lock,
                 time_point until) override {
    if (until <= Now()) return;
    cv.wait(lock);  // woken by Submit or Poke; the batcher re-reads the clock
  }
  void Advance(std::chrono::microseconds d) {
    std::lock_guard lock(mutex_);
    now_ += d;
  }

 private:
  std::mutex mutex_;
  time_point now_{std::chrono::seconds(1000)};
};

// One request of `rows` rows whose input "x" holds `first`, first+1, ...
BatchRequest Rows(int64_t rows, float first = 0, int priority = 0,
                  std::chrono::microseconds timeout = 0us) {
  std::vector<float> values;
  for (int64_t i = 0; i < rows; ++i) values.push_back(first + static_cast<float>(i));
  BatchRequest r;
  r.inputs["x"] = Tensor::FromVector<float>({rows, 1}, values);
  r.priority = priority;
  r.timeout = timeout;
  return r;
}

// Records every batch; outputs y = 2 * x. An optional gate holds runs until opened.
struct Engine {
  std::mutex mutex;
  std::condition_variable changed;
  std::vector<std::vector<float>> batches;  // the x values of each batch, in run order
  bool gated = false;
  int running = 0, max_running = 0;

  DynamicBatcher::RunFn Fn() {
    return [this](const TensorMap& in) -> StatusOr<TensorMap> {
      const Tensor& x = in.at("x");
      {
        std::unique_lock lock(mutex);
        batches.emplace_back(x.span<float>().begin(), x.span<float>().end());
        ++running;
        max_running = std::max(max_running, running);
        changed.notify_all();
        changed.wait(lock, [&] { return !gated; });
        --running;
      }
      ASSIGN_OR_RETURN(Tensor y, Tensor::Zeros(DType::kFloat32, x.dims()));
      for (int64_t i = 0; i < x.size(); ++i) y.data<float>()[i] = 2 * x.data<float>()[i];
      TensorMap out;
      out["y"] = y;
      return out;
    };
  }
  bool WaitForBatches(size_t n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 5s, [&] { return batches.size() >= n; });
  }
  bool WaitForRunning(int n) {
    std::unique_lock lock(mutex);
    return changed.wait_for(lock, 5s, [&] { return running >= n; });
  }
  void Open() {
    std::lock_guard lock(mutex);
    gated = false;
    changed.notify_all();
  }
  size_t count() {
    std::lock_guard lock(mutex);
    return batches.size();
  }
};

using Future = std::future<StatusOr<TensorMap>>;

bool Ready(Future& f, std::chrono::milliseconds wait = 0ms) {
  return f.wait_for(wait) == std::future_status::ready;
}

std::vector<float> Y(Future& f) {
  EXPECT_EQ(f.wait_for(5s), std::future_status::ready);
  auto result = f.get();
  EXPECT_TRUE(result.ok()) << result.status().ToString();
  if (!result.ok()) return {};
  const Tensor& y = result.value().at("y");
  return {y.span<float>().begin(), y.span<float>().end()};
}

struct Fixture {
  explicit Fixture(BatcherOptions options) {
    auto b = DynamicBatcher::Create(options, engine.Fn(), clock, [this](const BatchInfo& info) {
      std::lock_guard lock(info_mutex);
      infos.push_back(info);
    });
    EXPECT_TRUE(b.ok()) << b.status().ToString();
    batcher = std::move(b).value();
  }
  void Advance(std::chrono::microseconds d) {
    clock->Advance(d);
    batcher->Poke();
  }
  std::vector<BatchInfo> Infos() {
    std::lock_guard lock(info_mutex);
    return infos;
  }
  Engine engine;
  std::shared_ptr<ManualClock> clock = std::make_shared<ManualClock>();
  std::mutex info_mutex;
  std::vector<BatchInfo> infos;
  std::unique_ptr<DynamicBatcher> batcher;
};

BatcherOptions Options(int64_t max_batch, std::chrono::microseconds delay = 1s) {
  BatcherOptions o;
  o.max_batch = max_batch;
  o.max_queue_delay = delay;
  o.max_queue_size = 64;
  o.default_timeout = 10s;
  return o;
}

TEST(Batcher, FullBatchRunsAtOnceAndResultsGoBackToTheirCallers) {
  Fixture f(Options(4));
  Future a = f.batcher->Submit(Rows(1, 10));
  Future b = f.batcher->Submit(Rows(3, 20));  // 1 + 3 = max_batch: no waiting
  EXPECT_EQ(Y(a), (std::vector<float>{20}));
  EXPECT_EQ(Y(b), (std::vector<float>{40, 42, 44}));
  ASSERT_EQ(f.Infos().size(), 1u);
  EXPECT_EQ(f.Infos()[0].rows, 4);
  EXPECT_EQ(f.Infos()[0].requests, 2);
  EXPECT_EQ(f.Infos()[0].oldest_wait, 0us);
}

TEST(Batcher, WaitsForMaxQueueDelayThenRunsWhatIsQueued) {
  Fixture f(Options(8, 100us));
  Future a = f.batcher->Submit(Rows(2, 1));
  f.Advance(40us);
  Future b = f.batcher->Submit(Rows(1, 5));
  f.Advance(59us);  // the oldest has waited 99 us
  EXPECT_FALSE(Ready(a, 50ms));
  EXPECT_EQ(f.batcher->queued_rows(), 3);
  f.Advance(1us);
  EXPECT_EQ(Y(a), (std::vector<float>{2, 4}));
  EXPECT_EQ(Y(b), (std::vector<float>{10}));
  ASSERT_EQ(f.Infos().size(), 1u);
  EXPECT_EQ(f.Infos()[0].rows, 3);
  EXPECT_EQ(f.Infos()[0].oldest_wait, 100us);
  EXPECT_EQ(f.batcher->queued_rows(), 0);
}

TEST(Batcher, PreferredSizeRunsWithoutWaiting) {
  BatcherOptions o = Options(8);
  o.preferred_batch_sizes = {3, 6};
  Fixture f(o);
  Future a = f.batcher->Submit(Rows(1));
  EXPECT_FALSE(Ready(a, 50ms));
  Future b = f.batcher->Submit(Rows(2));  // 3 rows: a preferred size
  EXPECT_EQ(Y(a).size(), 1u);
  EXPECT_EQ(Y(b).size(), 2u);
  Future c = f.batcher->Submit(Rows(4));  // 4 rows: not preferred, below max: waits
  EXPECT_FALSE(Ready(c, 50ms));
  Future d = f.batcher->Submit(Rows(2));  // 6 rows: preferred
  EXPECT_EQ(Y(c).size(), 4u);
  EXPECT_EQ(Y(d).size(), 2u);
  auto infos = f.Infos();
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos[0].rows, 3);
  EXPECT_EQ(infos[1].rows, 6);
}

TEST(Batcher, RequestsAreNeverSplitAndOversizedOnesAreRefused) {
  Fixture f(Options(4));
  Future big = f.batcher->Submit(Rows(5));
  ASSERT_TRUE(Ready(big));
  auto refused = big.get();
  EXPECT_EQ(refused.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(refused.status().message().find("5 rows exceeds max_batch 4"), std::string::npos)
      << refused.status().message();

  Future a = f.batcher->Submit(Rows(3, 0));
  Future b = f.batcher->Submit(Rows(2, 100));  // does not fit beside a: a runs alone, now
  EXPECT_EQ(Y(a), (std::vector<float>{0, 2, 4}));
  EXPECT_FALSE(Ready(b, 50ms));  // b waits for company or the delay
  f.Advance(1s);
  EXPECT_EQ(Y(b), (std::vector<float>{200, 202}));
  auto infos = f.Infos();
  ASSERT_EQ(infos.size(), 2u);
  EXPECT_EQ(infos[0].rows, 3);
  EXPECT_EQ(infos[1].rows, 2);
}

TEST(Batcher, QueueFullIsRefusedAtOnce) {
  BatcherOptions o = Options(4);
  o.max_queue_size = 8;
  Fixture f(o);
  f.engine.gated = true;
  Future running = f.batcher->Submit(Rows(4));  // taken by the only worker, held at the gate
  ASSERT_TRUE(f.engine.WaitForRunning(1));
  Future q1 = f.batcher->Submit(Rows(3));
  Future q2 = f.batcher->Submit(Rows(3));
  EXPECT_EQ(f.batcher->queued_rows(), 6);
  Future over = f.batcher->Submit(Rows(3));  // 6 + 3 > 8
  ASSERT_TRUE(Ready(over));
  auto refused = over.get();
  EXPECT_EQ(refused.status().code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.status().message().find("6 rows queued"), std::string::npos);
  Future fits = f.batcher->Submit(Rows(2));  // 6 + 2 = 8 still fits
  EXPECT_EQ(f.batcher->queued_rows(), 8);
  f.engine.Open();
  f.Advance(1s);
  EXPECT_EQ(Y(running).size(), 4u);
  EXPECT_EQ(Y(q1).size(), 3u);
  EXPECT_EQ(Y(q2).size(), 3u);
  EXPECT_EQ(Y(fits).size(), 2u);
}

TEST(Batcher, RequestPastItsTimeoutIsAnsweredWithoutRunning) {
  Fixture f(Options(8));
  Future quick = f.batcher->Submit(Rows(1, 0, 0, 50us));
  Future patient = f.batcher->Submit(Rows(1, 7));  // default timeout 10 s
  f.Advance(49us);
  EXPECT_FALSE(Ready(quick, 50ms));
  f.Advance(1us);
  ASSERT_EQ(quick.wait_for(5s), std::future_status::ready);
  auto late = quick.get();
  EXPECT_EQ(late.status().code(), StatusCode::kDeadlineExceeded);
  EXPECT_NE(late.status().message().find("50 us timeout"), std::string::npos)
      << late.status().message();
  EXPECT_EQ(f.engine.count(), 0u);
  EXPECT_EQ(f.batcher->queued_rows(), 1);
  f.Advance(1s);
  EXPECT_EQ(Y(patient), (std::vector<float>{14}));
  ASSERT_EQ(f.Infos().size(), 1u);
  EXPECT_EQ(f.Infos()[0].rows, 1);
}

TEST(Batcher, LowerPriorityValueRunsFirst) {
  Fixture f(Options(4));
  f.engine.gated = true;
  Future first = f.batcher->Submit(Rows(4, 0));
  ASSERT_TRUE(f.engine.WaitForRunning(1));
  Future low = f.batcher->Submit(Rows(2, 100, /*priority=*/5));
  Future high1 = f.batcher->Submit(Rows(2, 200, /*priority=*/0));
  Future high2 = f.batcher->Submit(Rows(2, 300, /*priority=*/0));
  f.engine.Open();
  EXPECT_EQ(Y(high1), (std::vector<float>{400, 402}));
  EXPECT_EQ(Y(high2), (std::vector<float>{600, 602}));
  EXPECT_FALSE(Ready(low, 50ms));  // 2 rows, waiting for the delay
  f.Advance(1s);
  EXPECT_EQ(Y(low), (std::vector<float>{200, 202}));
  EXPECT_EQ(Y(first).size(), 4u);
  std::lock_guard lock(f.engine.mutex);
  ASSERT_EQ(f.engine.batches.size(), 3u);
  EXPECT_EQ(f.engine.batches[1], (std::vector<float>{200, 201, 300, 301}));
  EXPECT_EQ(f.engine.batches[2], (std::vector<float>{100, 101}));
}

TEST(Batcher, WorkersRunBatchesInParallel) {
  BatcherOptions o = Options(2);
  o.workers = 3;
  Fixture f(o);
  f.engine.gated = true;
  std::vector<Future> futures;
  for (int i = 0; i < 3; ++i) futures.push_back(f.batcher->Submit(Rows(2, 10.0f * i)));
  ASSERT_TRUE(f.engine.WaitForRunning(3));
  f.engine.Open();
  for (int i = 0; i < 3; ++i) {
    EXPECT_EQ(Y(futures[i]), (std::vector<float>{20.0f * i, 20.0f * i + 2}));
  }
  EXPECT_EQ(f.engine.max_running, 3);
}

TEST(Batcher, RunErrorAndBadOutputReachEveryCallerOfTheBatch) {
  auto clock = std::make_shared<ManualClock>();
  auto batcher = DynamicBatcher::Create(
      Options(4),
      [](const TensorMap& in) -> StatusOr<TensorMap> {
        if (in.at("x").data<float>()[0] < 0) return OutOfRange("id out of range");
        TensorMap out;
        out["y"] = Tensor::FromVector<float>({1}, {0});  // wrong row count
        return out;
      },
      clock);
  ASSERT_TRUE(batcher.ok());
  Future a = (*batcher)->Submit(Rows(2, -5));
  Future b = (*batcher)->Submit(Rows(2, 1));
  ASSERT_EQ(a.wait_for(5s), std::future_status::ready);
  ASSERT_EQ(b.wait_for(5s), std::future_status::ready);
  EXPECT_EQ(a.get().status().code(), StatusCode::kOutOfRange);
  EXPECT_EQ(b.get().status().code(), StatusCode::kOutOfRange);
  Future c = (*batcher)->Submit(Rows(4, 1));
  ASSERT_EQ(c.wait_for(5s), std::future_status::ready);
  auto bad = c.get();
  EXPECT_EQ(bad.status().code(), StatusCode::kInternal);
  EXPECT_NE(bad.status().message().find("expected 4 rows"), std::string::npos);
}

TEST(Batcher, MismatchedInputsAndShutdown) {
  auto f = std::make_unique<Fixture>(Options(8));
  BatchRequest ragged;
  ragged.inputs["x"] = Tensor::FromVector<float>({2, 1}, {1, 2});
  ragged.inputs["z"] = Tensor::FromVector<float>({3}, {1, 2, 3});
  Future r = f->batcher->Submit(std::move(ragged));
  ASSERT_TRUE(Ready(r));
  EXPECT_EQ(r.get().status().code(), StatusCode::kInvalidArgument);
  Future queued = f->batcher->Submit(Rows(1));
  f.reset();  // the destructor answers what is still queued
  ASSERT_TRUE(Ready(queued));
  EXPECT_EQ(queued.get().status().code(), StatusCode::kUnavailable);
}

TEST(Batcher, CreateValidatesOptions) {
  auto run = [](const TensorMap& in) -> StatusOr<TensorMap> { return in; };
  BatcherOptions o = Options(8);
  o.preferred_batch_sizes = {4, 2};
  EXPECT_EQ(DynamicBatcher::Create(o, run).status().code(), StatusCode::kInvalidArgument);
  o.preferred_batch_sizes = {16};
  EXPECT_FALSE(DynamicBatcher::Create(o, run).ok());
  o = Options(8);
  o.workers = 0;
  EXPECT_FALSE(DynamicBatcher::Create(o, run).ok());
  o = Options(8);
  o.max_queue_size = 4;
  EXPECT_FALSE(DynamicBatcher::Create(o, run).ok());
  EXPECT_FALSE(DynamicBatcher::Create(Options(8), nullptr).ok());
}

TEST(Batcher, SystemClockManyCallers) {
  BatcherOptions o = Options(16, 2ms);
  o.workers = 2;
  Engine engine;
  auto batcher = DynamicBatcher::Create(o, engine.Fn());
  ASSERT_TRUE(batcher.ok());
  constexpr int kCallers = 64;
  std::vector<std::thread> threads;
  std::atomic<int> correct{0};
  for (int i = 0; i < kCallers; ++i) {
    threads.emplace_back([&, i] {
      Future fut = (*batcher)->Submit(Rows(1 + i % 3, 100.0f * i));
      auto y = Y(fut);
      bool ok = y.size() == static_cast<size_t>(1 + i % 3);
      for (size_t k = 0; ok && k < y.size(); ++k) ok = y[k] == 2 * (100.0f * i + k);
      if (ok) ++correct;
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(correct.load(), kCallers);
  EXPECT_LT(engine.count(), static_cast<size_t>(kCallers));  // some merging happened
}

}  // namespace
}  // namespace clickrt::runtime
