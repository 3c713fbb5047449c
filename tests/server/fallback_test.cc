// FallbackEngine over two real CPU engines of models/deepfm (the first stands in for the GPU):
// failover on an injected CUDA error and on a hang, recovery after N good probes, a wrong
// known answer counted as unhealthy; and the repository's engine loader.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <iostream>
#include <mutex>
#include <thread>

#include "compiler/compiler.h"
#include "runtime/fallback_engine.h"
#include "server/health.h"

namespace clickrt {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;
using reference::TensorMap;
using runtime::FallbackEngine;
using runtime::FallbackOptions;

const fs::path kDeepfm = fs::path(CLICKRT_SOURCE_DIR) / "models" / "deepfm";

// models/deepfm built once for the CPU into a temp engine file.
const std::string& EnginePath() {
  static const std::string path = [] {
    compiler::BuildOptions b;
    b.profile = {1, 16, 64, {}};
    auto built = compiler::Build((kDeepfm / "model.onnx").string(), b);
    EXPECT_TRUE(built.ok()) << built.status().ToString();
    const std::string p =
        (fs::temp_directory_path() / ("clickrt_fallback_" + std::to_string(getpid()) + ".engine"))
            .string();
    EXPECT_TRUE(engine::WriteEngine(built->program, built->weights, p).ok());
    return p;
  }();
  return path;
}

std::unique_ptr<runtime::InferenceEngine> LoadCpu() {
  auto e = runtime::LoadInferenceEngine(EnginePath());
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return std::move(e).value();
}

TensorMap Inputs(const runtime::InferenceEngine& e, int64_t rows) {
  TensorMap in;
  for (const auto& s : e.inputs()) {
    Dims d;
    for (int64_t x : s.dims) d.push_back(x < 0 ? rows : x);
    Tensor t = Tensor::Zeros(s.dtype, d).value();
    for (int64_t i = 0; i < t.size(); ++i) {
      if (s.dtype == DType::kFloat32) t.data<float>()[i] = static_cast<float>(i % 13) * 0.07f;
      if (s.dtype == DType::kInt64) t.data<int64_t>()[i] = i % 3;
    }
    in[s.name] = t;
  }
  return in;
}

void ExpectSame(const TensorMap& a, const TensorMap& b) {
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, t] : a) {
    const Tensor& u = b.at(name);
    ASSERT_EQ(t.dims(), u.dims());
    for (int64_t i = 0; i < t.size(); ++i) EXPECT_EQ(t.data<float>()[i], u.data<float>()[i]);
  }
}

struct Fixture {
  std::unique_ptr<FallbackEngine> engine;
  TensorMap in, want;
  std::mutex mu;
  std::vector<std::string> alerts;

  explicit Fixture(FallbackOptions o) {
    auto reference = LoadCpu();
    o.alert = [this](const std::string& line) {
      std::lock_guard<std::mutex> l(mu);
      alerts.push_back(line);
    };
    auto e = FallbackEngine::Create(LoadCpu(), LoadCpu(), o);
    EXPECT_TRUE(e.ok()) << e.status().ToString();
    engine = std::move(e).value();
    in = Inputs(*reference, 5);
    want = reference->Run(in).value();
  }
  bool Alerted(const std::string& text) {
    std::lock_guard<std::mutex> l(mu);
    for (const auto& a : alerts) {
      if (a.find(text) != std::string::npos) return true;
    }
    return false;
  }
  // Polls `pred` for up to 3 s.
  template <typename P>
  static bool Within(P pred) {
    for (int i = 0; i < 300; ++i) {
      if (pred()) return true;
      std::this_thread::sleep_for(10ms);
    }
    return pred();
  }
};

FallbackOptions NoProbes() {
  FallbackOptions o;
  o.name = "deepfm/1";
  o.run_deadline = 200ms;
  o.probe_interval = 3600s;  // these tests drive the state through requests only
  return o;
}

TEST(FallbackEngine, HealthyRunsOnPrimary) {
  Fixture f(NoProbes());
  auto out = f.engine->Run(f.in);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectSame(*out, f.want);
  EXPECT_TRUE(f.engine->healthy());
  EXPECT_EQ(f.engine->stats().primary_runs, 1);
  EXPECT_EQ(f.engine->stats().cpu_runs, 0);
}

TEST(FallbackEngine, CudaErrorSwitchesAndRetriesTheFailingRequest) {
  Fixture f(NoProbes());
  ASSERT_TRUE(f.engine->Inject("cuda_error").ok());
  auto out = f.engine->Run(f.in);  // fails on the primary, answered by the CPU engine
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectSame(*out, f.want);
  EXPECT_FALSE(f.engine->healthy());
  EXPECT_EQ(f.engine->backend_in_use(), "cpu");
  EXPECT_TRUE(f.Alerted("unhealthy")) << "no alert line";
  EXPECT_TRUE(f.Alerted("CUDA error"));
  ASSERT_TRUE(f.engine->Run(f.in).ok());  // goes straight to the CPU engine
  const auto s = f.engine->stats();
  EXPECT_EQ(s.primary_runs, 1);
  EXPECT_EQ(s.primary_failures, 1);
  EXPECT_EQ(s.retried, 1);
  EXPECT_EQ(s.cpu_runs, 2);
  EXPECT_EQ(s.failovers, 1);
}

TEST(FallbackEngine, BadInputIsReturnedNotFailedOver) {
  Fixture f(NoProbes());
  TensorMap bad = f.in;
  bad.erase(bad.begin());
  auto out = f.engine->Run(bad);
  ASSERT_FALSE(out.ok());
  // The engine's own bad-input code (a missing input: NotFound), passed through.
  EXPECT_TRUE(out.status().code() == StatusCode::kNotFound ||
              out.status().code() == StatusCode::kInvalidArgument)
      << out.status().ToString();
  EXPECT_TRUE(f.engine->healthy());
  EXPECT_EQ(f.engine->stats().cpu_runs, 0);
}

TEST(FallbackEngine, HangIsAnsweredFromCpuAfterTheDeadline) {
  Fixture f(NoProbes());
  ASSERT_TRUE(f.engine->Inject("hang").ok());
  const auto t0 = std::chrono::steady_clock::now();
  auto out = f.engine->Run(f.in);
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() - t0)
          .count();
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  ExpectSame(*out, f.want);
  EXPECT_GE(ms, 200);
  EXPECT_LT(ms, 1000);
  EXPECT_FALSE(f.engine->healthy());
  EXPECT_TRUE(f.Alerted("did not answer within 200 ms"));
  // Concurrent requests while unhealthy do not wait for the hung primary.
  std::vector<std::thread> threads;
  std::atomic<int> ok{0};
  const auto t1 = std::chrono::steady_clock::now();
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&] { ok += f.engine->Run(f.in).ok() ? 1 : 0; });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(ok.load(), 8);
  EXPECT_LT(std::chrono::steady_clock::now() - t1, 200ms);
}  // the destructor wakes the hung call

TEST(FallbackEngine, RecoversAfterNHealthyProbes) {
  FallbackOptions o = NoProbes();
  o.probe_interval = 20ms;
  o.probe_deadline = 200ms;
  o.recover_after = 3;
  Fixture f(o);
  ASSERT_TRUE(f.engine->Inject("cuda_error").ok());
  ASSERT_TRUE(f.engine->Run(f.in).ok());
  EXPECT_FALSE(f.engine->healthy());
  // Faulted probes keep it unhealthy.
  ASSERT_TRUE(Fixture::Within([&] { return f.engine->stats().probe_failures >= 3; }));
  EXPECT_FALSE(f.engine->healthy());
  ASSERT_TRUE(f.engine->Inject("clear").ok());
  const auto at_clear = f.engine->stats();
  ASSERT_TRUE(Fixture::Within([&] { return f.engine->healthy(); }));
  const auto s = f.engine->stats();
  EXPECT_EQ(s.recoveries, 1);
  // At least 3 probes after the clear (one may have been in flight and failed).
  EXPECT_GE(s.probes - at_clear.probes, 3);
  EXPECT_TRUE(f.Alerted("recovered after 3 good probes"));
  const int64_t primary_before = s.primary_runs;
  ASSERT_TRUE(f.engine->Run(f.in).ok());
  EXPECT_EQ(f.engine->stats().primary_runs, primary_before + 1);
}

TEST(FallbackEngine, ProbeKnownAnswerMismatchCountsAsUnhealthy) {
  FallbackOptions o = NoProbes();
  o.probe_interval = 20ms;
  Fixture f(o);
  ASSERT_TRUE(f.engine->Inject("corrupt").ok());  // outputs + 0.5: requests cannot tell
  ASSERT_TRUE(Fixture::Within([&] { return !f.engine->healthy(); }));
  EXPECT_GE(f.engine->stats().probe_failures, 1);
  EXPECT_TRUE(f.Alerted("recorded"));
  auto out = f.engine->Run(f.in);  // now from the CPU engine: correct again
  ASSERT_TRUE(out.ok());
  ExpectSame(*out, f.want);
}

TEST(FallbackEngine, HungProbeIsAFailureAndDoesNotPileUp) {
  FallbackOptions o = NoProbes();
  o.probe_interval = 10ms;
  o.probe_deadline = 30ms;
  Fixture f(o);
  ASSERT_TRUE(f.engine->Inject("hang").ok());
  ASSERT_TRUE(Fixture::Within([&] { return f.engine->stats().probe_failures >= 5; }));
  EXPECT_FALSE(f.engine->healthy());
  EXPECT_TRUE(f.Alerted("probe did not return within 30 ms"));
  ASSERT_TRUE(f.engine->Inject("clear").ok());
  ASSERT_TRUE(Fixture::Within([&] { return f.engine->healthy(); }));
}

// Faults come and go under concurrent load while probes switch traffic back and forth: no
// request fails and every answer is the model's.
TEST(FallbackEngine, NoRequestFailsWhileFaultsComeAndGo) {
  FallbackOptions o = NoProbes();
  o.run_deadline = 50ms;
  o.probe_deadline = 50ms;
  o.probe_interval = 5ms;
  o.recover_after = 1;
  Fixture f(o);
  std::atomic<bool> stop{false};
  std::atomic<int64_t> ok{0}, failed{0}, wrong{0};
  std::vector<std::thread> clients;
  for (int i = 0; i < 8; ++i) {
    clients.emplace_back([&] {
      while (!stop) {
        auto out = f.engine->Run(f.in);
        if (!out.ok()) {
          ++failed;
          continue;
        }
        ++ok;
        const Tensor& got = out->begin()->second;
        const Tensor& want = f.want.begin()->second;
        for (int64_t i = 0; i < want.size(); ++i) {
          if (got.data<float>()[i] != want.data<float>()[i]) ++wrong;
        }
      }
    });
  }
  const char* kinds[] = {"cuda_error", "clear", "hang", "clear"};
  for (int round = 0; round < 24; ++round) {
    ASSERT_TRUE(f.engine->Inject(kinds[round % 4]).ok());
    std::this_thread::sleep_for(40ms);
  }
  stop = true;
  for (auto& t : clients) t.join();
  const auto s = f.engine->stats();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
  EXPECT_GT(ok.load(), 100);
  EXPECT_GE(s.failovers, 6);
  EXPECT_GE(s.recoveries, 3);  // each cuda_error phase ends in one (loaded CI machines: some slack)
  std::cout << ok.load() << " requests, " << s.failovers << " failovers, " << s.recoveries
            << " recoveries, " << s.retried << " retried on the CPU\n";
}

TEST(FallbackEngine, UnknownFaultKindIsRefused) {
  Fixture f(NoProbes());
  EXPECT_EQ(f.engine->Inject("meteor").code(), StatusCode::kInvalidArgument);
}

TEST(LoadVersionEngine, FaultInjectionWrapsCpuEngines) {
  const fs::path dir =
      fs::temp_directory_path() / ("clickrt_fallback_dir_" + std::to_string(getpid()));
  fs::create_directories(dir);
  fs::copy_file(EnginePath(), dir / "model.engine", fs::copy_options::overwrite_existing);
  server::BuildOnnxFn no_build = [](const std::string& onnx, int64_t) {
    return StatusOr<std::unique_ptr<runtime::InferenceEngine>>(NotFound("no build: " + onnx));
  };
  server::FallbackPolicy policy;
  std::string source;
  auto plain = server::LoadVersionEngine(dir.string(), "m/1", 64, {}, policy, no_build, &source);
  ASSERT_TRUE(plain.ok()) << plain.status().ToString();
  EXPECT_EQ(server::AsFallback(plain->get()), nullptr);
  EXPECT_EQ(source, (dir / "model.engine").string());
  policy.fault_injection = true;
  auto wrapped = server::LoadVersionEngine(dir.string(), "m/1", 64, {}, policy, no_build, &source);
  ASSERT_TRUE(wrapped.ok()) << wrapped.status().ToString();
  runtime::FallbackEngine* fb = server::AsFallback(wrapped->get());
  ASSERT_NE(fb, nullptr);
  EXPECT_EQ(fb->backend_in_use(), "cpu");
  fs::remove_all(dir);
  auto none = server::LoadVersionEngine(dir.string(), "m/1", 64, {}, policy, no_build, &source);
  EXPECT_EQ(none.status().code(), StatusCode::kNotFound);
}

// A cuda engine file (written by the compiler; no GPU is needed to write one) must come with
// model.onnx for its CPU fallback: refused, naming the folder, before any GPU is touched.
TEST(LoadVersionEngine, CudaEngineNeedsModelOnnx) {
  compiler::BuildOptions b;
  b.backend = "cuda";
  b.profile = {1, 16, 64, {}};
  b.gpu.sm_arch = "sm_90";
  auto built = compiler::Build((kDeepfm / "model.onnx").string(), b);
  if (!built.ok()) GTEST_SKIP() << "cannot write a cuda engine here: " << built.status().ToString();
  const fs::path dir =
      fs::temp_directory_path() / ("clickrt_fallback_cuda_" + std::to_string(getpid()));
  fs::create_directories(dir);
  ASSERT_TRUE(
      engine::WriteEngine(built->program, built->weights, (dir / "model.engine").string()).ok());
  int builds = 0;
  server::BuildOnnxFn count_builds = [&builds](const std::string& onnx, int64_t) {
    ++builds;
    return StatusOr<std::unique_ptr<runtime::InferenceEngine>>(NotFound("no build: " + onnx));
  };
  std::string source;
  auto e = server::LoadVersionEngine(dir.string(), "m/1", 64, {}, {}, count_builds, &source);
  ASSERT_FALSE(e.ok());
  EXPECT_EQ(e.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(e.status().message().find(dir.string()), std::string::npos) << e.status().ToString();
  EXPECT_NE(e.status().message().find("model.onnx"), std::string::npos);
  EXPECT_EQ(builds, 0);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace clickrt
