// Hand-computed cases for the reference Gather, layout and reduce kernels.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "kernels/cpu/reference/reference_kernels.h"

namespace clickrt::kernels::ref {
namespace {

constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
constexpr int64_t kMin = std::numeric_limits<int64_t>::min();

template <typename T>
std::vector<T> Values(const Tensor& t) {
  auto s = t.span<T>();
  return std::vector<T>(s.begin(), s.end());
}

Tensor F32(Dims dims, std::vector<float> v) { return Tensor::FromVector<float>(dims, v); }
Tensor I64(Dims dims, std::vector<int64_t> v) { return Tensor::FromVector<int64_t>(dims, v); }
Tensor I32(Dims dims, std::vector<int32_t> v) { return Tensor::FromVector<int32_t>(dims, v); }

// Passes when `message` contains `text`; prints the message otherwise.
::testing::AssertionResult Mentions(const std::string& message, const std::string& text) {
  if (message.find(text) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << "\"" << message << "\" does not mention \"" << text << "\"";
}

// 0, 1, .., n-1 as float32 of shape `dims`.
Tensor Iota(Dims dims) {
  std::vector<float> v(static_cast<size_t>(NumElements(dims)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return F32(dims, v);
}

// ---- Gather ------------------------------------------------------------------------------------

TEST(ReferenceGather, Axis0Int64Indices) {
  auto y = Gather(F32({3, 2}, {1, 2, 3, 4, 5, 6}), I64({2, 2}, {0, 1, 1, 2}), 0);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 2, 2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 2, 3, 4, 3, 4, 5, 6}));
}

TEST(ReferenceGather, NegativeAxisInt32NegativeIndices) {
  // data [[0,1,2],[3,4,5]], gather columns {-1 -> 2, 0}.
  auto y = Gather(Iota({2, 3}), I32({2}, {-1, 0}), -1);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{2, 0, 5, 3}));
}

TEST(ReferenceGather, ScalarIndexDropsAxis) {
  auto y = Gather(F32({3, 2}, {1, 2, 3, 4, 5, 6}), I64({}, {-2}), 0);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{3, 4}));
}

TEST(ReferenceGather, MiddleAxisInt8Data) {
  // data [2,3,2] int8 = 0..11; gather axis 1 with indices {2, 2, 0}.
  std::vector<int8_t> v(12);
  for (int i = 0; i < 12; ++i) v[i] = static_cast<int8_t>(i);
  auto y = Gather(Tensor::FromVector<int8_t>({2, 3, 2}, v), I64({3}, {2, 2, 0}), 1);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 3, 2}));
  EXPECT_EQ(Values<int8_t>(*y), (std::vector<int8_t>{4, 5, 4, 5, 0, 1, 10, 11, 10, 11, 6, 7}));
}

TEST(ReferenceGather, OutOfRangeNamesValueAndPosition) {
  std::vector<int64_t> idx(4 * 26, 0);
  idx[2 * 26 + 5] = 1000;
  auto y = Gather(Tensor::Zeros(DType::kFloat32, {500, 4}).value(), I64({4, 26}, idx), 0);
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.status().code(), StatusCode::kOutOfRange);
  const std::string& m = y.status().message();
  EXPECT_TRUE(Mentions(m, "index 1000"));
  EXPECT_TRUE(Mentions(m, "at [2, 5]"));
  EXPECT_TRUE(Mentions(m, "int64[4,26]"));
  EXPECT_TRUE(Mentions(m, "[-500, 500)"));
  EXPECT_TRUE(Mentions(m, "axis 0"));
}

TEST(ReferenceGather, BadArguments) {
  EXPECT_EQ(Gather(Iota({3}), I32({1}, {-4}), 0).status().code(), StatusCode::kOutOfRange);
  EXPECT_FALSE(Gather(Iota({3}), I64({1}, {0}), 1).ok());
  EXPECT_FALSE(Gather(Iota({3}), F32({1}, {0}), 0).ok());
  EXPECT_FALSE(Gather(Iota({}), I64({1}, {0}), 0).ok());
}

TEST(ReferenceGatherElements, OnnxExamples) {
  auto y = GatherElements(F32({2, 2}, {1, 2, 3, 4}), I64({2, 2}, {0, 0, 1, 0}), 1);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 1, 4, 3}));

  y = GatherElements(F32({3, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9}), I32({2, 3}, {1, 2, 0, 2, 0, 0}), 0);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 3}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{4, 8, 3, 7, 2, 3}));
}

TEST(ReferenceGatherElements, NegativeAxisAndIndices) {
  auto y = GatherElements(F32({2, 3}, {1, 2, 3, 4, 5, 6}), I64({2, 1}, {-1, -3}), -1);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 1}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{3, 4}));
}

TEST(ReferenceGatherElements, Errors) {
  auto y = GatherElements(F32({2, 2}, {1, 2, 3, 4}), I64({2, 2}, {0, 0, 2, 0}), 1);
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.status().code(), StatusCode::kOutOfRange);
  EXPECT_TRUE(Mentions(y.status().message(), "index 2 at [1, 0]"));
  EXPECT_FALSE(GatherElements(Iota({2, 2}), I64({4}, {0, 0, 0, 0}), 0).ok());  // rank
  EXPECT_FALSE(GatherElements(Iota({2, 2}), I64({1, 3}, {0, 0, 0}), 0).ok());  // too wide
}

// ---- Concat / Split ----------------------------------------------------------------------------

TEST(ReferenceConcat, AxesAndZeroSize) {
  Tensor a = F32({2, 2}, {1, 2, 3, 4});
  Tensor b = F32({2, 1}, {5, 6});
  auto y = Concat({a, b}, -1);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 3}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 2, 5, 3, 4, 6}));

  Tensor empty = Tensor::Zeros(DType::kFloat32, {0, 2}).value();
  y = Concat({empty, a, F32({1, 2}, {7, 8})}, 0);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{3, 2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 2, 3, 4, 7, 8}));
}

TEST(ReferenceConcat, Errors) {
  auto y = Concat({Iota({2, 3}), Iota({2, 3, 1})}, 0);
  ASSERT_FALSE(y.ok());
  EXPECT_EQ(y.status().code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE(Mentions(y.status().message(), "float32[2,3]"));
  EXPECT_TRUE(Mentions(y.status().message(), "float32[2,3,1]"));
  y = Concat({Iota({2, 3}), Iota({3, 3})}, 1);
  ASSERT_FALSE(y.ok());
  EXPECT_TRUE(Mentions(y.status().message(), "float32[3,3]"));
  EXPECT_FALSE(Concat({}, 0).ok());
  EXPECT_FALSE(Concat({Iota({2})}, 1).ok());
  EXPECT_FALSE(Concat({Iota({2}), I64({2}, {0, 1})}, 0).ok());
}

TEST(ReferenceSplit, NegativeAxis) {
  auto ys = Split(Iota({2, 5}), -1, {2, 0, 3});
  ASSERT_TRUE(ys.ok()) << ys.status().ToString();
  ASSERT_EQ(ys->size(), 3u);
  EXPECT_EQ((*ys)[0].dims(), (Dims{2, 2}));
  EXPECT_EQ(Values<float>((*ys)[0]), (std::vector<float>{0, 1, 5, 6}));
  EXPECT_EQ((*ys)[1].dims(), (Dims{2, 0}));
  EXPECT_EQ(Values<float>((*ys)[2]), (std::vector<float>{2, 3, 4, 7, 8, 9}));
  EXPECT_FALSE(Split(Iota({2, 5}), 1, {2, 2}).ok());
  EXPECT_FALSE(Split(Iota({2, 5}), 1, {6, -1}).ok());
  EXPECT_FALSE(Split(Iota({2, 5}), 2, {1, 1}).ok());
}

// ---- Slice -------------------------------------------------------------------------------------

TEST(ReferenceSlice, OnnxExampleWithSteps) {
  auto y = Slice(F32({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8}), {1, 0}, {2, 3}, {0, 1}, {1, 2});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{1, 2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{5, 7}));
}

TEST(ReferenceSlice, DefaultsAndInt64MaxEnd) {
  // Empty axes and steps: axes 0..k-1, step 1. ends INT64_MAX clamps to the dim.
  auto y = Slice(Iota({3, 4}), {1, -2}, {kMax, kMax}, {}, {});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{6, 7, 10, 11}));
}

TEST(ReferenceSlice, NegativeStepReversesWithInt64MinEnd) {
  auto y = Slice(Iota({3, 4}), {-1}, {kMin}, {-1}, {-1});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{3, 4}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{3, 2, 1, 0, 7, 6, 5, 4, 11, 10, 9, 8}));
}

TEST(ReferenceSlice, NegativeStrides) {
  auto y = Slice(Iota({10}), {8}, {1}, {0}, {-3});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{8, 5, 2}));
  // start beyond the end clamps to dim-1.
  y = Slice(Iota({10}), {100}, {-100}, {0}, {-4});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{9, 5, 1}));
  y = Slice(Iota({10}), {-1}, {kMin}, {0}, {kMin});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{9}));
}

TEST(ReferenceSlice, EmptyResults) {
  auto y = Slice(Iota({3, 4}), {3}, {1}, {1}, {1});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{3, 0}));
  y = Slice(Iota({0, 4}), {0}, {kMin}, {0}, {-1});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{0, 4}));
}

TEST(ReferenceSlice, Errors) {
  EXPECT_FALSE(Slice(Iota({3, 4}), {0}, {1}, {0}, {0}).ok());           // step 0
  EXPECT_FALSE(Slice(Iota({3, 4}), {0, 0}, {1, 1}, {1, -1}, {}).ok());  // repeated axis
  EXPECT_FALSE(Slice(Iota({3, 4}), {0}, {1}, {2}, {}).ok());            // axis out of range
  EXPECT_FALSE(Slice(Iota({3, 4}), {0, 0}, {1}, {}, {}).ok());          // lengths differ
}

// ---- Transpose / Expand / Tile -----------------------------------------------------------------

TEST(ReferenceTranspose, DefaultPermReverses) {
  // x [2,1,3] = 0..5; out[k, j, i] = x[i, j, k].
  auto y = Transpose(Iota({2, 1, 3}), {});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{3, 1, 2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(ReferenceTranspose, ExplicitPerm) {
  // x [2,3,4], perm {1,2,0}: out[j, k, i] = x[i, j, k] = 12i + 4j + k.
  auto y = Transpose(Iota({2, 3, 4}), {1, 2, 0});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{3, 4, 2}));
  std::vector<float> want;
  for (int j = 0; j < 3; ++j)
    for (int k = 0; k < 4; ++k)
      for (int i = 0; i < 2; ++i) want.push_back(static_cast<float>(12 * i + 4 * j + k));
  EXPECT_EQ(Values<float>(*y), want);
  EXPECT_FALSE(Transpose(Iota({2, 3}), {0, 0}).ok());
  EXPECT_FALSE(Transpose(Iota({2, 3}), {1}).ok());
  EXPECT_FALSE(Transpose(Iota({2, 3}), {0, 2}).ok());
}

TEST(ReferenceExpand, Broadcasts) {
  auto y = Expand(F32({3, 1}, {1, 2, 3}), {2, 1, 4});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 3, 4}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3,
                                                   1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3}));
  // Bidirectional: a shape dim of 1 keeps x's dim.
  y = Expand(I64({1, 3}, {7, 8, 9}), {2, 1});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 3}));
  EXPECT_EQ(Values<int64_t>(*y), (std::vector<int64_t>{7, 8, 9, 7, 8, 9}));
  y = Expand(F32({}, {5}), {2});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{5, 5}));
  EXPECT_FALSE(Expand(Iota({3}), {2}).ok());
  EXPECT_FALSE(Expand(Iota({3}), {-1}).ok());
}

TEST(ReferenceTile, Repeats) {
  Tensor x = F32({2, 2}, {1, 2, 3, 4});
  auto y = Tile(x, {1, 2});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 4}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 2, 1, 2, 3, 4, 3, 4}));
  y = Tile(x, {2, 1});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 2, 3, 4, 1, 2, 3, 4}));
  y = Tile(F32({1, 3}, {1, 2, 3}), {2, 2});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 6}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{1, 2, 3, 1, 2, 3, 1, 2, 3, 1, 2, 3}));
  y = Tile(x, {0, 3});
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{0, 6}));
  EXPECT_FALSE(Tile(x, {2}).ok());
  EXPECT_FALSE(Tile(x, {-1, 1}).ok());
}

// ---- Reduce ------------------------------------------------------------------------------------

TEST(ReferenceReduce, SumKeepdims) {
  Tensor x = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  auto y = Reduce(ReduceOp::kSum, x, {1}, true, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 1}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{6, 15}));
  y = Reduce(ReduceOp::kSum, x, {1}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{6, 15}));
}

TEST(ReferenceReduce, MeanNegativeAxis) {
  auto y = Reduce(ReduceOp::kMean, F32({2, 3}, {1, 2, 3, 4, 5, 6}), {-2}, true, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{1, 3}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{2.5f, 3.5f, 4.5f}));
}

TEST(ReferenceReduce, EmptyAxesReducesAllOrIsNoop) {
  Tensor x = F32({2, 3}, {1, 9, 3, 4, 5, 6});
  auto y = Reduce(ReduceOp::kMax, x, {}, true, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{1, 1}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{9}));
  y = Reduce(ReduceOp::kSum, x, {}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{}));
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{28}));
  y = Reduce(ReduceOp::kSum, x, {}, false, true);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 3}));
  EXPECT_EQ(Values<float>(*y), Values<float>(x));
}

TEST(ReferenceReduce, MiddleAxisOfRank3Double) {
  // x [2,2,2] = 0..7; sum over axis 1: out[i, k] = x[i,0,k] + x[i,1,k].
  std::vector<double> v{0, 1, 2, 3, 4, 5, 6, 7};
  auto y = Reduce(ReduceOp::kSum, Tensor::FromVector<double>({2, 2, 2}, v), {1}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dims(), (Dims{2, 2}));
  EXPECT_EQ(Values<double>(*y), (std::vector<double>{2, 4, 10, 12}));
}

TEST(ReferenceReduce, Integers) {
  Tensor x = I32({2, 2}, {1, 2, 4, 7});
  auto y = Reduce(ReduceOp::kMean, x, {1}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<int32_t>(*y), (std::vector<int32_t>{1, 5}));  // 3/2, 11/2 truncated
  y = Reduce(ReduceOp::kSum, x, {0}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<int32_t>(*y), (std::vector<int32_t>{5, 9}));
  auto z = Reduce(ReduceOp::kMax, I64({3}, {-5, -2, -9}), {0}, true, false);
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  EXPECT_EQ(z->dims(), (Dims{1}));
  EXPECT_EQ(Values<int64_t>(*z), (std::vector<int64_t>{-2}));
}

TEST(ReferenceReduce, EmptySet) {
  Tensor x = Tensor::Zeros(DType::kFloat32, {0, 3}).value();
  auto y = Reduce(ReduceOp::kSum, x, {0}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{0, 0, 0}));
  y = Reduce(ReduceOp::kMean, x, {0}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_TRUE(std::isnan(Values<float>(*y)[0]));
  y = Reduce(ReduceOp::kMax, x, {0}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(Values<float>(*y)[0], -std::numeric_limits<float>::infinity());
  auto z = Reduce(ReduceOp::kMax, Tensor::Zeros(DType::kInt32, {2, 0}).value(), {1}, false, false);
  ASSERT_TRUE(z.ok()) << z.status().ToString();
  EXPECT_EQ(Values<int32_t>(*z), (std::vector<int32_t>{std::numeric_limits<int32_t>::lowest(),
                                                       std::numeric_limits<int32_t>::lowest()}));
}

TEST(ReferenceReduce, MaxPropagatesNan) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  auto y = Reduce(ReduceOp::kMax, F32({2, 2}, {nan, 1, 2, nan}), {1}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_TRUE(std::isnan(Values<float>(*y)[0]));
  EXPECT_TRUE(std::isnan(Values<float>(*y)[1]));
}

TEST(ReferenceReduce, Float16RoundTrips) {
  Tensor x = Tensor::Zeros(DType::kFloat16, {3}).value();
  for (int i = 0; i < 3; ++i) x.data<uint16_t>()[i] = FloatToHalf(static_cast<float>(i + 1));
  auto y = Reduce(ReduceOp::kSum, x, {0}, false, false);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  EXPECT_EQ(y->dtype(), DType::kFloat16);
  EXPECT_EQ(HalfToFloat(y->data<uint16_t>()[0]), 6.f);
}

TEST(ReferenceReduce, Errors) {
  Tensor x = Iota({2, 3});
  EXPECT_FALSE(Reduce(ReduceOp::kSum, x, {1, -1}, true, false).ok());  // duplicate
  EXPECT_FALSE(Reduce(ReduceOp::kSum, x, {2}, true, false).ok());      // out of range
  Tensor b = Tensor::Zeros(DType::kBool, {2}).value();
  EXPECT_EQ(Reduce(ReduceOp::kSum, b, {0}, true, false).status().code(),
            StatusCode::kUnimplemented);
}

}  // namespace
}  // namespace clickrt::kernels::ref
