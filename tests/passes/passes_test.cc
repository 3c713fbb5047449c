// The compiler's passes, each on a small hand-built graph: a match and the near misses it must
// leave alone; then the pipeline itself.
#include "pass_test_util.h"

namespace clickrt::passes {
namespace {

using namespace test_util;  // NOLINT: test helpers

// ---- the graph mutation helpers the passes use ----

TEST(GraphMutation, ReplaceRemoveAndDropUnusedValues) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 2}).FloatInit("c", {2}, {1.f, 2.f}).Output("y", kFloat, {-1, 2});
  b.Node("Add", {"x", "c"}, {"h"}, "add");
  b.Node("Relu", {"h"}, {"y"}, "relu");
  auto g = Load(b);
  ASSERT_TRUE(g);
  ir::Node* add = g->nodes()[0].get();
  ir::Node* relu = g->nodes()[1].get();
  // The Relu becomes a Sigmoid of x that takes over output y, in the Relu's place.
  auto sig = std::make_unique<ir::Node>();
  sig->op = OpKind::kSigmoid;
  sig->op_type = "Sigmoid";
  sig->name = "sig";
  sig->inputs = {g->FindValue("x")};
  sig->outputs = relu->outputs;
  ir::Node* s = g->ReplaceNode(relu, std::move(sig));
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(g->nodes()[1].get(), s);
  EXPECT_EQ(g->FindValue("y")->producer, s);
  EXPECT_TRUE(g->FindValue("h")->consumers.empty());
  EXPECT_EQ(g->FindValue("x")->consumers.size(), 2u);
  EXPECT_EQ(g->ReplaceNode(relu, std::make_unique<ir::Node>()), nullptr);  // no longer there
  g->RemoveNode(add);
  EXPECT_EQ(g->nodes().size(), 1u);
  EXPECT_EQ(g->FindValue("h")->producer, nullptr);
  EXPECT_EQ(g->FindValue("x")->consumers.size(), 1u);
  EXPECT_EQ(g->RemoveUnusedValues(), 2);  // h and c
  EXPECT_EQ(g->FindValue("c"), nullptr);
  EXPECT_NE(g->FindValue("x"), nullptr);
  EXPECT_TRUE(ir::Verify(*g).ok());
}

// ---- fold_constants ----

Status Fold(ir::Graph& g, int* rewrites) { return FoldConstants(g, rewrites); }

// x[2,3] reshaped to [3,2] through the shape arithmetic exporters emit.
OnnxBuilder ShapeChainModel(bool static_batch) {
  OnnxBuilder b;
  b.Input("x", kFloat, {static_batch ? 2 : -1, 3})
      .Int64Init("i0", {}, {0})
      .Int64Init("ax0", {1}, {0})
      .Int64Init("minus1", {1}, {-1})
      .Output("y", kFloat, {-1, -1});
  b.Node("Shape", {"x"}, {"shape"});
  b.Node("Gather", {"shape", "i0"}, {"batch"});
  b.Node("Unsqueeze", {"batch", "ax0"}, {"batch1"});
  OnnxBuilder::IntAttr(b.Node("Concat", {"minus1", "batch1"}, {"target"}), "axis", 0);
  b.Node("Reshape", {"x", "target"}, {"y"});
  return b;
}

TEST(FoldConstants, FoldsShapeArithmeticOfAStaticShape) {
  auto before = Load(ShapeChainModel(true));
  auto g = Load(ShapeChainModel(true));
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(Fold, *g), 4);  // Shape, Gather, Unsqueeze, Concat
  ASSERT_EQ(g->nodes().size(), 1u);
  const ir::Node* reshape = First(*g, OpKind::kReshape);
  ASSERT_NE(reshape, nullptr);
  ASSERT_TRUE(reshape->inputs[1]->constant.has_value());
  EXPECT_EQ(reshape->inputs[1]->constant->ToInt64Vector().value(), (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(g->outputs[0]->shape.ToString(), "[3,2]");  // re-inferred from the folded target
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 2, 1));
}

TEST(FoldConstants, LeavesAnythingDependingOnADynamicInput) {
  auto g = Load(ShapeChainModel(false));
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(Fold, *g), 0);
  EXPECT_EQ(g->nodes().size(), 5u);
}

TEST(FoldConstants, FoldsIdentityConstantAndTransposeOfWeights) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 3}).FloatInit("w", {2, 3}, Iota(6, 1.f)).Output("y", kFloat, {-1, 2});
  b.Node("Identity", {"w"}, {"w_id"});
  IntsAttr(b.Node("Transpose", {"w_id"}, {"wt"}), "perm", {1, 0});
  auto* c = b.Node("Constant", {}, {"two"});
  FloatAttr(c, "value_float", 2.f);
  b.Node("Mul", {"wt", "two"}, {"wt2"});
  b.Node("MatMul", {"x", "wt2"}, {"y"});
  auto before = Load(b);
  auto g = Load(b);
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(Fold, *g), 4);
  ASSERT_EQ(g->nodes().size(), 1u);
  EXPECT_EQ(g->nodes()[0]->inputs[1]->constant->dims(), (Dims{3, 2}));
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 3, 2));
}

TEST(FoldConstants, RespectsTheResultSizeCap) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 1000}).Int64Init("shape", {1}, {1000}).Output("y", kFloat, {-1, 1000});
  auto* n = b.Node("ConstantOfShape", {"shape"}, {"ones"});
  auto* a = n->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  a->mutable_t()->add_dims(1);
  a->mutable_t()->add_float_data(1.f);
  b.Node("Add", {"x", "ones"}, {"y"});
  auto g = Load(b);
  ASSERT_TRUE(g);
  int rewrites = -1;
  ASSERT_TRUE(FoldConstants(*g, &rewrites, /*max_result_bytes=*/1000).ok());
  EXPECT_EQ(rewrites, 0);  // 4000 bytes > 1000
  ASSERT_TRUE(FoldConstants(*g, &rewrites).ok());
  EXPECT_EQ(rewrites, 1);
  EXPECT_EQ(Count(*g, OpKind::kConstantOfShape), 0);
}

// ---- eliminate_dead_code ----

TEST(EliminateDeadCode, RemovesUnreachableNodesAndUnusedConstants) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 2})
      .Input("unused_input", kFloat, {-1, 2})
      .FloatInit("bias", {2}, {1.f, 2.f})
      .FloatInit("dead_w", {2}, {3.f, 4.f})
      .Output("y", kFloat, {-1, 2});
  b.Node("Add", {"x", "bias"}, {"y"});
  b.Node("Mul", {"x", "dead_w"}, {"dead1"});
  b.Node("Relu", {"dead1"}, {"dead2"});
  auto g = Load(b);
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(EliminateDeadCode, *g), 2 + 3);  // Mul, Relu; dead_w, dead1, dead2
  EXPECT_EQ(g->nodes().size(), 1u);
  EXPECT_EQ(g->FindValue("dead_w"), nullptr);
  EXPECT_NE(g->FindValue("bias"), nullptr);
  EXPECT_NE(g->FindValue("unused_input"), nullptr);  // the model's interface stays
  EXPECT_EQ(g->inputs.size(), 2u);
  EXPECT_EQ(RunPass(EliminateDeadCode, *g), 0);
}

// ---- specialize_shapes ----

Status Specialize(ir::Graph& g, int* rewrites) { return SpecializeShapes(g, rewrites, {}); }
Status SpecializeBatch2(ir::Graph& g, int* rewrites) {
  return SpecializeShapes(g, rewrites, BatchProfile{2, 2});
}

// x [batch,3,4] through Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), Unsqueeze(Gather(
// Shape(x), 1)), [-1])): the exporters' flatten / view of a tensor to its own shape.
OnnxBuilder ReshapeToOwnShapeModel() {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 3, 4})
      .Int64Init("i0", {}, {0})
      .Int64Init("i1", {}, {1})
      .Int64Init("ax0", {1}, {0})
      .Int64Init("minus1", {1}, {-1})
      .FloatInit("c", {4}, {1.f, 2.f, 3.f, 4.f})
      .Output("y", kFloat, {-1, 3, 4});
  b.Node("Shape", {"x"}, {"shape"});
  b.Node("Gather", {"shape", "i0"}, {"b"});
  b.Node("Gather", {"shape", "i1"}, {"d1"});
  b.Node("Unsqueeze", {"b", "ax0"}, {"b1"});
  b.Node("Unsqueeze", {"d1", "ax0"}, {"d11"});
  OnnxBuilder::IntAttr(b.Node("Concat", {"b1", "d11", "minus1"}, {"target"}), "axis", 0);
  b.Node("Reshape", {"x", "target"}, {"r"});
  b.Node("Add", {"r", "c"}, {"y"});
  return b;
}

TEST(SpecializeShapes, StaticDimOfAShapeBecomesAConstantAndAReshapeToItselfGoes) {
  auto before = Load(ReshapeToOwnShapeModel());
  auto g = Load(ReshapeToOwnShapeModel());
  ASSERT_TRUE(g && before);
  // Gather(shape, 1) becomes a constant (then inference folds its Unsqueeze); the Reshape
  // reads [batch, 3, -1] and goes.
  EXPECT_EQ(RunPass(Specialize, *g), 2);
  EXPECT_EQ(Count(*g, OpKind::kReshape), 0) << ir::Dump(*g);
  RunPass(EliminateDeadCode, *g);
  ASSERT_EQ(g->nodes().size(), 1u) << ir::Dump(*g);
  EXPECT_EQ(g->nodes()[0]->inputs[0]->name, "x");
  EXPECT_EQ(g->outputs[0]->shape.ToString(), "[batch,3,4]");
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 5, 40), 0.0);
  EXPECT_EQ(RunPass(Specialize, *g), 0);  // nothing left
}

TEST(SpecializeShapes, SliceOfStaticDimsAndExpandToOwnShape) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 3, 4})
      .Input("q", kFloat, {-1, 1, 4})
      .Int64Init("one", {1}, {1})
      .Int64Init("three", {1}, {3})
      .Output("y", kFloat, {-1, 3, 4})
      .Output("z", kFloat, {-1, 3, 4})
      .Output("ones", kFloat, {3, 4});
  b.Node("Shape", {"x"}, {"shape"});
  b.Node("Slice", {"shape", "one", "three"}, {"dims34"});  // [3, 4]: static
  b.Node("Expand", {"x", "shape"}, {"xe"});                // x to its own shape: goes
  b.Node("Expand", {"q", "shape"}, {"qe"});  // [batch,1,4] to x's shape: target [1,3,4]
  b.Node("Add", {"xe", "qe"}, {"y"});
  b.Node("Expand", {"x", "dims34"}, {"z"});  // a graph output: stays, though an identity
  auto* cos = b.Node("ConstantOfShape", {"dims34"}, {"ones"});
  auto* a = cos->add_attribute();
  a->set_name("value");
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::FLOAT);
  a->mutable_t()->add_dims(1);
  a->mutable_t()->add_float_data(1.f);
  auto before = Load(b);
  auto g = Load(b);
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(Specialize, *g), 3);  // the Slice, the first Expand, the second's target
  EXPECT_EQ(Count(*g, OpKind::kSlice), 0);
  EXPECT_EQ(Count(*g, OpKind::kExpand), 2);
  const ir::Node* qe = g->FindValue("qe")->producer;
  ASSERT_NE(qe, nullptr);
  EXPECT_EQ(qe->inputs[1]->constant->ToInt64Vector().value(), (std::vector<int64_t>{1, 3, 4}));
  EXPECT_EQ(g->FindValue("qe")->shape.ToString(), "[batch,3,4]");
  const ir::Node* cs = First(*g, OpKind::kConstantOfShape);
  ASSERT_NE(cs, nullptr);
  EXPECT_EQ(cs->inputs[0]->constant->ToInt64Vector().value(), (std::vector<int64_t>{3, 4}));
  EXPECT_EQ(First(*g, OpKind::kAdd)->inputs[0]->name, "x");
  RunPass(Fold, *g);
  EXPECT_EQ(Count(*g, OpKind::kConstantOfShape), 0);
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 5, 41), 0.0);
}

TEST(SpecializeShapes, ReshapeToAnotherShapeStays) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 3, 4})
      .Int64Init("same", {3}, {0, 3, -1})
      .Int64Init("other", {3}, {0, 4, 3})
      .Int64Init("flat", {2}, {0, -1})
      .Output("y", kFloat, {-1, 4, 3})
      .Output("f", kFloat, {-1, 12});
  b.Node("Reshape", {"x", "same"}, {"s"});  // [0, 3, -1]: x's own shape
  b.Node("Reshape", {"s", "other"}, {"y"});
  b.Node("Reshape", {"x", "flat"}, {"f"});
  auto g = Load(b);
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(Specialize, *g), 1);
  EXPECT_EQ(Count(*g, OpKind::kReshape), 2);
  EXPECT_EQ(g->FindValue("y")->producer->inputs[0]->name, "x");
}

// DIN's scores: Reshape(logits [batch*L, 1], Concat(Unsqueeze(Gather(Shape(ids), 0)), [L])).
TEST(SpecializeShapes, ComputedReshapeTargetBecomesAConstantWithMinusOne) {
  OnnxBuilder b;
  b.Input("logits", kFloat, {-1, 1})
      .Input("ids", kInt64, {-1, 5})
      .Int64Init("i0", {}, {0})
      .Int64Init("ax0", {1}, {0})
      .Int64Init("five", {1}, {5})
      .Output("s", kFloat, {-1, 5});
  b.Node("Shape", {"ids"}, {"shape"});
  b.Node("Gather", {"shape", "i0"}, {"batch"});
  b.Node("Unsqueeze", {"batch", "ax0"}, {"batch1"});
  OnnxBuilder::IntAttr(b.Node("Concat", {"batch1", "five"}, {"target"}), "axis", 0);
  b.Node("Reshape", {"logits", "target"}, {"s"});
  // logits has batch * 5 rows: a dim of its own.
  auto* rows = b.model().mutable_graph()->mutable_input(0)->mutable_type()->mutable_tensor_type();
  rows->mutable_shape()->mutable_dim(0)->set_dim_param("rows");
  auto before = Load(b);
  auto g = Load(b);
  ASSERT_TRUE(g && before);
  EXPECT_EQ(g->FindValue("s")->producer->outputs[0]->shape.ToString(), "[?,?]");
  EXPECT_EQ(RunPass(Specialize, *g), 1);
  const ir::Node* r = First(*g, OpKind::kReshape);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->inputs[1]->constant->ToInt64Vector().value(), (std::vector<int64_t>{-1, 5}));
  EXPECT_EQ(g->outputs[0]->shape.ToString(), "[?,5]");
  RunPass(EliminateDeadCode, *g);
  EXPECT_EQ(g->nodes().size(), 1u) << ir::Dump(*g);
  TensorMap in = RandomInputs(*before, 3, 44);
  in["logits"] = Tensor::FromVector<float>({15, 1}, Iota(15, 1.f));
  ExpectSameOutputs(*before, *g, in, 0.0);
  EXPECT_EQ(RunPass(Specialize, *g), 0);
}

TEST(SpecializeShapes, FixedBatchMakesTheBatchChainsConstant) {
  auto before = Load(ShapeChainModel(false));
  auto g = Load(ShapeChainModel(false));
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(Specialize, *g), 0);  // a batch range: the batch stays symbolic
  EXPECT_GT(RunPass(SpecializeBatch2, *g), 0);
  EXPECT_EQ(g->inputs[0]->shape.ToString(), "[2,3]");
  RunPass(Fold, *g);
  RunPass(EliminateDeadCode, *g);
  ASSERT_EQ(g->nodes().size(), 1u) << ir::Dump(*g);
  EXPECT_EQ(g->nodes()[0]->inputs[1]->constant->ToInt64Vector().value(),
            (std::vector<int64_t>{-1, 2}));
  EXPECT_EQ(g->outputs[0]->shape.ToString(), "[3,2]");
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 2, 42), 0.0);
  EXPECT_EQ(RunPass(SpecializeBatch2, *g), 0);
}

// ---- fuse_embedding_lookup ----

// PyTorch's FieldEmbedding: table(where((ids > c) & (ids < sizes), ids, zeros_like(ids)) + offsets)
// with 3 fields of sizes 2, 3, 4 over one table of 9 rows.
OnnxBuilder EmbeddingModel(int64_t greater_than = -1, int64_t zero_value = 0,
                           bool scalar_sizes = false) {
  OnnxBuilder b;
  b.Input("ids", kInt64, {-1, 3})
      .FloatInit("table", {9, 2}, Iota(18, 1.f))
      .Int64Init("c", {}, {greater_than})
      .Int64Init("offsets", {3}, {0, 2, 5})
      .Output("emb", kFloat, {-1, 3, 2});
  if (scalar_sizes) {
    b.Int64Init("sizes", {}, {2});
  } else {
    b.Int64Init("sizes", {3}, {2, 3, 4});
  }
  b.Node("Greater", {"ids", "c"}, {"ge0"});
  b.Node("Less", {"ids", "sizes"}, {"lt"});
  b.Node("And", {"ge0", "lt"}, {"valid"});
  b.Node("Shape", {"ids"}, {"shape"});
  Int64TensorAttr(b.Node("ConstantOfShape", {"shape"}, {"zeros"}), "value", zero_value);
  b.Node("Where", {"valid", "ids", "zeros"}, {"clamped"});
  b.Node("Add", {"clamped", "offsets"}, {"rows"});
  b.Node("Gather", {"table", "rows"}, {"emb"});
  return b;
}

TEST(FuseEmbeddingLookup, FusesTheClampedFieldLookup) {
  auto before = Load(EmbeddingModel());
  auto g = Load(EmbeddingModel());
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(FuseEmbeddingLookup, *g), 1);
  RunPass(EliminateDeadCode, *g);
  ASSERT_EQ(g->nodes().size(), 1u) << ir::Dump(*g);
  const ir::Node* n = First(*g, OpKind::kEmbeddingLookup);
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->inputs.size(), 4u);
  EXPECT_EQ(n->inputs[1]->name, "ids");
  EXPECT_EQ(n->inputs[2]->constant->ToInt64Vector().value(), (std::vector<int64_t>{0, 2, 5}));
  EXPECT_EQ(n->inputs[3]->constant->ToInt64Vector().value(), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_EQ(g->outputs[0]->shape.ToString(), "[batch,3,2]");
  // Ids below 0, inside, and past each field's size.
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 3, -3, 6));
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 1, 4, -3, 6));
}

TEST(FuseEmbeddingLookup, OneSizeForAllFieldsIsExpandedPerField) {
  auto before = Load(EmbeddingModel(-1, 0, /*scalar_sizes=*/true));
  auto g = Load(EmbeddingModel(-1, 0, true));
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(FuseEmbeddingLookup, *g), 1);
  const ir::Node* n = First(*g, OpKind::kEmbeddingLookup);
  ASSERT_NE(n, nullptr);
  ASSERT_EQ(n->inputs.size(), 4u);
  EXPECT_EQ(n->inputs[3]->constant->ToInt64Vector().value(), (std::vector<int64_t>{2, 2, 2}));
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 5, -3, 6));
}

// ids > 0 is not the clamp (id 0 would then map to 0 anyway, but ids > 1 would not): the Where
// stays and the lookup reads its result as plain ids with offsets.
TEST(FuseEmbeddingLookup, AnotherThresholdIsNotTheClamp) {
  for (auto [gt, zero] : {std::pair<int64_t, int64_t>{1, 0}, {-1, 1}}) {
    auto before = Load(EmbeddingModel(gt, zero));
    auto g = Load(EmbeddingModel(gt, zero));
    ASSERT_TRUE(g && before);
    EXPECT_EQ(RunPass(FuseEmbeddingLookup, *g), 1);
    const ir::Node* n = First(*g, OpKind::kEmbeddingLookup);
    ASSERT_NE(n, nullptr);
    EXPECT_EQ(n->inputs.size(), 3u);  // offsets, no sizes
    EXPECT_EQ(n->inputs[1]->name, "clamped");
    EXPECT_EQ(Count(*g, OpKind::kWhere), 1);
    ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 6, 0, 2));
  }
}

TEST(FuseEmbeddingLookup, PlainGatherOfTwoDimensionalIds) {
  OnnxBuilder b;
  b.Input("ids", kInt64, {-1, 4}).FloatInit("table", {5, 3}, Iota(15, 1.f));
  b.Output("emb", kFloat, {-1, 4, 3});
  b.Node("Gather", {"table", "ids"}, {"emb"});
  auto before = Load(b);
  auto g = Load(b);
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(FuseEmbeddingLookup, *g), 1);
  const ir::Node* n = First(*g, OpKind::kEmbeddingLookup);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->inputs.size(), 2u);
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 7, -5, 5));  // negative ids wrap
}

TEST(FuseEmbeddingLookup, LeavesOtherGathers) {
  OnnxBuilder b;
  b.Input("ids1d", kInt64, {-1})
      .Input("ids", kInt64, {-1, 4})
      .Input("x", kFloat, {-1, 4})
      .FloatInit("table", {5, 3}, Iota(15, 1.f))
      .Int64Init("cols", {2}, {0, 3})
      .Output("a", kFloat, {-1, 3})
      .Output("b", kFloat, {-1, 2})
      .Output("x_rows", kFloat, {-1, 4, 4});
  b.Node("Gather", {"table", "ids1d"}, {"a"});                              // 1-D ids
  OnnxBuilder::IntAttr(b.Node("Gather", {"x", "cols"}, {"b"}), "axis", 1);  // axis 1
  b.Node("Gather", {"x", "ids"}, {"x_rows"});                               // not a constant
  auto g = Load(b);
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(FuseEmbeddingLookup, *g), 0);
  EXPECT_EQ(Count(*g, OpKind::kGather), 3);
}

// ---- fuse_linear ----

OnnxBuilder GemmModel(int trans_a, int relu_consumers, const char* act = "Relu") {
  OnnxBuilder b;
  // x [batch,3], or [3,batch] with transA=1.
  b.Input("x", kFloat, trans_a ? std::vector<int64_t>{3, -1} : std::vector<int64_t>{-1, 3})
      .FloatInit("w", {2, 3}, Iota(6, 1.f))  // [N,K]: transB=1, as PyTorch's nn.Linear exports
      .FloatInit("b", {2}, {0.5f, -0.25f})
      .Output("y", kFloat, {-1, 2});
  auto* gemm = b.Node("Gemm", {"x", "w", "b"}, {"h"});
  OnnxBuilder::IntAttr(gemm, "transB", 1);
  if (trans_a) OnnxBuilder::IntAttr(gemm, "transA", 1);
  b.Node(act, {"h"}, {relu_consumers == 1 ? "y" : "a"});
  if (relu_consumers > 1) b.Node("Add", {"a", "h"}, {"y"});  // h read twice
  return b;
}

TEST(FuseLinear, GemmWithTransposedWeightAndRelu) {
  auto before = Load(GemmModel(0, 1));
  auto g = Load(GemmModel(0, 1));
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(FuseLinear, *g), 2);  // Gemm -> Linear, then Relu absorbed
  ASSERT_EQ(g->nodes().size(), 1u) << ir::Dump(*g);
  const ir::Node* n = First(*g, OpKind::kLinear);
  ASSERT_NE(n, nullptr);
  EXPECT_EQ(n->GetInt("activation", -1), 1);
  EXPECT_EQ(n->inputs[1]->constant->dims(), (Dims{3, 2}));  // W^T, [K,N]
  EXPECT_EQ(n->outputs[0]->name, "y");
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 8));
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 1, 9));
}

TEST(FuseLinear, ReluWithTwoConsumersIsNotFused) {
  auto before = Load(GemmModel(0, 2));
  auto g = Load(GemmModel(0, 2));
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(FuseLinear, *g), 1);  // the Gemm only
  EXPECT_EQ(Count(*g, OpKind::kRelu), 1);
  EXPECT_EQ(First(*g, OpKind::kLinear)->GetInt("activation", -1), 0);
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 10));
}

TEST(FuseLinear, GemmWithTransAIsNotFused) {
  auto g = Load(GemmModel(1, 1));
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(FuseLinear, *g), 0);
  EXPECT_EQ(Count(*g, OpKind::kGemm), 1);
}

TEST(FuseLinear, MatMulBiasSigmoid) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 3})
      .FloatInit("w", {3, 2}, Iota(6, 1.f))
      .FloatInit("b", {1, 2}, {0.5f, -0.25f})
      .Output("y", kFloat, {-1, 2});
  b.Node("MatMul", {"x", "w"}, {"h"});
  b.Node("Add", {"b", "h"}, {"hb"});
  b.Node("Sigmoid", {"hb"}, {"y"});
  auto before = Load(b);
  auto g = Load(b);
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(FuseLinear, *g), 3);
  ASSERT_EQ(g->nodes().size(), 1u) << ir::Dump(*g);
  const ir::Node* n = First(*g, OpKind::kLinear);
  EXPECT_EQ(n->GetInt("activation", -1), 2);
  ASSERT_EQ(n->inputs.size(), 3u);
  EXPECT_EQ(n->inputs[2]->constant->dims(), (Dims{2}));
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 11));
}

// DeepFM's shape: the final Sigmoid follows an Add of two logits, not a Linear.
TEST(FuseLinear, SigmoidAfterAnAddOfLogitsStays) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 3})
      .Input("other", kFloat, {-1, 1})
      .FloatInit("w", {3, 1}, Iota(3, 1.f))
      .FloatInit("w2", {3, 3}, Iota(9, 1.f))
      .Output("y", kFloat, {-1, 1});
  b.Node("MatMul", {"x", "w"}, {"h"});
  b.Node("Add", {"h", "other"}, {"logit"});
  b.Node("Sigmoid", {"logit"}, {"y"});
  auto g = Load(b);
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(FuseLinear, *g), 1);
  EXPECT_EQ(Count(*g, OpKind::kSigmoid), 1);
  EXPECT_EQ(Count(*g, OpKind::kAdd), 1);
  EXPECT_EQ(First(*g, OpKind::kLinear)->inputs.size(), 2u);
}

TEST(FuseLinear, MatMulOfTwoActivationsIsNotFused) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 3}).Input("w", kFloat, {3, 2}).Output("y", kFloat, {-1, 2});
  b.Node("MatMul", {"x", "w"}, {"y"});
  auto g = Load(b);
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(FuseLinear, *g), 0);
}

// ---- fuse_fm_interaction ----

// DeepFM's FM term over e [batch,4,3], with the exporter's node shapes.
OnnxBuilder FmModel(bool half_first, int64_t inner_axis = 1, int64_t last_keepdims = 1) {
  OnnxBuilder b;
  b.Input("e", kFloat, {-1, 4, 3})
      .Int64Init("axis", {1}, {inner_axis})
      .Int64Init("axis1", {1}, {1})
      .FloatInit("half", {}, {0.5f})
      .Output("fm", kFloat, last_keepdims ? std::vector<int64_t>{-1, 1} : std::vector<int64_t>{-1});
  OnnxBuilder::IntAttr(b.Node("ReduceSum", {"e", "axis"}, {"s"}), "keepdims", 0);
  b.Node("Mul", {"s", "s"}, {"sq"});
  b.Node("Mul", {"e", "e"}, {"e2"});
  OnnxBuilder::IntAttr(b.Node("ReduceSum", {"e2", "axis"}, {"ss"}), "keepdims", 0);
  b.Node("Sub", {"sq", "ss"}, {"d"});
  OnnxBuilder::IntAttr(b.Node("ReduceSum", {"d", "axis1"}, {"r"}), "keepdims", last_keepdims);
  if (half_first) {
    b.Node("Mul", {"half", "r"}, {"fm"});
  } else {
    b.Node("Mul", {"r", "half"}, {"fm"});
  }
  return b;
}

TEST(FuseFMInteraction, FusesEitherOperandOrder) {
  for (bool half_first : {false, true}) {
    auto before = Load(FmModel(half_first));
    auto g = Load(FmModel(half_first));
    ASSERT_TRUE(g && before);
    EXPECT_EQ(RunPass(FuseFMInteraction, *g), 1);
    ASSERT_EQ(g->nodes().size(), 1u) << ir::Dump(*g);
    EXPECT_EQ(g->nodes()[0]->op, OpKind::kFMInteraction);
    EXPECT_EQ(g->outputs[0]->shape.ToString(), "[batch,1]");
    ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 12));
    ExpectSameOutputs(*before, *g, RandomInputs(*before, 1, 13));
  }
}

TEST(FuseFMInteraction, NegativeAxisIsTheSameAxis) {
  auto g = Load(FmModel(false, -2));
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(FuseFMInteraction, *g), 1);
}

TEST(FuseFMInteraction, OtherAxesOrKeepdimsAreNotFused) {
  auto wrong_axis = Load(FmModel(false, 2));      // sums over D, not over fields
  auto no_keepdims = Load(FmModel(false, 1, 0));  // result [B], not [B,1]
  ASSERT_TRUE(wrong_axis && no_keepdims);
  EXPECT_EQ(RunPass(FuseFMInteraction, *wrong_axis), 0);
  EXPECT_EQ(RunPass(FuseFMInteraction, *no_keepdims), 0);
}

TEST(FuseFMInteraction, SharedIntermediateIsNotFused) {
  OnnxBuilder b = FmModel(false);
  b.Output("d", kFloat, {-1, 3});  // the difference is also a model output
  auto g = Load(b);
  ASSERT_TRUE(g);
  EXPECT_EQ(RunPass(FuseFMInteraction, *g), 0);
}

// ---- fuse_cross ----

// Two DCN-v2 cross layers: x1 = x0 * (x0 W0^T + b0) + x0; x2 = x0 * Gemm(x1) + x1.
OnnxBuilder CrossModel(bool relu = false, bool add_other = false) {
  OnnxBuilder b;
  b.Input("x0", kFloat, {-1, 3})
      .Input("other", kFloat, {-1, 3})
      .FloatInit("w0", {3, 3}, Iota(9, 0.5f))
      .FloatInit("b0", {3}, {0.1f, 0.2f, 0.3f})
      .FloatInit("w1", {3, 3}, Iota(9, 0.3f))
      .FloatInit("b1", {3}, {-0.1f, 0.f, 0.1f})
      .Output("x2", kFloat, {-1, 3});
  OnnxBuilder::IntAttr(b.Node("Gemm", {"x0", "w0", "b0"}, {"l0"}), "transB", 1);
  const char* lin0 = "l0";
  if (relu) {
    b.Node("Relu", {"l0"}, {"l0r"});
    lin0 = "l0r";
  }
  b.Node("Mul", {"x0", lin0}, {"m0"});
  b.Node("Add", {"m0", add_other ? "other" : "x0"}, {"x1"});
  OnnxBuilder::IntAttr(b.Node("Gemm", {"x1", "w1", "b1"}, {"l1"}), "transB", 1);
  b.Node("Mul", {"l1", "x0"}, {"m1"});
  b.Node("Add", {"x1", "m1"}, {"x2"});
  return b;
}

TEST(FuseCross, FusesTheCrossLayersAfterFuseLinear) {
  auto before = Load(CrossModel());
  auto g = Load(CrossModel());
  ASSERT_TRUE(g && before);
  EXPECT_EQ(RunPass(FuseLinear, *g), 2);
  EXPECT_EQ(RunPass(FuseCross, *g), 2);
  ASSERT_EQ(g->nodes().size(), 2u) << ir::Dump(*g);
  EXPECT_EQ(Count(*g, OpKind::kCross), 2);
  const ir::Node* c = First(*g, OpKind::kCross);
  EXPECT_EQ(c->inputs[0]->name, "x0");
  EXPECT_EQ(c->inputs[1]->name, "x0");
  EXPECT_EQ(c->inputs[2]->constant->dims(), (Dims{3, 3}));
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 14));
}

TEST(FuseCross, NearMissesAreNotFused) {
  for (auto [relu, other] : {std::pair{true, false}, std::pair{false, true}}) {
    auto before = Load(CrossModel(relu, other));
    auto g = Load(CrossModel(relu, other));
    ASSERT_TRUE(g && before);
    RunPass(FuseLinear, *g);
    EXPECT_EQ(RunPass(FuseCross, *g), 1);  // only the second layer
    ExpectSameOutputs(*before, *g, RandomInputs(*before, 7, 15));
  }
}

// ---- fuse_din_attention ----

// DIN's target attention as PyTorch exports it: q [batch,4], k [batch,3,4], mask = hist > 0,
// a scoring MLP 16 -> (5 -> 3 ->)... -> 1 of Gemms and PRelus, pooled with MatMul (bmm form) or
// Mul + ReduceSum. Knobs make the near misses.
struct DinOptions {
  int hidden = 2;             // hidden layers of the scoring MLP
  bool reduce_form = false;   // Mul + ReduceSum instead of Unsqueeze / MatMul / Squeeze
  bool swap_sub = false;      // k - q: not DIN's term
  bool out_bias = true;       // the last Gemm has a bias
  bool zero_const = false;    // Where's zeros as a scalar constant, not ConstantOfShape(Shape(s))
  int64_t squeeze_axis = 1;   // pooling axis of the bmm form
  bool share_scores = false;  // the masked scores are also a model output
};

OnnxBuilder DinModel(const DinOptions& o) {
  OnnxBuilder b;
  b.Input("q", kFloat, {-1, 4})
      .Input("k", kFloat, {-1, 3, 4})
      .Input("hist", kInt64, {-1, 3})
      .Int64Init("ax1", {1}, {1})
      .Int64Init("ax_last", {1}, {-1})
      .Int64Init("i0", {}, {0})
      .Int64Init("rows", {2}, {-1, 16})
      .Int64Init("scores_shape", {2}, {-1, 3})
      .FloatInit("fzero", {}, {0.f})
      .Output("y", kFloat, {-1, 4});
  b.Node("Unsqueeze", {"q", "ax1"}, {"qu"});
  b.Node("Shape", {"k"}, {"kshape"});
  b.Node("Expand", {"qu", "kshape"}, {"qe"});
  b.Node("Sub",
         o.swap_sub ? std::vector<std::string>{"k", "qe"} : std::vector<std::string>{"qe", "k"},
         {"diff"});
  b.Node("Mul", {"k", "qe"}, {"prod"});
  OnnxBuilder::IntAttr(b.Node("Concat", {"qe", "k", "diff", "prod"}, {"cat"}), "axis", -1);
  b.Node("Reshape", {"cat", "rows"}, {"x0"});
  const int widths[] = {16, 5, 3};
  std::string x = "x0";
  for (int i = 0; i < o.hidden; ++i) {
    const std::string l = std::to_string(i);
    const int in = widths[i], out = widths[i + 1];
    b.FloatInit("w" + l, {out, in}, Iota(out * in, 0.4f));
    b.FloatInit("b" + l, {out}, Iota(out, 0.1f));
    b.FloatInit("a" + l, {out}, Iota(out, 0.3f));
    OnnxBuilder::IntAttr(b.Node("Gemm", {x, "w" + l, "b" + l}, {"h" + l}), "transB", 1);
    b.Node("PRelu", {"h" + l, "a" + l}, {"r" + l});
    x = "r" + l;
  }
  const int last = widths[o.hidden];
  b.FloatInit("w_out", {1, last}, Iota(last, 0.5f)).FloatInit("b_out", {1}, {0.2f});
  std::vector<std::string> gemm_in = {x, "w_out"};
  if (o.out_bias) gemm_in.push_back("b_out");
  OnnxBuilder::IntAttr(b.Node("Gemm", gemm_in, {"logit"}), "transB", 1);
  b.Node("Reshape", {"logit", "scores_shape"}, {"s"});
  b.Node("Greater", {"hist", "i0"}, {"mask"});
  if (o.zero_const) {
    b.Node("Where", {"mask", "s", "fzero"}, {"w"});
  } else {
    b.Node("Shape", {"s"}, {"sshape"});
    b.Node("ConstantOfShape", {"sshape"}, {"zeros"});
    b.Node("Where", {"mask", "s", "zeros"}, {"w"});
  }
  if (o.share_scores) b.Output("w", kFloat, {-1, 3});
  if (o.reduce_form) {
    b.Node("Unsqueeze", {"w", "ax_last"}, {"wu"});
    b.Node("Mul", {"wu", "k"}, {"pooled"});
    OnnxBuilder::IntAttr(b.Node("ReduceSum", {"pooled", "ax1"}, {"y"}), "keepdims", 0);
  } else {
    b.Int64Init("sq_axis", {1}, {o.squeeze_axis});
    b.Node("Unsqueeze", {"w", "ax1"}, {"wu"});
    b.Node("MatMul", {"wu", "k"}, {"pooled"});
    b.Node("Squeeze", {"pooled", "sq_axis"}, {"y"});
  }
  return b;
}

// Runs fold_constants, fuse_linear and fuse_din_attention; returns the last one's rewrites.
int FuseDin(ir::Graph& g) {
  RunPass(Fold, g);
  RunPass(FuseLinear, g);
  return RunPass(FuseDinAttention, g);
}

TEST(FuseDinAttention, FusesBothPoolingFormsAndAnyDepth) {
  for (bool reduce_form : {false, true}) {
    for (int hidden : {2, 1, 0}) {
      for (bool zero_const : {false, true}) {
        SCOPED_TRACE(std::string(reduce_form ? "reduce" : "bmm") + " form, " +
                     std::to_string(hidden) + " hidden layers" +
                     (zero_const ? ", zero const" : ""));
        DinOptions o;
        o.reduce_form = reduce_form;
        o.hidden = hidden;
        o.zero_const = zero_const;
        o.out_bias = hidden != 1;  // one case without the output bias
        auto before = Load(DinModel(o));
        auto linear = Load(DinModel(o));  // after fuse_linear: the exact subgraph replaced
        auto g = Load(DinModel(o));
        ASSERT_TRUE(g && before && linear);
        RunPass(Fold, *linear);
        RunPass(FuseLinear, *linear);
        EXPECT_EQ(FuseDin(*g), 1);
        RunPass(EliminateDeadCode, *g);
        // What is left: the mask's Greater and the fused op.
        ASSERT_EQ(g->nodes().size(), 2u) << ir::Dump(*g);
        const ir::Node* n = First(*g, OpKind::kDinAttention);
        ASSERT_NE(n, nullptr);
        ASSERT_EQ(n->inputs.size(), 5u + 3u * hidden);
        EXPECT_EQ(n->inputs[0]->name, "q");
        EXPECT_EQ(n->inputs[1]->name, "k");
        EXPECT_EQ(n->inputs[2]->name, "mask");
        EXPECT_EQ(n->inputs.back()->constant->dims(), (Dims{1}));
        EXPECT_EQ(g->outputs[0]->shape.ToString(), "[batch,4]");
        for (auto [batch, seed] : {std::pair<int64_t, uint32_t>{7, 30}, {1, 31}}) {
          const TensorMap inputs = RandomInputs(*before, batch, seed, -2, 3);
          ExpectSameOutputs(*linear, *g, inputs, 0.0);
          // Outputs near 100 here: Gemm and Linear round differently in the last bits.
          ExpectSameOutputs(*before, *g, inputs, 1e-3);
        }
      }
    }
  }
}

TEST(FuseDinAttention, NearMissesAreNotFused) {
  DinOptions swapped, other_axis, shared;
  swapped.swap_sub = true;      // k - q is another interaction term
  other_axis.squeeze_axis = 0;  // not the pooled axis (would fail at run time for batch != 1)
  shared.share_scores = true;   // the masked scores are read outside the pattern
  for (const DinOptions& o : {swapped, other_axis, shared}) {
    auto g = Load(DinModel(o));
    ASSERT_TRUE(g);
    EXPECT_EQ(FuseDin(*g), 0);
    EXPECT_EQ(Count(*g, OpKind::kDinAttention), 0);
    EXPECT_EQ(Count(*g, OpKind::kPRelu), 2);
  }
}

// ---- the pipeline ----

TEST(Pipeline, FixedBatchIsSpecializedAndStillFuses) {
  // The clamp's ConstantOfShape(Shape(ids)) folds to a constant; the lookup still fuses.
  auto before = Load(EmbeddingModel());
  auto g = Load(EmbeddingModel());
  ASSERT_TRUE(g && before);
  PipelineOptions opt;
  opt.batch = {4, 4};
  ASSERT_TRUE(RunPipeline(*g, opt, nullptr).ok());
  EXPECT_EQ(Count(*g, OpKind::kShape), 0);
  EXPECT_EQ(Count(*g, OpKind::kConstantOfShape), 0);
  ASSERT_EQ(Count(*g, OpKind::kEmbeddingLookup), 1) << ir::Dump(*g);
  EXPECT_EQ(First(*g, OpKind::kEmbeddingLookup)->inputs.size(), 4u);
  EXPECT_EQ(g->outputs[0]->shape.ToString(), "[4,3,2]");
  ExpectSameOutputs(*before, *g, RandomInputs(*before, 4, 43, -3, 6));
}

TEST(Pipeline, UnknownPassNameIsAnError) {
  auto g = Load(FmModel(false));
  ASSERT_TRUE(g);
  PipelineOptions opt;
  opt.skip = {"fuse_everything"};
  Status s = RunPipeline(*g, opt, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("fuse_linear"), std::string::npos) << s.message();
}

TEST(Pipeline, ReportsEachPassAndHonoursSkipAndNoFuse) {
  auto g = Load(FmModel(false));
  ASSERT_TRUE(g);
  std::vector<PassReport> report;
  PipelineOptions opt;
  opt.skip = {"fuse_fm_interaction"};
  ASSERT_TRUE(RunPipeline(*g, opt, &report).ok());
  EXPECT_EQ(Count(*g, OpKind::kFMInteraction), 0);
  ASSERT_GE(report.size(), 2u);
  EXPECT_EQ(report[0].name, "fuse_qdq");  // first: before fold_constants folds the QDQ weights
  EXPECT_EQ(report[1].name, "fold_constants");
  EXPECT_NE(FormatReport(report).find("eliminate_dead_code"), std::string::npos);

  auto g2 = Load(GemmModel(0, 1));
  ASSERT_TRUE(g2);
  opt = PipelineOptions{};
  opt.fuse = false;
  ASSERT_TRUE(RunPipeline(*g2, opt, nullptr).ok());
  EXPECT_EQ(Count(*g2, OpKind::kGemm), 1);
  EXPECT_GT(RunAll(*g2), 0);
  EXPECT_EQ(Count(*g2, OpKind::kLinear), 1);
  EXPECT_EQ(Count(*g2, OpKind::kGemm), 0);
}


}  // namespace
}  // namespace clickrt::passes
