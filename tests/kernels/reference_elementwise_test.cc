#include <cmath>

#include <gtest/gtest.h>

#include "kernels/cpu/reference/reference_kernels.h"

namespace clickrt::kernels::ref {
namespace {

TEST(ReferenceElementwise, BroadcastAdd) {
  Tensor a = Tensor::FromVector<float>({2, 1}, {1, 2});
  Tensor b = Tensor::FromVector<float>({3}, {10, 20, 30});
  auto c = Binary(BinaryOp::kAdd, a, b);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->dims(), (Dims{2, 3}));
  std::vector<float> want = {11, 21, 31, 12, 22, 32};
  for (int i = 0; i < 6; ++i) EXPECT_EQ(c->data<float>()[i], want[i]);
}

TEST(ReferenceElementwise, DtypeMismatchAndBadBroadcastAreErrors) {
  Tensor a = Tensor::FromVector<float>({2}, {1, 2});
  Tensor i = Tensor::FromVector<int64_t>({2}, {1, 2});
  EXPECT_EQ(Binary(BinaryOp::kMul, a, i).status().code(), StatusCode::kInvalidArgument);
  Tensor b = Tensor::FromVector<float>({3}, {1, 2, 3});
  EXPECT_FALSE(Binary(BinaryOp::kAdd, a, b).ok());
}

TEST(ReferenceElementwise, IntegerDivisionAndComparisons) {
  Tensor a = Tensor::FromVector<int64_t>({3}, {7, -7, 9});
  Tensor b = Tensor::FromVector<int64_t>({3}, {2, 2, 3});
  auto d = Binary(BinaryOp::kDiv, a, b).value();
  EXPECT_EQ(d.data<int64_t>()[0], 3);
  EXPECT_EQ(d.data<int64_t>()[1], -3);
  auto g = Binary(BinaryOp::kGreater, a, b).value();
  EXPECT_EQ(g.dtype(), DType::kBool);
  EXPECT_TRUE(g.data<bool>()[0]);
  EXPECT_FALSE(g.data<bool>()[1]);
}

TEST(ReferenceElementwise, SigmoidIsStableAtExtremes) {
  Tensor x = Tensor::FromVector<float>({3}, {-1000.f, 0.f, 1000.f});
  auto y = Unary(UnaryOp::kSigmoid, x).value();
  EXPECT_EQ(y.data<float>()[0], 0.f);
  EXPECT_EQ(y.data<float>()[1], 0.5f);
  EXPECT_EQ(y.data<float>()[2], 1.f);
}

TEST(ReferenceElementwise, PowMixedTypesAndHalf) {
  Tensor base = Tensor::FromVector<int64_t>({3}, {1, 2, 3});
  Tensor e = Tensor::FromVector<float>({3}, {4, 5, 6});
  auto p = Binary(BinaryOp::kPow, base, e).value();
  EXPECT_EQ(p.dtype(), DType::kInt64);
  EXPECT_EQ(p.data<int64_t>()[2], 729);
  Tensor h = Cast(Tensor::FromVector<float>({2}, {1.5f, -2.f}), DType::kFloat16).value();
  auto r = Unary(UnaryOp::kRelu, h).value();
  EXPECT_EQ(r.dtype(), DType::kFloat16);
  EXPECT_EQ(HalfToFloat(r.data<uint16_t>()[0]), 1.5f);
  EXPECT_EQ(HalfToFloat(r.data<uint16_t>()[1]), 0.f);
}

TEST(ReferenceElementwise, GemmWithBroadcastBias) {
  Tensor a = Tensor::FromVector<float>({2, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::FromVector<float>({2, 2}, {1, 0, 0, 1});
  Tensor c = Tensor::FromVector<float>({2}, {10, 20});
  auto y = Gemm(a, b, &c, 2.f, 1.f, false, true).value();
  std::vector<float> want = {12, 24, 16, 28};
  for (int i = 0; i < 4; ++i) EXPECT_EQ(y.data<float>()[i], want[i]);
  Tensor bad = Tensor::FromVector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  EXPECT_FALSE(Gemm(a, bad, nullptr, 1, 1, false, false).ok());
}

TEST(ReferenceElementwise, BatchedMatMul) {
  Tensor a = Tensor::FromVector<float>({2, 1, 2}, {1, 2, 3, 4});
  Tensor b = Tensor::FromVector<float>({2, 1}, {1, 1});
  auto y = MatMul(a, b).value();
  EXPECT_EQ(y.dims(), (Dims{2, 1, 1}));
  EXPECT_EQ(y.data<float>()[0], 3.f);
  EXPECT_EQ(y.data<float>()[1], 7.f);
}

TEST(ReferenceElementwise, SoftmaxAndLayerNorm) {
  Tensor x = Tensor::FromVector<float>({1, 3}, {1, 2, 3});
  auto s = Softmax(x, -1, false).value();
  double e1 = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0);
  EXPECT_NEAR(s.data<float>()[2], e3 / (e1 + e2 + e3), 1e-7);
  Tensor scale = Tensor::FromVector<float>({3}, {1, 1, 1});
  Tensor y, mean, inv;
  ASSERT_TRUE(LayerNorm(x, scale, nullptr, -1, 0.f, &y, &mean, &inv).ok());
  EXPECT_NEAR(mean.data<float>()[0], 2.f, 1e-7);
  EXPECT_NEAR(y.data<float>()[0], -std::sqrt(1.5), 1e-6);
}

}  // namespace
}  // namespace clickrt::kernels::ref
