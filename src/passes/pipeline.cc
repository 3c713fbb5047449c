#include "passes/pipeline.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <functional>

namespace clickrt::passes {
namespace {

using PassFn = std::function<Status(ir::Graph&, int*)>;

struct Step {
  const char* name;
  bool fusion;
  PassFn run;
};

// THE pass order. Why this order:
//  0. fuse_qdq before anything else: fold_constants would evaluate DequantizeLinear(int8 weight
//     codes) into a float constant and lose the model's codes and scales, and fuse_linear would
//     then make float Linears of them. It needs no cleanup first: ONNX Runtime's QDQ weights,
//     scales and zero points are initializers, and Constant / Identity outputs are constants
//     after import. Its INT8 Linears are what fuse_linear (bias, Relu) and fuse_cross extend;
//     the DQs it leaves (embedding tables, layers that stay float) fold_constants folds.
//  1. fold_constants first of the rest: the exporter hides constants behind Constant / Identity
//     nodes (DeepFM's offsets, DCN-v2's shared biases) and Shape chains; every matcher below
//     wants to see plain constants (the -1 of the id clamp, FM's 0.5, Gemm weights).
//  2. specialize_shapes, on the plain constants fold_constants left: shape values of static
//     dims (and, for a fixed batch profile, of the batch) become constants, identity Expand /
//     Reshape go, PyTorch 2.x's zeros_like / expand_as / view shape chains become what the
//     TorchScript exporter writes; then fold_constants again folds the chains that now start
//     from constants. Both before any matcher, which then sees one graph whatever the exporter.
//     eliminate_dead_code next, so no dead consumer (a Shape nothing reads any more) makes an
//     intermediate look shared and blocks a fusion that needs a single use.
//  3. fuse_embedding_lookup: independent of the rest; it only reads id / table constants.
//  4. fuse_linear before fuse_cross: the cross layer is matched on the Linear it produces
//     (Gemm with transB already turned into W[K,N]); its bias / activation steps must finish
//     first so a cross's Linear is known to have no activation.
//  5. fuse_cross, then fuse_fm_interaction (independent of each other and of Linear).
//  6. fuse_din_attention, also after fuse_linear: it matches DIN's scoring MLP as the Linears
//     (bias absorbed, activation none) and PRelus that fuse_linear leaves. No other fusion reads
//     those Linears (a PRelu follows each, not a Relu / Sigmoid / cross Mul).
//  7. eliminate_dead_code last: fusions leave shared pattern nodes (the clamp's mask, the
//     untransposed weights) for it to drop once nothing reads them.
std::vector<Step> Steps(const PipelineOptions& o) {
  PassFn fold = [max = o.fold_max_bytes](ir::Graph& g, int* n) { return FoldConstants(g, n, max); };
  return {
      {"fuse_qdq", true, FuseQdq},
      {"fold_constants", false, fold},
      {"specialize_shapes", false,
       [batch = o.batch](ir::Graph& g, int* n) { return SpecializeShapes(g, n, batch); }},
      {"fold_constants", false, fold},
      {"eliminate_dead_code", false, EliminateDeadCode},
      {"fuse_embedding_lookup", true, FuseEmbeddingLookup},
      {"fuse_linear", true, FuseLinear},
      {"fuse_cross", true, FuseCross},
      {"fuse_fm_interaction", true, FuseFMInteraction},
      {"fuse_din_attention", true, FuseDinAttention},
      {"eliminate_dead_code", false, EliminateDeadCode},
  };
}

}  // namespace

const std::vector<std::string>& PassNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> v;
    for (const Step& s : Steps(PipelineOptions{})) {
      if (std::find(v.begin(), v.end(), s.name) == v.end()) v.push_back(s.name);
    }
    return v;
  }();
  return names;
}

Status RunPipeline(ir::Graph& g, const PipelineOptions& options, std::vector<PassReport>* report) {
  const std::vector<std::string>& names = PassNames();
  for (const std::string& s : options.skip) {
    if (std::find(names.begin(), names.end(), s) == names.end()) {
      std::string all;
      for (const std::string& n : names) all += (all.empty() ? "" : ", ") + n;
      return InvalidArgument("unknown pass '" + s + "'; the passes are: " + all);
    }
  }
  for (const Step& step : Steps(options)) {
    if (step.fusion && !options.fuse) continue;
    if (std::find(options.skip.begin(), options.skip.end(), step.name) != options.skip.end()) {
      continue;
    }
    PassReport r;
    r.name = step.name;
    r.nodes_before = g.nodes().size();
    const auto start = std::chrono::steady_clock::now();
    Status s = step.run(g, &r.rewrites);
    if (s.ok() && options.verify_each) s = ir::Verify(g, /*allow_unsupported=*/true);
    if (!s.ok()) return s.WithContext(std::string("pass ") + step.name);
    r.millis =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    r.nodes_after = g.nodes().size();
    if (report) report->push_back(r);
  }
  return Status::Ok();
}

std::string FormatReport(const std::vector<PassReport>& report) {
  std::string out;
  for (const PassReport& r : report) {
    char line[256];
    std::snprintf(line, sizeof(line), "%-22s %4d rewrites, %zu -> %zu nodes (%.1f ms)\n",
                  r.name.c_str(), r.rewrites, r.nodes_before, r.nodes_after, r.millis);
    out += line;
  }
  return out;
}

}  // namespace clickrt::passes
