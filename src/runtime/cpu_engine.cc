#include "runtime/cpu_engine.h"

#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "ir/attribute_json.h"
#include "kernels/cpu/fast/fast_kernels.h"

namespace clickrt::runtime {

namespace fast = kernels::fast;

StatusOr<std::unique_ptr<ir::Graph>> RaiseProgram(const engine::LoadedEngine& eng) {
  const engine::Program& p = eng.program();
  auto g = std::make_unique<ir::Graph>();
  std::vector<ir::Value*> vals(p.tensors.size());
  for (size_t i = 0; i < p.tensors.size(); ++i) {
    const engine::TensorDesc& d = p.tensors[i];
    ir::Value* v = g->AddValue(d.name);
    if (v->name != d.name) return DataLoss("tensor name '" + d.name + "' appears twice");
    v->dtype = d.dtype;
    v->shape.rank_known = true;
    for (int64_t x : d.dims) {
      v->shape.dims.push_back(x >= 0 ? ir::Dim::Known(x) : x == -1 ? ir::Dim::Symbol("batch") : ir::Dim{});
    }
    if (d.is_constant()) {
      ASSIGN_OR_RETURN(Tensor t, eng.Weight(static_cast<int32_t>(i)));
      v->constant = std::move(t);
    }
    vals[i] = v;
  }
  for (int32_t i : p.inputs) {
    vals[i]->is_graph_input = true;
    g->inputs.push_back(vals[i]);
  }
  for (const engine::Layer& l : p.layers) {
    auto n = std::make_unique<ir::Node>();
    n->name = l.name;
    n->op_type = l.op;
    n->domain = l.domain;
    auto op = ir::OpKindFromName(l.op, l.domain);
    if (!op) return DataLoss("layer '" + l.name + "': unknown op '" + l.op + "' (engine from a newer clickrt?)");
    n->op = *op;
    nlohmann::json attrs = l.attrs.is_object() ? l.attrs : nlohmann::json::object();
    if (attrs.contains("_opset") && attrs["_opset"].is_number_integer()) n->opset = attrs["_opset"].get<int>();
    attrs.erase("_opset");
    auto a = ir::AttributesFromJson(attrs);
    if (!a.ok()) return a.status().WithContext("layer '" + l.name + "'");
    n->attrs = std::move(a).value();
    for (int32_t t : l.inputs) n->inputs.push_back(t >= 0 ? vals[t] : nullptr);
    for (int32_t t : l.outputs) n->outputs.push_back(t >= 0 ? vals[t] : nullptr);
    g->AddNode(std::move(n));
  }
  for (int32_t i : p.outputs) {
    vals[i]->is_graph_output = true;
    g->outputs.push_back(vals[i]);
  }
  RETURN_IF_ERROR(ir::Verify(*g));
  return g;
}

namespace {

// kSkip: every output is a constant. kFused: the outputs are written by an earlier fused step.
enum class StepKind { kRef, kLinear, kCross, kEmbedding, kFm, kSkip, kEmbeddingFm, kConcat, kAddSigmoid, kFused };

struct Step {
  const ir::Node* node = nullptr;
  const engine::Layer* layer = nullptr;
  StepKind kind = StepKind::kRef;
  std::vector<int32_t> in, out;
  std::unique_ptr<fast::Linear> linear;
  std::unique_ptr<fast::Cross> cross;
  std::unique_ptr<fast::QLinear> qlinear;  // an INT8 Linear or Cross (then linear / cross unset)
  // Embedding: table (float32, or row-wise quantized in qtable) and per-field vectors.
  const float* table = nullptr;
  const uint8_t* qtable = nullptr;
  int32_t row_format = 0;
  int64_t V = 0, D = 0;
  std::vector<int64_t> offsets, sizes;
  // kEmbeddingFm: one pass over the ids that also writes FM and the first-order sum, and may write
  // the embedding rows straight into a concat buffer (Flatten + Concat eliminated).
  int32_t fm_out = -1, first_order_out = -1;
  const float* first_order_table = nullptr;
  int32_t concat_out = -1;   // write rows into this tensor's buffer ...
  int64_t concat_col = 0;    // ... at this column ...
  int64_t concat_width = 0;  // ... of rows this wide
  // kConcat: inputs already written by a fused producer are skipped.
  std::vector<bool> prewritten;
  std::string fused_into;  // for profiles: the step that computes this one
  std::atomic<int64_t> nanos{0}, calls{0};
};

struct Context {
  std::vector<Tensor> vals;
  std::shared_ptr<void> arena;
  int64_t arena_bytes = 0;
  // Buffers written before their layer runs (concat targets of fused producers): outside the
  // arena, whose plan assumes each tensor is written by its own layer. Sized for the max batch.
  std::map<int32_t, std::shared_ptr<void>> early;
};

StatusOr<fast::Isa> IsaFromName(const std::string& name) {
  for (fast::Isa i : {fast::Isa::kGeneric, fast::Isa::kAvx2, fast::Isa::kAvx512}) {
    if (name == fast::IsaName(i)) return i;
  }
  return DataLoss("engine names an unknown CPU ISA '" + name + "'");
}

std::vector<std::string> SupportedIsas() {
  const fast::CpuInfo& c = fast::Cpu();
  std::vector<std::string> v = {"generic"};
  if (c.avx2 && c.fma) v.push_back("avx2");
  if (c.avx512) v.push_back("avx512");
  return v;
}

}  // namespace

struct CpuEngine::Impl {
  std::shared_ptr<engine::LoadedEngine> eng;
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<fast::ThreadPool> pool;
  std::vector<std::unique_ptr<Step>> steps;
  std::vector<const ir::Value*> values;  // by tensor index
  bool profile = false;
  std::mutex mu;
  std::vector<std::unique_ptr<Context>> idle;

  Status Prepare();
  void FuseSteps();
  StatusOr<Tensor> Early(Context& ctx, int32_t id, int64_t batch);
  Status RunStep(Step& s, Context& ctx);
  StatusOr<Tensor> Output(Context& ctx, int32_t id, const Dims& dims);
  const Tensor* Get(Context& ctx, int32_t id) {
    if (id < 0) return nullptr;
    const ir::Value* v = values[id];
    if (v->constant) return &*v->constant;
    return ctx.vals[id].defined() ? &ctx.vals[id] : nullptr;
  }
};

Status CpuEngine::Impl::Prepare() {
  const engine::Program& p = eng->program();
  values.assign(p.tensors.size(), nullptr);
  // Map tensor index -> value through names (RaiseProgram keeps tensor order).
  for (size_t i = 0; i < p.tensors.size(); ++i) values[i] = graph->values()[i].get();
  for (size_t li = 0; li < p.layers.size(); ++li) {
    auto s = std::make_unique<Step>();
    s->layer = &p.layers[li];
    s->node = graph->nodes()[li].get();
    s->in = s->layer->inputs;
    s->out = s->layer->outputs;
    bool all_const = true;
    for (int32_t o : s->out) all_const &= o < 0 || values[o]->constant.has_value();
    const std::string& k = s->layer->kernel;
    const ir::Node& n = *s->node;
    auto cdata = [&](size_t i) -> const Tensor* {
      const ir::Value* v = n.input(i);
      return v && v->constant ? &*v->constant : nullptr;
    };
    if (all_const) {
      s->kind = StepKind::kSkip;
    } else if (k != "ref" && n.op == ir::OpKind::kLinear) {
      const Tensor* w = cdata(1);
      const Tensor* b = cdata(2);
      if (w == nullptr || w->rank() != 2) return DataLoss("layer '" + n.name + "': Linear weight is not a constant 2-D tensor");
      const auto act = static_cast<fast::Activation>(n.GetInt("activation", 0));
      if (w->dtype() == DType::kInt8) {
        const Tensor* ws = cdata(3);
        if (ws == nullptr) return DataLoss("layer '" + n.name + "': int8 Linear without a constant w_scale");
        ASSIGN_OR_RETURN(s->qlinear, fast::QLinear::Create(w->data<int8_t>(), w->dim(0), w->dim(1),
                                                           ws->data<float>(), b ? b->data<float>() : nullptr,
                                                           n.GetFloat("x_scale", 0.f), act, pool.get()));
      } else {
        ASSIGN_OR_RETURN(s->linear, fast::Linear::Create(w->data<float>(), w->dim(0), w->dim(1),
                                                         b ? b->data<float>() : nullptr, act, pool.get()));
      }
      s->kind = StepKind::kLinear;
    } else if (k != "ref" && n.op == ir::OpKind::kCross) {
      const Tensor* w = cdata(2);
      const Tensor* b = cdata(3);
      if (w == nullptr || b == nullptr) return DataLoss("layer '" + n.name + "': Cross weights are not constant");
      if (w->dtype() == DType::kInt8) {
        const Tensor* ws = cdata(4);
        if (ws == nullptr) return DataLoss("layer '" + n.name + "': int8 Cross without a constant w_scale");
        ASSIGN_OR_RETURN(s->qlinear, fast::QLinear::Create(w->data<int8_t>(), w->dim(0), w->dim(1),
                                                           ws->data<float>(), b->data<float>(),
                                                           n.GetFloat("x_scale", 0.f), fast::Activation::kNone,
                                                           pool.get()));
      } else {
        ASSIGN_OR_RETURN(s->cross, fast::Cross::Create(w->data<float>(), w->dim(0), b->data<float>(), pool.get()));
      }
      s->kind = StepKind::kCross;
    } else if (k != "ref" && n.op == ir::OpKind::kEmbeddingLookup && n.inputs[1]->dtype == DType::kInt64) {
      const Tensor* t = cdata(0);
      if (t == nullptr || t->rank() != 2) return DataLoss("layer '" + n.name + "': embedding table is not a constant 2-D tensor");
      s->V = t->dim(0);
      if (t->dtype() == DType::kUInt8) {
        s->qtable = t->data<uint8_t>();
        s->row_format = static_cast<int32_t>(n.GetInt("row_format", 0));
        s->D = n.GetInt("embedding_dim", 0);
        if (kernels::RowwiseBytes(static_cast<kernels::RowFormat>(s->row_format), s->D) != t->dim(1)) {
          return DataLoss("layer '" + n.name + "': quantized table " + t->Describe() + " does not hold rows of " +
                          std::to_string(s->D) + " values in row_format " + std::to_string(s->row_format));
        }
      } else {
        s->table = t->data<float>();
        s->D = t->dim(1);
      }
      // Offsets / sizes computed at run time leave the layer on the reference kernel.
      const bool per_field_const = (n.input(2) == nullptr || cdata(2)) && (n.input(3) == nullptr || cdata(3));
      if (per_field_const) {
        if (n.input(2)) {
          ASSIGN_OR_RETURN(s->offsets, cdata(2)->ToInt64Vector());
        }
        if (n.input(3)) {
          ASSIGN_OR_RETURN(s->sizes, cdata(3)->ToInt64Vector());
        }
      }
      s->kind = per_field_const ? StepKind::kEmbedding : StepKind::kRef;
    } else if (k != "ref" && n.op == ir::OpKind::kFMInteraction) {
      s->kind = StepKind::kFm;
    }
    steps.push_back(std::move(s));
  }
  FuseSteps();
  return Status::Ok();
}

// Runtime fusions over the layer list (the graph is unchanged; the engine's layers keep their
// kernels): embedding + FM + first-order sum in one pass writing straight into the MLP's concat
// input, and the final Add + Sigmoid.
void CpuEngine::Impl::FuseSteps() {
  const engine::Program& p = eng->program();
  std::map<const ir::Node*, Step*> step_of;
  for (auto& st : steps) step_of[st->node] = st.get();
  auto only_consumer = [](const ir::Value* v) -> const ir::Node* {
    return v && v->consumers.size() == 1 && !v->is_graph_output ? v->consumers[0] : nullptr;
  };
  for (auto& sp : steps) {
    Step& e = *sp;
    if (e.kind != StepKind::kEmbedding || e.D < 2) continue;
    const ir::Value* emb = e.node->outputs[0];
    if (emb->is_graph_output) continue;
    Step* fm = nullptr;
    Step* flat = nullptr;
    bool other = false;
    for (const ir::Node* c : emb->consumers) {
      Step* cs = step_of[c];
      if (cs->kind == StepKind::kFm && !fm) {
        fm = cs;
      } else if (c->op == ir::OpKind::kFlatten && c->GetInt("axis", 1) == 1 && !flat) {
        flat = cs;
      } else {
        other = true;
      }
    }
    // The first-order table: a D = 1 lookup of the same ids, offsets and sizes, summed over fields.
    Step* fo = nullptr;
    Step* fo_sum = nullptr;
    const size_t e_pos = static_cast<size_t>(&sp - &steps[0]);
    for (size_t ci = e_pos + 1; ci < steps.size(); ++ci) {  // after e: its results are ready by then
      Step& c = *steps[ci];
      if (c.kind != StepKind::kEmbedding || c.D != 1 || c.V != e.V || c.in[1] != e.in[1] ||
          c.offsets != e.offsets || c.sizes != e.sizes) {
        continue;
      }
      const ir::Node* r = only_consumer(c.node->outputs[0]);
      if (r && r->op == ir::OpKind::kReduceSum && r->GetInt("keepdims", 1) == 0 &&
          r->input(1) && r->input(1)->constant && r->input(1)->constant->size() == 1 &&
          r->input(1)->constant->GetAsInt64(0) == 1 && r->outputs[0]->dtype == DType::kFloat32) {
        fo = &c;
        fo_sum = step_of[r];
        break;
      }
    }
    // Flatten -> Concat(axis 1) of 2-D tensors: write the rows into the concat buffer.
    Step* cat = nullptr;
    int64_t col = 0, width = 0;
    if (flat && !other) {
      const ir::Node* c = only_consumer(flat->node->outputs[0]);
      if (c && c->op == ir::OpKind::kConcat) {
        const engine::TensorDesc& od = p.tensors[step_of[c]->out[0]];
        int64_t axis = c->GetInt("axis", 0);
        if (od.dims.size() == 2 && od.dims[0] == -1 && od.dims[1] > 0 && (axis == 1 || axis == -1)) {
          bool ok = true;
          int64_t acc = 0;
          for (size_t i = 0; i < c->inputs.size(); ++i) {
            const int32_t t = step_of[c]->in[i];
            if (t < 0) {
              ok = false;
              break;
            }
            const auto& d = p.tensors[t].dims;
            if (d.size() != 2 || d[1] < 0) ok = false;
            if (c->inputs[i] == flat->node->outputs[0]) col = acc;
            acc += d.size() == 2 ? d[1] : 0;
          }
          if (ok && acc == od.dims[1]) {
            cat = step_of[c];
            width = acc;
          }
        }
      }
    }
    if (!fm && !fo && !cat) continue;
    e.kind = StepKind::kEmbeddingFm;
    const std::string by = "fused into '" + e.layer->name + "'";
    if (fm) {
      e.fm_out = fm->out[0];
      fm->kind = StepKind::kFused;
      fm->fused_into = by;
    }
    if (fo) {
      e.first_order_table = fo->table;
      e.first_order_out = fo_sum->out[0];
      fo->kind = fo_sum->kind = StepKind::kFused;
      fo->fused_into = fo_sum->fused_into = by;
    }
    if (cat) {
      e.concat_out = cat->out[0];
      e.concat_col = col;
      e.concat_width = width;
      flat->kind = StepKind::kFused;
      flat->fused_into = by;
      cat->kind = StepKind::kConcat;
      cat->prewritten.assign(cat->in.size(), false);
      for (size_t i = 0; i < cat->in.size(); ++i) {
        cat->prewritten[i] = cat->node->inputs[i] == flat->node->outputs[0];
      }
    }
  }
  // Add -> Sigmoid (the final probability) in one pass.
  for (auto& sp : steps) {
    Step& a = *sp;
    if (a.kind != StepKind::kRef || a.node->op != ir::OpKind::kAdd) continue;
    const ir::Node* sg = only_consumer(a.node->outputs[0]);
    if (!sg || sg->op != ir::OpKind::kSigmoid || step_of[sg]->kind != StepKind::kRef) continue;
    if (a.node->outputs[0]->dtype != DType::kFloat32) continue;
    a.kind = StepKind::kAddSigmoid;
    a.out = step_of[sg]->out;
    step_of[sg]->kind = StepKind::kFused;
    step_of[sg]->fused_into = "fused into '" + a.layer->name + "'";
  }
}

StatusOr<Tensor> CpuEngine::Impl::Early(Context& ctx, int32_t id, int64_t batch) {
  const engine::TensorDesc& d = eng->program().tensors[id];
  Dims dims = d.dims;
  int64_t row = 1;
  for (size_t i = 1; i < dims.size(); ++i) row *= dims[i];
  dims[0] = batch;
  auto it = ctx.early.find(id);
  if (it == ctx.early.end()) {
    const int64_t max_batch = eng->program().meta.profile.max;
    size_t bytes = static_cast<size_t>(row * max_batch) * DTypeSize(d.dtype);
    void* mem = std::aligned_alloc(64, (bytes + 63) / 64 * 64 + 64);
    if (mem == nullptr) return Status(StatusCode::kResourceExhausted, "cannot allocate a concat buffer");
    it = ctx.early.emplace(id, std::shared_ptr<void>(mem, [](void* q) { std::free(q); })).first;
  }
  return Tensor::View(d.dtype, dims, it->second.get(), it->second);
}

StatusOr<Tensor> CpuEngine::Impl::Output(Context& ctx, int32_t id, const Dims& dims) {
  const engine::TensorDesc& d = eng->program().tensors[id];
  const int64_t bytes = NumElements(dims) * static_cast<int64_t>(DTypeSize(d.dtype));
  if (d.arena_offset >= 0 && d.arena_offset + bytes <= ctx.arena_bytes) {
    char* base = static_cast<char*>(ctx.arena.get()) + d.arena_offset;
    return Tensor::View(d.dtype, dims, base, ctx.arena);
  }
  return Tensor::Zeros(d.dtype, dims);
}

Status CpuEngine::Impl::RunStep(Step& s, Context& ctx) {
  const ir::Node& n = *s.node;
  switch (s.kind) {
    case StepKind::kSkip:
    case StepKind::kFused:
      return Status::Ok();
    case StepKind::kEmbedding:    // a plain lookup: the one-pass kernel with nothing extra
    case StepKind::kEmbeddingFm: {
      const Tensor* ids = Get(ctx, s.in[1]);
      if (ids->rank() != 2) {
        if (s.kind == StepKind::kEmbedding) break;  // the reference handles other ranks
        return InvalidArgument("ids must be [B,F], got " + ids->Describe());
      }
      const int64_t B = ids->dim(0), F = ids->dim(1);
      if ((!s.offsets.empty() && static_cast<int64_t>(s.offsets.size()) != F) ||
          (!s.sizes.empty() && static_cast<int64_t>(s.sizes.size()) != F)) {
        return InvalidArgument("ids " + ids->Describe() + " do not match the per-field tensors");
      }
      fast::EmbeddingFmArgs a;
      a.table = s.table;
      a.qtable = s.qtable;
      a.row_format = s.row_format;
      a.V = s.V;
      a.D = s.D;
      a.ids = ids->data<int64_t>();
      a.B = B;
      a.F = F;
      a.offsets = s.offsets.empty() ? nullptr : s.offsets.data();
      a.sizes = s.sizes.empty() ? nullptr : s.sizes.data();
      Tensor emb_dst;
      if (s.concat_out >= 0) {
        ASSIGN_OR_RETURN(emb_dst, Early(ctx, s.concat_out, B));
        if (s.concat_col + F * s.D > s.concat_width) return Internal("concat layout mismatch");
        a.emb_out = emb_dst.data<float>() + s.concat_col;
        a.emb_stride = s.concat_width;
        ctx.vals[s.concat_out] = emb_dst;
      } else {
        ASSIGN_OR_RETURN(emb_dst, Output(ctx, s.out[0], {B, F, s.D}));
        a.emb_out = emb_dst.data<float>();
        a.emb_stride = F * s.D;
        ctx.vals[s.out[0]] = emb_dst;
      }
      Tensor fm, fo;
      if (s.fm_out >= 0) {
        ASSIGN_OR_RETURN(fm, Output(ctx, s.fm_out, {B, 1}));
        a.fm_out = fm.data<float>();
      }
      if (s.first_order_out >= 0) {
        ASSIGN_OR_RETURN(fo, Output(ctx, s.first_order_out, {B, 1}));
        a.first_order_table = s.first_order_table;
        a.first_order_out = fo.data<float>();
      }
      Status st = fast::EmbeddingFm(a, pool.get());
      if (!st.ok()) return st.WithContext("ids from '" + n.inputs[1]->name + "'");
      if (s.fm_out >= 0) ctx.vals[s.fm_out] = std::move(fm);
      if (s.first_order_out >= 0) ctx.vals[s.first_order_out] = std::move(fo);
      return Status::Ok();
    }
    case StepKind::kConcat: {
      // The prewritten inputs are already in place; copy the others into their columns.
      Tensor& y = ctx.vals[s.out[0]];
      if (!y.defined()) return Internal("concat buffer missing");
      const int64_t B = y.dim(0), W = y.dim(1);
      int64_t col = 0;
      for (size_t i = 0; i < s.in.size(); ++i) {
        const engine::TensorDesc& d = eng->program().tensors[s.in[i]];
        const int64_t w = d.dims[1];
        if (!s.prewritten[i]) {
          const Tensor* x = Get(ctx, s.in[i]);
          if (x->dtype() != y.dtype() || x->rank() != 2 || x->dim(0) != B || x->dim(1) != w) {
            return InvalidArgument("concat input " + x->Describe() + " does not fit its columns");
          }
          const size_t es = DTypeSize(y.dtype());
          for (int64_t b = 0; b < B; ++b) {
            std::memcpy(static_cast<char*>(y.raw()) + (b * W + col) * es,
                        static_cast<const char*>(x->raw()) + b * w * es, static_cast<size_t>(w) * es);
          }
        }
        col += w;
      }
      return Status::Ok();
    }
    case StepKind::kAddSigmoid: {
      const Tensor* a = Get(ctx, s.in[0]);
      const Tensor* b = Get(ctx, s.in[1]);
      if (a->dtype() != DType::kFloat32 || b->dtype() != DType::kFloat32 ||
          (a->dims() != b->dims() && b->size() != 1)) {
        // Shapes the one-pass loop does not cover: Add then Sigmoid with the reference kernels.
        std::vector<Tensor> sum;
        RETURN_IF_ERROR(reference::RunNode(n, {a, b}, &sum));
        const ir::Node* sg = n.outputs[0]->consumers[0];
        std::vector<Tensor> prob;
        RETURN_IF_ERROR(reference::RunNode(*sg, {&sum[0]}, &prob));
        ctx.vals[s.out[0]] = std::move(prob[0]);
        return Status::Ok();
      }
      ASSIGN_OR_RETURN(Tensor y, Output(ctx, s.out[0], a->dims()));
      const float* pa = a->data<float>();
      const float* pb = b->data<float>();
      float* py = y.data<float>();
      const bool scalar = b->size() == 1 && a->dims() != b->dims();
      for (int64_t i = 0; i < a->size(); ++i) {
        const float z = pa[i] + (scalar ? pb[0] : pb[i]);
        py[i] = z >= 0 ? 1.f / (1.f + std::exp(-z)) : std::exp(z) / (1.f + std::exp(z));
      }
      ctx.vals[s.out[0]] = std::move(y);
      return Status::Ok();
    }
    case StepKind::kLinear: {
      const Tensor* x = Get(ctx, s.in[0]);
      const int64_t K = s.qlinear ? s.qlinear->K() : s.linear->K();
      const int64_t N = s.qlinear ? s.qlinear->N() : s.linear->N();
      if (x->dtype() != DType::kFloat32 || x->rank() < 1 || x->dims().back() != K) {
        return InvalidArgument("input " + x->Describe() + " does not match weight K=" + std::to_string(K));
      }
      Dims od = x->dims();
      od.back() = N;
      ASSIGN_OR_RETURN(Tensor y, Output(ctx, s.out[0], od));
      if (s.qlinear) {
        RETURN_IF_ERROR(s.qlinear->Run(x->data<float>(), x->size() / K, K, y.data<float>(), N));
      } else {
        RETURN_IF_ERROR(s.linear->Run(x->data<float>(), x->size() / K, K, y.data<float>(), N));
      }
      ctx.vals[s.out[0]] = std::move(y);
      return Status::Ok();
    }
    case StepKind::kCross: {
      const Tensor* x0 = Get(ctx, s.in[0]);
      const Tensor* xl = Get(ctx, s.in[1]);
      if (x0->dims() != xl->dims() || x0->rank() != 2) {
        return InvalidArgument("Cross inputs " + x0->Describe() + " and " + xl->Describe() + " differ");
      }
      ASSIGN_OR_RETURN(Tensor y, Output(ctx, s.out[0], xl->dims()));
      const int64_t K = xl->dim(1);
      if (s.qlinear) {
        RETURN_IF_ERROR(s.qlinear->RunCross(x0->data<float>(), K, xl->data<float>(), K, xl->dim(0),
                                            y.data<float>(), K));
      } else {
        RETURN_IF_ERROR(s.cross->Run(x0->data<float>(), xl->data<float>(), xl->dim(0), y.data<float>()));
      }
      ctx.vals[s.out[0]] = std::move(y);
      return Status::Ok();
    }
    case StepKind::kFm: {
      const Tensor* e = Get(ctx, s.in[0]);
      if (e->rank() != 3 || e->dtype() != DType::kFloat32) break;
      ASSIGN_OR_RETURN(Tensor y, Output(ctx, s.out[0], {e->dim(0), 1}));
      RETURN_IF_ERROR(fast::FmInteraction(e->data<float>(), e->dim(0), e->dim(1), e->dim(2),
                                          e->dim(1) * e->dim(2), y.data<float>(), pool.get()));
      ctx.vals[s.out[0]] = std::move(y);
      return Status::Ok();
    }
    case StepKind::kRef:
      break;
  }
  std::vector<const Tensor*> in;
  for (size_t i = 0; i < s.in.size(); ++i) {
    const Tensor* t = Get(ctx, s.in[i]);
    if (s.in[i] >= 0 && t == nullptr) return Internal("input '" + n.inputs[i]->name + "' not computed");
    in.push_back(t);
  }
  std::vector<Tensor> outs;
  RETURN_IF_ERROR(reference::RunNode(n, in, &outs));
  for (size_t i = 0; i < s.out.size() && i < outs.size(); ++i) {
    if (s.out[i] >= 0 && !values[s.out[i]]->constant) ctx.vals[s.out[i]] = std::move(outs[i]);
  }
  return Status::Ok();
}

CpuEngine::CpuEngine(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
CpuEngine::~CpuEngine() = default;

StatusOr<std::unique_ptr<CpuEngine>> CpuEngine::Load(const std::string& path,
                                                     const CpuEngineOptions& options) {
  engine::Expectations ex;
  ex.backend = "cpu";
  ex.cpu_isas = SupportedIsas();
  auto eng = engine::LoadEngine(path, ex);
  if (!eng.ok()) return eng.status();  // the loader's messages name the file
  auto e = Create(std::move(eng).value(), options);
  if (!e.ok()) return e.status().WithContext(path);
  return e;
}

StatusOr<std::unique_ptr<CpuEngine>> CpuEngine::Create(std::shared_ptr<engine::LoadedEngine> eng,
                                                       const CpuEngineOptions& options) {
  const engine::Metadata& m = eng->program().meta;
  if (m.backend != "cpu") {
    return FailedPrecondition("engine was built for backend '" + m.backend + "', this runtime is 'cpu'");
  }
  if (!m.cpu_isa.empty()) {
    ASSIGN_OR_RETURN(fast::Isa isa, IsaFromName(m.cpu_isa));
    RETURN_IF_ERROR(fast::ForceIsa(isa));
  }
  auto impl = std::make_unique<Impl>();
  impl->eng = std::move(eng);
  impl->profile = options.profile;
  ASSIGN_OR_RETURN(impl->graph, RaiseProgram(*impl->eng));
  impl->pool = std::make_unique<fast::ThreadPool>(options.threads);
  RETURN_IF_ERROR(impl->Prepare());
  return std::unique_ptr<CpuEngine>(new CpuEngine(std::move(impl)));
}

StatusOr<reference::TensorMap> CpuEngine::Run(const reference::TensorMap& inputs) {
  Impl& m = *impl_;
  RETURN_IF_ERROR(reference::CheckInputs(*m.graph, inputs));
  const engine::Program& p = m.eng->program();
  int64_t batch = -1;
  for (int32_t id : p.inputs) {
    const engine::TensorDesc& d = p.tensors[id];
    if (!d.dims.empty() && d.dims[0] == -1) {
      batch = inputs.at(d.name).dim(0);
      break;
    }
  }
  const engine::Profile& pr = p.meta.profile;
  if (batch >= 0 && (batch < pr.min || batch > pr.max)) {
    return InvalidArgument("batch " + std::to_string(batch) + " is outside the engine's profile [" +
                           std::to_string(pr.min) + ", " + std::to_string(pr.max) +
                           "]; rebuild with a larger --batch min:opt:max or split the request");
  }
  std::unique_ptr<Context> ctx;
  {
    std::lock_guard<std::mutex> lock(m.mu);
    if (!m.idle.empty()) {
      ctx = std::move(m.idle.back());
      m.idle.pop_back();
    }
  }
  if (!ctx) {
    ctx = std::make_unique<Context>();
    ctx->arena_bytes = p.meta.arena_bytes;
    void* a = std::aligned_alloc(64, static_cast<size_t>((p.meta.arena_bytes + 63) / 64 * 64 + 64));
    if (a == nullptr) return Status(StatusCode::kResourceExhausted, "cannot allocate the activation arena");
    ctx->arena = std::shared_ptr<void>(a, [](void* q) { std::free(q); });
  }
  ctx->vals.assign(p.tensors.size(), Tensor());
  for (int32_t id : p.inputs) ctx->vals[id] = inputs.at(p.tensors[id].name);
  Status status;
  for (auto& s : m.steps) {
    auto t0 = m.profile ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    status = m.RunStep(*s, *ctx);
    if (!status.ok()) {
      status = status.WithContext("layer '" + s->layer->name + "' (" + s->layer->op + ", kernel " +
                                  s->layer->kernel + ")");
      break;
    }
    if (m.profile) {
      s->nanos += std::chrono::duration_cast<std::chrono::nanoseconds>(
                      std::chrono::steady_clock::now() - t0).count();
      s->calls += 1;
    }
  }
  reference::TensorMap out;
  if (status.ok()) {
    for (int32_t id : p.outputs) {
      const Tensor* t = m.Get(*ctx, id);
      if (t == nullptr) {
        status = Internal("output '" + p.tensors[id].name + "' was not computed");
        break;
      }
      out[p.tensors[id].name] = t->Clone();  // the arena is reused by the next call
    }
  }
  ctx->vals.clear();
  {
    std::lock_guard<std::mutex> lock(m.mu);
    m.idle.push_back(std::move(ctx));
  }
  if (!status.ok()) return status;
  return out;
}

const engine::Program& CpuEngine::program() const { return impl_->eng->program(); }
const ir::Graph& CpuEngine::graph() const { return *impl_->graph; }

std::vector<LayerTiming> CpuEngine::Timings() const {
  std::vector<LayerTiming> v;
  for (const auto& s : impl_->steps) {
    std::string kernel = s->kind == StepKind::kSkip    ? "folded"
                         : s->kind == StepKind::kFused ? s->fused_into
                                                       : s->layer->kernel;
    if (s->kind == StepKind::kEmbeddingFm) kernel += "+fm/first-order/concat";
    if (s->kind == StepKind::kAddSigmoid) kernel = "add+sigmoid";
    v.push_back({s->layer->name, s->layer->op, kernel,
                 s->nanos.load() / 1e6, s->calls.load()});
  }
  return v;
}

void CpuEngine::ResetTimings() {
  for (auto& s : impl_->steps) {
    s->nanos = 0;
    s->calls = 0;
  }
}

}  // namespace clickrt::runtime
