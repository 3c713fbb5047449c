// The CUDA runtime end to end on the GPU: zoo models compiled for the cuda backend, run against
// PyTorch's stored outputs, from several threads at once, with batches padded to buckets, and
// its errors (foreign engine, batch outside the profile).
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstring>
#include <thread>

#include "compiler/compiler.h"
#include "engine/engine_file.h"
#include "import/onnx/onnx_importer.h"
#include "kernels/cuda/device.h"
#include "kernels/cuda/gemm.h"
#include "quant/quantize_graph.h"
#include "runtime/cpu_engine.h"
#include "runtime/cuda_engine.h"

namespace clickrt::runtime {
namespace {

std::string Fixture(const std::string& model, const std::string& file) {
  return std::string(CLICKRT_SOURCE_DIR) + "/models/" + model + "/" + file;
}

std::unique_ptr<CudaEngine> Build(const std::string& model, const std::string& precision,
                                  const std::string& backend = "cuda",
                                  quant::EmbeddingFormat emb = quant::EmbeddingFormat::kFloat32) {
  compiler::BuildOptions o;
  if (emb != quant::EmbeddingFormat::kFloat32) {
    quant::QuantizeOptions q;
    q.int8_layers = false;
    q.embeddings = emb;
    o.after_passes = quant::AssignmentHook(q);
  }
  o.backend = backend;
  o.precision = precision;
  o.profile = {1, 8, 64, {1, 8, 64}};
  const auto devs = cuda::ListDevices();
  o.gpu = {devs.at(0).name, "sm_" + std::to_string(devs[0].sm_major) + std::to_string(devs[0].sm_minor),
           cuda::RuntimeVersion(), cuda::LtGemm::Version()};
  auto r = compiler::Build(Fixture(model, "model.onnx"), o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  auto eng = engine::LoadEngineFromBytes(engine::SerializeEngine(r->program, r->weights).value()).value();
  CudaEngineOptions co;
  co.contexts = 2;
  auto e = CudaEngine::Create(eng, co);
  EXPECT_TRUE(e.ok()) << e.status().ToString();
  return e.ok() ? std::move(e).value() : nullptr;
}

reference::TensorMap SampleInputs(const std::string& model) {
  reference::TensorMap in;
  for (const char* name : {"dense", "sparse"}) {
    in[name] = onnx_import::ReadTensorProtoFile(Fixture(model, std::string("sample_inputs/") + name + ".pb")).value();
  }
  return in;
}

float MaxDiff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.dims(), b.dims());
  float d = 0;
  for (int64_t i = 0; i < a.size(); ++i) d = std::max(d, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  return d;
}

TEST(CudaEngine, ZooModelsMatchPyTorchInEveryPrecision) {
  for (const char* model : {"deepfm", "dcnv2"}) {
    const Tensor want = onnx_import::ReadTensorProtoFile(Fixture(model, "sample_outputs/prob.pb")).value();
    for (const char* prec : {"fp32", "tf32", "fp16", "bf16"}) {
      auto e = Build(model, prec);
      ASSERT_TRUE(e) << model << " " << prec;
      auto out = e->Run(SampleInputs(model));
      ASSERT_TRUE(out.ok()) << out.status().ToString();
      const float tol = std::string(prec) == "fp32" ? 1e-5f : 2e-3f;
      EXPECT_LE(MaxDiff(out->at("prob"), want), tol) << model << " " << prec;
    }
  }
}

// Row-wise int8 / int4 embedding tables on the GPU: the same click probabilities as the CPU
// runtime's engine with the same tables (rows dequantize bit for bit alike on both).
TEST(CudaEngine, RowwiseQuantizedEmbeddingsMatchTheCpuEngine) {
  for (const char* model : {"deepfm", "dcnv2"}) {
    for (auto emb : {quant::EmbeddingFormat::kInt8Rowwise, quant::EmbeddingFormat::kInt4Rowwise}) {
      compiler::BuildOptions o;
      o.profile = {1, 8, 64, {}};
      quant::QuantizeOptions q;
      q.int8_layers = false;
      q.embeddings = emb;
      o.after_passes = quant::AssignmentHook(q);
      auto cpu_built = compiler::Build(Fixture(model, "model.onnx"), o).value();
      auto cpu = CpuEngine::Create(
                     engine::LoadEngineFromBytes(
                         engine::SerializeEngine(cpu_built.program, cpu_built.weights).value())
                         .value())
                     .value();
      const auto in = SampleInputs(model);
      const Tensor want = cpu->Run(in).value().at("prob");
      for (const char* prec : {"fp32", "fp16"}) {
        auto e = Build(model, prec, "cuda", emb);
        ASSERT_TRUE(e) << model << " " << prec;
        auto out = e->Run(in);
        ASSERT_TRUE(out.ok()) << out.status().ToString();
        const float tol = std::string(prec) == "fp32" ? 1e-5f : 2e-3f;
        EXPECT_LE(MaxDiff(out->at("prob"), want), tol)
            << model << " " << prec << " " << quant::EmbeddingFormatName(emb);
      }
    }
  }
}

// Every batch size from 1 to 64 (padded to buckets 1, 8, 64), from four threads sharing the
// engine's weights, gives the rows a batch of one gives.
TEST(CudaEngine, ThreadsAndPaddedBatchesAgreeWithSingleRows) {
  auto e = Build("deepfm", "fp32");
  ASSERT_TRUE(e);
  const reference::TensorMap sample = SampleInputs("deepfm");
  const int64_t n = sample.at("dense").dim(0);  // 8 sample rows
  auto rows = [&](int64_t b) {  // b rows cycling through the sample
    reference::TensorMap in;
    for (const auto& [name, t] : sample) {
      Dims d = t.dims();
      d[0] = b;
      Tensor x = Tensor::Zeros(t.dtype(), d).value();
      const size_t row = t.nbytes() / static_cast<size_t>(n);
      for (int64_t i = 0; i < b; ++i) {
        std::memcpy(static_cast<char*>(x.raw()) + i * row, static_cast<const char*>(t.raw()) + (i % n) * row, row);
      }
      in[name] = x;
    }
    return in;
  };
  const Tensor ref = e->Run(rows(n)).value().at("prob");
  std::vector<std::thread> threads;
  std::atomic<int> bad{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int64_t b = 1 + t; b <= 64; b += 4) {
        auto out = e->Run(rows(b));
        if (!out.ok()) {
          ++bad;
          continue;
        }
        for (int64_t i = 0; i < b; ++i) {
          if (std::fabs(out->at("prob").data<float>()[i] - ref.data<float>()[i % n]) > 1e-6f) ++bad;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(bad.load(), 0);
}

TEST(CudaEngine, ErrorsNameWhatIsWrong) {
  auto e = Build("deepfm", "fp16");
  ASSERT_TRUE(e);
  reference::TensorMap in = SampleInputs("deepfm");
  auto big = e->Run([&] {
    reference::TensorMap m;
    m["dense"] = Tensor::Zeros(DType::kFloat32, {65, 13}).value();
    m["sparse"] = Tensor::Zeros(DType::kInt64, {65, 26}).value();
    return m;
  }());
  ASSERT_FALSE(big.ok());
  EXPECT_NE(big.status().message().find("outside the engine's profile"), std::string::npos) << big.status().ToString();
  in.erase("dense");
  EXPECT_FALSE(e->Run(in).ok());
  // A cpu engine is refused by the CUDA runtime, naming both backends.
  compiler::BuildOptions o;
  auto cpu = compiler::Build(Fixture("deepfm", "model.onnx"), o).value();
  auto loaded = engine::LoadEngineFromBytes(engine::SerializeEngine(cpu.program, cpu.weights).value()).value();
  auto refused = CudaEngine::Create(loaded);
  ASSERT_FALSE(refused.ok());
  EXPECT_NE(refused.status().message().find("cpu backend"), std::string::npos) << refused.status().ToString();
}

TEST(CudaEngine, TuningRecordsAChoiceForEveryGemmAndBucket) {
  auto e = Build("dcnv2", "fp16");
  ASSERT_TRUE(e);
  CudaEngine::TuneReport rep;
  auto choices = e->Tune(nullptr, &rep);
  ASSERT_TRUE(choices.ok()) << choices.status().ToString();
  EXPECT_GT(rep.gemms_timed, 0);
  EXPECT_FALSE((*choices)["gemm"].empty());
  EXPECT_FALSE((*choices)["variant"].empty());
  for (const char* layer : {"/out/Gemm/Linear"}) EXPECT_TRUE((*choices)["layers"].contains(layer)) << choices->dump();
  // Still right after tuning (graphs are recaptured with the tuned choices).
  auto out = e->Run(SampleInputs("dcnv2"));
  ASSERT_TRUE(out.ok());
  const Tensor want = onnx_import::ReadTensorProtoFile(Fixture("dcnv2", "sample_outputs/prob.pb")).value();
  EXPECT_LE(MaxDiff(out->at("prob"), want), 2e-3f);
}

}  // namespace
}  // namespace clickrt::runtime
