// The compiler and the CPU runtime end to end: ONNX -> build -> engine bytes -> load -> run, checked
// against the reference executor; determinism; engines the runtime must refuse.
#include "compiler/compiler.h"

#include <cmath>
#include <filesystem>
#include <fstream>
#include <random>

#include <gtest/gtest.h>

#include "../onnx_builder.h"
#include "import/onnx/onnx_importer.h"
#include "kernels/cpu/fast/fast_kernels.h"
#include "reference/executor.h"
#include "runtime/cpu_engine.h"

namespace clickrt::compiler {
namespace {

namespace fs = std::filesystem;
using testing::OnnxBuilder;

// A small DeepFM-shaped model as PyTorch exports it: clamp + offsets + Gather embeddings, a D=1
// first-order table summed over fields, FM, dense features concatenated after the flattened
// embeddings, an MLP of Gemm + Relu, Add + Sigmoid.
std::string TinyDeepFm(int F, int V, int D, int H) {
  const int kDense = 3;
  std::mt19937 rng(3);
  std::normal_distribution<float> nd(0.f, 0.3f);
  auto randv = [&](size_t n) {
    std::vector<float> v(n);
    for (float& x : v) x = nd(rng);
    return v;
  };
  OnnxBuilder b;
  std::vector<int64_t> sizes(F, V), offsets(F);
  for (int f = 0; f < F; ++f) offsets[f] = static_cast<int64_t>(f) * V;
  b.Input("sparse", onnx::TensorProto::INT64, {-1, F})
      .Input("dense", onnx::TensorProto::FLOAT, {-1, kDense})
      .FloatInit("first_order", {static_cast<int64_t>(F) * V, 1}, randv(static_cast<size_t>(F) * V))
      .Int64Init("sizes", {F}, sizes)
      .Int64Init("offsets", {F}, offsets)
      .Int64Init("minus1", {}, {-1})
      .Int64Init("zero", {}, {0})
      .FloatInit("table", {static_cast<int64_t>(F) * V, D}, randv(static_cast<size_t>(F) * V * D))
      .Int64Init("axis1", {1}, {1})
      .FloatInit("half", {}, {0.5f})
      .FloatInit("w1", {H, F * D + kDense}, randv(static_cast<size_t>(H) * (F * D + kDense)))
      .FloatInit("b1", {H}, randv(H))
      .FloatInit("w2", {1, H}, randv(H))
      .FloatInit("b2", {1}, randv(1))
      .Output("prob", onnx::TensorProto::FLOAT, {-1, 1});
  b.Node("Greater", {"sparse", "minus1"}, {"ge0"});
  b.Node("Less", {"sparse", "sizes"}, {"ltv"});
  b.Node("And", {"ge0", "ltv"}, {"valid"});
  b.Node("Where", {"valid", "sparse", "zero"}, {"clamped"});
  b.Node("Add", {"clamped", "offsets"}, {"ids"});
  b.Node("Gather", {"table", "ids"}, {"emb"}, "embedding");
  OnnxBuilder::IntAttr(b.Node("ReduceSum", {"emb", "axis1"}, {"s"}), "keepdims", 0);
  b.Node("Mul", {"s", "s"}, {"sq"});
  b.Node("Mul", {"emb", "emb"}, {"e2"});
  OnnxBuilder::IntAttr(b.Node("ReduceSum", {"e2", "axis1"}, {"ss"}), "keepdims", 0);
  b.Node("Sub", {"sq", "ss"}, {"d"});
  auto* r = b.Node("ReduceSum", {"d", "axis1"}, {"r"});
  OnnxBuilder::IntAttr(r, "keepdims", 1);
  b.Node("Mul", {"r", "half"}, {"fm"});
  b.Node("Gather", {"first_order", "ids"}, {"fo_emb"}, "first_order_lookup");
  OnnxBuilder::IntAttr(b.Node("ReduceSum", {"fo_emb", "axis1"}, {"fo"}), "keepdims", 0);
  b.Node("Flatten", {"emb"}, {"flat"});
  OnnxBuilder::IntAttr(b.Node("Concat", {"flat", "dense"}, {"deep_in"}), "axis", 1);
  auto* g1 = b.Node("Gemm", {"deep_in", "w1", "b1"}, {"h1"});
  OnnxBuilder::IntAttr(g1, "transB", 1);
  b.Node("Relu", {"h1"}, {"a1"});
  auto* g2 = b.Node("Gemm", {"a1", "w2", "b2"}, {"mlp"});
  OnnxBuilder::IntAttr(g2, "transB", 1);
  b.Node("Add", {"fm", "mlp"}, {"fm_mlp"});
  b.Node("Add", {"fm_mlp", "fo"}, {"logit"});
  b.Node("Sigmoid", {"logit"}, {"prob"});
  return b.Bytes();
}

fs::path WriteModel(const std::string& bytes, const std::string& name) {
  fs::path p = fs::temp_directory_path() / ("clickrt_compiler_test_" + std::to_string(getpid()) + name);
  std::ofstream(p, std::ios::binary) << bytes;
  return p;
}

reference::TensorMap RandomIds(int64_t B, int F, int V, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<int64_t> ids(static_cast<size_t>(B) * F);
  for (auto& x : ids) x = static_cast<int64_t>(rng() % (V + 3)) - 1;  // some out of vocabulary
  std::vector<float> dense(static_cast<size_t>(B) * 3);
  for (auto& x : dense) x = static_cast<float>(rng() % 1000) / 100.f;
  return {{"sparse", Tensor::FromVector<int64_t>({B, F}, ids)},
          {"dense", Tensor::FromVector<float>({B, 3}, dense)}};
}

TEST(Compiler, EngineMatchesReferenceAndUsesFastKernels) {
  const int F = 5, V = 7, D = 4, H = 9;
  fs::path model = WriteModel(TinyDeepFm(F, V, D, H), "tiny.onnx");
  BuildOptions o;
  o.profile = {1, 8, 64, {}};
  auto r = Build(model.string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  std::map<std::string, int> ops;
  for (const auto& l : r->program.layers) {
    ++ops[l.op];
    if (l.op == "Linear" || l.op == "EmbeddingLookup" || l.op == "FMInteraction") {
      EXPECT_NE(l.kernel, "ref") << l.name;
    }
  }
  EXPECT_EQ(ops["EmbeddingLookup"], 2);
  EXPECT_EQ(ops["FMInteraction"], 1);
  EXPECT_EQ(ops["Linear"], 2);
  EXPECT_GT(r->program.meta.arena_bytes, 0);
  EXPECT_LE(r->program.meta.arena_bytes, r->program.meta.arena_bytes_no_reuse);
  EXPECT_EQ(r->program.meta.model_sha256.size(), 64u);

  auto bytes = engine::SerializeEngine(r->program, r->weights);
  ASSERT_TRUE(bytes.ok());
  auto loaded = engine::LoadEngineFromBytes(*bytes);
  ASSERT_TRUE(loaded.ok()) << loaded.status().ToString();
  auto eng = runtime::CpuEngine::Create(loaded.value(), {});
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  // The runtime fuses embedding + FM + first-order sum writing into the concat, and Add+Sigmoid.
  int fused = 0, one_pass = 0, add_sigmoid = 0;
  for (const auto& t : (*eng)->Timings()) {
    fused += t.kernel.rfind("fused into", 0) == 0;
    one_pass += t.kernel.find("fm/first-order/concat") != std::string::npos;
    add_sigmoid += t.kernel == "add+sigmoid";
  }
  EXPECT_EQ(one_pass, 1);
  EXPECT_EQ(add_sigmoid, 1);
  EXPECT_EQ(fused, 5);  // FM, first-order lookup, its ReduceSum, Flatten, Sigmoid

  auto g = onnx_import::ImportModel(model.string());
  ASSERT_TRUE(g.ok());
  auto ref = reference::Executor::Create(g->get()).value();
  for (int64_t B : {1, 3, 8, 64}) {
    auto in = RandomIds(B, F, V, static_cast<uint32_t>(B));
    auto want = ref->Run(in);
    auto got = (*eng)->Run(in);
    ASSERT_TRUE(want.ok() && got.ok()) << got.status().ToString();
    const Tensor& a = got->at("prob");
    const Tensor& w = want->at("prob");
    ASSERT_EQ(a.dims(), w.dims());
    for (int64_t i = 0; i < a.size(); ++i) {
      EXPECT_NEAR(a.data<float>()[i], w.data<float>()[i], 1e-5) << "batch " << B << " row " << i;
    }
  }
  // Outside the profile: a clear error naming both.
  auto big = (*eng)->Run(RandomIds(65, F, V, 1));
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("65"), std::string::npos);
  EXPECT_NE(big.status().message().find("64"), std::string::npos);
  fs::remove(model);
}

TEST(Compiler, BuildsAreDeterministic) {
  fs::path model = WriteModel(TinyDeepFm(3, 5, 4, 6), "det.onnx");
  BuildOptions o;
  o.build_time_utc = "2026-01-01T00:00:00Z";
  auto a = Build(model.string(), o);
  auto b = Build(model.string(), o);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(engine::SerializeEngine(a->program, a->weights).value(),
            engine::SerializeEngine(b->program, b->weights).value());
  fs::remove(model);
}

TEST(Compiler, RuntimeRefusesForeignEngines) {
  fs::path model = WriteModel(TinyDeepFm(3, 5, 4, 6), "foreign.onnx");
  auto r = Build(model.string(), {});
  ASSERT_TRUE(r.ok());
  engine::Program cuda = r->program;
  cuda.meta.backend = "cuda";
  auto e1 = runtime::CpuEngine::Create(
      engine::LoadEngineFromBytes(engine::SerializeEngine(cuda, r->weights).value()).value(), {});
  ASSERT_FALSE(e1.ok());
  EXPECT_EQ(e1.status().code(), StatusCode::kFailedPrecondition);
  EXPECT_NE(e1.status().message().find("cuda"), std::string::npos);

  engine::Program isa = r->program;
  isa.meta.cpu_isa = "avx1024";
  auto e2 = runtime::CpuEngine::Create(
      engine::LoadEngineFromBytes(engine::SerializeEngine(isa, r->weights).value()).value(), {});
  ASSERT_FALSE(e2.ok());
  EXPECT_NE(e2.status().message().find("avx1024"), std::string::npos);

  // An unknown op in the layer table (an engine from a newer clickrt) is refused by name.
  engine::Program newer = r->program;
  newer.layers[0].op = "FutureOp";
  auto e3 = runtime::CpuEngine::Create(
      engine::LoadEngineFromBytes(engine::SerializeEngine(newer, r->weights).value()).value(), {});
  ASSERT_FALSE(e3.ok());
  EXPECT_NE(e3.status().message().find("FutureOp"), std::string::npos);
  fs::remove(model);
}

TEST(Compiler, RejectsBadProfilesAndBackends) {
  fs::path model = WriteModel(TinyDeepFm(3, 5, 4, 6), "bad.onnx");
  BuildOptions o;
  o.profile = {8, 4, 16, {}};
  EXPECT_EQ(Build(model.string(), o).status().code(), StatusCode::kInvalidArgument);
  BuildOptions c;
  c.backend = "tpu";
  EXPECT_FALSE(Build(model.string(), c).ok());
  EXPECT_EQ(Build("/nonexistent.onnx", {}).status().code(), StatusCode::kNotFound);
  fs::remove(model);
}

}  // namespace
}  // namespace clickrt::compiler

namespace clickrt::compiler {
namespace {

// Each trained zoo model (models/<name>, made by python/make_models.py): the compiled CPU engine
// scores the sample request and the validation rows like PyTorch did (sample_outputs) within 1e-5.
class ZooEngine : public ::testing::TestWithParam<const char*> {};

TEST_P(ZooEngine, MatchesPyTorchOutputs) {
  const fs::path dir = fs::path(CLICKRT_SOURCE_DIR) / "models" / GetParam();
  if (!fs::exists(dir / "model.onnx")) GTEST_SKIP() << "fixture " << dir << " is missing";
  BuildOptions o;
  o.profile = {1, 64, 1024, {}};
  auto r = Build((dir / "model.onnx").string(), o);
  ASSERT_TRUE(r.ok()) << r.status().ToString();
  auto eng = runtime::CpuEngine::Create(
      engine::LoadEngineFromBytes(engine::SerializeEngine(r->program, r->weights).value()).value(), {});
  ASSERT_TRUE(eng.ok()) << eng.status().ToString();
  reference::TensorMap inputs;
  for (const ir::Value* v : (*eng)->graph().inputs) {
    auto t = onnx_import::ReadTensorProtoFile((dir / "sample_inputs" / (v->name + ".pb")).string());
    ASSERT_TRUE(t.ok()) << t.status().ToString();
    inputs[v->name] = std::move(t).value();
  }
  auto out = (*eng)->Run(inputs);
  ASSERT_TRUE(out.ok()) << out.status().ToString();
  for (const auto& [name, got] : *out) {
    auto want = onnx_import::ReadTensorProtoFile((dir / "sample_outputs" / (name + ".pb")).string());
    ASSERT_TRUE(want.ok()) << want.status().ToString();
    ASSERT_EQ(got.dims(), want->dims());
    double max_diff = 0;
    for (int64_t i = 0; i < got.size(); ++i) {
      max_diff = std::max(max_diff, std::abs(got.GetAsDouble(i) - want->GetAsDouble(i)));
    }
    EXPECT_LE(max_diff, 1e-5) << GetParam() << " output " << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Zoo, ZooEngine, ::testing::Values("deepfm", "dcnv2", "din", "wide_deep"),
                         [](const auto& info) { return std::string(info.param); });

}  // namespace
}  // namespace clickrt::compiler
