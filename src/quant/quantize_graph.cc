#include "quant/quantize_graph.h"

#include "kernels/cpu/reference/reference_kernels.h"

namespace clickrt::quant {
namespace ref = kernels::ref;

StatusOr<EmbeddingFormat> ParseEmbeddingFormat(const std::string& name) {
  if (name == "fp32") return EmbeddingFormat::kFloat32;
  if (name == "int8") return EmbeddingFormat::kInt8Rowwise;
  if (name == "int4") return EmbeddingFormat::kInt4Rowwise;
  return InvalidArgument("unknown embedding format '" + name + "' (expected fp32, int8 or int4)");
}

const char* EmbeddingFormatName(EmbeddingFormat f) {
  switch (f) {
    case EmbeddingFormat::kFloat32: return "fp32";
    case EmbeddingFormat::kInt8Rowwise: return "int8";
    case EmbeddingFormat::kInt4Rowwise: return "int4";
  }
  return "?";
}

namespace {

// Index of W among the node's inputs, or -1 for a node that is not a GEMM layer.
int WeightIndex(const ir::Node& n) {
  if (n.op == ir::OpKind::kLinear) return 1;
  if (n.op == ir::OpKind::kCross) return 2;
  return -1;
}

bool IsFloatGemm(const ir::Node& n) {
  const int wi = WeightIndex(n);
  if (wi < 0) return false;
  const ir::Value* w = n.input(wi);
  return w && w->constant && w->dtype == DType::kFloat32 && w->constant->rank() == 2;
}

// The activation the layer's GEMM reads.
const ir::Value* GemmInput(const ir::Node& n) {
  return n.op == ir::OpKind::kCross ? n.input(1) : n.input(0);
}

// Replaces `n` by a copy whose inputs are `inputs` (and extra attrs), keeping its outputs.
void Rewire(ir::Graph& g, ir::Node* n, std::vector<ir::Value*> inputs,
            const std::map<std::string, ir::Attribute>& attrs) {
  auto m = std::make_unique<ir::Node>();
  m->op = n->op;
  m->op_type = n->op_type;
  m->domain = n->domain;
  m->name = n->name;
  m->opset = n->opset;
  m->inputs = std::move(inputs);
  m->outputs = n->outputs;
  m->attrs = n->attrs;
  for (const auto& [k, v] : attrs) m->attrs[k] = v;
  g.ReplaceNode(n, std::move(m));
}

ir::Value* AddConstant(ir::Graph& g, const std::string& base, Tensor t) {
  std::string name = base;
  for (int i = 2; g.FindValue(name) != nullptr; ++i) name = base + "_" + std::to_string(i);
  ir::Value* v = g.AddValue(name);
  v->dtype = t.dtype();
  v->shape = ir::Shape::FromDims(t.dims());
  v->constant = std::move(t);
  return v;
}

Status QuantizeGemm(ir::Graph& g, ir::Node* n, float x_scale, QuantizeReport* report) {
  const int wi = WeightIndex(*n);
  const Tensor& w = *n->input(wi)->constant;
  const int64_t K = w.dim(0), N = w.dim(1);
  ASSIGN_OR_RETURN(Tensor wq, Tensor::Zeros(DType::kInt8, {K, N}));
  ASSIGN_OR_RETURN(Tensor ws, Tensor::Zeros(DType::kFloat32, {N}));
  RETURN_IF_ERROR(
      ref::QuantizeWeightsPerChannel(w.data<float>(), K, N, wq.data<int8_t>(), ws.data<float>()));
  report->weight_bytes_before += static_cast<int64_t>(w.nbytes());
  report->weight_bytes_after += static_cast<int64_t>(wq.nbytes() + ws.nbytes());
  const std::string wname = n->input(wi)->name;
  std::vector<ir::Value*> in = n->inputs;
  const size_t scale_index = static_cast<size_t>(wi) + 2;  // after bias
  in.resize(scale_index + 1, nullptr);
  in[wi] = AddConstant(g, wname + ".int8", std::move(wq));
  in[scale_index] = AddConstant(g, wname + ".scale", std::move(ws));
  Rewire(g, n, std::move(in), {{"x_scale", x_scale}});
  return Status::Ok();
}

// `done` maps a float table to its quantized copy, so lookups sharing a table share the copy.
Status QuantizeTable(ir::Graph& g, ir::Node* n, EmbeddingFormat f, QuantizeReport* report,
                     std::map<const ir::Value*, ir::Value*>* done) {
  const Tensor& t = *n->input(0)->constant;
  const int64_t D = t.dim(1);
  ir::Value*& q = (*done)[n->input(0)];
  if (q == nullptr) {
    const int64_t V = t.dim(0);
    const auto fmt = static_cast<ref::RowFormat>(static_cast<int>(f));
    ASSIGN_OR_RETURN(Tensor qt, Tensor::Zeros(DType::kUInt8, {V, ref::RowwiseBytes(fmt, D)}));
    RETURN_IF_ERROR(ref::QuantizeRows(t.data<float>(), V, D, fmt, qt.data<uint8_t>()));
    report->embedding_bytes_before += static_cast<int64_t>(t.nbytes());
    report->embedding_bytes_after += static_cast<int64_t>(qt.nbytes());
    q = AddConstant(g, n->input(0)->name + "." + EmbeddingFormatName(f), std::move(qt));
  }
  std::vector<ir::Value*> in = n->inputs;
  in[0] = q;
  Rewire(g, n, std::move(in),
         {{"row_format", static_cast<int64_t>(f)}, {"embedding_dim", D}});
  return Status::Ok();
}

}  // namespace

std::vector<QuantizableLayer> QuantizableLayers(const ir::Graph& g) {
  std::vector<QuantizableLayer> out;
  for (const auto& n : g.nodes()) {
    if (!IsFloatGemm(*n) || GemmInput(*n) == nullptr) continue;
    const Tensor& w = *n->input(WeightIndex(*n))->constant;
    out.push_back({n->name, ir::OpKindName(n->op), GemmInput(*n)->name, w.dim(0), w.dim(1)});
  }
  return out;
}

StatusOr<QuantizeReport> QuantizeGraph(ir::Graph& g, const QuantizeOptions& o) {
  QuantizeReport report;
  // Collect first: rewriting replaces nodes while we walk.
  std::vector<ir::Node*> gemms, tables;
  for (const auto& n : g.nodes()) {
    if (IsFloatGemm(*n)) gemms.push_back(n.get());
    const ir::Value* t = n->op == ir::OpKind::kEmbeddingLookup ? n->input(0) : nullptr;
    if (t && t->constant && t->dtype == DType::kFloat32 && t->constant->rank() == 2 &&
        t->constant->dim(1) >= o.min_embedding_dim) {
      tables.push_back(n.get());
    }
  }
  for (const std::string& name : o.keep_float) {
    bool found = false;
    for (const ir::Node* n : gemms) found |= n->name == name;
    if (!found) return InvalidArgument("keep_float names '" + name + "', not a Linear / Cross layer");
  }
  for (ir::Node* n : gemms) {
    if (!o.int8_layers || o.keep_float.count(n->name)) {
      report.float_layers.push_back(n->name);
      continue;
    }
    const ir::Value* x = GemmInput(*n);
    auto it = x ? o.act_scales.find(x->name) : o.act_scales.end();
    if (it == o.act_scales.end()) {
      return NotFound("the calibration has no scale for '" + (x ? x->name : "?") +
                      "', the input of layer '" + n->name +
                      "' (was it made for this model and clickrt version?)");
    }
    if (!(it->second > 0.f)) {
      return InvalidArgument("the calibration scale of '" + x->name + "' is " +
                             std::to_string(it->second) + "; it must be positive");
    }
    const std::string name = n->name;
    RETURN_IF_ERROR(QuantizeGemm(g, n, it->second, &report));
    report.int8_layers.push_back(name);
  }
  if (o.embeddings != EmbeddingFormat::kFloat32) {
    std::map<const ir::Value*, ir::Value*> done;
    for (ir::Node* n : tables) RETURN_IF_ERROR(QuantizeTable(g, n, o.embeddings, &report, &done));
  }
  g.RemoveUnusedValues();
  RETURN_IF_ERROR(ir::Verify(g));
  return report;
}

nlohmann::json ReportToJson(const QuantizeReport& r, const QuantizeOptions& o) {
  return {{"int8_layers", r.int8_layers},
          {"float_layers", r.float_layers},
          {"embeddings", EmbeddingFormatName(o.embeddings)},
          {"embedding_bytes", {r.embedding_bytes_before, r.embedding_bytes_after}},
          {"gemm_weight_bytes", {r.weight_bytes_before, r.weight_bytes_after}}};
}

std::function<StatusOr<nlohmann::json>(ir::Graph&)> AssignmentHook(QuantizeOptions options) {
  return [options = std::move(options)](ir::Graph& g) -> StatusOr<nlohmann::json> {
    ASSIGN_OR_RETURN(QuantizeReport r, QuantizeGraph(g, options));
    return ReportToJson(r, options);
  };
}

}  // namespace clickrt::quant
