// FallbackEngine: health state, the primary's worker threads, the probe thread, injected faults.
#include "runtime/fallback_engine.h"

#include <atomic>
#include <cmath>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <future>
#include <iostream>
#include <mutex>
#include <thread>

namespace clickrt::runtime {
namespace {

using reference::TensorMap;
using Result = StatusOr<TensorMap>;

enum class Fault { kNone, kCudaError, kHang, kCorrupt };

// Errors that say the device (or its runtime) failed rather than the request.
bool IsDeviceFailure(StatusCode c) {
  return c == StatusCode::kInternal || c == StatusCode::kUnavailable ||
         c == StatusCode::kDataLoss || c == StatusCode::kDeadlineExceeded;
}

// Threads that run primary calls, so a caller can give up at its deadline. A thread stuck in a
// hung call stays stuck; a new one is made whenever no idle thread can take a task.
class CallPool {
 public:
  ~CallPool() { Stop(); }
  void Submit(std::function<void()> task) {
    std::lock_guard<std::mutex> l(mu_);
    queue_.push_back(std::move(task));
    if (idle_ < queue_.size()) {
      threads_.emplace_back([this] { Loop(); });
    } else {
      cv_.notify_one();
    }
  }
  void Stop() {
    {
      std::lock_guard<std::mutex> l(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

 private:
  void Loop() {
    std::unique_lock<std::mutex> l(mu_);
    while (true) {
      ++idle_;
      cv_.wait(l, [&] { return stop_ || !queue_.empty(); });
      --idle_;
      if (queue_.empty()) return;  // stopping with nothing left
      std::function<void()> task = std::move(queue_.front());
      queue_.pop_front();
      l.unlock();
      task();
      l.lock();
    }
  }
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> queue_;
  size_t idle_ = 0;
  bool stop_ = false;
  std::vector<std::thread> threads_;
};

// Deterministic inputs for the known-answer probe: varied floats, index 0 for integer inputs
// (always inside an embedding table).
StatusOr<TensorMap> ProbeInputs(const InferenceEngine& e) {
  const int64_t batch = std::max<int64_t>(1, e.program().meta.profile.min);
  TensorMap in;
  for (const IoSpec& s : e.inputs()) {
    Dims d;
    for (int64_t x : s.dims) d.push_back(x < 0 ? batch : x);
    ASSIGN_OR_RETURN(Tensor t, Tensor::Zeros(s.dtype, d));
    if (s.dtype == DType::kFloat32) {
      float* p = t.data<float>();
      for (int64_t i = 0; i < t.size(); ++i)
        p[i] = static_cast<float>((i * 37) % 11) / 11.0f - 0.5f;
    }
    in[s.name] = std::move(t);
  }
  return in;
}

}  // namespace

struct FallbackEngine::Impl {
  FallbackOptions o;
  std::unique_ptr<InferenceEngine> primary, cpu;
  TensorMap probe_in, probe_expected;

  std::atomic<bool> healthy{true};
  std::atomic<Fault> fault{Fault::kNone};
  std::mutex fault_mu;
  std::condition_variable fault_cv;  // wakes injected hangs

  mutable std::mutex mu;  // state below
  std::condition_variable probe_cv;
  bool stopping = false;
  int good_probes = 0;
  Stats stats;
  std::shared_future<Result> outstanding_probe;

  CallPool pool;
  std::thread probe_thread;

  void Alert(const std::string& line) const {
    if (o.alert) {
      o.alert(line);
    } else {
      std::cerr << "clickrt: ALERT " << o.name << ": " << line << std::endl;
    }
  }

  void Count(int64_t Stats::*field) {
    std::lock_guard<std::mutex> l(mu);
    ++(stats.*field);
  }

  // The primary's Run with any injected fault applied.
  Result RunPrimary(const TensorMap& in) {
    switch (fault.load()) {
      case Fault::kCudaError:
        return Internal("CUDA error: an illegal memory access was encountered (injected fault)");
      case Fault::kHang: {
        std::unique_lock<std::mutex> l(fault_mu);
        fault_cv.wait(l, [&] { return fault.load() != Fault::kHang; });
        break;  // a hang that ends is a slow call: the primary answers
      }
      case Fault::kCorrupt: {
        ASSIGN_OR_RETURN(TensorMap out, primary->Run(in));
        for (auto& [name, t] : out) {
          if (t.dtype() != DType::kFloat32) continue;
          Tensor c = t.Clone();
          for (int64_t i = 0; i < c.size(); ++i) c.data<float>()[i] += 0.5f;
          t = std::move(c);
        }
        return out;
      }
      case Fault::kNone:
        break;
    }
    return primary->Run(in);
  }

  // The primary's result as a future run on the pool (the inputs' buffers are shared, so they
  // outlive a caller that stops waiting).
  std::shared_future<Result> Launch(const TensorMap& in) {
    auto p = std::make_shared<std::promise<Result>>();
    std::shared_future<Result> f = p->get_future().share();
    pool.Submit([this, p, in] { p->set_value(RunPrimary(in)); });
    return f;
  }

  Result RunWithDeadline(const TensorMap& in) {
    std::shared_future<Result> f = Launch(in);
    if (f.wait_for(o.run_deadline) == std::future_status::ready) return f.get();
    return Status(StatusCode::kDeadlineExceeded,
                  "the " + primary->backend() + " engine did not answer within " +
                      std::to_string(o.run_deadline.count()) + " ms");
  }

  void MarkUnhealthy(const std::string& why) {
    std::lock_guard<std::mutex> l(mu);
    good_probes = 0;
    if (!healthy.exchange(false)) return;
    ++stats.failovers;
    Alert("primary (" + primary->backend() + ") unhealthy, serving from " + cpu->backend() + ": " +
          why);
  }

  // One known-answer probe; "" when good, else why not.
  std::string Probe() {
    {
      std::lock_guard<std::mutex> l(mu);
      ++stats.probes;
      if (outstanding_probe.valid() &&
          outstanding_probe.wait_for(std::chrono::seconds(0)) != std::future_status::ready) {
        return "an earlier probe has not returned";
      }
      outstanding_probe = Launch(probe_in);
    }
    std::shared_future<Result> f = outstanding_probe;
    if (f.wait_for(o.probe_deadline) != std::future_status::ready) {
      return "probe did not return within " + std::to_string(o.probe_deadline.count()) + " ms";
    }
    const Result& r = f.get();
    if (!r.ok()) return "probe failed: " + r.status().ToString();
    for (const auto& [name, want] : probe_expected) {
      auto it = r->find(name);
      if (it == r->end()) return "probe output '" + name + "' missing";
      const Tensor& got = it->second;
      if (got.dtype() != want.dtype() || got.dims() != want.dims()) {
        return "probe output '" + name + "' is " + got.Describe() + ", recorded " + want.Describe();
      }
      if (want.dtype() == DType::kFloat32) {
        for (int64_t i = 0; i < want.size(); ++i) {
          const float a = got.data<float>()[i], b = want.data<float>()[i];
          if (!(std::fabs(a - b) <= o.probe_tolerance)) {
            return "probe output '" + name + "'[" + std::to_string(i) + "] = " + std::to_string(a) +
                   ", recorded " + std::to_string(b);
          }
        }
      } else if (std::memcmp(got.raw(), want.raw(), want.nbytes()) != 0) {
        return "probe output '" + name + "' differs from the recorded one";
      }
    }
    return "";
  }

  void ProbeLoop() {
    std::unique_lock<std::mutex> l(mu);
    while (true) {
      probe_cv.wait_for(l, o.probe_interval, [&] { return stopping; });
      if (stopping) return;
      l.unlock();
      const std::string why = Probe();
      if (!why.empty()) {
        Count(&Stats::probe_failures);
        MarkUnhealthy(why);
      }
      l.lock();
      if (why.empty() && !healthy.load() && ++good_probes >= o.recover_after) {
        healthy = true;
        good_probes = 0;
        ++stats.recoveries;
        Alert("primary (" + primary->backend() + ") recovered after " +
              std::to_string(o.recover_after) + " good probes; traffic returns to it");
      }
    }
  }
};

FallbackEngine::FallbackEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

FallbackEngine::~FallbackEngine() {
  Impl& m = *impl_;
  {
    std::lock_guard<std::mutex> l(m.mu);
    m.stopping = true;
  }
  m.probe_cv.notify_all();
  if (m.probe_thread.joinable()) m.probe_thread.join();
  {
    std::lock_guard<std::mutex> l(m.fault_mu);
    m.fault = Fault::kNone;
  }
  m.fault_cv.notify_all();
  m.pool.Stop();
}

StatusOr<std::unique_ptr<FallbackEngine>> FallbackEngine::Create(
    std::unique_ptr<InferenceEngine> primary, std::unique_ptr<InferenceEngine> cpu,
    const FallbackOptions& options) {
  if (!primary || !cpu) return InvalidArgument("a fallback engine needs two engines");
  if (options.recover_after < 1) return InvalidArgument("recover_after must be >= 1");
  if (options.probe_interval.count() < 1 || options.probe_deadline.count() < 1) {
    return InvalidArgument("probe_interval and probe_deadline must be >= 1 ms");
  }
  auto same = [](const std::vector<IoSpec>& a, const std::vector<IoSpec>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i) {
      if (a[i].name != b[i].name || a[i].dtype != b[i].dtype) return false;
    }
    return true;
  };
  if (!same(primary->inputs(), cpu->inputs()) || !same(primary->outputs(), cpu->outputs())) {
    return InvalidArgument(options.name + ": the " + primary->backend() + " and " + cpu->backend() +
                           " engines have different inputs or outputs");
  }
  auto impl = std::make_unique<Impl>();
  impl->o = options;
  ASSIGN_OR_RETURN(impl->probe_in, ProbeInputs(*primary));
  auto expected = primary->Run(impl->probe_in);
  if (!expected.ok()) {
    return expected.status().WithContext(options.name + ": recording the known-answer probe");
  }
  impl->probe_expected = std::move(expected).value();
  impl->primary = std::move(primary);
  impl->cpu = std::move(cpu);
  std::unique_ptr<FallbackEngine> e(new FallbackEngine(std::move(impl)));
  Impl* m = e->impl_.get();
  m->probe_thread = std::thread([m] { m->ProbeLoop(); });
  return e;
}

StatusOr<reference::TensorMap> FallbackEngine::Run(const reference::TensorMap& in) {
  Impl& m = *impl_;
  if (m.healthy.load()) {
    m.Count(&Stats::primary_runs);
    Result out = m.o.run_deadline.count() > 0 ? m.RunWithDeadline(in) : m.RunPrimary(in);
    if (out.ok() || !IsDeviceFailure(out.status().code())) return out;
    m.Count(&Stats::primary_failures);
    m.MarkUnhealthy("request failed: " + out.status().ToString());
    m.Count(&Stats::retried);
  }
  m.Count(&Stats::cpu_runs);
  return m.cpu->Run(in);
}

const engine::Program& FallbackEngine::program() const { return impl_->primary->program(); }
std::vector<IoSpec> FallbackEngine::inputs() const { return impl_->primary->inputs(); }
std::vector<IoSpec> FallbackEngine::outputs() const { return impl_->primary->outputs(); }
std::string FallbackEngine::backend() const { return impl_->primary->backend(); }
bool FallbackEngine::healthy() const { return impl_->healthy.load(); }
std::string FallbackEngine::backend_in_use() const {
  return healthy() ? impl_->primary->backend() : impl_->cpu->backend();
}

Status FallbackEngine::Inject(const std::string& kind) {
  Fault f;
  if (kind == "cuda_error") {
    f = Fault::kCudaError;
  } else if (kind == "hang") {
    f = Fault::kHang;
  } else if (kind == "corrupt") {
    f = Fault::kCorrupt;
  } else if (kind == "clear") {
    f = Fault::kNone;
  } else {
    return InvalidArgument("unknown fault kind '" + kind +
                           "' (cuda_error, hang, corrupt or clear)");
  }
  {
    std::lock_guard<std::mutex> l(impl_->fault_mu);
    impl_->fault = f;
  }
  impl_->fault_cv.notify_all();
  impl_->Alert("fault injected: " + kind);
  return Status::Ok();
}

FallbackEngine::Stats FallbackEngine::stats() const {
  std::lock_guard<std::mutex> l(impl_->mu);
  return impl_->stats;
}

}  // namespace clickrt::runtime
