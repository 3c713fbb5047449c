// Histogram calibrators (minmax, percentile, entropy) on synthetic distributions, and calibration
// of the bundled DeepFM / DCN-v2 graphs through the reference executor's observer.
#include "quant/calibrator.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>

#include "import/onnx/onnx_importer.h"
#include "passes/pipeline.h"
#include "reference/executor.h"

namespace clickrt::quant {
namespace {

const std::string kModels = std::string(CLICKRT_SOURCE_DIR) + "/models/";

Histogram Fill(const std::vector<float>& v, int bins = Histogram::kDefaultBins) {
  float amax = 0;
  for (float x : v) amax = std::max(amax, std::fabs(x));
  Histogram h(amax, bins);
  h.Add(v);
  return h;
}

// The entropy calibration exactly as histogram.h states it, with explicit P and Q vectors: the
// check of the optimized EntropyThreshold.
double SpecEntropyThreshold(const Histogram& h, int levels) {
  const auto& c = h.counts();
  const int bins = h.bins();
  double best = std::numeric_limits<double>::infinity();
  int best_i = -1;
  for (int i = levels; i <= bins; ++i) {
    std::vector<double> p(c.begin(), c.begin() + i);
    for (int j = i; j < bins; ++j) p[i - 1] += static_cast<double>(c[j]);
    std::vector<double> sum(levels, 0.0), nonzero(levels, 0.0);
    for (int j = 0; j < i; ++j) {
      sum[j * levels / i] += static_cast<double>(c[j]);
      nonzero[j * levels / i] += p[j] > 0;
    }
    std::vector<double> q(i, 0.0);
    for (int j = 0; j < i; ++j) {
      if (p[j] > 0)
        q[j] = sum[j * levels / i] > 0 ? sum[j * levels / i] / nonzero[j * levels / i] : 1e-4;
    }
    double ps = 0, qs = 0;
    for (int j = 0; j < i; ++j) ps += p[j], qs += q[j];
    if (qs <= 0 || std::accumulate(c.begin(), c.begin() + i, int64_t{0}) == 0) continue;
    double kl = 0;
    for (int j = 0; j < i; ++j) {
      if (p[j] > 0) kl += p[j] / ps * std::log((p[j] / ps) / (q[j] / qs));
    }
    if (kl < best) best = kl, best_i = i;
  }
  return best_i < 0 ? h.range() : std::min(h.range(), (best_i + 0.5) * h.bin_width());
}

TEST(Histogram, BinsAndFractionAbove) {
  Histogram h(4.0, 4);  // bins [0,1) [1,2) [2,3) [3,4]
  std::vector<float> v = {0.f, -0.5f, 1.f, 2.5f, -3.f, 4.f, 100.f};
  h.Add(v);
  EXPECT_EQ(h.counts(), (std::vector<int64_t>{2, 1, 1, 3}));
  EXPECT_EQ(h.total(), 7);
  EXPECT_DOUBLE_EQ(h.FractionAbove(4.0), 0.0);
  EXPECT_DOUBLE_EQ(h.FractionAbove(0.0), 1.0);
  EXPECT_DOUBLE_EQ(h.FractionAbove(3.0), 3.0 / 7);
  EXPECT_DOUBLE_EQ(h.FractionAbove(2.5), (0.5 + 3.0) / 7);  // half of bin 2 counted
  Histogram nz(4.0, 4);
  nz.Add(v, /*skip_zeros=*/true);
  EXPECT_EQ(nz.counts(), (std::vector<int64_t>{1, 1, 1, 3}));
  EXPECT_EQ(nz.total(), 6);
}

TEST(Calibrators, MinMaxIsAmax) {
  std::vector<float> v = {-7.25f, 1.f, 3.f};
  Histogram h = Fill(v);
  EXPECT_EQ(MinMaxThreshold(h), 7.25);
}

TEST(Calibrators, PercentileOnAKnownSet) {
  // 2000 values k + 0.5 in 2000 bins of width 1: value k lands in bin k.
  std::vector<float> v;
  for (int k = 0; k < 2000; ++k) v.push_back(k % 2 ? k + 0.5f : -(k + 0.5f));
  Histogram h(2000.0, 2000);
  h.Add(v);
  // The upper edge of the first bin whose cumulative count reaches p% of 2000.
  EXPECT_EQ(PercentileThreshold(h, 50).value(), 1000.0);
  EXPECT_EQ(PercentileThreshold(h, 99).value(), 1980.0);
  EXPECT_EQ(PercentileThreshold(h, 99.9).value(), 1998.0);
  EXPECT_EQ(PercentileThreshold(h, 99.99).value(), 2000.0);  // 1999.8 values: the last bin
  EXPECT_EQ(PercentileThreshold(h, 100).value(), 2000.0);
  EXPECT_EQ(PercentileThreshold(h, 0.05).value(), 1.0);
  EXPECT_FALSE(PercentileThreshold(h, 0).ok());
  EXPECT_FALSE(PercentileThreshold(h, 100.5).ok());
}

TEST(Calibrators, EntropyClipsAGaussiansOutliers) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(200000);
  for (float& x : v) x = normal(rng);
  for (int i = 0; i < 5; ++i) v.push_back(i % 2 ? 1000.f : -1000.f);
  Histogram h = Fill(v);
  ASSERT_EQ(h.range(), 1000.0);
  EXPECT_EQ(MinMaxThreshold(h), 1000.0);
  const double t = EntropyThreshold(h).value();
  // Well below amax: the smallest candidate (128 of 2048 bins) keeps the whole Gaussian.
  EXPECT_LT(t, 0.1 * h.range());
  EXPECT_GE(t, 128.5 * h.bin_width() - 1e-9);
  EXPECT_LT(h.FractionAbove(t), 1e-4);  // only the outliers are clipped
  EXPECT_EQ(t, SpecEntropyThreshold(h, 128));
}

TEST(Calibrators, EntropyOfAGaussianClipsItsTail) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal(0.f, 1.f);
  std::vector<float> v(200000);
  for (float& x : v) x = normal(rng);
  Histogram h = Fill(v);
  const double t = EntropyThreshold(h).value();
  EXPECT_GT(t, 2.0);  // keeps the body (2 sigma)
  EXPECT_LT(t, h.range());
  EXPECT_LT(h.FractionAbove(t), 0.01);
  EXPECT_EQ(t, SpecEntropyThreshold(h, 128));
}

TEST(Calibrators, EntropyOfAUniformKeepsTheMax) {
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> uniform(-1.f, 1.f);
  std::vector<float> v(200000);
  for (float& x : v) x = uniform(rng);
  Histogram h = Fill(v);
  const double t = EntropyThreshold(h).value();
  EXPECT_GE(t, 0.99 * h.range());
  EXPECT_LE(t, h.range());
}

TEST(Calibrators, EntropyMatchesTheSpecOnRandomHistograms) {
  std::mt19937 rng(5);
  for (int trial = 0; trial < 30; ++trial) {
    const int bins = 64 + static_cast<int>(rng() % 64);
    Histogram h(3.0, bins);
    for (int b = 0; b < bins; ++b) {
      if (rng() % 3 == 0) h.AddToBin(b, static_cast<int64_t>(rng() % 1000));
    }
    h.AddToBin(bins - 1, 1);
    SCOPED_TRACE("trial " + std::to_string(trial));
    EXPECT_EQ(EntropyThreshold(h, 8).value(), SpecEntropyThreshold(h, 8));
  }
}

TEST(Calibrators, DegenerateHistograms) {
  Histogram empty(0.0);
  EXPECT_EQ(EntropyThreshold(empty).value(), 0.0);
  EXPECT_EQ(PercentileThreshold(empty, 99).value(), 0.0);
  Histogram zeros(0.0);
  std::vector<float> z(100, 0.f);
  zeros.Add(z);
  EXPECT_EQ(EntropyThreshold(zeros).value(), 0.0);
  EXPECT_FALSE(EntropyThreshold(zeros, 0).ok());
  EXPECT_FALSE(EntropyThreshold(zeros, Histogram::kDefaultBins + 1).ok());
  // Every value at amax: nothing below any candidate but the full range.
  Histogram at_max(2.0);
  std::vector<float> twos(50, 2.f);
  at_max.Add(twos);
  EXPECT_EQ(EntropyThreshold(at_max).value(), 2.0);
}

TEST(Calibrators, OptionsAndTable) {
  EXPECT_EQ(ParseCalibrator("entropy").value(), CalibratorKind::kEntropy);
  EXPECT_EQ(ParseCalibrator("minmax").value(), CalibratorKind::kMinMax);
  EXPECT_EQ(ParseCalibrator("percentile").value(), CalibratorKind::kPercentile);
  auto bad = ParseCalibrator("kl");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("entropy, minmax, percentile"), std::string::npos);
  CalibratorOptions o;
  EXPECT_EQ(o.Param(), "bins=2048,levels=128");
  o.kind = CalibratorKind::kPercentile;
  EXPECT_EQ(o.Param(), "percentile=99.99,bins=2048");
  o.percentile = 0;
  EXPECT_FALSE(o.Validate().ok());
  o.percentile = 99.9;
  o.skip_zeros = true;
  EXPECT_EQ(o.Param(), "percentile=99.9,bins=2048,skip_zeros");
  o.percentile = 0;
  o.kind = CalibratorKind::kMinMax;
  EXPECT_EQ(o.Param(), "-");

  std::map<std::string, TensorStats> stats;
  std::vector<float> v = {0.1f, -3.3f, 2.f};
  stats["a"] = TensorStats{3.3f, Histogram(3.3f)};
  stats["a"].histogram.Add(v);
  stats["zero"] = TensorStats{0.f, Histogram(0.0)};
  stats["zero"].histogram.Add(std::vector<float>(4, 0.f));
  auto t = MakeCalibrationTable(stats, o, 3);
  ASSERT_TRUE(t.ok()) << t.status().ToString();
  EXPECT_EQ(t->calibrator, "minmax");
  EXPECT_EQ(t->rows, 3);
  EXPECT_EQ(t->scale.at("a"), static_cast<float>(static_cast<double>(3.3f) / 127.0));
  EXPECT_EQ(t->amax.at("a"), 3.3f);
  EXPECT_EQ(t->clipped.at("a"), 0.f);
  EXPECT_EQ(t->scale.at("zero"), static_cast<float>(1.0 / 127.0));  // all zero: threshold 1
}

std::unique_ptr<ir::Graph> Optimized(const std::string& model) {
  auto g = onnx_import::ImportModel(kModels + model + "/model.onnx");
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  if (!g.ok()) return nullptr;
  EXPECT_TRUE(passes::RunPipeline(**g, {}, nullptr).ok());
  return std::move(g).value();
}

TEST(ExecutorObserver, SeesInputsThenEveryComputedValueAndChangesNothing) {
  auto g = onnx_import::ImportModel(kModels + "deepfm/model.onnx");
  ASSERT_TRUE(g.ok());
  auto exec = reference::Executor::Create(g->get()).value();
  DatasetOptions d;
  d.path = kModels + "deepfm/val_inputs";
  d.batch_size = 16;
  auto data = Dataset::Open(d, InputSpecs(**g)).value();
  Batch b;
  ASSERT_TRUE(data->Next(&b).value());
  std::vector<std::string> seen;
  auto with = exec->Run(b.inputs, [&](const std::string& name, const Tensor& t) {
    seen.push_back(name);
    EXPECT_TRUE(t.defined()) << name;
  });
  auto without = exec->Run(b.inputs);
  ASSERT_TRUE(with.ok() && without.ok());
  const Tensor& a = with->at("prob");
  const Tensor& c = without->at("prob");
  EXPECT_EQ(std::memcmp(a.raw(), c.raw(), a.nbytes()), 0);
  ASSERT_GE(seen.size(), 3u);
  EXPECT_EQ(seen[0], "dense");
  EXPECT_EQ(seen[1], "sparse");
  EXPECT_EQ(seen.back(), "prob");
  size_t computed = 0;
  for (const auto& n : (*g)->nodes()) {
    for (const ir::Value* v : n->outputs) computed += v && !v->constant;
  }
  EXPECT_EQ(seen.size(), 2 + computed);
}

TEST(CalibrationTargets, DeepFmLinearInputs) {
  auto g = Optimized("deepfm");
  ASSERT_TRUE(g);
  EXPECT_EQ(
      CalibrationTargets(*g),
      (std::vector<std::string>{"/Log_output_0", "/Concat_output_0", "/dnn/dnn.1/Relu_output_0",
                                "/dnn/dnn.3/Relu_output_0", "/dnn/dnn.5/Relu_output_0"}));
}

TEST(CalibrationTargets, DcnV2CrossInputs) {
  auto g = Optimized("dcnv2");
  ASSERT_TRUE(g);
  const auto targets = CalibrationTargets(*g);
  int cross = 0;
  for (const auto& n : g->nodes()) {
    if (n->op != ir::OpKind::kCross) continue;
    ++cross;
    for (size_t s : {size_t{0}, size_t{1}}) {
      EXPECT_NE(std::find(targets.begin(), targets.end(), n->input(s)->name), targets.end())
          << n->input(s)->name;
    }
  }
  EXPECT_GT(cross, 0);
}

TEST(Calibrate, DeepFmAmaxIsTheTensorsMaxAndBatchSizeDoesNotMatter) {
  auto g = Optimized("deepfm");
  ASSERT_TRUE(g);
  DatasetOptions d;
  d.path = kModels + "deepfm/val_inputs";
  d.max_rows = 600;
  CalibratorOptions entropy;
  std::map<int64_t, CalibrationTable> by_batch;
  for (int64_t batch : {64, 600, 1000}) {
    d.batch_size = batch;
    auto data = Dataset::Open(d, InputSpecs(*g));
    ASSERT_TRUE(data.ok()) << data.status().ToString();
    std::vector<std::pair<int, int64_t>> progress;
    CollectOptions c;
    c.progress = [&](int pass, int64_t rows) { progress.push_back({pass, rows}); };
    auto t = Calibrate(*g, **data, entropy, c);
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    EXPECT_EQ(t->rows, 600);
    EXPECT_EQ(progress.back(), (std::pair<int, int64_t>{2, 600}));
    by_batch[batch] = *t;
  }
  EXPECT_EQ(by_batch[64].scale, by_batch[600].scale);
  EXPECT_EQ(by_batch[64].scale, by_batch[1000].scale);
  EXPECT_EQ(by_batch[64].amax, by_batch[1000].amax);

  // amax against the tensors themselves, all 600 rows in one run.
  d.batch_size = 600;
  auto data = Dataset::Open(d, InputSpecs(*g)).value();
  Batch b;
  ASSERT_TRUE(data->Next(&b).value());
  auto exec = reference::Executor::Create(g.get()).value();
  std::map<std::string, float> amax;
  ASSERT_TRUE(exec->Run(b.inputs,
                        [&](const std::string& name, const Tensor& t) {
                          if (!by_batch[600].amax.count(name)) return;
                          float m = 0;
                          for (float x : t.span<float>()) m = std::max(m, std::fabs(x));
                          amax[name] = m;
                        })
                  .ok());
  EXPECT_EQ(amax, by_batch[600].amax);
  for (const auto& [name, scale] : by_batch[600].scale) {
    EXPECT_GT(scale, 0.f) << name;
    EXPECT_LE(scale * 127.f, by_batch[600].amax.at(name) * 1.0001f) << name;
  }
}

TEST(Calibrate, UnknownValueIsAnError) {
  auto g = Optimized("deepfm");
  ASSERT_TRUE(g);
  DatasetOptions d;
  d.path = kModels + "deepfm/val_inputs";
  d.max_rows = 10;
  auto data = Dataset::Open(d, InputSpecs(*g)).value();
  CollectOptions c;
  c.values = {"no_such_value"};
  auto t = Calibrate(*g, *data, CalibratorOptions{}, c);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("no_such_value"), std::string::npos);
  c.values = {"sparse"};  // int64
  t = Calibrate(*g, *data, CalibratorOptions{}, c);
  ASSERT_FALSE(t.ok());
  EXPECT_NE(t.status().message().find("int64"), std::string::npos);
}

}  // namespace
}  // namespace clickrt::quant
