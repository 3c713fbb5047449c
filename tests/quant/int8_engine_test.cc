// INT8 engines end to end on the CPU: `compiler::Build` with the precision assignment, the engine
// file, and the CPU runtime's fast INT8 kernels against the reference executor on the same
// quantized graph (the ground truth), for the zoo models with GEMM layers.
#include <gtest/gtest.h>

#include <cmath>

#include "compiler/compiler.h"
#include "import/onnx/onnx_importer.h"
#include "passes/pipeline.h"
#include "quant/quantize_graph.h"
#include "reference/executor.h"
#include "runtime/cpu_engine.h"

namespace clickrt::quant {
namespace {

const std::string kModels = std::string(CLICKRT_SOURCE_DIR) + "/models/";

reference::TensorMap ValInputs(const std::string& model, const ir::Graph& g) {
  reference::TensorMap in;
  for (const ir::Value* v : g.inputs) {
    auto t = onnx_import::ReadTensorProtoFile(kModels + model + "/val_inputs/" + v->name + ".pb");
    EXPECT_TRUE(t.ok()) << t.status().ToString();
    in[v->name] = *t;
  }
  return in;
}

// Fixed activation scales (what a calibration would give, roughly): enough to exercise clipping
// and rounding in every layer; these tests compare kernels, not accuracy.
QuantizeOptions Options(const ir::Graph& g, EmbeddingFormat emb) {
  QuantizeOptions o;
  for (const auto& l : QuantizableLayers(g)) o.act_scales[l.input] = 4.f / 127.f;
  o.embeddings = emb;
  return o;
}

TEST(Int8Engine, CpuKernelsMatchTheReferenceOnTheQuantizedGraph) {
  for (const std::string model : {"deepfm", "dcnv2", "wide_deep"}) {
    for (auto emb : {EmbeddingFormat::kFloat32, EmbeddingFormat::kInt8Rowwise,
                     EmbeddingFormat::kInt4Rowwise}) {
      SCOPED_TRACE(model + " embeddings " + EmbeddingFormatName(emb));
      const std::string onnx = kModels + model + "/model.onnx";
      // The ground truth: the same assignment on the optimized graph, run by the reference.
      auto g = onnx_import::ImportModel(onnx);
      ASSERT_TRUE(g.ok());
      ASSERT_TRUE(passes::RunPipeline(**g, {}, nullptr).ok());
      const QuantizeOptions qo = Options(**g, emb);
      ASSERT_TRUE(QuantizeGraph(**g, qo).ok());
      auto ex = reference::Executor::Create(g->get());
      ASSERT_TRUE(ex.ok());
      const auto in = ValInputs(model, **g);
      auto want = (*ex)->Run(in);
      ASSERT_TRUE(want.ok()) << want.status().ToString();

      compiler::BuildOptions bo;
      bo.precision = "int8";
      bo.profile = {1, 512, 2000, {}};
      bo.after_passes = AssignmentHook(qo);
      bo.calibration_sha256 = std::string(64, 'a');
      auto built = compiler::Build(onnx, bo);
      ASSERT_TRUE(built.ok()) << built.status().ToString();
      EXPECT_EQ(built->program.meta.precision, "int8");
      EXPECT_EQ(built->program.meta.calibration_sha256, bo.calibration_sha256);
      const auto& pa = built->program.meta.extra["precision_assignment"];
      EXPECT_FALSE(pa["int8_layers"].empty());
      EXPECT_TRUE(pa["float_layers"].empty());
      EXPECT_EQ(pa["embeddings"], EmbeddingFormatName(emb));
      int qlayers = 0;
      for (const auto& l : built->program.layers) {
        qlayers += l.kernel.find("_q") != std::string::npos ||
                   l.kernel.find("_embedding_int") != std::string::npos;
      }
      EXPECT_GE(qlayers, 1);
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
        for (int64_t i = 0; i < t.size(); ++i) {
          const double e = std::fabs(t.data<float>()[i] - w.data<float>()[i]);
          max = std::max(max, e);
          mean += e / static_cast<double>(t.size());
        }
        // The int32 sums are exact; a float epilogue or an upstream rounding difference can move
        // an activation across a rounding boundary now and then, one code.
        EXPECT_LT(mean, 2e-5) << name;
        EXPECT_LT(max, 2e-3) << name;
      }
    }
  }
}

TEST(Int8Engine, Int8NeedsACalibration) {
  compiler::BuildOptions bo;
  bo.precision = "int8";
  auto r = compiler::Build(kModels + "deepfm/model.onnx", bo);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("calibration"), std::string::npos);
  bo.precision = "fp8";
  r = compiler::Build(kModels + "deepfm/model.onnx", bo);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cpu backend"), std::string::npos) << r.status().message();
}

}  // namespace
}  // namespace clickrt::quant
