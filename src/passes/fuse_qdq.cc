// fuse_qdq: see pass.h.
//
// Three steps: classify every MatMul / Gemm (an INT8 match, a QDQ layer that must stay float, or
// no QDQ at all), decide which activation pairs only converted GEMMs read (those are bypassed and
// removed), then rewrite; finally move Relus in front of the Q / DQ pairs that follow GEMMs.
#include <cmath>
#include <map>
#include <optional>
#include <set>

#include "base/logging.h"
#include "kernels/cpu/reference/reference_kernels.h"
#include "passes/pass.h"
#include "passes/pattern.h"

namespace clickrt::passes {
namespace {

namespace ref = kernels::ref;
using detail::ConstOf;
using detail::ProducedBy;
using ir::OpKind;

constexpr char kSymmetricHint[] =
    "INT8 layers need per-tensor int8 activations with zero point 0 and int8 weights with zero "
    "point 0 and one scale per output channel (ONNX Runtime quantize_static: activation_type and "
    "weight_type QInt8, extra_options={'ActivationSymmetric': True})";

// The activation pair in front of a GEMM: x -> Q(s, 0) -> DQ(s, 0).
struct ActivationPair {
  ir::Node* q = nullptr;
  ir::Node* dq = nullptr;
  float scale = 0;
};

struct Match {
  ir::Node* gemm = nullptr;
  bool trans_b = false;  // W given as [N, K] (Gemm transB=1)
  ActivationPair act;
  ir::Node* w_dq = nullptr;
  Tensor codes;                // int8 as stored: [K, N], or [N, K] when trans_b
  Tensor w_scale;              // float32, 1 or N elements
  std::optional<Tensor> bias;  // float32 [N], evaluated
};

enum class Verdict { kNoQdq, kFloat, kInt8 };

bool AllInputsConstant(const ir::Node& n) {
  for (const ir::Value* v : n.inputs) {
    if (v && !v->constant) return false;
  }
  return true;
}

// Every element of `t` is finite and positive.
bool AllPositive(const Tensor& t) {
  for (int64_t i = 0; i < t.size(); ++i) {
    const double v = t.GetAsDouble(i);
    if (!std::isfinite(v) || v <= 0) return false;
  }
  return true;
}

// The int8 / uint8 codes a weight DequantizeLinear reads: a constant, or QuantizeLinear of
// constants (ONNX Runtime's AddQDQPairToWeight), evaluated with the reference kernel.
std::optional<Tensor> WeightCodes(const ir::Node& dq) {
  const ir::Value* v = dq.input(0);
  if (const Tensor* t = ConstOf(v)) return *t;
  const ir::Node* q = ProducedBy(v, OpKind::kQuantizeLinear);
  if (q == nullptr || !AllInputsConstant(*q) || q->GetInt("block_size", 0) != 0) {
    return std::nullopt;
  }
  auto r = ref::QuantizeLinear(*ConstOf(q->input(0)), *ConstOf(q->input(1)), ConstOf(q->input(2)),
                               q->GetInt("axis", 1), v->dtype);
  if (!r.ok()) return std::nullopt;
  return std::move(r).value();
}

// The weight side: DQ(int8 codes, scale along the output channels or per tensor, zero point 0).
// Returns a reason when the weight is a DQ that cannot become an INT8 weight.
std::string MatchWeight(Tensor codes, Match* m) {
  const ir::Node& dq = *m->w_dq;
  if (codes.dtype() != DType::kInt8 || codes.rank() != 2) {
    return "its weight codes '" + dq.input(0)->name + "' are " + codes.Describe() +
           ", not 2-D int8";
  }
  const Tensor* scale = ConstOf(dq.input(1));
  if (scale == nullptr || scale->dtype() != DType::kFloat32 || !AllPositive(*scale)) {
    return "its weight scale '" + dq.input(1)->name + "' is not a positive float32 constant";
  }
  if (dq.input(2)) {
    const Tensor* zp = ConstOf(dq.input(2));
    if (zp == nullptr || !detail::IsAllZeros(*zp)) {
      return "its weight zero point '" + dq.input(2)->name + "' is not 0";
    }
  }
  const int channel_axis = m->trans_b ? 0 : 1;
  const int64_t N = codes.dim(channel_axis);
  if (scale->size() != 1) {
    const int64_t axis = dq.GetInt("axis", 1);
    const int64_t norm = axis < 0 ? axis + 2 : axis;
    if (scale->rank() != 1 || scale->size() != N || norm != channel_axis) {
      return "its weight scale " + scale->Describe() + " is along axis " + std::to_string(axis) +
             " of W " + codes.Describe() + ", not one per output channel (axis " +
             std::to_string(channel_axis) + ")";
    }
  }
  m->codes = std::move(codes);
  m->w_scale = *scale;
  return "";
}

// The activation side: x -> QuantizeLinear(s, int8 0) -> DequantizeLinear(s, 0) -> GEMM.
std::string MatchActivation(const ir::Node& gemm, ActivationPair* a) {
  const ir::Value* x = gemm.input(0);
  a->dq = ProducedBy(x, OpKind::kDequantizeLinear);
  a->q = a->dq ? ProducedBy(a->dq->input(0), OpKind::kQuantizeLinear) : nullptr;
  if (a->q == nullptr) {
    return "its input '" + x->name +
           "' is not quantized by a QuantizeLinear -> DequantizeLinear pair, so it has no "
           "activation scale";
  }
  const std::string pair =
      "the QuantizeLinear '" + a->q->name + "' of '" + a->q->input(0)->name + "'";
  const Tensor* qs = ConstOf(a->q->input(1));
  const Tensor* ds = ConstOf(a->dq->input(1));
  if (qs == nullptr || ds == nullptr || qs->size() != 1 || ds->size() != 1 ||
      qs->dtype() != DType::kFloat32 || ds->dtype() != DType::kFloat32) {
    return pair + " and its DequantizeLinear do not have one constant per-tensor float32 scale";
  }
  const float s = qs->data<float>()[0];
  if (ds->data<float>()[0] != s || !(s > 0) || !std::isfinite(s)) {
    return pair + " and its DequantizeLinear have scales " + std::to_string(s) + " and " +
           std::to_string(ds->data<float>()[0]) + "; they must be one positive scale";
  }
  const DType code = a->q->outputs[0]->dtype;
  const Tensor* qz = a->q->input(2) ? ConstOf(a->q->input(2)) : nullptr;
  const Tensor* dz = a->dq->input(2) ? ConstOf(a->dq->input(2)) : nullptr;
  if (code != DType::kInt8 || qz == nullptr || dz == nullptr || !detail::IsAllZeros(*qz) ||
      !detail::IsAllZeros(*dz)) {
    std::string zp = qz ? std::to_string(qz->GetAsInt64(0)) : "absent";
    return pair + " quantizes to " + DTypeName(code) + " with zero point " + zp +
           " (asymmetric); the INT8 kernels quantize activations symmetrically";
  }
  a->scale = s;
  return "";
}

// The Gemm's C as a float32 [N] bias: a constant, or DQ of constants (ORT's int32 bias).
std::string MatchBias(const ir::Node& gemm, int64_t N, Match* m) {
  const ir::Value* c = gemm.input(2);
  if (c == nullptr) return "";
  if (gemm.GetFloat("beta", 1.f) != 1.f) return "beta is not 1";
  std::optional<Tensor> t;
  if (const Tensor* ct = ConstOf(c)) {
    t = *ct;
  } else if (const ir::Node* dq = ProducedBy(c, OpKind::kDequantizeLinear);
             dq && AllInputsConstant(*dq) && dq->GetInt("block_size", 0) == 0) {
    auto r = ref::DequantizeLinear(*ConstOf(dq->input(0)), *ConstOf(dq->input(1)),
                                   ConstOf(dq->input(2)), dq->GetInt("axis", 1));
    if (r.ok()) t = std::move(r).value();
  }
  if (!t || t->dtype() != DType::kFloat32) return "its bias '" + c->name + "' is not constant";
  std::optional<Tensor> vec = detail::AsLastAxisVector(*t, N, 2, DType::kFloat32);
  if (!vec) return "its bias " + t->Describe() + " does not broadcast along N=" + std::to_string(N);
  m->bias = std::move(*vec);
  return "";
}

Verdict Classify(ir::Node* n, Match* m, std::string* why) {
  if (n->op != OpKind::kMatMul && n->op != OpKind::kGemm) return Verdict::kNoQdq;
  // A QDQ layer has a quantized constant weight (a product of two activations is not one).
  m->w_dq = ProducedBy(n->input(1), OpKind::kDequantizeLinear);
  std::optional<Tensor> codes = m->w_dq ? WeightCodes(*m->w_dq) : std::nullopt;
  if (!codes) return Verdict::kNoQdq;
  m->gemm = n;
  if (n->op == OpKind::kGemm) {
    if (n->GetInt("transA", 0) != 0 || n->GetFloat("alpha", 1.f) != 1.f) {
      *why = "it is a Gemm with transA or alpha != 1";
      return Verdict::kFloat;
    }
    m->trans_b = n->GetInt("transB", 0) != 0;
  }
  const ir::Value* x = n->input(0);
  if (x->dtype != DType::kFloat32 || !x->shape.rank_known || x->shape.rank() < 1) {
    *why = "its input '" + x->name + "' is not a float32 tensor of known rank";
    return Verdict::kFloat;
  }
  *why = MatchWeight(std::move(*codes), m);
  if (why->empty()) *why = MatchActivation(*n, &m->act);
  if (why->empty()) *why = MatchBias(*n, m->codes.dim(m->trans_b ? 0 : 1), m);
  return why->empty() ? Verdict::kInt8 : Verdict::kFloat;
}

// Removes `n` if nothing reads any of its outputs (a pattern node the rewrite left dead).
void RemoveIfDead(ir::Graph& g, ir::Node* n) {
  if (n == nullptr) return;
  for (const ir::Value* out : n->outputs) {
    if (out && (out->is_graph_output || !out->consumers.empty())) return;
  }
  g.RemoveNode(n);
}

class Rewriter {
 public:
  explicit Rewriter(ir::Graph& g) : g_(g) {}

  // Linear(x or the pair's output, W [K,N] int8, bias?, w_scale [N]) in place of m.gemm.
  StatusOr<bool> Rewrite(const Match& m, bool bypass) {
    const int64_t N = m.codes.dim(m.trans_b ? 0 : 1);
    ir::Value* x = bypass ? m.act.q->input(0) : m.act.dq->outputs[0];
    ASSIGN_OR_RETURN(ir::Value* w, Weight(m));
    ir::Value* ws = m.w_dq->input(1);
    if (m.w_scale.size() != N || m.w_scale.rank() != 1) {
      ASSIGN_OR_RETURN(Tensor wide, ref::Expand(m.w_scale.Reshaped({1}).value(), {N}));
      ws = detail::AddConstant(g_, ws->name + "/per_channel", wide.Clone());
    }
    ir::Value* bias = nullptr;
    if (m.bias) {
      ir::Value* c = m.gemm->input(2);
      const bool as_is = c->constant && c->constant->rank() == 1 && c->constant->dim(0) == N &&
                         c->dtype == DType::kFloat32;
      bias = as_is ? c : detail::AddConstant(g_, c->name + "/bias", *m.bias);
    }
    auto node =
        detail::MakeFusedNode(g_, OpKind::kLinear, m.gemm->name + "/Linear", {x, w, bias, ws});
    node->attrs["activation"] = int64_t{0};
    node->attrs["x_scale"] = m.act.scale;
    ir::Node* bias_dq = ProducedBy(m.gemm->input(2), OpKind::kDequantizeLinear);
    ASSIGN_OR_RETURN(ir::Node* fused, detail::ReplaceWithFused(g_, m.gemm, std::move(node)));
    if (fused == nullptr) return false;
    ir::Node* w_q = ProducedBy(m.w_dq->input(0), OpKind::kQuantizeLinear);
    for (ir::Node* dead : {m.w_dq, w_q, bias_dq, m.act.dq, m.act.q}) RemoveIfDead(g_, dead);
    return true;
  }

 private:
  // The codes as a [K, N] int8 constant: the model's own value when it is one, else a new one
  // (transposed for Gemm transB=1, once per weight).
  StatusOr<ir::Value*> Weight(const Match& m) {
    ir::Value* stored = m.w_dq->input(0);
    if (!m.trans_b && stored->constant) return stored;
    auto it = weights_.find(stored);
    if (it != weights_.end()) return it->second;
    Tensor t = m.codes;
    if (m.trans_b) {
      ASSIGN_OR_RETURN(t, ref::Transpose(m.codes, {1, 0}));
    }
    ir::Value* v =
        detail::AddConstant(g_, stored->name + (m.trans_b ? "/transposed" : ""), t.Clone());
    weights_[stored] = v;
    return v;
  }

  ir::Graph& g_;
  std::map<const ir::Value*, ir::Value*> weights_;
};

// Relu(DQ(Q(y))) => DQ(Q(Relu(y))) for y made by a GEMM. Exact: with a positive scale s, Q is
// non-decreasing and Q(0) = z, so Q(Relu(y)) = max(Q(y), z); DQ (positive scale, the same z) is
// non-decreasing with DQ(z) = 0, so DQ(max(c, z)) = Relu(DQ(c)).
bool MoveReluBeforePair(ir::Graph& g, ir::Node* relu) {
  ir::Node* dq = ProducedBy(relu->input(0), OpKind::kDequantizeLinear);
  ir::Node* q = dq ? ProducedBy(dq->input(0), OpKind::kQuantizeLinear) : nullptr;
  if (q == nullptr || !detail::HasSingleUse(dq->outputs[0]) ||
      !detail::HasSingleUse(q->outputs[0]) || !detail::HasSingleUse(q->input(0))) {
    return false;
  }
  ir::Value* y = q->input(0);
  const ir::Node* p = y->producer;
  if (p == nullptr ||
      (p->op != OpKind::kLinear && p->op != OpKind::kMatMul && p->op != OpKind::kGemm)) {
    return false;
  }
  const Tensor* qs = ConstOf(q->input(1));
  const Tensor* ds = ConstOf(dq->input(1));
  const Tensor* qz = ConstOf(q->input(2));
  const Tensor* dz = ConstOf(dq->input(2));
  if (!qs || !ds || !AllPositive(*qs) || !AllPositive(*ds) || (q->input(2) && !qz) ||
      (dq->input(2) && !dz)) {
    return false;
  }
  // One zero point on both sides (absent = 0) for every element: equal values, and per-axis ones
  // along the same axis.
  const int64_t nz = std::max<int64_t>(qz ? qz->size() : 1, dz ? dz->size() : 1);
  if (qz && dz && qz->size() != dz->size()) return false;
  if (nz > 1 && q->GetInt("axis", 1) != dq->GetInt("axis", 1)) return false;
  for (int64_t i = 0; i < nz; ++i) {
    if ((qz ? qz->GetAsInt64(i) : 0) != (dz ? dz->GetAsInt64(i) : 0)) return false;
  }
  auto copy = [](const ir::Node& from, std::vector<ir::Value*> in, std::vector<ir::Value*> out) {
    auto n = std::make_unique<ir::Node>();
    n->op = from.op;
    n->op_type = from.op_type;
    n->domain = from.domain;
    n->name = from.name;
    n->opset = from.opset;
    n->attrs = from.attrs;
    n->inputs = std::move(in);
    n->outputs = std::move(out);
    return n;
  };
  ir::Value* relu_y = g.AddValue(y->name + "/relu");
  relu_y->dtype = y->dtype;
  relu_y->shape = y->shape;
  ir::Value* codes = q->outputs[0];
  ir::Value* out = relu->outputs[0];
  std::vector<ir::Value*> q_in = q->inputs, dq_in = dq->inputs;
  q_in[0] = relu_y;
  auto new_relu = copy(*relu, {y}, {relu_y});
  auto new_q = copy(*q, q_in, {codes});
  auto new_dq = copy(*dq, dq_in, {out});
  g.ReplaceNode(q, std::move(new_relu));
  g.ReplaceNode(dq, std::move(new_q));
  g.ReplaceNode(relu, std::move(new_dq));
  return true;
}

}  // namespace

Status FuseQdq(ir::Graph& g, int* rewrites) {
  *rewrites = 0;
  std::vector<Match> matches;
  std::map<const ir::Value*, int> converted_reads;  // pair output -> reads by converted GEMMs
  for (const auto& n : g.nodes()) {
    Match m;
    std::string why;
    switch (Classify(n.get(), &m, &why)) {
      case Verdict::kNoQdq:
        break;
      case Verdict::kFloat:
        CLICKRT_LOG(kWarn, "fuse_qdq: " << n->Label() << " stays float32: " << why << ". "
                                        << kSymmetricHint);
        break;
      case Verdict::kInt8:
        ++converted_reads[m.act.dq->outputs[0]];
        matches.push_back(std::move(m));
        break;
    }
  }
  // A pair whose output only converted GEMMs read is bypassed: they read x, and the pair dies.
  std::set<const ir::Value*> bypass;
  for (const auto& [v, reads] : converted_reads) {
    if (!v->is_graph_output && static_cast<size_t>(reads) == v->consumers.size()) bypass.insert(v);
  }
  Rewriter rewriter(g);
  for (const Match& m : matches) {
    ASSIGN_OR_RETURN(bool done, rewriter.Rewrite(m, bypass.count(m.act.dq->outputs[0]) > 0));
    if (done) {
      ++*rewrites;
    } else {
      CLICKRT_LOG(kWarn, "fuse_qdq: " << m.gemm->Label()
                                      << " stays float32: the INT8 Linear's shape disagrees");
    }
  }
  std::vector<ir::Node*> relus;
  for (const auto& n : g.nodes()) {
    if (n->op == OpKind::kRelu) relus.push_back(n.get());
  }
  for (ir::Node* r : relus) *rewrites += MoveReluBeforePair(g, r);
  return Status::Ok();
}

}  // namespace clickrt::passes
