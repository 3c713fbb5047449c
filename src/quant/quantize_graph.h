// Precision assignment: rewrites an optimized graph (after the pass pipeline) so chosen layers run
// in INT8 and embedding tables are stored row-wise quantized. This is what `clickrt build
// --precision int8` does between the passes and lowering; the mixed-precision search
// (quant/precision_search.h) calls it once per candidate assignment.
//
// What changes (semantics in docs/FUSED_OPS.md):
//  - Linear / Cross with a constant float32 W: W becomes int8 [K,N] with symmetric per-output-
//    channel scales (a new float32 input w_scale [N]); the activation the GEMM reads (Linear's x,
//    Cross's xl) is quantized per tensor with attr x_scale, taken from the calibration.
//    Layers named in keep_float stay float32.
//  - EmbeddingLookup with a constant float32 table of width >= min_embedding_dim: the table becomes
//    uint8 in FBGEMM's fused row-wise format (int8: D codes + float scale + float bias per row;
//    int4: packed nibbles + fp16 scale + fp16 bias), attrs row_format and embedding_dim.
// A calibration that lacks the scale of a layer's activation is an error naming the value.
#pragma once

#include <functional>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "ir/graph.h"

namespace clickrt::quant {

// Row storage of embedding tables (values of the row_format attribute).
enum class EmbeddingFormat : int { kFloat32 = 0, kInt8Rowwise = 1, kInt4Rowwise = 2 };

// "fp32" | "int8" | "int4" <-> EmbeddingFormat; InvalidArgument for another name.
StatusOr<EmbeddingFormat> ParseEmbeddingFormat(const std::string& name);
const char* EmbeddingFormatName(EmbeddingFormat f);

// A layer whose GEMM can run in INT8: its node name, op, and the value whose per-tensor scale it
// needs (Linear: x; Cross: xl).
struct QuantizableLayer {
  std::string name, op, input;
  int64_t K = 0, N = 0;
};

// Linear / Cross nodes with a constant float32 W, in graph order.
std::vector<QuantizableLayer> QuantizableLayers(const ir::Graph& g);

struct QuantizeOptions {
  bool int8_layers = true;                   // quantize Linear / Cross (not in keep_float)
  std::set<std::string> keep_float;          // node names left in float32
  std::map<std::string, float> act_scales;   // value name -> activation scale (> 0)
  EmbeddingFormat embeddings = EmbeddingFormat::kFloat32;
  int64_t min_embedding_dim = 4;             // narrower tables (first-order, D = 1) stay float32
};

struct QuantizeReport {
  std::vector<std::string> int8_layers, float_layers;  // node names
  int64_t embedding_bytes_before = 0, embedding_bytes_after = 0;
  int64_t weight_bytes_before = 0, weight_bytes_after = 0;  // Linear / Cross W
};

StatusOr<QuantizeReport> QuantizeGraph(ir::Graph& g, const QuantizeOptions& options);

// {"int8_layers": [...], "float_layers": [...], "embeddings": "int8", "embedding_bytes": [before,
// after], "gemm_weight_bytes": [before, after]}: what the engine's metadata records.
nlohmann::json ReportToJson(const QuantizeReport& report, const QuantizeOptions& options);

// The compiler's after_passes hook (compiler::BuildOptions) applying `options`.
std::function<StatusOr<nlohmann::json>(ir::Graph&)> AssignmentHook(QuantizeOptions options);

}  // namespace clickrt::quant
