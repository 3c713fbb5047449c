#include "base/tensor.h"

#include <cmath>

#include <gtest/gtest.h>

namespace clickrt {
namespace {

TEST(TensorTest, ZerosAndReshape) {
  auto t = Tensor::Zeros(DType::kFloat32, {2, 3});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->size(), 6);
  EXPECT_EQ(t->nbytes(), 24u);
  EXPECT_EQ(t->data<float>()[5], 0.f);
  EXPECT_EQ(t->Describe(), "float32[2,3]");
  auto r = t->Reshaped({3, 2});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->raw(), t->raw());  // shares the buffer
  EXPECT_FALSE(t->Reshaped({4}).ok());
}

TEST(TensorTest, RejectsNegativeAndHugeShapes) {
  EXPECT_EQ(Tensor::Zeros(DType::kFloat32, {-1, 3}).status().code(), StatusCode::kInvalidArgument);
  EXPECT_FALSE(Tensor::Zeros(DType::kFloat32, {1LL << 40, 1LL << 40}).ok());
}

TEST(TensorTest, HalfConversionsRoundTrip) {
  for (float f : {0.f, 1.f, -2.5f, 65504.f, 6.1035156e-05f, 5.9604645e-08f}) {
    EXPECT_EQ(HalfToFloat(FloatToHalf(f)), f) << f;
  }
  EXPECT_TRUE(std::isinf(HalfToFloat(FloatToHalf(1e6f))));
  EXPECT_EQ(FloatToHalf(1.0009765625f + 1e-7f), 0x3c01);  // rounds to nearest
  EXPECT_EQ(BFloat16ToFloat(FloatToBFloat16(3.140625f)), 3.140625f);
}

TEST(TensorTest, DTypeFromOnnxNamesUnsupportedType) {
  auto s = DTypeFromOnnx(8);
  EXPECT_EQ(s.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(s.status().message().find("STRING"), std::string::npos);
  EXPECT_EQ(DTypeFromOnnx(7).value(), DType::kInt64);
}

}  // namespace
}  // namespace clickrt
