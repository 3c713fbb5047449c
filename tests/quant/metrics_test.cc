// AUC (exact, ties averaged) and log loss against hand-computed cases and a brute-force pair count.
#include "quant/metrics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace clickrt::quant {
namespace {

TEST(Auc, HandComputed) {
  // 3 of the 4 (positive, negative) pairs are ordered right.
  std::vector<float> s = {0.1f, 0.4f, 0.35f, 0.8f}, y = {0, 0, 1, 1};
  EXPECT_DOUBLE_EQ(Auc(s, y).value(), 0.75);
  // Ties: positives {0.5, 0.9}, negatives {0.5, 0.2}: 0.5 + 1 + 1 + 1 of 4 pairs.
  s = {0.5f, 0.5f, 0.2f, 0.9f};
  y = {1, 0, 0, 1};
  EXPECT_DOUBLE_EQ(Auc(s, y).value(), 0.875);
  s = {0.3f, 0.3f, 0.3f};  // all tied
  y = {1, 0, 0};
  EXPECT_DOUBLE_EQ(Auc(s, y).value(), 0.5);
  s = {0.9f, 0.1f};  // perfectly wrong
  y = {0, 1};
  EXPECT_DOUBLE_EQ(Auc(s, y).value(), 0.0);
}

TEST(Auc, EqualsPairCountingWithTies) {
  std::mt19937 rng(1);
  std::vector<float> s(3000), y(3000);
  for (size_t i = 0; i < s.size(); ++i) {
    s[i] = static_cast<float>(rng() % 20) / 20.f;  // many ties
    y[i] = (rng() % 100) < 20 + 3 * (s[i] * 20) ? 1.f : 0.f;
  }
  double ordered = 0, pairs = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    if (y[i] != 1) continue;
    for (size_t j = 0; j < s.size(); ++j) {
      if (y[j] != 0) continue;
      pairs += 1;
      ordered += s[i] > s[j] ? 1.0 : s[i] == s[j] ? 0.5 : 0.0;
    }
  }
  EXPECT_NEAR(Auc(s, y).value(), ordered / pairs, 1e-12);
}

TEST(Auc, Errors) {
  std::vector<float> s = {0.1f, 0.2f}, y = {1, 1};
  EXPECT_EQ(Auc(s, y).status().code(), StatusCode::kFailedPrecondition);  // one class
  y = {1, 0.5f};
  EXPECT_EQ(Auc(s, y).status().code(), StatusCode::kInvalidArgument);
  y = {1};
  EXPECT_EQ(Auc(s, y).status().code(), StatusCode::kInvalidArgument);  // sizes
  y = {1, std::nanf("")};
  EXPECT_EQ(Auc(s, y).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Auc({}, {}).ok());
}

TEST(LogLoss, HandComputedAndClipped) {
  std::vector<float> s = {0.9f, 0.2f}, y = {1, 0};
  EXPECT_NEAR(LogLoss(s, y).value(),
              -(std::log(static_cast<double>(0.9f)) + std::log(1 - static_cast<double>(0.2f))) / 2,
              1e-15);
  s = {0.f, 1.f};  // confidently wrong: clipped at 1e-15
  y = {1, 0};
  EXPECT_NEAR(LogLoss(s, y).value(), -(std::log(1e-15) + std::log(1 - (1 - 1e-15))) / 2, 1e-12);
  EXPECT_GT(LogLoss(s, y).value(), 34.5);
  s = {1.5f};
  y = {1};
  EXPECT_EQ(LogLoss(s, y).status().code(), StatusCode::kInvalidArgument);
}

TEST(EvaluateScores, Both) {
  std::vector<float> s = {0.1f, 0.4f, 0.35f, 0.8f}, y = {0, 0, 1, 1};
  auto m = EvaluateScores(s, y);
  ASSERT_TRUE(m.ok());
  EXPECT_EQ(m->rows, 4);
  EXPECT_EQ(m->positives, 2);
  EXPECT_DOUBLE_EQ(m->auc, 0.75);
  EXPECT_DOUBLE_EQ(m->logloss, LogLoss(s, y).value());
}

}  // namespace
}  // namespace clickrt::quant
