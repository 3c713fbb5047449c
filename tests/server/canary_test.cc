// The canary decision rules on a manual clock, the admin name / token checks,
// and the repository's load / unload / default rules on real deepfm versions.
#include "server/canary.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <vector>

#include "server/admin.h"
#include "server/model_repository.h"

namespace clickrt::server {
namespace {

using Clock = Canary::Clock;

struct ManualClock {
  Clock::time_point t = Clock::time_point() + std::chrono::hours(1);
  Canary::NowFn fn() {
    return [this] { return t; };
  }
  void Advance(double s) {
    t += std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  }
};

CanaryConfig Config() {
  // Designated initializers: assigning a literal to c.version trips GCC 12's
  // -Wrestrict.
  return CanaryConfig{.version = "2", .share = 0.5, .window_s = 10, .min_requests = 100};
}

// `n` requests on one arm: latency `lat` s, CTRs spread evenly over [lo, hi),
// `errors` failed.
void Feed(Canary *c, bool candidate, int n, double lat, float lo, float hi, int errors = 0) {
  for (int i = 0; i < n; ++i) {
    const float ctr = lo + (hi - lo) * static_cast<float>(i % 50) / 50.0f;
    const bool failed = i < errors;
    c->Record(candidate, failed, lat, failed ? nullptr : &ctr, failed ? 0 : 1);
  }
}

TEST(CanaryTest, PromotesWhenTheCandidateMatches) {
  ManualClock clock;
  Canary c("m", "1", Config(), clock.fn());
  Feed(&c, false, 400, 0.002, 0.1f, 0.4f);
  Feed(&c, true, 150, 0.002, 0.1f, 0.4f);
  EXPECT_EQ(c.Evaluate().decision, CanaryDecision::kNone) << "the window runs";
  clock.Advance(10.5);
  const CanaryVerdict v = c.Evaluate();
  EXPECT_EQ(v.decision, CanaryDecision::kPromote) << v.reason;
  EXPECT_NEAR(v.psi, 0.0, 1e-9);
  EXPECT_NEAR(v.ctr_drift, 0.0, 1e-6);
  EXPECT_NEAR(v.p99_ratio, 1.0, 1e-9);
}

TEST(CanaryTest, WaitsForEnoughCandidateTraffic) {
  ManualClock clock;
  Canary c("m", "1", Config(), clock.fn());
  Feed(&c, false, 1000, 0.002, 0.1f, 0.4f);
  Feed(&c, true, 99, 0.002, 0.1f, 0.4f);
  clock.Advance(60);
  CanaryVerdict v = c.Evaluate();
  EXPECT_EQ(v.decision, CanaryDecision::kNone);
  EXPECT_NE(v.reason.find("not enough traffic (candidate 99 of 100"), std::string::npos)
      << v.reason;
  Feed(&c, true, 1, 0.002, 0.1f, 0.4f);
  EXPECT_EQ(c.Evaluate().decision, CanaryDecision::kPromote);
}

TEST(CanaryTest, RollsBackOnErrors) {
  ManualClock clock;
  Canary c("m", "1", Config(), clock.fn());
  Feed(&c, false, 1000, 0.002, 0.1f, 0.4f, /*errors=*/5);  // 0.5 %
  Feed(&c, true, 200, 0.002, 0.1f, 0.4f,
       /*errors=*/4);  // 2 %: delta 1.5 % > 1 %
  EXPECT_EQ(c.Evaluate().decision, CanaryDecision::kNone) << "not clearly worse: wait";
  clock.Advance(11);
  const CanaryVerdict v = c.Evaluate();
  EXPECT_EQ(v.decision, CanaryDecision::kRollback);
  EXPECT_NEAR(v.error_rate_delta, 0.015, 1e-9);
  EXPECT_NE(v.reason.find("error rate"), std::string::npos) << v.reason;
}

TEST(CanaryTest, RollsBackEarlyWhenErrorsAreClearlyWorse) {
  ManualClock clock;
  Canary c("m", "1", Config(), clock.fn());
  Feed(&c, false, 100, 0.002, 0.1f, 0.4f);
  Feed(&c, true, 19, 0.002, 0.1f, 0.4f, /*errors=*/19);
  EXPECT_EQ(c.Evaluate().decision, CanaryDecision::kNone) << "under 20 candidate requests";
  Feed(&c, true, 1, 0.002, 0.1f, 0.4f, /*errors=*/1);
  const CanaryVerdict v = c.Evaluate();  // well inside the window
  EXPECT_EQ(v.decision, CanaryDecision::kRollback);
  EXPECT_NE(v.reason.find("early"), std::string::npos) << v.reason;
}

TEST(CanaryTest, RollsBackOnP99) {
  ManualClock clock;
  Canary c("m", "1", Config(), clock.fn());
  Feed(&c, false, 1000, 0.004, 0.1f, 0.4f);
  Feed(&c, true, 200, 0.010, 0.1f, 0.4f);
  clock.Advance(11);
  const CanaryVerdict v = c.Evaluate();
  EXPECT_EQ(v.decision, CanaryDecision::kRollback);
  EXPECT_NEAR(v.p99_ratio, 2.5, 1e-9);
  EXPECT_NE(v.reason.find("p99"), std::string::npos) << v.reason;
}

TEST(CanaryTest, SubMillisecondP99NoiseDoesNotDecide) {
  ManualClock clock;
  Canary c("m", "1", Config(), clock.fn());
  Feed(&c, false, 1000, 0.0001, 0.1f, 0.4f);
  Feed(&c, true, 200, 0.0004, 0.1f, 0.4f);  // 4x, but under the 1 ms floor
  clock.Advance(11);
  EXPECT_EQ(c.Evaluate().decision, CanaryDecision::kPromote);
}

TEST(CanaryTest, RollsBackOnCtrDrift) {
  ManualClock clock;
  Canary c("m", "1", Config(), clock.fn());
  Feed(&c, false, 1000, 0.002, 0.20f, 0.30f);
  Feed(&c, true, 200, 0.002, 0.26f,
       0.36f);  // mean 0.3 / 0.24: +25 %, same bins mostly
  clock.Advance(11);
  const CanaryVerdict v = c.Evaluate();
  EXPECT_EQ(v.decision, CanaryDecision::kRollback);
  EXPECT_NEAR(v.ctr_drift, 0.06 / 0.249, 0.01);
  EXPECT_NE(v.reason.find("CTR drift"), std::string::npos) << v.reason;
}

TEST(CanaryTest, RollsBackOnPsiWithTheSameMean) {
  ManualClock clock;
  CanaryConfig cfg = Config();
  Canary c("m", "1", cfg, clock.fn());
  // Baseline: every CTR near 0.5; candidate: half near 0.05, half near 0.95
  // (mean 0.5).
  Feed(&c, false, 1000, 0.002, 0.5f, 0.5f);
  for (int i = 0; i < 200; ++i) {
    const float ctr = i % 2 ? 0.05f : 0.95f;
    c.Record(true, false, 0.002, &ctr, 1);
  }
  clock.Advance(11);
  const CanaryVerdict v = c.Evaluate();
  EXPECT_EQ(v.decision, CanaryDecision::kRollback);
  EXPECT_LT(v.ctr_drift, 0.01);
  EXPECT_GT(v.psi, 5.0);
  EXPECT_NE(v.reason.find("PSI"), std::string::npos) << v.reason;
}

TEST(CanaryTest, PsiOfKnownHistograms) {
  std::array<int64_t, kPsiBins> a{}, b{};
  a[0] = 50;
  a[1] = 50;
  b[0] = 25;
  b[1] = 75;
  // (0.25 - 0.5) ln(0.25 / 0.5) + (0.75 - 0.5) ln(0.75 / 0.5), epsilon aside.
  const double expected = -0.25 * std::log(0.5) + 0.25 * std::log(1.5);
  EXPECT_NEAR(PopulationStabilityIndex(a, b), expected, 1e-3);
  EXPECT_EQ(PopulationStabilityIndex(a, a), 0.0);
  EXPECT_EQ(PopulationStabilityIndex(a, {}), 0.0);
}

TEST(CanaryTest, RoutingIsStickyAndNearTheShare) {
  ManualClock clock;
  CanaryConfig cfg = Config();
  cfg.share = 0.1;
  Canary c("m", "1", cfg, clock.fn());
  int hits = 0;
  for (int i = 0; i < 20000; ++i) {
    const std::string key = "user" + std::to_string(i);
    const bool r = c.RoutesToCandidate(key);
    EXPECT_EQ(r, c.RoutesToCandidate(key));
    hits += r;
  }
  EXPECT_NEAR(hits / 20000.0, 0.1, 0.01);
}

TEST(CanaryTest, ParsesAndRejectsConfigs) {
  auto c = ParseCanaryConfig(
      R"({"version": "3", "share": 0.25, "window_s": 3, "min_requests": 50,
          "max_error_rate_delta": 0.02, "max_p99_ratio": 2, "max_ctr_drift": 0.1, "max_psi": 0.3})");
  ASSERT_TRUE(c.ok()) << c.status().message();
  EXPECT_EQ(c->version, "3");
  EXPECT_EQ(c->share, 0.25);
  EXPECT_EQ(c->min_requests, 50);
  EXPECT_EQ(c->max_psi, 0.3);
  EXPECT_FALSE(ParseCanaryConfig(R"({"share": 0.1})").ok());
  EXPECT_FALSE(ParseCanaryConfig(R"({"version": "3", "share": 1.5})").ok());
  EXPECT_FALSE(ParseCanaryConfig(R"({"version": "3", "shares": 0.1})").ok());
  EXPECT_FALSE(ParseCanaryConfig("nope").ok());
}

TEST(AdminTest, NamesStayInsideTheRepository) {
  for (const char *ok : {"deepfm", "dcn_v2", "model-1.5", "3"}) {
    EXPECT_TRUE(ValidateRepositoryName(ok, "model").ok()) << ok;
  }
  for (const char *bad :
       {"", ".", "..", "../etc", "a/b", ".hidden", "a..b", "a b", "a\\b", "%2e%2e"}) {
    EXPECT_FALSE(ValidateRepositoryName(bad, "model").ok()) << bad;
  }
  EXPECT_FALSE(ValidateRepositoryName(std::string(129, 'a'), "model").ok());
}

TEST(AdminTest, BearerTokenMustMatchExactly) {
  EXPECT_TRUE(AdminAuthorized("Bearer s3cret", "s3cret"));
  EXPECT_FALSE(AdminAuthorized("Bearer s3cre", "s3cret"));
  EXPECT_FALSE(AdminAuthorized("Bearer s3cret2", "s3cret"));
  EXPECT_FALSE(AdminAuthorized("s3cret", "s3cret"));
  EXPECT_FALSE(AdminAuthorized("", "s3cret"));
  EXPECT_FALSE(AdminAuthorized("Bearer ", ""));
}

namespace fs = std::filesystem;

// <root>/deepfm/<version>/ holding models/deepfm's model and schema.
void AddVersion(const fs::path &root, const std::string &version) {
  const fs::path src = fs::path(CLICKRT_SOURCE_DIR) / "models" / "deepfm";
  const fs::path d = root / "deepfm" / version;
  fs::create_directories(d);
  fs::copy_file(src / "model.onnx", d / "model.onnx");
  fs::copy_file(src / "schema.json", d / "schema.json");
}

std::map<std::string, Tensor> OneRow(const ModelVersion &m) {
  std::map<std::string, Tensor> in;
  for (const auto &s : m.inputs) {
    Dims d = s.dims;
    for (auto &x : d) x = x < 0 ? 1 : x;
    in[s.name] = Tensor::Zeros(s.dtype, d).value();
  }
  return in;
}

std::string DefaultVersion(const ModelRepository &r) {
  auto mv = r.Find("deepfm", "");
  return mv.ok() ? (*mv)->version : mv.status().message();
}

TEST(RepositoryReloadTest, LoadUnloadDrainAndFailedLoads) {
  const fs::path root =
      fs::temp_directory_path() / ("clickrt_reload_test_" + std::to_string(getpid()));
  fs::remove_all(root);
  AddVersion(root, "1");
  auto repo = ModelRepository::Load(root.string(), RepositoryOptions{});
  ASSERT_TRUE(repo.ok()) << repo.status().message();
  ModelRepository &r = **repo;

  // A request in flight keeps v1 alive after it is unloaded.
  auto held = r.Find("deepfm", "");
  ASSERT_TRUE(held.ok());
  AddVersion(root, "2");
  auto loaded = r.LoadVersion("deepfm", "");  // every version folder not loaded yet
  ASSERT_TRUE(loaded.ok()) << loaded.status().message();
  EXPECT_EQ(*loaded, std::vector<std::string>{"2"});
  EXPECT_EQ(DefaultVersion(r), "2");
  ASSERT_TRUE(r.UnloadVersion("deepfm", "1").ok());
  EXPECT_EQ(r.Versions("deepfm"), std::vector<std::string>{"2"});
  EXPECT_FALSE(r.Find("deepfm", "1").ok());
  EXPECT_TRUE((*held)->Infer(OneRow(**held)).ok()) << "the unloaded version drains";
  held->reset();

  // A corrupt engine fails with its path; v2 keeps serving and the index says
  // why.
  fs::create_directories(root / "deepfm" / "3");
  std::ofstream(root / "deepfm" / "3" / "model.engine") << "garbage";
  fs::copy_file(fs::path(CLICKRT_SOURCE_DIR) / "models" / "deepfm" / "schema.json",
                root / "deepfm" / "3" / "schema.json");
  auto bad = r.LoadVersion("deepfm", "3");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("model.engine"), std::string::npos)
      << bad.status().message();
  EXPECT_EQ(DefaultVersion(r), "2");
  bool saw_failure = false;
  for (const auto &e : r.Index()) {
    if (e.version == "3") {
      saw_failure = e.state == "UNAVAILABLE" && e.reason.find("load failed") == 0;
    }
  }
  EXPECT_TRUE(saw_failure);
  EXPECT_FALSE(r.LoadVersion("deepfm", "../1").ok());
  EXPECT_FALSE(r.LoadVersion("..", "1").ok());

  // Default: a candidate is skipped until pinned; pinning a version makes it
  // the default.
  fs::remove_all(root / "deepfm" / "3");
  AddVersion(root, "4");
  ASSERT_TRUE(r.LoadVersion("deepfm", "4").ok());
  r.SetCandidate("deepfm", "4");
  EXPECT_EQ(DefaultVersion(r), "2");
  r.SetCandidate("deepfm", "");
  ASSERT_TRUE(r.SetDefault("deepfm", "2").ok());
  EXPECT_EQ(DefaultVersion(r), "2");
  ASSERT_TRUE(r.UnloadVersion("deepfm", "2").ok());
  EXPECT_EQ(DefaultVersion(r), "4") << "the pin goes with the version";
  ASSERT_TRUE(r.SetDefault("deepfm", "4").ok());
  AddVersion(root, "6");
  ASSERT_TRUE(r.LoadVersion("deepfm", "6").ok());
  EXPECT_EQ(DefaultVersion(r), "6") << "a higher version loaded after the pin takes over";
  ASSERT_TRUE(r.UnloadVersion("deepfm", "6").ok());
  fs::remove_all(root / "deepfm" / "6");

  // Rescan mirrors the disk: 4's folder is gone (unloaded), 5 is new, and 1 and
  // 2, unloaded above but still on disk, come back.
  fs::remove_all(root / "deepfm" / "4");
  AddVersion(root, "5");
  r.Rescan();
  EXPECT_EQ(r.Versions("deepfm"), (std::vector<std::string>{"5", "2", "1"}));
  fs::remove_all(root);
}

}  // namespace
}  // namespace clickrt::server
