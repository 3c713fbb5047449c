// ThreadPool: workers spin briefly after each job (layers follow each other within microseconds),
// then sleep on a condition variable so an idle server does not burn its cores.
#include <immintrin.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include "kernels/cpu/fast/fast_kernels.h"

namespace clickrt::kernels::fast {

namespace {
// How long an idle worker spins before it sleeps.
constexpr auto kSpin = std::chrono::microseconds(200);

inline void CpuRelax() {
#if defined(__x86_64__) || defined(__i386__)
  _mm_pause();
#endif
}
}  // namespace

// Chunk i belongs to thread i (the caller is thread 0), so a kernel called again and again with
// the same split finds its share of the weights in the same core's cache. A thread that finds its
// own chunk done takes any other unclaimed one, so the caller never waits for a worker that has
// not woken up yet; it only waits for chunks that another thread has started.
//
// A chunk slot holds 2*g while unclaimed in job g and 2*g+1 once claimed, so a late worker still
// holding an older job number cannot claim anything.
struct ThreadPool::State {
  struct alignas(64) Slot {
    std::atomic<uint64_t> v{0};
  };

  explicit State(int size) : slots(static_cast<size_t>(size)) {}

  std::vector<std::thread> workers;
  std::mutex busy;  // held by the caller running a job

  // The job; written by the caller before it publishes the slots and `generation`.
  const std::function<void(int64_t, int64_t)>* fn = nullptr;
  int64_t n = 0;
  int64_t chunks = 0;
  std::vector<Slot> slots;
  alignas(64) std::atomic<int64_t> done{0};

  alignas(64) std::atomic<uint64_t> generation{0};
  std::atomic<int> sleepers{0};
  std::atomic<bool> stop{false};
  std::mutex mu;
  std::condition_variable cv;

  bool TryRun(uint64_t gen, int64_t c) {
    uint64_t expect = 2 * gen;
    if (slots[c].v.load(std::memory_order_relaxed) != expect ||
        !slots[c].v.compare_exchange_strong(expect, expect + 1, std::memory_order_acq_rel)) {
      return false;
    }
    (*fn)(n * c / chunks, n * (c + 1) / chunks);
    done.fetch_add(1, std::memory_order_release);
    return true;
  }

  // Runs chunk `self` of job `gen`, then any chunk nobody has claimed.
  void Work(uint64_t gen, int self) {
    const int64_t count = static_cast<int64_t>(slots.size());
    if (self < count) TryRun(gen, self);
    for (int64_t i = 1; i < count; ++i) TryRun(gen, (self + i) % count);
  }

  void WorkerLoop(int self) {
    uint64_t seen = 0;
    for (;;) {
      auto deadline = std::chrono::steady_clock::now() + kSpin;
      uint64_t g = 0;
      for (int spins = 0;; ++spins) {
        g = generation.load(std::memory_order_acquire);
        if (g != seen || stop.load(std::memory_order_relaxed)) break;
        CpuRelax();
        if ((spins & 255) == 255 && std::chrono::steady_clock::now() > deadline) {
          std::unique_lock<std::mutex> lock(mu);
          sleepers.fetch_add(1);
          cv.wait(lock, [&] { return generation.load() != seen || stop.load(); });
          sleepers.fetch_sub(1);
          deadline = std::chrono::steady_clock::now() + kSpin;
        }
      }
      if (stop.load(std::memory_order_relaxed)) return;
      seen = g;
      Work(g, self);
    }
  }
};

ThreadPool::ThreadPool(int threads) {
  size_ = threads > 0 ? threads : Cpu().threads;
  state_ = std::make_unique<State>(size_);
  state_->workers.reserve(size_ - 1);
  for (int i = 1; i < size_; ++i) {
    state_->workers.emplace_back([s = state_.get(), i] { s->WorkerLoop(i); });
  }
}

ThreadPool::~ThreadPool() {
  {
    std::lock_guard<std::mutex> lock(state_->mu);
    state_->stop.store(true);
  }
  state_->cv.notify_all();
  for (auto& t : state_->workers) t.join();
}

void ThreadPool::ParallelFor(int64_t n, int64_t grain,
                             const std::function<void(int64_t, int64_t)>& fn) {
  if (n <= 0) return;
  if (grain < 1) grain = 1;
  int64_t chunks = n / grain;
  if (chunks > size_) chunks = size_;
  if (chunks <= 1 || !state_->busy.try_lock()) {
    fn(0, n);
    return;
  }
  State& s = *state_;
  const uint64_t gen = s.generation.load(std::memory_order_relaxed) + 1;
  s.fn = &fn;
  s.n = n;
  s.chunks = chunks;
  s.done.store(0, std::memory_order_relaxed);
  // Slots past `chunks` keep an older job's value, so nobody can claim them.
  for (int64_t c = 0; c < chunks; ++c) s.slots[c].v.store(2 * gen, std::memory_order_release);
  s.generation.store(gen);  // seq_cst: pairs with the worker's sleepers / generation check
  if (s.sleepers.load() > 0) {
    std::lock_guard<std::mutex> lock(s.mu);
    s.cv.notify_all();
  }
  s.Work(gen, 0);
  for (int spins = 0; s.done.load(std::memory_order_acquire) < chunks; ++spins) {
    CpuRelax();
    if ((spins & 1023) == 1023) std::this_thread::yield();
  }
  s.busy.unlock();
}

void ParallelFor(ThreadPool* pool, int64_t n, int64_t grain,
                 const std::function<void(int64_t, int64_t)>& fn) {
  if (pool) {
    pool->ParallelFor(n, grain, fn);
  } else if (n > 0) {
    fn(0, n);
  }
}

}  // namespace clickrt::kernels::fast
