// QuantizeLinear / DequantizeLinear: the reference kernels (rounding, saturation, per-axis, zero
// points), their inference, and what the importer refuses (block quantization, float8 codes).
// ONNX's own node tests for both ops run in tests/conformance.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>

#include "../onnx_builder.h"
#include "import/onnx/onnx_importer.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "reference/executor.h"

namespace clickrt {
namespace {

namespace ref = kernels::ref;
using testing::OnnxBuilder;

template <typename T>
std::vector<T> Values(const Tensor& t) {
  return std::vector<T>(t.data<T>(), t.data<T>() + t.size());
}

TEST(QuantizeLinearRef, RoundsHalfToEvenAndSaturates) {
  Tensor x = Tensor::FromVector<float>(
      {10}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 126.6f, 200.f, -127.6f, -1000.f});
  Tensor s = Tensor::FromVector<float>({}, {1.f});
  Tensor z = Tensor::FromVector<int8_t>({}, {0});
  auto y = ref::QuantizeLinear(x, s, &z, 1, DType::kInt8);
  ASSERT_TRUE(y.ok()) << y.status().ToString();
  // int8 saturates at -128, not -127 (ONNX); the symmetric INT8 kernels clamp at -127.
  EXPECT_EQ(Values<int8_t>(*y), (std::vector<int8_t>{0, 2, 2, 0, -2, -2, 127, 127, -128, -128}));

  Tensor zu = Tensor::FromVector<uint8_t>({}, {128});
  auto u = ref::QuantizeLinear(x, s, &zu, 1, DType::kUInt8);
  ASSERT_TRUE(u.ok());
  EXPECT_EQ(Values<uint8_t>(*u),
            (std::vector<uint8_t>{128, 130, 130, 128, 126, 126, 255, 255, 0, 0}));
  // No zero point: uint8 with zero point 0.
  auto u0 = ref::QuantizeLinear(x, s, nullptr, 1, DType::kUInt8);
  ASSERT_TRUE(u0.ok());
  EXPECT_EQ(Values<uint8_t>(*u0), (std::vector<uint8_t>{0, 2, 2, 0, 0, 0, 127, 200, 0, 0}));
}

// The definition, element by element: saturate(nearbyint(x / s) + z) (round half to even), on
// values around and beyond the range and exactly on halves.
TEST(QuantizeLinearRef, MatchesTheDefinitionOnManyValues) {
  std::vector<float> xs;
  for (int i = -70000; i <= 70000; ++i) xs.push_back(static_cast<float>(i) * 0.0625f);  // halves
  for (int i = 0; i < 5000; ++i) xs.push_back(std::sin(i * 1.37f) * 400.f);
  xs.push_back(std::numeric_limits<float>::infinity());
  xs.push_back(-std::numeric_limits<float>::infinity());
  Tensor x = Tensor::FromVector<float>({static_cast<int64_t>(xs.size())}, xs);
  for (float s : {1.f, 0.5f, 0.0625f, 0.037f}) {
    for (int z : {-128, -3, 0, 17, 127}) {
      Tensor st = Tensor::FromVector<float>({}, {s});
      Tensor zt = Tensor::FromVector<int8_t>({}, {static_cast<int8_t>(z)});
      auto y = ref::QuantizeLinear(x, st, &zt, 0, DType::kInt8);
      ASSERT_TRUE(y.ok());
      for (size_t i = 0; i < xs.size(); ++i) {
        const float want = std::min(127.f, std::max(-128.f, std::nearbyint(xs[i] / s) + z));
        ASSERT_EQ(y->data<int8_t>()[i], static_cast<int8_t>(want))
            << "x " << xs[i] << " scale " << s << " zero point " << z;
      }
    }
  }
}

TEST(QuantizeLinearRef, NaNGoesToTheZeroPointAndDivisionIsFloat32) {
  Tensor x = Tensor::FromVector<float>({3}, {std::numeric_limits<float>::quiet_NaN(), 0.3f, 0.7f});
  Tensor s = Tensor::FromVector<float>({1}, {0.1f});
  Tensor z = Tensor::FromVector<int8_t>({1}, {5});
  auto y = ref::QuantizeLinear(x, s, &z, 0, DType::kInt8);
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(Values<int8_t>(*y),
            (std::vector<int8_t>{5, static_cast<int8_t>(std::nearbyint(0.3f / 0.1f) + 5),
                                 static_cast<int8_t>(std::nearbyint(0.7f / 0.1f) + 5)}));
}

TEST(QuantizeLinearRef, PerAxisScalesAndZeroPoints) {
  // x [2, 3], axis 1: column c uses scale[c], zero_point[c]; axis -1 is the same axis.
  Tensor x = Tensor::FromVector<float>({2, 3}, {1.f, 2.f, 4.f, -1.f, -2.f, -4.f});
  Tensor s = Tensor::FromVector<float>({3}, {1.f, 2.f, 4.f});
  Tensor z = Tensor::FromVector<uint8_t>({3}, {0, 10, 20});
  for (int64_t axis : {1, -1}) {
    auto y = ref::QuantizeLinear(x, s, &z, axis, DType::kUInt8);
    ASSERT_TRUE(y.ok()) << y.status().ToString();
    EXPECT_EQ(Values<uint8_t>(*y), (std::vector<uint8_t>{1, 11, 21, 0, 9, 19}));
    auto back = ref::DequantizeLinear(*y, s, &z, axis);
    ASSERT_TRUE(back.ok());
    EXPECT_EQ(Values<float>(*back), (std::vector<float>{1.f, 2.f, 4.f, 0.f, -2.f, -4.f}));
  }
  // axis 0 needs 2 scales.
  EXPECT_EQ(ref::QuantizeLinear(x, s, &z, 0, DType::kUInt8).status().code(),
            StatusCode::kInvalidArgument);
  Tensor bad_z = Tensor::FromVector<int8_t>({3}, {0, 0, 0});
  EXPECT_EQ(ref::QuantizeLinear(x, s, &bad_z, 1, DType::kUInt8).status().code(),
            StatusCode::kInvalidArgument);
  Tensor block = Tensor::FromVector<float>({2, 3}, {1, 1, 1, 1, 1, 1});
  EXPECT_EQ(ref::QuantizeLinear(x, block, nullptr, 1, DType::kUInt8).status().code(),
            StatusCode::kInvalidArgument);
}

TEST(DequantizeLinearRef, Int8Uint8Int32) {
  Tensor s = Tensor::FromVector<float>({2}, {0.5f, 0.25f});
  Tensor q8 = Tensor::FromVector<int8_t>({2, 2}, {-128, 127, 4, -4});
  auto y = ref::DequantizeLinear(q8, s, nullptr, 0);
  ASSERT_TRUE(y.ok());
  EXPECT_EQ(Values<float>(*y), (std::vector<float>{-64.f, 63.5f, 1.f, -1.f}));

  Tensor qu = Tensor::FromVector<uint8_t>({3}, {0, 128, 255});
  Tensor su = Tensor::FromVector<float>({}, {2.f});
  Tensor zu = Tensor::FromVector<uint8_t>({}, {128});
  auto yu = ref::DequantizeLinear(qu, su, &zu, 1);
  ASSERT_TRUE(yu.ok());
  EXPECT_EQ(Values<float>(*yu), (std::vector<float>{-256.f, 0.f, 254.f}));

  // ONNX Runtime's quantized bias: int32 codes, per-axis scale, int32 zero point 0.
  Tensor b = Tensor::FromVector<int32_t>({2}, {1000000, -7});
  Tensor bz = Tensor::FromVector<int32_t>({2}, {0, 0});
  auto yb = ref::DequantizeLinear(b, s, &bz, 0);
  ASSERT_TRUE(yb.ok());
  EXPECT_EQ(Values<float>(*yb), (std::vector<float>{500000.f, -1.75f}));
}

// ---- through the importer and the executor ----

void ScalarInit(OnnxBuilder& b, const std::string& name, int type, const std::vector<int64_t>& dims,
                const std::vector<double>& v) {
  auto* t = b.model().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : dims) t->add_dims(d);
  for (double x : v) {
    if (type == onnx::TensorProto::FLOAT) {
      t->add_float_data(static_cast<float>(x));
    } else {
      t->add_int32_data(static_cast<int32_t>(x));
    }
  }
}

TEST(QuantizeLinearOp, ImportInferAndRun) {
  OnnxBuilder b(13);
  b.Input("x", onnx::TensorProto::FLOAT, {-1, 2});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, 2});
  ScalarInit(b, "s", onnx::TensorProto::FLOAT, {2}, {0.5, 0.25});
  ScalarInit(b, "z", onnx::TensorProto::INT8, {2}, {0, 3});
  auto* q = b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"});
  OnnxBuilder::IntAttr(q, "axis", 1);
  auto* dq = b.Node("DequantizeLinear", {"q", "s", "z"}, {"y"});
  OnnxBuilder::IntAttr(dq, "axis", -1);
  auto g = onnx_import::ImportModelFromBytes(b.Bytes(), ".");
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->FindValue("q")->dtype, DType::kInt8);
  EXPECT_EQ((*g)->FindValue("y")->dtype, DType::kFloat32);
  auto ex = reference::Executor::Create(g->get());
  ASSERT_TRUE(ex.ok());
  auto out = (*ex)->Run({{"x", Tensor::FromVector<float>({2, 2}, {0.26f, 100.f, -0.74f, -100.f})}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  // q = [1, 127], [-1, -128]: y = [0.5, (127 - 3) * 0.25], [-0.5, (-128 - 3) * 0.25].
  EXPECT_EQ(Values<float>(out->at("y")), (std::vector<float>{0.5f, 31.f, -0.5f, -32.75f}));
}

TEST(QuantizeLinearOp, Opset21OutputDtypeAndRefusals) {
  {  // output_dtype (opset 21) without a zero point picks the code type.
    OnnxBuilder b(21);
    b.Input("x", onnx::TensorProto::FLOAT, {4});
    b.Output("q", onnx::TensorProto::INT8, {4});
    ScalarInit(b, "s", onnx::TensorProto::FLOAT, {}, {1.0});
    auto* q = b.Node("QuantizeLinear", {"x", "s"}, {"q"});
    OnnxBuilder::IntAttr(q, "output_dtype", onnx::TensorProto::INT8);
    auto g = onnx_import::ImportModelFromBytes(b.Bytes(), ".");
    ASSERT_TRUE(g.ok()) << g.status().ToString();
    EXPECT_EQ((*g)->FindValue("q")->dtype, DType::kInt8);
  }
  {  // block quantization: UNIMPLEMENTED, naming it.
    OnnxBuilder b(21);
    b.Input("x", onnx::TensorProto::FLOAT, {2, 4});
    b.Output("q", onnx::TensorProto::INT8, {2, 4});
    ScalarInit(b, "s", onnx::TensorProto::FLOAT, {2, 2}, {1, 1, 1, 1});
    ScalarInit(b, "z", onnx::TensorProto::INT8, {2, 2}, {0, 0, 0, 0});
    auto* q = b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"});
    OnnxBuilder::IntAttr(q, "block_size", 2);
    auto g = onnx_import::ImportModelFromBytes(b.Bytes(), ".");
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
    EXPECT_NE(g.status().message().find("block_size"), std::string::npos) << g.status().message();
  }
  {  // float8 codes: the importer has no such dtype.
    OnnxBuilder b(19);
    b.Input("x", onnx::TensorProto::FLOAT, {4});
    b.Output("q", 17, {4});
    ScalarInit(b, "s", onnx::TensorProto::FLOAT, {}, {1.0});
    auto* z = b.model().mutable_graph()->add_initializer();
    z->set_name("z");
    z->set_data_type(17);  // FLOAT8E4M3FN
    z->add_int32_data(0);
    b.Node("QuantizeLinear", {"x", "s", "z"}, {"q"});
    auto g = onnx_import::ImportModelFromBytes(b.Bytes(), ".");
    ASSERT_FALSE(g.ok());
    EXPECT_EQ(g.status().code(), StatusCode::kUnimplemented);
    EXPECT_NE(g.status().message().find("FLOAT8E4M3FN"), std::string::npos) << g.status().message();
  }
}

}  // namespace
}  // namespace clickrt
