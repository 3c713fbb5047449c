#include "runtime/cpu_engine.h"

#include <atomic>
#include <chrono>
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

enum class StepKind { kRef, kLinear, kCross, kEmbedding, kFm, kSkip };

struct Step {
  const ir::Node* node = nullptr;
  const engine::Layer* layer = nullptr;
  StepKind kind = StepKind::kRef;
  std::vector<int32_t> in, out;
  std::unique_ptr<fast::Linear> linear;
  std::unique_ptr<fast::Cross> cross;
  // Embedding: table and per-field vectors.
  const float* table = nullptr;
  int64_t V = 0, D = 0;
  std::vector<int64_t> offsets, sizes;
  std::atomic<int64_t> nanos{0}, calls{0};
};

struct Context {
  std::vector<Tensor> vals;
  std::shared_ptr<void> arena;
  int64_t arena_bytes = 0;
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
  Status RunStep(Step& s, Context& ctx, int64_t batch);
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
      ASSIGN_OR_RETURN(s->linear, fast::Linear::Create(
                                      w->data<float>(), w->dim(0), w->dim(1), b ? b->data<float>() : nullptr,
                                      static_cast<fast::Activation>(n.GetInt("activation", 0)), pool.get()));
      s->kind = StepKind::kLinear;
    } else if (k != "ref" && n.op == ir::OpKind::kCross) {
      const Tensor* w = cdata(2);
      const Tensor* b = cdata(3);
      if (w == nullptr || b == nullptr) return DataLoss("layer '" + n.name + "': Cross weights are not constant");
      ASSIGN_OR_RETURN(s->cross, fast::Cross::Create(w->data<float>(), w->dim(0), b->data<float>(), pool.get()));
      s->kind = StepKind::kCross;
    } else if (k != "ref" && n.op == ir::OpKind::kEmbeddingLookup && n.inputs[1]->dtype == DType::kInt64) {
      const Tensor* t = cdata(0);
      if (t == nullptr || t->rank() != 2) return DataLoss("layer '" + n.name + "': embedding table is not a constant 2-D tensor");
      s->table = t->data<float>();
      s->V = t->dim(0);
      s->D = t->dim(1);
      for (size_t i : {size_t{2}, size_t{3}}) {
        if (n.input(i) == nullptr) continue;
        const Tensor* c = cdata(i);
        if (c == nullptr) break;  // per-field tensors computed at run time: reference path
        ASSIGN_OR_RETURN(auto v, c->ToInt64Vector());
        (i == 2 ? s->offsets : s->sizes) = v;
      }
      const bool per_field_const = (n.input(2) == nullptr || cdata(2)) && (n.input(3) == nullptr || cdata(3));
      s->kind = per_field_const ? StepKind::kEmbedding : StepKind::kRef;
    } else if (k != "ref" && n.op == ir::OpKind::kFMInteraction) {
      s->kind = StepKind::kFm;
    }
    steps.push_back(std::move(s));
  }
  return Status::Ok();
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

Status CpuEngine::Impl::RunStep(Step& s, Context& ctx, int64_t batch) {
  const ir::Node& n = *s.node;
  switch (s.kind) {
    case StepKind::kSkip:
      return Status::Ok();
    case StepKind::kLinear: {
      const Tensor* x = Get(ctx, s.in[0]);
      const int64_t K = s.linear->K(), N = s.linear->N();
      if (x->dtype() != DType::kFloat32 || x->rank() < 1 || x->dims().back() != K) {
        return InvalidArgument("input " + x->Describe() + " does not match weight K=" + std::to_string(K));
      }
      Dims od = x->dims();
      od.back() = N;
      ASSIGN_OR_RETURN(Tensor y, Output(ctx, s.out[0], od));
      RETURN_IF_ERROR(s.linear->Run(x->data<float>(), x->size() / K, K, y.data<float>(), N));
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
      RETURN_IF_ERROR(s.cross->Run(x0->data<float>(), xl->data<float>(), xl->dim(0), y.data<float>()));
      ctx.vals[s.out[0]] = std::move(y);
      return Status::Ok();
    }
    case StepKind::kEmbedding: {
      const Tensor* ids = Get(ctx, s.in[1]);
      if (ids->rank() != 2) break;  // the reference handles other ranks
      const int64_t B = ids->dim(0), F = ids->dim(1);
      if ((!s.offsets.empty() && static_cast<int64_t>(s.offsets.size()) != F) ||
          (!s.sizes.empty() && static_cast<int64_t>(s.sizes.size()) != F)) {
        return InvalidArgument("ids " + ids->Describe() + " do not match the per-field tensors");
      }
      ASSIGN_OR_RETURN(Tensor y, Output(ctx, s.out[0], {B, F, s.D}));
      Status st = fast::EmbeddingLookup(s.table, s.V, s.D, ids->data<int64_t>(), B, F,
                                        s.offsets.empty() ? nullptr : s.offsets.data(),
                                        s.sizes.empty() ? nullptr : s.sizes.data(), y.data<float>(),
                                        F * s.D, pool.get());
      if (!st.ok()) return st.WithContext("ids from '" + n.inputs[1]->name + "'");
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
  (void)batch;
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
    status = m.RunStep(*s, *ctx, batch);
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
    v.push_back({s->layer->name, s->layer->op, s->kind == StepKind::kSkip ? "folded" : s->layer->kernel,
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
