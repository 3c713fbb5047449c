// The mixed-precision search's decisions, with an evaluator whose AUC is a known function of the
// assignment (each INT8 layer costs a fixed amount), so every choice can be checked exactly.
#include "quant/precision_search.h"

#include <gtest/gtest.h>

#include <map>

namespace clickrt::quant {
namespace {

std::vector<QuantizableLayer> Layers() {
  return {{"fc0", "Linear", "x0", 429, 200},
          {"fc1", "Linear", "x1", 200, 200},
          {"fc2", "Linear", "x2", 200, 200},
          {"logit", "Linear", "x3", 200, 1}};
}

// AUC = 0.8 - cost of every INT8 layer - cost of the embedding format.
EvaluateFn Additive(std::map<std::string, double> cost, double emb_cost, int* calls) {
  return [=](const QuantizeOptions& q) -> StatusOr<double> {
    ++*calls;
    double auc = 0.8;
    for (const auto& [name, c] : cost) {
      if (!q.keep_float.count(name)) auc -= c;
    }
    if (q.embeddings != EmbeddingFormat::kFloat32) auc -= emb_cost;
    return auc;
  };
}

TEST(PrecisionSearch, AllInt8WithinBudgetStopsAfterTwoEngines) {
  int calls = 0;
  SearchOptions o;
  o.max_auc_drop = 0.001;
  auto r = SearchPrecision(Layers(), o,
                           Additive({{"fc0", 1e-4}, {"fc1", 1e-4}, {"fc2", 1e-4}, {"logit", 1e-4}},
                                    0, &calls));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  EXPECT_EQ(calls, 2);
  EXPECT_TRUE(r->chosen.keep_float.empty());
  EXPECT_NEAR(r->float_auc - r->chosen_auc, 4e-4, 1e-12);
  EXPECT_TRUE(r->sensitivity.empty());
}

TEST(PrecisionSearch, KeepsTheSensitiveLayersInFloat) {
  int calls = 0;
  SearchOptions o;
  o.max_auc_drop = 0.001;
  // logit alone breaks the budget; fc1 + fc0 together would too (0.0006 + 0.0007 > 0.001).
  auto r = SearchPrecision(
      Layers(), o,
      Additive({{"fc0", 7e-4}, {"fc1", 6e-4}, {"fc2", 1e-4}, {"logit", 5e-3}}, 0, &calls));
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  // Least sensitive first: fc2 (1e-4), fc1 (+6e-4 = 7e-4 ok), fc0 (+7e-4 = 1.4e-3 no), logit no.
  EXPECT_EQ(r->chosen.keep_float, (std::set<std::string>{"fc0", "logit"}));
  EXPECT_NEAR(r->float_auc - r->chosen_auc, 7e-4, 1e-12);
  ASSERT_EQ(r->sensitivity.size(), 4u);
  EXPECT_NEAR(r->sensitivity[3].drop, 5e-3, 1e-12);
  // float, all-int8, 4 sensitivities, then fc1, fc0, logit added in turn (fc2 reuses its run).
  EXPECT_EQ(calls, 2 + 4 + 3);
  EXPECT_EQ(r->evaluations, calls);
  EXPECT_NE(r->report.find("logit"), std::string::npos);
}

TEST(PrecisionSearch, FailsWhenMixedPrecisionIsOff) {
  int calls = 0;
  SearchOptions o;
  o.allow_mixed = false;
  auto r = SearchPrecision(Layers(), o, Additive({{"logit", 5e-3}}, 0, &calls));
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(r.status().message().find("mixed precision is off"), std::string::npos);
  EXPECT_NE(r.status().message().find("0.00500"), std::string::npos) << r.status().message();
}

TEST(PrecisionSearch, FailsWhenNoLayerFits) {
  int calls = 0;
  SearchOptions o;
  auto r = SearchPrecision(
      Layers(), o,
      Additive({{"fc0", 2e-3}, {"fc1", 2e-3}, {"fc2", 2e-3}, {"logit", 2e-3}}, 0, &calls));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no layer can run in INT8"), std::string::npos);
}

TEST(PrecisionSearch, FailsWhenTheEmbeddingFormatAloneCostsTooMuch) {
  int calls = 0;
  SearchOptions o;
  o.base.embeddings = EmbeddingFormat::kInt4Rowwise;
  auto r = SearchPrecision(Layers(), o, Additive({{"fc0", 1e-4}}, 3e-3, &calls));
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("int4 embeddings alone"), std::string::npos);
  EXPECT_EQ(calls, 3);
}

TEST(PrecisionSearch, EvaluationErrorsNameTheCandidate) {
  SearchOptions o;
  auto r = SearchPrecision(Layers(), o, [](const QuantizeOptions& q) -> StatusOr<double> {
    if (q.keep_float.empty()) return Internal("engine exploded");
    return 0.8;
  });
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("all INT8"), std::string::npos);
  EXPECT_NE(r.status().message().find("engine exploded"), std::string::npos);
}

TEST(PrecisionSearch, RejectsANegativeBudget) {
  SearchOptions o;
  o.max_auc_drop = -1;
  int calls = 0;
  EXPECT_FALSE(SearchPrecision(Layers(), o, Additive({}, 0, &calls)).ok());
}

}  // namespace
}  // namespace clickrt::quant
