// The CUDA runtime's lowering (runtime/cuda_plan.cc) on the zoo models: host-only, so it runs in
// CI without a GPU. What it checks is the plan's structure: which layers fuse into which GPU
// steps, that every GEMM's shapes and strides are consistent, and the arena plan.
#include <gtest/gtest.h>

#include <set>

#include "compiler/compiler.h"
#include "engine/engine_file.h"
#include "runtime/cpu_engine.h"
#include "runtime/cuda_plan.h"

namespace clickrt::runtime::gpu {
namespace {

struct Lowered {
  std::shared_ptr<engine::LoadedEngine> eng;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<Plan> plan;
};

Lowered Lower(const std::string& model, const std::string& precision) {
  compiler::BuildOptions o;
  o.backend = "cuda";
  o.precision = precision;
  o.gpu = {"test GPU", "sm_90", "13.0", "13.1.0"};
  o.build_time_utc = "2026-01-01T00:00:00Z";
  auto r = compiler::Build(std::string(CLICKRT_SOURCE_DIR) + "/models/" + model + "/model.onnx", o);
  EXPECT_TRUE(r.ok()) << r.status().ToString();
  auto bytes = engine::SerializeEngine(r->program, r->weights);
  EXPECT_TRUE(bytes.ok());
  Lowered l;
  l.eng = engine::LoadEngineFromBytes(*bytes).value();
  l.graph = RaiseProgram(*l.eng).value();
  auto p = BuildPlan(l.eng->program(), *l.graph);
  EXPECT_TRUE(p.ok()) << p.status().ToString();
  if (p.ok()) l.plan = std::move(p).value();
  return l;
}

std::vector<std::string> Kernels(const Plan& p) {
  std::vector<std::string> v;
  for (const auto& s : p.steps) v.push_back(s->kernel);
  return v;
}

std::string Describe(const Plan& p) {
  std::string s;
  for (const auto& st : p.steps) s += st->kernel + ": " + st->name + "\n";
  return s;
}

// Every GEMM reads and writes views that fit their buffers at the max batch.
void CheckGemms(const Plan& p) {
  for (const auto& s : p.steps) {
    for (const auto& g : s->gemms) {
      const Val& in = p.vals[g.in];
      const Val& out = p.vals[g.out];
      // K may be padded (zero weight rows): up to the next multiple of 8, or a gapped concat.
      EXPECT_GE(g.desc.k, in.cols) << s->name;
      if (in.segs.empty()) {
        EXPECT_LT(g.desc.k - in.cols, 8) << s->name;
      }
      EXPECT_LE(in.col + g.desc.k, p.bufs[in.buf].ld) << s->name;
      if (p.act != DataType::kF32 && g.desc.k != in.cols) {
        EXPECT_EQ(g.desc.k % 8, 0) << s->name;
      }
      EXPECT_EQ(out.cols, g.desc.n) << s->name;
      EXPECT_EQ(g.desc.lda, p.bufs[in.buf].ld) << s->name;
      EXPECT_EQ(g.desc.ldc, p.bufs[out.buf].ld) << s->name;
      EXPECT_LE(in.col + in.cols, p.bufs[in.buf].ld) << s->name;
      EXPECT_LE(out.col + out.cols, p.bufs[out.buf].ld) << s->name;
      EXPECT_GE(g.desc.align, 2) << s->name;
    }
  }
}

TEST(CudaPlan, DeepFmFusesEmbeddingFmFirstOrderAndTheMlp) {
  for (const char* prec : {"fp32", "fp16"}) {
    Lowered l = Lower("deepfm", prec);
    ASSERT_TRUE(l.plan) << prec;
    const auto k = Kernels(*l.plan);
    // One embedding pass (with FM and the first-order sum), the dense transform, the dense
    // first-order Linear, the MLP (fused or GEMM chain), the final sums + sigmoid.
    EXPECT_EQ(std::count(k.begin(), k.end(), "embedding_fused"), 1) << Describe(*l.plan);
    EXPECT_EQ(std::count(k.begin(), k.end(), "mlp"), 1) << Describe(*l.plan);
    EXPECT_EQ(std::count(k.begin(), k.end(), "copy"), 0) << Describe(*l.plan);  // concat written in place
    EXPECT_LE(l.plan->steps.size(), 5u) << Describe(*l.plan);
    CheckGemms(*l.plan);
    EXPECT_EQ(l.plan->act, std::string(prec) == "fp16" ? DataType::kF16 : DataType::kF32);
    ASSERT_EQ(l.plan->outputs.size(), 1u);
    EXPECT_EQ(l.plan->vals[l.plan->outputs[0].val].type, DataType::kF32);  // outputs stay FP32
    EXPECT_GT(l.plan->arena_bytes, 0);
  }
}

TEST(CudaPlan, SixteenBitGemmsGetAlignedPaddedShapes) {
  for (const char* model : {"deepfm", "dcnv2"}) {
    Lowered l = Lower(model, "fp16");
    ASSERT_TRUE(l.plan);
    for (const auto& s : l.plan->steps) {
      for (const auto& g : s->gemms) {
        // Every K is a multiple of 8 and every A operand 16-byte aligned: tensor-core kernels.
        EXPECT_EQ(g.desc.k % 8, 0) << model << " " << s->name << " k=" << g.desc.k;
        EXPECT_GE(g.desc.align, 16) << model << " " << s->name;
      }
    }
  }
}

TEST(CudaPlan, DcnV2CrossLayersAreGemmPlusOneElementwise) {
  Lowered l = Lower("dcnv2", "bf16");
  ASSERT_TRUE(l.plan);
  const auto k = Kernels(*l.plan);
  EXPECT_EQ(std::count(k.begin(), k.end(), "cross"), 3) << Describe(*l.plan);
  EXPECT_EQ(std::count(k.begin(), k.end(), "copy"), 0) << Describe(*l.plan);
  CheckGemms(*l.plan);
}

TEST(CudaPlan, SmallBatchesDefaultToSkinnyKernelsWithFusedEpilogues) {
  Lowered l = Lower("dcnv2", "fp16");
  ASSERT_TRUE(l.plan);
  int cross = 0;
  for (const auto& s : l.plan->steps) {
    if (s->gemms.empty()) continue;
    EXPECT_EQ(s->VariantFor(1), kSkinny) << s->name;
    EXPECT_EQ(s->VariantFor(4096), kCublasLt) << s->name;
    for (const auto& g : s->gemms) EXPECT_GE(g.wt, 0) << s->name;  // transposed weights uploaded
    if (s->kernel == "cross") {
      ++cross;
      EXPECT_EQ(s->gemms[0].skinny_epi, cuda::SkinnyEpilogue::kCross);
      EXPECT_GE(s->gemms[0].x0, 0);
      EXPECT_GE(s->gemms[0].xl, 0);
    }
    s->variant[1] = kFusedMlp;  // a tuned choice is honoured only where it applies
    const bool has_fused = std::count(s->variants.begin(), s->variants.end(), kFusedMlp) > 0;
    EXPECT_EQ(s->VariantFor(1), has_fused ? kFusedMlp : kSkinny) << s->name;
  }
  EXPECT_EQ(cross, 3);
}

TEST(CudaPlan, UnsupportedOpIsAClearError) {
  compiler::BuildOptions o;
  o.backend = "cuda";
  o.gpu = {"test GPU", "sm_90", "13.0", "13.1.0"};
  auto r = compiler::Build(std::string(CLICKRT_SOURCE_DIR) + "/models/din/model.onnx", o);
  ASSERT_TRUE(r.ok());
  auto eng = engine::LoadEngineFromBytes(engine::SerializeEngine(r->program, r->weights).value()).value();
  auto g = RaiseProgram(*eng).value();
  auto p = BuildPlan(eng->program(), *g);
  ASSERT_FALSE(p.ok());
  EXPECT_EQ(p.status().code(), StatusCode::kUnimplemented);
  EXPECT_NE(p.status().message().find("has no CUDA kernel"), std::string::npos) << p.status().ToString();
  EXPECT_NE(p.status().message().find("layer '"), std::string::npos) << p.status().ToString();
}

TEST(CudaPlan, ArenaBuffersThatLiveTogetherDoNotOverlap) {
  Lowered l = Lower("deepfm", "fp16");
  ASSERT_TRUE(l.plan);
  const Plan& p = *l.plan;
  for (size_t i = 0; i < p.bufs.size(); ++i) {
    for (size_t j = i + 1; j < p.bufs.size(); ++j) {
      const Buf& a = p.bufs[i];
      const Buf& b = p.bufs[j];
      if (a.input >= 0 || b.input >= 0 || a.last < 0 || b.last < 0) continue;
      if (a.first > b.last || b.first > a.last) continue;
      const int64_t ae = a.offset + a.bytes(p.max_rows), be = b.offset + b.bytes(p.max_rows);
      EXPECT_TRUE(ae <= b.offset || be <= a.offset) << i << " and " << j;
      EXPECT_LE(std::max(ae, be), p.arena_bytes);
    }
  }
}

}  // namespace
}  // namespace clickrt::runtime::gpu
