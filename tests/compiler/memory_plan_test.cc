#include "compiler/memory_plan.h"

#include <random>

#include <gtest/gtest.h>

namespace clickrt::compiler {
namespace {

TEST(MemoryPlan, ChainReusesBuffers) {
  // a -> b -> c -> d: each tensor lives for two steps; only two are alive at once.
  std::vector<Lifetime> t = {{1000, 0, 1}, {1000, 1, 2}, {1000, 2, 3}, {1000, 3, 4}};
  auto plan = PlanMemory(t);
  ASSERT_TRUE(plan.ok());
  EXPECT_EQ(plan->no_reuse_bytes, 4 * 1024);
  EXPECT_EQ(plan->arena_bytes, 2 * 1024);
  EXPECT_TRUE(VerifyPlan(t, *plan).ok());
}

TEST(MemoryPlan, RandomGraphsNeverOverlapAndAreDeterministic) {
  std::mt19937 rng(7);
  for (int round = 0; round < 200; ++round) {
    std::vector<Lifetime> t(1 + rng() % 40);
    for (auto& l : t) {
      l.first = static_cast<int32_t>(rng() % 30);
      l.last = l.first + static_cast<int32_t>(rng() % 10);
      l.bytes = static_cast<int64_t>(rng() % 100000);
    }
    auto plan = PlanMemory(t);
    ASSERT_TRUE(plan.ok());
    ASSERT_TRUE(VerifyPlan(t, *plan).ok()) << "round " << round;
    EXPECT_LE(plan->arena_bytes, plan->no_reuse_bytes);
    EXPECT_EQ(PlanMemory(t)->offsets, plan->offsets);
  }
}

TEST(MemoryPlan, RejectsBadLifetimes) {
  EXPECT_FALSE(PlanMemory({{10, 3, 1}}).ok());
  EXPECT_FALSE(PlanMemory({{-1, 0, 1}}).ok());
  // VerifyPlan catches an overlapping hand-made plan.
  std::vector<Lifetime> t = {{100, 0, 2}, {100, 1, 3}};
  MemoryPlan bad{{0, 0}, 128, 256};
  EXPECT_FALSE(VerifyPlan(t, bad).ok());
}

}  // namespace
}  // namespace clickrt::compiler
