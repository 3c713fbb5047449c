// The pass pipeline on the zoo's exported models (PyTorch 1.13 fixtures in models/<name>, PyTorch
// 2.11 ones in models/torch2): the expected fusions happen and outputs stay those of the reference
// executor before rewriting (and torch's own).
#include "pass_test_util.h"

namespace clickrt::passes {
namespace {

using namespace test_util;  // NOLINT: test helpers

// ---- the zoo's models ----

struct ZooCase {
  const char* name;
  // Fused ops the pipeline must produce: op and the least count.
  std::vector<std::pair<OpKind, int>> expect;
};

// models/<name>/model.onnx as committed, or $CLICKRT_ZOO_DIR/<name>.onnx when set (fresh exports).
std::string ZooModelPath(const std::string& name) {
  if (const char* dir = std::getenv("CLICKRT_ZOO_DIR")) {
    return std::string(dir) + "/" + name + ".onnx";
  }
  return std::string(CLICKRT_SOURCE_DIR) + "/models/" + name + "/model.onnx";
}

void PrintTo(const ZooCase& c, std::ostream* os) { *os << c.name; }

class ZooPipeline : public ::testing::TestWithParam<ZooCase> {};

// Tensors <name>.pb in `dir` for each name, or an empty map if one is missing or unreadable.
TensorMap ReadTensorDir(const std::filesystem::path& dir, const std::vector<std::string>& names) {
  TensorMap m;
  for (const std::string& name : names) {
    auto t = onnx_import::ReadTensorProtoFile((dir / (name + ".pb")).string());
    if (!t.ok()) return {};
    m[name] = t.value();
  }
  return m;
}

std::vector<std::string> Names(const std::vector<ir::Value*>& values) {
  std::vector<std::string> names;
  for (const ir::Value* v : values) names.push_back(v->name);
  return names;
}

// Imports `path` twice and runs the pipeline with `opt` on the second copy: it must verify, hold
// at least the `expect`ed fused ops, and find nothing to do on a second run. Prints the node
// counts and the report under `label`.
void ImportAndOptimize(const std::string& path, const PipelineOptions& opt,
                       const std::vector<std::pair<OpKind, int>>& expect, const std::string& label,
                       std::unique_ptr<ir::Graph>* before, std::unique_ptr<ir::Graph>* after) {
  auto b = onnx_import::ImportModel(path);
  auto a = onnx_import::ImportModel(path);
  ASSERT_TRUE(b.ok()) << b.status().ToString();
  ASSERT_TRUE(a.ok()) << a.status().ToString();
  *before = std::move(b).value();
  *after = std::move(a).value();
  ir::Graph& g = **after;
  std::vector<PassReport> report;
  Status s = RunPipeline(g, opt, &report);
  ASSERT_TRUE(s.ok()) << s.ToString();
  ASSERT_TRUE(ir::Verify(g).ok());
  for (auto [op, least] : expect) {
    EXPECT_GE(Count(g, op), least) << ir::OpKindName(op) << "\n" << ir::Dump(g);
  }
  std::cout << label << ": " << (*before)->nodes().size() << " -> " << g.nodes().size()
            << " nodes\n"
            << FormatReport(report);
  std::vector<PassReport> again;
  ASSERT_TRUE(RunPipeline(g, opt, &again).ok());
  for (const PassReport& r : again) EXPECT_EQ(r.rewrites, 0) << "second run of " << r.name;
}

TEST_P(ZooPipeline, FusesAndKeepsTheOutputs) {
  const ZooCase& zc = GetParam();
  const std::string path = ZooModelPath(zc.name);
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "fixture " << path << " is missing";
  std::unique_ptr<ir::Graph> before, after;
  ImportAndOptimize(path, PipelineOptions{}, zc.expect, zc.name, &before, &after);
  if (HasFatalFailure()) return;
  for (int64_t batch : {1, 7}) {
    SCOPED_TRACE("batch " + std::to_string(batch));
    ExpectSameOutputs(*before, *after, RandomInputs(*before, batch, 100 + batch));
  }
  // The committed sample request too, where there is one.
  const auto samples = std::filesystem::path(path).parent_path() / "sample_inputs";
  if (TensorMap inputs = ReadTensorDir(samples, Names(before->inputs)); !inputs.empty()) {
    SCOPED_TRACE("sample_inputs");
    ExpectSameOutputs(*before, *after, inputs);
  }
  // A fixed batch: shapes specialized, the same fusions, the same outputs.
  PipelineOptions fixed;
  fixed.batch = {7, 7};
  ImportAndOptimize(path, fixed, zc.expect, std::string(zc.name) + " at batch 7", &before, &after);
  if (HasFatalFailure()) return;
  EXPECT_TRUE(after->inputs[0]->shape.fully_known()) << after->inputs[0]->shape.ToString();
  ExpectSameOutputs(*before, *after, RandomInputs(*before, 7, 107));
}

INSTANTIATE_TEST_SUITE_P(
    Zoo, ZooPipeline,
    ::testing::Values(
        ZooCase{"deepfm", {{OpKind::kEmbeddingLookup, 2}, {OpKind::kLinear, 4},
                           {OpKind::kFMInteraction, 1}}},
        ZooCase{"dcnv2", {{OpKind::kCross, 3}, {OpKind::kLinear, 1},
                          {OpKind::kEmbeddingLookup, 1}}},
        ZooCase{"wide_deep", {{OpKind::kLinear, 1}, {OpKind::kEmbeddingLookup, 1}}},
        ZooCase{"din", {{OpKind::kLinear, 1}, {OpKind::kEmbeddingLookup, 1},
                        {OpKind::kDinAttention, 1}}}),
    [](const ::testing::TestParamInfo<ZooCase>& info) { return std::string(info.param.name); });

// ---- PyTorch 2.x exports (models/torch2, made by models/torch2/export_torch2.py) ----

// Small versions of the zoo's models exported by PyTorch 2.11 with the TorchScript exporter
// (dynamo=False, opset 17) and the dynamo one (dynamo=True, opset 18), with torch's own outputs
// for a sample request.
struct Torch2Case {
  const char* model;
  const char* exporter;
  std::vector<std::pair<OpKind, int>> expect;
  // Ops clickrt does not have that this export uses; the case is skipped (naming them) until
  // they are supported, then runs in full.
  std::vector<std::string> blocked_by;
};

std::filesystem::path Torch2Dir(const Torch2Case& c) {
  return std::filesystem::path(CLICKRT_SOURCE_DIR) / "models" / "torch2" /
         (std::string(c.model) + "_" + c.exporter);
}

std::string Torch2Name(const Torch2Case& c) { return std::string(c.model) + "_" + c.exporter; }
void PrintTo(const Torch2Case& c, std::ostream* os) { *os << Torch2Name(c); }

std::vector<std::pair<OpKind, int>> Torch2Expect(const std::string& model) {
  if (model == "deepfm") {
    return {{OpKind::kEmbeddingLookup, 2}, {OpKind::kLinear, 4}, {OpKind::kFMInteraction, 1}};
  }
  if (model == "dcnv2") {
    return {{OpKind::kCross, 3}, {OpKind::kLinear, 1}, {OpKind::kEmbeddingLookup, 1}};
  }
  if (model == "din") {
    return {{OpKind::kLinear, 1}, {OpKind::kEmbeddingLookup, 1}, {OpKind::kDinAttention, 1}};
  }
  return {{OpKind::kLinear, 1}, {OpKind::kEmbeddingLookup, 1}};  // wide_deep
}

// The op types of the graph's unsupported nodes, sorted, once each.
std::vector<std::string> UnsupportedOps(const ir::Graph& g) {
  std::vector<std::string> ops;
  for (const auto& n : g.nodes()) {
    if (n->op == OpKind::kUnsupported &&
        std::find(ops.begin(), ops.end(), n->op_type) == ops.end()) {
      ops.push_back(n->op_type);
    }
  }
  std::sort(ops.begin(), ops.end());
  return ops;
}

void ExpectOutputsNear(const ir::Graph& g, const TensorMap& inputs, const TensorMap& want,
                       double tol) {
  auto got = RunGraph(g, inputs);
  ASSERT_TRUE(got.ok()) << got.status().ToString();
  for (const auto& [name, w] : want) {
    ASSERT_TRUE(got->count(name)) << name;
    const Tensor& o = got->at(name);
    ASSERT_EQ(w.dims(), o.dims()) << name;
    for (int64_t i = 0; i < w.size(); ++i) {
      ASSERT_NEAR(w.GetAsDouble(i), o.GetAsDouble(i), tol) << name << " element " << i;
    }
  }
}

class Torch2Exports : public ::testing::TestWithParam<Torch2Case> {};

TEST_P(Torch2Exports, ImportFuseAndMatchTorch) {
  const Torch2Case& c = GetParam();
  const std::filesystem::path dir = Torch2Dir(c);
  const std::string path = (dir / "model.onnx").string();
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "fixture " << path << " is missing";
  onnx_import::ImportOptions keep;
  keep.allow_unsupported = true;  // to name them below
  auto imported = onnx_import::ImportModel(path, keep);
  ASSERT_TRUE(imported.ok()) << imported.status().ToString();
  if (std::vector<std::string> missing = UnsupportedOps(**imported); !missing.empty()) {
    EXPECT_EQ(missing, c.blocked_by) << "unsupported ops changed";
    std::string list;
    for (const std::string& op : missing) list += (list.empty() ? "" : ", ") + op;
    GTEST_SKIP() << Torch2Name(c) << " uses ops clickrt does not support: " << list;
  }
  std::unique_ptr<ir::Graph> before, after;
  ImportAndOptimize(path, PipelineOptions{}, c.expect, Torch2Name(c), &before, &after);
  if (HasFatalFailure()) return;
  const TensorMap inputs = ReadTensorDir(dir / "sample_inputs", Names(before->inputs));
  const TensorMap torch_out = ReadTensorDir(dir / "expected_outputs", Names(before->outputs));
  ASSERT_FALSE(inputs.empty()) << "no sample_inputs in " << dir;
  ASSERT_FALSE(torch_out.empty()) << "no expected_outputs in " << dir;
  ExpectSameOutputs(*before, *after, inputs, 1e-5);
  {
    SCOPED_TRACE("unfused graph vs torch");
    ExpectOutputsNear(*before, inputs, torch_out, 1e-5);
  }
  {
    SCOPED_TRACE("fused graph vs torch");
    ExpectOutputsNear(*after, inputs, torch_out, 1e-5);
  }
  for (int64_t batch : {1, 7}) {
    SCOPED_TRACE("random inputs, batch " + std::to_string(batch));
    ExpectSameOutputs(*before, *after, RandomInputs(*before, batch, 200 + batch), 1e-5);
  }
}

INSTANTIATE_TEST_SUITE_P(
    Torch2, Torch2Exports,
    ::testing::Values(Torch2Case{"deepfm", "torchscript", Torch2Expect("deepfm"), {}},
                      Torch2Case{"deepfm", "dynamo", Torch2Expect("deepfm"), {}},
                      Torch2Case{"dcnv2", "torchscript", Torch2Expect("dcnv2"), {}},
                      Torch2Case{"dcnv2", "dynamo", Torch2Expect("dcnv2"), {}},
                      Torch2Case{"din", "torchscript", Torch2Expect("din"), {}},
                      Torch2Case{"din", "dynamo", Torch2Expect("din"), {}},
                      Torch2Case{"wide_deep", "torchscript", Torch2Expect("wide_deep"), {}},
                      Torch2Case{"wide_deep", "dynamo", Torch2Expect("wide_deep"), {}}),
    [](const ::testing::TestParamInfo<Torch2Case>& info) { return Torch2Name(info.param); });

// Both exporters' graphs of a model end with the same fused ops, as many of each.
TEST(Torch2Exports, BothExportersFuseAlike) {
  for (const char* model : {"deepfm", "dcnv2", "din", "wide_deep"}) {
    SCOPED_TRACE(model);
    std::map<std::string, std::vector<int>> counts;
    for (const char* exporter : {"torchscript", "dynamo"}) {
      const Torch2Case c{model, exporter, {}, {}};
      auto g = onnx_import::ImportModel((Torch2Dir(c) / "model.onnx").string());
      if (!g.ok()) continue;  // missing, or blocked (see ImportFuseAndMatchTorch)
      ASSERT_TRUE(RunPipeline(**g, PipelineOptions{}, nullptr).ok());
      for (OpKind op : {OpKind::kEmbeddingLookup, OpKind::kLinear, OpKind::kFMInteraction,
                        OpKind::kCross, OpKind::kDinAttention}) {
        counts[exporter].push_back(Count(**g, op));
      }
    }
    if (counts.size() == 2) {
      EXPECT_EQ(counts["torchscript"], counts["dynamo"]);
    }
  }
}

}  // namespace
}  // namespace clickrt::passes

