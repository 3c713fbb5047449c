// fuse_qdq: ONNX Runtime's QDQ layout => INT8 Linear / Cross. Small built models for each pattern
// and each refusal, then the committed QDQ fixtures (python/make_qdq_models.py): the model's codes
// and scales kept bit for bit, and the CPU engine against the reference executor on the unfused
// QDQ graph (the ONNX semantics).
#include <cstring>

#include "compiler/compiler.h"
#include "pass_test_util.h"
#include "runtime/cpu_engine.h"

namespace clickrt::passes {
namespace {

using namespace test_util;  // NOLINT: test helpers

constexpr int kInt8 = onnx::TensorProto::INT8;
constexpr int kUInt8 = onnx::TensorProto::UINT8;
constexpr int kInt32 = onnx::TensorProto::INT32;

void Init(OnnxBuilder& b, const std::string& name, int type, const std::vector<int64_t>& dims,
          const std::vector<double>& v) {
  auto* t = b.model().mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(type);
  for (int64_t d : dims) t->add_dims(d);
  for (double x : v) {
    if (type == kFloat) {
      t->add_float_data(static_cast<float>(x));
    } else {
      t->add_int32_data(static_cast<int32_t>(x));
    }
  }
}

// Deterministic int8 codes in [-127, 127].
std::vector<double> Codes(int n, int seed) {
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = ((i * 37 + seed * 11) % 255) - 127;
  return v;
}

// x -> Q(name_scale, name_zero_point) -> DQ, ORT's names; returns the DQ output.
std::string ActivationPair(OnnxBuilder& b, const std::string& x, double scale, int zp_type = kInt8,
                           double zp = 0) {
  Init(b, x + "_scale", kFloat, {}, {scale});
  Init(b, x + "_zero_point", zp_type, {}, {zp});
  b.Node("QuantizeLinear", {x, x + "_scale", x + "_zero_point"}, {x + "_QuantizeLinear_Output"},
         x + "_QuantizeLinear");
  b.Node("DequantizeLinear", {x + "_QuantizeLinear_Output", x + "_scale", x + "_zero_point"},
         {x + "_DequantizeLinear_Output"}, x + "_DequantizeLinear");
  return x + "_DequantizeLinear_Output";
}

// W [rows, cols] int8 with per-channel scales along `axis` (zero points `zp`); returns DQ output.
std::string WeightDq(OnnxBuilder& b, const std::string& w, int64_t rows, int64_t cols, int64_t axis,
                     const std::vector<double>& scales, std::vector<double> zp = {}) {
  if (zp.empty()) zp.assign(scales.size(), 0);
  Init(b, w + "_quantized", kInt8, {rows, cols}, Codes(static_cast<int>(rows * cols), 3));
  Init(b, w + "_scale", kFloat, {static_cast<int64_t>(scales.size())}, scales);
  Init(b, w + "_zero_point", kInt8, {static_cast<int64_t>(zp.size())}, zp);
  auto* dq = b.Node("DequantizeLinear", {w + "_quantized", w + "_scale", w + "_zero_point"},
                    {w + "_DequantizeLinear_Output"}, w + "_DequantizeLinear");
  OnnxBuilder::IntAttr(dq, "axis", axis);
  return w + "_DequantizeLinear_Output";
}

std::vector<double> Scales(int n, double base) {
  std::vector<double> v(n);
  for (int i = 0; i < n; ++i) v[i] = base * (1 + 0.1 * i);
  return v;
}

// Inputs in [-4, 4): both signs, inside the activation range the models' scales are made for.
TensorMap SignedInputs(const ir::Graph& g, int64_t batch, uint32_t seed) {
  TensorMap m = RandomInputs(g, batch, seed);
  for (auto& [name, t] : m) {
    for (int64_t i = 0; i < t.size(); ++i) t.data<float>()[i] -= 4.f;
  }
  return m;
}

const ir::Node* Int8Linear(const ir::Graph& g, int index = 0) {
  for (const auto& n : g.nodes()) {
    if (n->op == OpKind::kLinear && n->input(1)->dtype == DType::kInt8 && index-- == 0) {
      return n.get();
    }
  }
  return nullptr;
}

int CountInt8(const ir::Graph& g, OpKind op) {
  int n = 0;
  const int w = op == OpKind::kCross ? 2 : 1;
  for (const auto& node : g.nodes()) n += node->op == op && node->input(w)->dtype == DType::kInt8;
  return n;
}

bool SameBits(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.dims() == b.dims() &&
         std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0;
}

// Runs the pipeline; returns what the warnings (stderr) said.
std::string Optimize(ir::Graph& g) {
  ::testing::internal::CaptureStderr();
  RunAll(g);
  return ::testing::internal::GetCapturedStderr();
}

// ---- the patterns ----

TEST(FuseQdq, MatMulPerChannelBecomesAnInt8Linear) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 6}).Output("y", kFloat, {-1, 4});
  const std::string xd = ActivationPair(b, "x", 4.0 / 127);
  const std::string wd = WeightDq(b, "W", 6, 4, 1, Scales(4, 0.01));
  b.Node("MatMul", {xd, wd}, {"y"}, "mm");
  auto before = Load(b), after = Load(b);
  ASSERT_TRUE(before && after);
  EXPECT_EQ(RunPass(FuseQdq, *after), 1);
  EXPECT_EQ(Count(*after, OpKind::kQuantizeLinear), 0);
  EXPECT_EQ(Count(*after, OpKind::kDequantizeLinear), 0);
  const ir::Node* lin = Int8Linear(*after);
  ASSERT_NE(lin, nullptr) << ir::Dump(*after);
  EXPECT_EQ(lin->input(0), after->inputs[0]);  // the pair only fed the GEMM: bypassed
  EXPECT_TRUE(SameBits(*lin->input(1)->constant, *before->FindValue("W_quantized")->constant));
  EXPECT_TRUE(SameBits(*lin->input(3)->constant, *before->FindValue("W_scale")->constant));
  EXPECT_EQ(lin->GetFloat("x_scale", 0), *before->FindValue("x_scale")->constant->data<float>());
  // The int32 sum is exact; only float reassociation differs from DQ -> float MatMul.
  for (int64_t batch : {1, 5})
    ExpectSameOutputs(*before, *after, SignedInputs(*before, batch, 7), 1e-4);
}

// ORT's Gemm: transB=1 weight per channel on axis 0, int32 bias DQ, the output's own pair, Relu,
// then the next layer's pair: after the pipeline two INT8 Linears, the first with the Relu.
TEST(FuseQdq, GemmTransBWithInt32BiasAndReluChain) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 5}).Output("out", kFloat, {-1, 2});
  const double xs = 4.0 / 127, ys = 6.0 / 127, rs = 5.0 / 127;
  const std::string xd = ActivationPair(b, "x", xs);
  const std::vector<double> ws = Scales(3, 0.02);
  const std::string wd = WeightDq(b, "W", 3, 5, 0, ws);  // [N=3, K=5]
  std::vector<double> bias_scale;
  for (double s : ws) bias_scale.push_back(static_cast<float>(xs) * static_cast<float>(s));
  Init(b, "B_quantized", kInt32, {3}, {1234, -5678, 90});
  Init(b, "B_quantized_scale", kFloat, {3}, bias_scale);
  Init(b, "B_quantized_zero_point", kInt32, {3}, {0, 0, 0});
  auto* bdq =
      b.Node("DequantizeLinear", {"B_quantized", "B_quantized_scale", "B_quantized_zero_point"},
             {"B"}, "B_DequantizeLinear");
  OnnxBuilder::IntAttr(bdq, "axis", 0);
  auto* gemm = b.Node("Gemm", {xd, wd, "B"}, {"y"}, "gemm1");
  OnnxBuilder::IntAttr(gemm, "transB", 1);
  const std::string yd = ActivationPair(b, "y", ys);
  b.Node("Relu", {yd}, {"r"}, "relu");
  const std::string rd = ActivationPair(b, "r", rs);
  const std::string w2 = WeightDq(b, "W2", 3, 2, 1, Scales(2, 0.03));
  b.Node("MatMul", {rd, w2}, {"out"}, "mm2");
  auto before = Load(b), after = Load(b);
  ASSERT_TRUE(before && after);
  const std::string log = Optimize(*after);
  EXPECT_EQ(log.find("fuse_qdq"), std::string::npos) << log;
  ASSERT_EQ(CountInt8(*after, OpKind::kLinear), 2) << ir::Dump(*after);
  const ir::Node* l1 = Int8Linear(*after, 0);
  const ir::Node* l2 = Int8Linear(*after, 1);
  EXPECT_EQ(l1->GetInt("activation", 0), 1) << ir::Dump(*after);  // the Relu, moved and absorbed
  // W [N,K] -> [K,N]: codes transposed, not requantized.
  const Tensor& stored = *before->FindValue("W_quantized")->constant;
  const Tensor& w = *l1->input(1)->constant;
  ASSERT_EQ(w.dims(), (Dims{5, 3}));
  for (int k = 0; k < 5; ++k) {
    for (int n = 0; n < 3; ++n)
      EXPECT_EQ(w.data<int8_t>()[k * 3 + n], stored.data<int8_t>()[n * 5 + k]);
  }
  EXPECT_TRUE(SameBits(*l1->input(3)->constant, *before->FindValue("W_scale")->constant));
  for (int n = 0; n < 3; ++n) {  // the bias as its DequantizeLinear computes it
    const float want = static_cast<float>(std::vector<int>{1234, -5678, 90}[n]) *
                       before->FindValue("B_quantized_scale")->constant->data<float>()[n];
    EXPECT_EQ(l1->input(2)->constant->data<float>()[n], want);
  }
  EXPECT_EQ(l1->GetFloat("x_scale", 0), static_cast<float>(xs));
  EXPECT_EQ(l2->GetFloat("x_scale", 0), static_cast<float>(rs));
  // The y pair (fake quantization of the first layer's output) stays; r's pair is bypassed.
  EXPECT_EQ(Count(*after, OpKind::kQuantizeLinear), 1);
  EXPECT_EQ(Count(*after, OpKind::kDequantizeLinear), 1);
  EXPECT_EQ(Count(*after, OpKind::kRelu), 0);
  for (int64_t batch : {1, 9})
    ExpectSameOutputs(*before, *after, SignedInputs(*before, batch, 3), 1e-4);
}

// The pair's output also feeds a non-GEMM: the Linear reads the pair's output (same codes), the
// other reader keeps its fake-quantized input.
TEST(FuseQdq, SharedPairStaysForItsOtherReaders) {
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 6}).Output("y", kFloat, {-1, 4}).Output("z", kFloat, {-1, 6});
  const std::string xd = ActivationPair(b, "x", 4.0 / 127);
  const std::string wd = WeightDq(b, "W", 6, 4, -1, Scales(4, 0.01));
  b.Node("MatMul", {xd, wd}, {"y"}, "mm");
  b.Node("Sigmoid", {xd}, {"z"}, "other");
  auto before = Load(b), after = Load(b);
  ASSERT_TRUE(before && after);
  Optimize(*after);
  const ir::Node* lin = Int8Linear(*after);
  ASSERT_NE(lin, nullptr);
  EXPECT_EQ(lin->input(0)->name, xd);
  EXPECT_EQ(Count(*after, OpKind::kQuantizeLinear), 1);
  ExpectSameOutputs(*before, *after, SignedInputs(*before, 4, 11), 1e-4);
}

// Relu(DQ(Q(y))) = DQ(Q(Relu(y))) for any zero point shared by Q and DQ (here uint8 100 after a
// float MatMul): moved, absorbed by fuse_linear, same outputs. Zero points that differ: kept.
TEST(FuseQdq, MovesReluBeforeAPairOfOneZeroPointOnly) {
  for (double dq_zp : {100.0, 90.0}) {
    OnnxBuilder b;
    b.Input("x", kFloat, {-1, 3}).Output("r", kFloat, {-1, 2});
    b.FloatInit("W", {3, 2}, Iota(6, 1.f));
    b.Node("MatMul", {"x", "W"}, {"y"}, "mm");
    Init(b, "s", kFloat, {}, {0.05});
    Init(b, "zq", kUInt8, {}, {100});
    Init(b, "zd", kUInt8, {}, {dq_zp});
    b.Node("QuantizeLinear", {"y", "s", "zq"}, {"yq"}, "q");
    b.Node("DequantizeLinear", {"yq", "s", "zd"}, {"yd"}, "dq");
    b.Node("Relu", {"yd"}, {"r"}, "relu");
    auto before = Load(b), after = Load(b);
    ASSERT_TRUE(before && after);
    Optimize(*after);
    const bool moved = dq_zp == 100.0;
    EXPECT_EQ(Count(*after, OpKind::kRelu), moved ? 0 : 1) << ir::Dump(*after);
    EXPECT_EQ(First(*after, OpKind::kLinear)->GetInt("activation", 0), moved ? 1 : 0);
    EXPECT_EQ(after->outputs[0]->producer->op, moved ? OpKind::kDequantizeLinear : OpKind::kRelu);
    ExpectSameOutputs(*before, *after, SignedInputs(*before, 8, 2), 1e-6);
  }
}

// ---- what stays float, with a warning naming the node and the reason ----

struct Refusal {
  const char* name;
  int act_zp_type;
  double act_zp;
  int64_t w_axis;
  std::vector<double> w_zp;
  const char* says;
};

void PrintTo(const Refusal& r, std::ostream* os) { *os << r.name; }

class FuseQdqRefuses : public ::testing::TestWithParam<Refusal> {};

TEST_P(FuseQdqRefuses, KeepsTheLayerFloatWithTheOnnxSemantics) {
  const Refusal& r = GetParam();
  OnnxBuilder b;
  b.Input("x", kFloat, {-1, 6}).Output("y", kFloat, {-1, 4});
  const std::string xd = ActivationPair(b, "x", 8.0 / 255, r.act_zp_type, r.act_zp);
  const int64_t channels = r.w_axis == 0 ? 6 : 4;
  const std::string wd = WeightDq(b, "W", 6, 4, r.w_axis, Scales(channels, 0.01), r.w_zp);
  b.Node("MatMul", {xd, wd}, {"y"}, "mm");
  auto before = Load(b), after = Load(b);
  ASSERT_TRUE(before && after);
  const std::string log = Optimize(*after);
  EXPECT_NE(log.find("fuse_qdq: MatMul 'mm' stays float32"), std::string::npos) << log;
  EXPECT_NE(log.find(r.says), std::string::npos) << log;
  EXPECT_NE(log.find("ActivationSymmetric"), std::string::npos) << log;
  EXPECT_EQ(CountInt8(*after, OpKind::kLinear), 0);
  EXPECT_EQ(Count(*after, OpKind::kLinear), 1);  // float, its weight the folded DQ
  EXPECT_EQ(Count(*after, OpKind::kQuantizeLinear), 1);
  EXPECT_EQ(Count(*after, OpKind::kDequantizeLinear), 1);
  ExpectSameOutputs(*before, *after, SignedInputs(*before, 6, 5), 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Patterns, FuseQdqRefuses,
    ::testing::Values(
        Refusal{"uint8_activation", kUInt8, 128, 1, {}, "quantizes to uint8 with zero point 128"},
        Refusal{"asymmetric_int8_activation", kInt8, -3, 1, {}, "int8 with zero point -3"},
        Refusal{"weight_zero_point",
                kInt8,
                0,
                1,
                {0, 2, 0, 0},
                "weight zero point 'W_zero_point' is not 0"},
        Refusal{"weight_scale_on_input_axis", kInt8, 0, 0, {}, "along axis 0"}),
    [](const ::testing::TestParamInfo<Refusal>& info) { return std::string(info.param.name); });

// ---- the committed fixtures (ORT's layout, made by python/make_qdq_models.py) ----

std::string Fixture(const std::string& model) {
  return std::string(CLICKRT_SOURCE_DIR) + "/models/" + model + "/model_qdq.onnx";
}

TensorMap ValInputs(const std::string& model, const ir::Graph& g) {
  TensorMap m;
  for (const ir::Value* v : g.inputs) {
    auto t = onnx_import::ReadTensorProtoFile(std::string(CLICKRT_SOURCE_DIR) + "/models/" + model +
                                              "/val_inputs/" + v->name + ".pb");
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    if (t.ok()) m[v->name] = t.value();
  }
  return m;
}

// Every INT8 layer holds its model's codes (transposed for Gemm transB=1), weight scales and
// activation scale exactly. `w` is the weight's index among the layer's inputs.
void ExpectModelsQuantization(const ir::Graph& model, const ir::Graph& g, OpKind op, int expected) {
  const int w = op == OpKind::kCross ? 2 : 1;
  int seen = 0;
  for (const auto& n : g.nodes()) {
    if (n->op != op || n->input(w)->dtype != DType::kInt8) continue;
    ++seen;
    const Tensor& codes = *n->input(w)->constant;
    const Tensor& ws = *n->input(w + 2)->constant;
    // The model's weight (<w>_quantized, <w>_scale) whose scales these are.
    const ir::Value* stored = nullptr;
    std::string base;
    for (const auto& v : model.values()) {
      if (!v->constant || !v->name.ends_with("_scale") || !SameBits(*v->constant, ws)) continue;
      base = v->name.substr(0, v->name.size() - 6);
      stored = model.FindValue(base + "_quantized");
      if (stored && stored->dtype == DType::kInt8) break;
    }
    ASSERT_TRUE(stored && stored->dtype == DType::kInt8)
        << n->Label() << ": w_scale is not one of the model's weight scales";
    const Tensor& q = *stored->constant;
    // Stored [N, K] (Gemm transB=1, channel axis 0) or [K, N] (axis 1).
    const ir::Node* dq = model.FindValue(base + "_DequantizeLinear_Output")->producer;
    const bool transposed = dq->GetInt("axis", 1) == 0;
    for (int64_t k = 0; k < codes.dim(0); ++k) {
      for (int64_t j = 0; j < codes.dim(1); ++j) {
        const int8_t want =
            transposed ? q.data<int8_t>()[j * q.dim(1) + k] : q.data<int8_t>()[k * q.dim(1) + j];
        ASSERT_EQ(codes.data<int8_t>()[k * codes.dim(1) + j], want) << n->Label();
      }
    }
    // x_scale is one of the model's activation scales (a scalar "<tensor>_scale").
    bool found = false;
    const float xs = n->GetFloat("x_scale", 0);
    for (const auto& v : model.values()) {
      found |= v->constant && v->constant->size() == 1 && v->name.ends_with("_scale") &&
               v->constant->rank() == 0 && v->constant->data<float>()[0] == xs;
    }
    EXPECT_TRUE(found) << n->Label() << ": x_scale " << xs;
  }
  EXPECT_EQ(seen, expected) << ir::Dump(g);
}

struct QdqZooCase {
  const char* model;
  int int8_linears, int8_crosses, relus_absorbed;
};

void PrintTo(const QdqZooCase& c, std::ostream* os) { *os << c.model; }

class QdqZoo : public ::testing::TestWithParam<QdqZooCase> {};

TEST_P(QdqZoo, PassKeepsTheModelsCodesAndScales) {
  const QdqZooCase& c = GetParam();
  auto model = onnx_import::ImportModel(Fixture(c.model));
  auto g = onnx_import::ImportModel(Fixture(c.model));
  ASSERT_TRUE(model.ok() && g.ok()) << g.status().ToString();
  const std::string log = Optimize(**g);
  EXPECT_EQ(log.find("stays float32"), std::string::npos) << log;
  ExpectModelsQuantization(**model, **g, OpKind::kLinear, c.int8_linears);
  ExpectModelsQuantization(**model, **g, OpKind::kCross, c.int8_crosses);
  int relu = 0;
  for (const auto& n : (*g)->nodes())
    relu += n->op == OpKind::kLinear && n->GetInt("activation", 0) == 1;
  EXPECT_EQ(relu, c.relus_absorbed);
  std::vector<PassReport> again;
  ASSERT_TRUE(RunPipeline(**g, {}, &again).ok());
  for (const PassReport& r : again) EXPECT_EQ(r.rewrites, 0) << "second run of " << r.name;
}

// clickrt's CPU engine (INT8 fast kernels) against the reference executor on the unfused QDQ
// graph, i.e. the ONNX semantics, on the calibration rows.
TEST_P(QdqZoo, CpuEngineMatchesTheOnnxSemantics) {
  const QdqZooCase& c = GetParam();
  auto model = onnx_import::ImportModel(Fixture(c.model));
  ASSERT_TRUE(model.ok()) << model.status().ToString();
  const TensorMap in = ValInputs(c.model, **model);
  auto want = RunGraph(**model, in);
  ASSERT_TRUE(want.ok()) << want.status().ToString();

  compiler::BuildOptions bo;
  bo.profile = {1, 512, 2000, {}};
  auto built = compiler::Build(Fixture(c.model), bo);
  ASSERT_TRUE(built.ok()) << built.status().ToString();
  int qkernels = 0;
  for (const auto& l : built->program.layers) qkernels += l.kernel.find("_q") != std::string::npos;
  EXPECT_EQ(qkernels, c.int8_linears + c.int8_crosses);
  auto bytes = engine::SerializeEngine(built->program, built->weights);
  ASSERT_TRUE(bytes.ok());
  auto loaded = engine::LoadEngineFromBytes(*bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto eng = runtime::CpuEngine::Create(*loaded, {.threads = 2});
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  auto got = (*eng)->Run(in);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  for (const auto& [name, w] : *want) {
    const Tensor& t = got->at(name);
    ASSERT_EQ(t.dims(), w.dims());
    double max = 0, mean = 0;
    int64_t exact = 0;
    for (int64_t i = 0; i < t.size(); ++i) {
      const double e = std::fabs(t.data<float>()[i] - w.data<float>()[i]);
      max = std::max(max, e);
      mean += e / static_cast<double>(t.size());
      exact += e <= 1e-6;
    }
    std::cout << c.model << " " << name << ": max |diff| " << max << ", mean " << mean << ", "
              << exact << " / " << t.size() << " within 1e-6\n";
    // The int32 sums are exact and the arithmetic otherwise float: most rows agree to float
    // rounding. Where a layer's output is fake-quantized again (ORT quantizes GEMM outputs), a
    // float-rounding difference can move a value across a rounding boundary: one code of that
    // output's scale, carried to the probability damped by the later layers.
    EXPECT_LT(mean, 1e-4) << name;
    EXPECT_LT(max, 5e-3) << name;
    EXPECT_GT(exact, t.size() * 9 / 10) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(
    Fixtures, QdqZoo,
    ::testing::Values(QdqZooCase{"deepfm", 5, 0, 3},  // brief's ORT options: outputs quantized
                      QdqZooCase{"dcnv2", 4, 3, 3}),  // OpTypesToExcludeOutputQuantization
    [](const ::testing::TestParamInfo<QdqZooCase>& info) { return std::string(info.param.model); });

}  // namespace
}  // namespace clickrt::passes
