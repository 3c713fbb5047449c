// Precision assignment on the bundled zoo models: which layers become INT8, the rewritten graph's
// structure, and its outputs against the float graph on the models' validation inputs.
#include "quant/quantize_graph.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>

#include "import/onnx/onnx_importer.h"
#include "passes/pipeline.h"
#include "reference/executor.h"

namespace clickrt::quant {
namespace {

const std::string kModels = std::string(CLICKRT_SOURCE_DIR) + "/models/";

std::unique_ptr<ir::Graph> Optimized(const std::string& model) {
  auto g = onnx_import::ImportModel(kModels + model + "/model.onnx");
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  passes::PipelineOptions po;
  EXPECT_TRUE(passes::RunPipeline(**g, po, nullptr).ok());
  return std::move(*g);
}

reference::TensorMap ValInputs(const std::string& model, const ir::Graph& g) {
  reference::TensorMap in;
  for (const ir::Value* v : g.inputs) {
    auto t = onnx_import::ReadTensorProtoFile(kModels + model + "/val_inputs/" + v->name + ".pb");
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    in[v->name] = *t;
  }
  return in;
}

StatusOr<Tensor> RunGraph(const ir::Graph& g, const reference::TensorMap& in) {
  ASSIGN_OR_RETURN(auto ex, reference::Executor::Create(&g));
  ASSIGN_OR_RETURN(auto out, ex->Run(in));
  return out.begin()->second;
}

// Min-max scales (amax / 127) of every GEMM input, from the float graph on `in`: the inputs are
// made graph outputs of a second copy of the graph, run once.
std::map<std::string, float> MinMaxScales(const std::string& model, const reference::TensorMap& in) {
  auto g = Optimized(model);
  std::map<std::string, float> scales;
  for (const auto& l : QuantizableLayers(*g)) {
    ir::Value* v = g->FindValue(l.input);
    if (!v->is_graph_output) {
      v->is_graph_output = true;
      g->outputs.push_back(v);
    }
  }
  auto ex = reference::Executor::Create(g.get());
  EXPECT_TRUE(ex.ok());
  auto out = (*ex)->Run(in);
  EXPECT_TRUE(out.ok()) << out.status().ToString();
  for (const auto& l : QuantizableLayers(*g)) {
    const Tensor& t = out->at(l.input);
    float amax = 0;
    for (float x : t.span<float>()) amax = std::max(amax, std::fabs(x));
    scales[l.input] = amax / 127.f;
  }
  return scales;
}

struct Diff {
  double max = 0, mean = 0;
};
Diff Compare(const Tensor& a, const Tensor& b) {
  Diff d;
  for (int64_t i = 0; i < a.size(); ++i) {
    const double e = std::fabs(a.data<float>()[i] - b.data<float>()[i]);
    d.max = std::max(d.max, e);
    d.mean += e / static_cast<double>(a.size());
  }
  return d;
}

TEST(QuantizeGraph, ListsTheGemmLayersOfEveryZooModel) {
  auto deepfm = QuantizableLayers(*Optimized("deepfm"));
  ASSERT_EQ(deepfm.size(), 5u);  // the dense first-order part, dnn 200, 200, 200 and the logit
  EXPECT_EQ(deepfm.back().N, 1);
  for (const auto& l : deepfm) EXPECT_EQ(l.op, "Linear");
  auto dcn = QuantizableLayers(*Optimized("dcnv2"));
  const auto crosses = std::count_if(dcn.begin(), dcn.end(), [](auto& l) { return l.op == "Cross"; });
  EXPECT_GE(crosses, 2);
  for (const auto& l : dcn) {
    if (l.op == "Cross") {
      EXPECT_EQ(l.K, l.N);
    }
  }
}

TEST(QuantizeGraph, Int8LayersTrackTheFloatGraph) {
  for (const std::string model : {"deepfm", "dcnv2"}) {
    SCOPED_TRACE(model);
    auto g = Optimized(model);
    const auto in = ValInputs(model, *g);
    auto ref = RunGraph(*g, in);
    ASSERT_TRUE(ref.ok());
    QuantizeOptions o;
    o.act_scales = MinMaxScales(model, in);
    // All INT8 first: structure, and a loose bound (min-max scales on the concat of log-dense
    // features and embeddings leave the embeddings few levels: the gate's job to catch).
    auto all = Optimized(model);
    auto rep = QuantizeGraph(*all, o);
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    EXPECT_EQ(rep->int8_layers.size(), QuantizableLayers(*Optimized(model)).size());
    EXPECT_TRUE(rep->float_layers.empty());
    EXPECT_TRUE(QuantizableLayers(*all).empty());  // nothing float left
    auto q_all = RunGraph(*all, in);
    ASSERT_TRUE(q_all.ok()) << q_all.status().ToString();
    EXPECT_LT(Compare(*ref, *q_all).mean, 0.03);
    // The layers reading that concat kept in float: the rest tracks the float graph closely.
    for (const auto& l : QuantizableLayers(*g)) {
      if (l.input == "/Concat_output_0") o.keep_float.insert(l.name);
    }
    EXPECT_FALSE(o.keep_float.empty());
    rep = QuantizeGraph(*g, o);
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    EXPECT_LT(rep->weight_bytes_after, rep->weight_bytes_before / 3);
    for (const auto& n : g->nodes()) {
      if (n->op == ir::OpKind::kLinear && !o.keep_float.count(n->name)) {
        EXPECT_EQ(n->input(1)->dtype, DType::kInt8);
        EXPECT_GT(n->GetFloat("x_scale", 0), 0);
      }
    }
    auto q = RunGraph(*g, in);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    const Diff d = Compare(*ref, *q);
    // Click probabilities: INT8 moves them by under a percentage point on average.
    EXPECT_LT(d.mean, 1e-2) << "max " << d.max;
    EXPECT_LT(d.max, 0.05);
    EXPECT_GT(d.max, 0);  // it did change something
  }
}

TEST(QuantizeGraph, KeepFloatLeavesTheNamedLayers) {
  auto g = Optimized("deepfm");
  const auto layers = QuantizableLayers(*g);
  QuantizeOptions o;
  o.act_scales = MinMaxScales("deepfm", ValInputs("deepfm", *g));
  o.keep_float = {layers.back().name};
  auto rep = QuantizeGraph(*g, o);
  ASSERT_TRUE(rep.ok()) << rep.status().ToString();
  EXPECT_EQ(rep->float_layers, std::vector<std::string>{layers.back().name});
  EXPECT_EQ(rep->int8_layers.size(), layers.size() - 1);
  ASSERT_EQ(QuantizableLayers(*g).size(), 1u);
  EXPECT_EQ(QuantizableLayers(*g)[0].name, layers.back().name);
}

TEST(QuantizeGraph, ErrorsNameTheValueOrLayer) {
  auto g = Optimized("deepfm");
  QuantizeOptions o;
  auto r = QuantizeGraph(*g, o);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_NE(r.status().message().find(QuantizableLayers(*g)[0].input), std::string::npos)
      << r.status().message();
  o.keep_float = {"no_such_layer"};
  r = QuantizeGraph(*g, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("no_such_layer"), std::string::npos);
  o.keep_float.clear();
  o.act_scales = MinMaxScales("deepfm", ValInputs("deepfm", *g));
  o.act_scales.begin()->second = 0;
  r = QuantizeGraph(*g, o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("must be positive"), std::string::npos);
}

TEST(QuantizeGraph, RowwiseEmbeddingsShrinkTheTablesAndTrackTheFloatGraph) {
  for (auto fmt : {EmbeddingFormat::kInt8Rowwise, EmbeddingFormat::kInt4Rowwise}) {
    SCOPED_TRACE(EmbeddingFormatName(fmt));
    auto g = Optimized("deepfm");
    const auto in = ValInputs("deepfm", *g);
    auto ref = RunGraph(*g, in);
    QuantizeOptions o;
    o.int8_layers = false;
    o.embeddings = fmt;
    auto rep = QuantizeGraph(*g, o);
    ASSERT_TRUE(rep.ok()) << rep.status().ToString();
    EXPECT_GT(rep->embedding_bytes_before, 0);
    // DeepFM's factor table has D = 8: int8 rows are 16 bytes (vs 32), int4 rows 8.
    EXPECT_EQ(rep->embedding_bytes_after * (fmt == EmbeddingFormat::kInt8Rowwise ? 2 : 4),
              rep->embedding_bytes_before);
    int quantized = 0, float_tables = 0;
    for (const auto& n : g->nodes()) {
      if (n->op != ir::OpKind::kEmbeddingLookup) continue;
      if (n->input(0)->dtype == DType::kUInt8) {
        ++quantized;
        EXPECT_EQ(n->GetInt("row_format", 0), static_cast<int64_t>(fmt));
        EXPECT_EQ(n->outputs[0]->dtype, DType::kFloat32);
      } else {
        ++float_tables;  // the first-order table (D = 1) stays float
      }
    }
    EXPECT_GE(quantized, 1);
    EXPECT_GE(float_tables, 1);
    auto q = RunGraph(*g, in);
    ASSERT_TRUE(q.ok()) << q.status().ToString();
    const Diff d = Compare(*ref, *q);
    EXPECT_LT(d.mean, fmt == EmbeddingFormat::kInt8Rowwise ? 1e-3 : 1e-2) << "max " << d.max;
    EXPECT_GT(d.max, 0);
  }
}

TEST(QuantizeGraph, ParsesEmbeddingFormats) {
  EXPECT_EQ(ParseEmbeddingFormat("int4").value(), EmbeddingFormat::kInt4Rowwise);
  EXPECT_EQ(ParseEmbeddingFormat("fp32").value(), EmbeddingFormat::kFloat32);
  EXPECT_FALSE(ParseEmbeddingFormat("int2").ok());
}

}  // namespace
}  // namespace clickrt::quant
