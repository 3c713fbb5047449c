#include "ir/graph.h"

#include <gtest/gtest.h>

#include "ops/infer.h"

namespace clickrt::ir {
namespace {

TEST(GraphTest, OpTableRoundTrip) {
  EXPECT_GE(AllOpKinds().size(), 47u);
  for (OpKind op : AllOpKinds()) {
    auto back = OpKindFromName(OpKindName(op), OpKindDomain(op));
    ASSERT_TRUE(back.has_value()) << OpKindName(op);
    EXPECT_EQ(*back, op);
  }
  EXPECT_FALSE(OpKindFromName("Conv").has_value());
  EXPECT_FALSE(OpKindFromName("Linear").has_value());  // fused ops live in domain "clickrt"
  EXPECT_TRUE(OpKindFromName("Linear", "clickrt").has_value());
}

TEST(GraphTest, VerifyCatchesUseBeforeDefinition) {
  Graph g;
  Value* x = g.AddValue("x");
  x->is_graph_input = true;
  g.inputs.push_back(x);
  Value* later = g.AddValue("later");
  auto n = std::make_unique<Node>();
  n->op = OpKind::kRelu;
  n->name = "r";
  n->inputs = {later};
  n->outputs = {g.AddValue("y")};
  g.AddNode(std::move(n));
  Status s = Verify(g);
  EXPECT_FALSE(s.ok());
  EXPECT_NE(s.message().find("'later'"), std::string::npos);
}

TEST(GraphTest, SymbolicBroadcastAndReshapeInference) {
  Shape a;
  a.rank_known = true;
  a.dims = {Dim::Symbol("batch"), Dim::Known(1)};
  Shape b = Shape::FromDims({4});
  auto c = ops::BroadcastShapes(a, b);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->ToString(), "[batch,4]");
  EXPECT_FALSE(ops::BroadcastShapes(Shape::FromDims({3}), Shape::FromDims({4})).ok());

  // [batch, 26, 16] -> Reshape [-1, 416] keeps the batch symbol.
  Graph g;
  Value* x = g.AddValue("x");
  x->dtype = DType::kFloat32;
  x->shape.rank_known = true;
  x->shape.dims = {Dim::Symbol("batch"), Dim::Known(26), Dim::Known(16)};
  Value* shape = g.AddValue("shape");
  shape->dtype = DType::kInt64;
  shape->constant = Tensor::FromVector<int64_t>({2}, {-1, 416});
  auto n = std::make_unique<Node>();
  n->op = OpKind::kReshape;
  n->name = "reshape";
  n->inputs = {x, shape};
  n->outputs = {g.AddValue("y")};
  Node* node = g.AddNode(std::move(n));
  ASSERT_TRUE(ops::InferNode(*node).ok());
  EXPECT_EQ(node->outputs[0]->shape.ToString(), "[batch,416]");
}

}  // namespace
}  // namespace clickrt::ir
