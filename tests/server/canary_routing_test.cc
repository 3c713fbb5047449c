// The canary routing both front ends share (server/canary_routing.h), on a real repository of
// two deepfm versions and a running canary.
#include "server/canary_routing.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "server/server_state.h"

namespace clickrt::server {
namespace {

namespace fs = std::filesystem;

class CanaryRoutingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("clickrt_canary_routing_" + std::to_string(getpid()));
    fs::remove_all(root_);
    const fs::path src = fs::path(CLICKRT_SOURCE_DIR) / "models" / "deepfm";
    for (const char* v : {"1", "2"}) {
      const fs::path d = root_ / "deepfm" / v;
      fs::create_directories(d);
      fs::copy_file(src / "model.onnx", d / "model.onnx");
      fs::copy_file(src / "schema.json", d / "schema.json");
    }
    auto repo = ModelRepository::Load(root_.string(), RepositoryOptions{});
    ASSERT_TRUE(repo.ok()) << repo.status().message();
    s_.repo = std::move(repo).value();
    ASSERT_TRUE(s_.repo->SetDefault("deepfm", "1").ok());
    s_.canary = std::make_unique<CanaryController>(s_.repo.get(), nullptr, nullptr,
                                                   [] { return Canary::Clock::now(); });
  }
  void TearDown() override { fs::remove_all(root_); }

  std::shared_ptr<const ModelVersion> Default() { return s_.repo->Find("deepfm", "").value(); }
  void StartCanary() {
    CanaryConfig c{.version = "2", .share = 0.5, .window_s = 3600, .min_requests = 1000000};
    ASSERT_TRUE(s_.canary->Start("deepfm", c).ok());
  }

  fs::path root_;
  ServerState s_;
};

TEST_F(CanaryRoutingTest, NoCanaryLeavesTheDefault) {
  auto mv = Default();
  RouteCanary(&s_, "user1", &mv);
  EXPECT_EQ(mv->version, "1");
}

TEST_F(CanaryRoutingTest, RoutesByTheCanaryHashAndNamesOnlyTheCandidate) {
  StartCanary();
  const Canary reference("deepfm", "1", CanaryConfig{.version = "2", .share = 0.5},
                         [] { return Canary::Clock::now(); });
  int on_candidate = 0;
  for (int i = 0; i < 200; ++i) {
    const std::string user = "user" + std::to_string(i);
    const bool expect_candidate = reference.RoutesToCandidate(user);
    auto mv = Default();
    RouteCanary(&s_, user, &mv);
    EXPECT_EQ(mv->version, expect_candidate ? "2" : "1") << user;

    RankRequest q;
    q.user_id = user;
    auto rank_mv = Default();
    RouteRankCanary(&s_, &q, &rank_mv);
    EXPECT_EQ(rank_mv->version, mv->version) << user;
    EXPECT_EQ(q.version, expect_candidate ? "2" : "") << "only the candidate is named";
    on_candidate += expect_candidate;
  }
  EXPECT_GT(on_candidate, 60);
  EXPECT_LT(on_candidate, 140);
}

TEST_F(CanaryRoutingTest, ObservesBothArmsWithTheirCtrs) {
  StartCanary();
  auto mv = Default();
  std::map<std::string, Tensor> in;
  for (const auto& spec : mv->inputs) {
    Dims d = spec.dims;
    for (auto& x : d) x = x < 0 ? 3 : x;  // 3 rows
    in[spec.name] = Tensor::Zeros(spec.dtype, d).value();
  }
  auto out = mv->Infer(in);
  ASSERT_TRUE(out.ok()) << out.status().message();
  const std::vector<float> ctrs = InferCtrs(*mv, *out);
  ASSERT_EQ(ctrs.size(), 3u);
  EXPECT_GT(ctrs[0], 0.0f);
  EXPECT_LT(ctrs[0], 1.0f);
  EXPECT_TRUE(InferCtrs(*mv, {}).empty()) << "no score output: no CTRs";

  const auto start = std::chrono::steady_clock::now();
  ObserveCanary(&s_, "deepfm", "1", false, start, ctrs);
  ObserveCanary(&s_, "deepfm", "2", false, start, ctrs);
  ObserveCanary(&s_, "deepfm", "2", true, start, {});
  auto state = s_.canary->State("deepfm");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ((*state)["baseline"]["requests"], 1);
  EXPECT_EQ((*state)["baseline"]["ctr_samples"], 3);
  EXPECT_EQ((*state)["candidate"]["requests"], 2);
  EXPECT_EQ((*state)["candidate"]["errors"], 1);
  EXPECT_EQ((*state)["candidate"]["ctr_samples"], 3);
}

TEST_F(CanaryRoutingTest, InferKeysAreTheIdOrRandom) {
  EXPECT_EQ(InferRoutingKey("req-7"), "req-7");
  EXPECT_NE(InferRoutingKey(""), InferRoutingKey(""));
}

}  // namespace
}  // namespace clickrt::server
