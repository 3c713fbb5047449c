#include "reference/executor.h"

#include <cmath>

#include <gtest/gtest.h>

#include "../onnx_builder.h"
#include "import/onnx/onnx_importer.h"

namespace clickrt::reference {
namespace {

using testing::OnnxBuilder;

StatusOr<std::unique_ptr<ir::Graph>> Load(const OnnxBuilder& b) {
  return onnx_import::ImportModelFromBytes(b.Bytes(), ".");
}

// A tiny FM model as PyTorch exports it: ids + per-field offsets -> Gather from one table ->
// FM second order 0.5 * ((sum v)^2 - sum v^2) summed over the embedding -> Sigmoid.
TEST(ReferenceExecutor, TinyFmMatchesHandComputation) {
  OnnxBuilder b;
  b.Input("sparse", onnx::TensorProto::INT64, {-1, 2})
      .Int64Init("offsets", {2}, {0, 3})
      .FloatInit("table", {5, 2}, {0.1f, 0.2f, 0.3f, 0.4f, 0.5f, 0.6f, 0.7f, 0.8f, 0.9f, 1.0f})
      .FloatInit("half", {}, {0.5f})
      .Int64Init("axis1", {1}, {1})
      .Int64Init("axis2", {1}, {2})
      .Output("prob", onnx::TensorProto::FLOAT, {-1, 1});
  b.Node("Add", {"sparse", "offsets"}, {"ids"}, "add_offsets");
  b.Node("Gather", {"table", "ids"}, {"emb"}, "embedding");
  b.Node("ReduceSum", {"emb", "axis1"}, {"sum_v"});
  b.Node("Mul", {"sum_v", "sum_v"}, {"square_of_sum"});
  b.Node("Mul", {"emb", "emb"}, {"emb_sq"});
  b.Node("ReduceSum", {"emb_sq", "axis1"}, {"sum_of_square"});
  b.Node("Sub", {"square_of_sum", "sum_of_square"}, {"diff"});
  b.Node("Mul", {"diff", "half"}, {"fm_half"});
  b.Node("ReduceSum", {"fm_half", "axis2"}, {"logit3"});  // [B,1,1]
  b.Node("Squeeze", {"logit3", "axis1"}, {"logit"});       // [B,1]
  b.Node("Sigmoid", {"logit"}, {"prob"}, "final_sigmoid");
  auto g = Load(b);
  ASSERT_TRUE(g.ok()) << g.status().ToString();
  EXPECT_EQ((*g)->outputs[0]->shape.ToString(), "[batch,1]");
  auto exec = Executor::Create(g->get());
  ASSERT_TRUE(exec.ok());
  Tensor sparse = Tensor::FromVector<int64_t>({2, 2}, {0, 1, 2, 0});
  auto out = (*exec)->Run({{"sparse", sparse}});
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  const Tensor& p = out->at("prob");
  ASSERT_EQ(p.dims(), (Dims{2, 1}));
  // Row 0: fields (id 0 -> row 0) and (id 1 + 3 -> row 4): v0=(.1,.2), v1=(.9,1.0): dot = .09+.2
  // Row 1: rows 2 and 3: (.5,.6).(.7,.8) = .35+.48
  double want0 = 1 / (1 + std::exp(-(0.1 * 0.9 + 0.2 * 1.0)));
  double want1 = 1 / (1 + std::exp(-(0.5 * 0.7 + 0.6 * 0.8)));
  EXPECT_NEAR(p.data<float>()[0], want0, 1e-6);
  EXPECT_NEAR(p.data<float>()[1], want1, 1e-6);

  // An out-of-range id names the input and the row.
  Tensor bad = Tensor::FromVector<int64_t>({3, 2}, {0, 1, 1, 0, 0, 7});
  auto err = (*exec)->Run({{"sparse", bad}});
  ASSERT_FALSE(err.ok());
  EXPECT_EQ(err.status().code(), StatusCode::kOutOfRange);
  const std::string& m = err.status().message();
  EXPECT_NE(m.find("input 'sparse'"), std::string::npos) << m;
  EXPECT_NE(m.find("[2, 1]"), std::string::npos) << m;
  EXPECT_NE(m.find("embedding"), std::string::npos) << m;
}

TEST(ReferenceExecutor, InputChecksNameTheInput) {
  OnnxBuilder b;
  b.Input("dense", onnx::TensorProto::FLOAT, {-1, 3}).Input("w", onnx::TensorProto::FLOAT, {-1, 3});
  b.Output("y", onnx::TensorProto::FLOAT, {-1, 3});
  b.Node("Mul", {"dense", "w"}, {"y"});
  auto g = Load(b);
  ASSERT_TRUE(g.ok());
  auto exec = Executor::Create(g->get()).value();
  Tensor ok = Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  auto missing = exec->Run({{"dense", ok}});
  EXPECT_EQ(missing.status().code(), StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find("'w'"), std::string::npos);
  auto dtype = exec->Run({{"dense", ok}, {"w", Tensor::FromVector<int64_t>({2, 3}, {})}});
  EXPECT_NE(dtype.status().message().find("dtype mismatch"), std::string::npos);
  auto rank = exec->Run({{"dense", ok}, {"w", Tensor::FromVector<float>({6}, {})}});
  EXPECT_NE(rank.status().message().find("rank mismatch"), std::string::npos);
  auto width = exec->Run({{"dense", ok}, {"w", Tensor::FromVector<float>({2, 4}, {})}});
  EXPECT_NE(width.status().message().find("dimension 1"), std::string::npos);
  auto batch = exec->Run({{"dense", ok}, {"w", Tensor::FromVector<float>({3, 3}, {})}});
  EXPECT_NE(batch.status().message().find("'batch'"), std::string::npos);
  auto extra = exec->Run({{"dense", ok}, {"w", ok}, {"nope", ok}});
  EXPECT_NE(extra.status().message().find("unknown input 'nope'"), std::string::npos);
  auto good = exec->Run({{"dense", ok}, {"w", ok}});
  ASSERT_TRUE(good.ok());
  EXPECT_EQ(good->at("y").data<float>()[5], 36.f);
}

TEST(ReferenceExecutor, UnsupportedGraphIsRejectedAtCreate) {
  OnnxBuilder b;
  b.Input("x", onnx::TensorProto::FLOAT, {1}).Output("y", onnx::TensorProto::FLOAT, {1});
  b.Node("Erf", {"x"}, {"y"}, "erf_0");
  onnx_import::ImportOptions keep;
  keep.allow_unsupported = true;
  auto g = onnx_import::ImportModelFromBytes(b.Bytes(), ".", keep);
  ASSERT_TRUE(g.ok());
  auto exec = Executor::Create(g->get());
  EXPECT_EQ(exec.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(exec.status().message().find("erf_0"), std::string::npos);
}

}  // namespace
}  // namespace clickrt::reference
