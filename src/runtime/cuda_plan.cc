// Lowering of an engine's graph to GPU steps (see cuda_plan.h / cuda_engine.h).
#include "runtime/cuda_plan.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <set>

#include "base/dtype.h"
#include "kernels/cpu/quant_format.h"

namespace clickrt::runtime::gpu {

using ir::Node;
using ir::OpKind;
using ir::Value;

char* Plan::ptr(const LaunchCtx& c, const Val& v) const {
  const Buf& b = bufs[v.buf];
  char* base = b.input >= 0 ? c.inputs[b.input] : c.arena + b.offset;
  return base + v.col * static_cast<int64_t>(b.elem);
}

cuda::View Plan::view(const LaunchCtx& c, int val) const {
  const Val& v = vals[val];
  return cuda::View{ptr(c, v), v.type, bufs[v.buf].ld};
}

std::string GemmSite::key(int64_t rows) const {
  cuda::GemmDesc d = desc;
  d.m = rows;
  return "gemm:" + d.Key();
}

const char* VariantName(int v) {
  switch (v) {
    case kFusedMlp: return "fused_mlp";
    case kSkinny: return "skinny";
    default: return "cublaslt";
  }
}

// Untuned: the skinny kernel where it applies (few rows), else cuBLASLt.
int Step::VariantFor(int64_t bucket) const {
  auto it = variant.find(bucket);
  if (it != variant.end() && std::find(variants.begin(), variants.end(), it->second) != variants.end()) {
    if (it->second == kCublasLt || bucket <= cuda::SkinnyGemmArgs::kMaxRows) return it->second;
  }
  const bool skinny = std::find(variants.begin(), variants.end(), kSkinny) != variants.end();
  return skinny && bucket <= cuda::SkinnyGemmArgs::kMaxRows ? kSkinny : kCublasLt;
}

// One GEMM site on the skinny kernel with its whole epilogue.
Status RunSkinny(const Plan& p, const LaunchCtx& c, const GemmSite& g) {
  cuda::SkinnyGemmArgs a;
  a.rows = c.bucket;
  a.n = g.desc.n;
  a.k = g.desc.k;
  a.a = p.view(c, g.in);
  a.wt = p.cptr(c, g.wt);
  a.bias = g.bias >= 0 ? static_cast<const float*>(p.cptr(c, g.bias)) : nullptr;
  a.epilogue = g.skinny_epi;
  if (g.x0 >= 0) a.x0 = p.view(c, g.x0);
  if (g.xl >= 0) a.xl = p.view(c, g.xl);
  a.c = p.view(c, g.out);
  return cuda::LaunchSkinnyGemm(a, c.stream);
}

Status RunGemm(const Plan& p, const LaunchCtx& c, const GemmSite& g, int64_t rows) {
  cuda::GemmDesc d = g.desc;
  d.m = rows;
  auto it = g.algo.find(c.bucket);
  static const cuda::GemmAlgo kDefault{};
  const cuda::GemmAlgo& algo = it == g.algo.end() ? kDefault : it->second;
  const float* bias = g.bias >= 0 ? static_cast<const float*>(p.cptr(c, g.bias)) : nullptr;
  return c.lt->Run(d, algo, p.ptr(c, p.vals[g.in]), p.cptr(c, g.w), bias, p.ptr(c, p.vals[g.out]),
                   c.workspace, c.stream);
}

namespace {

// Largest power of two (<= 256) dividing a byte offset from a 256-aligned base.
int64_t AlignOfOffset(int64_t bytes) {
  int64_t a = 256;
  while (a > 1 && bytes % a != 0) a /= 2;
  return a;
}

bool IsUnary(OpKind op, cuda::EwOp* out) {
  switch (op) {
    case OpKind::kRelu: *out = cuda::EwOp::kRelu; return true;
    case OpKind::kSigmoid: *out = cuda::EwOp::kSigmoid; return true;
    case OpKind::kTanh: *out = cuda::EwOp::kTanh; return true;
    case OpKind::kLog: *out = cuda::EwOp::kLog; return true;
    case OpKind::kExp: *out = cuda::EwOp::kExp; return true;
    case OpKind::kNeg: *out = cuda::EwOp::kNeg; return true;
    case OpKind::kSqrt: *out = cuda::EwOp::kSqrt; return true;
    default: return false;
  }
}

// Two optional constant inputs with equal contents (exporters repeat per-field vectors).
bool SameConstant(const Value* a, const Value* b) {
  if (a == b) return true;
  if (!a || !b || !a->constant || !b->constant) return false;
  const Tensor& x = *a->constant;
  const Tensor& y = *b->constant;
  return x.dtype() == y.dtype() && x.dims() == y.dims() && std::memcmp(x.raw(), y.raw(), x.nbytes()) == 0;
}

bool IsBinary(OpKind op) {
  return op == OpKind::kAdd || op == OpKind::kMul || op == OpKind::kSub || op == OpKind::kDiv ||
         op == OpKind::kPRelu || op == OpKind::kPow;
}

bool IsAlias(OpKind op) {
  return op == OpKind::kFlatten || op == OpKind::kReshape || op == OpKind::kSqueeze ||
         op == OpKind::kUnsqueeze || op == OpKind::kIdentity;
}

// Elements per row (dims after the batch); -1 when not static or the first dim is not the batch.
int64_t RowCols(const Value* v) {
  if (!v->shape.rank_known || v->shape.rank() < 1) return -1;
  if (v->shape.dims[0].known()) return -1;
  int64_t c = 1;
  for (int i = 1; i < v->shape.rank(); ++i) {
    if (!v->shape.dims[i].known()) return -1;
    c *= v->shape.dims[i].value;
  }
  return c;
}

class Lowering {
 public:
  Lowering(const engine::Program& prog, const ir::Graph& g) : prog_(prog), g_(g) {}
  StatusOr<std::unique_ptr<Plan>> Run();

 private:
  const engine::Program& prog_;
  const ir::Graph& g_;
  std::unique_ptr<Plan> p_ = std::make_unique<Plan>();
  std::map<const Value*, int> val_of_;
  std::set<const Node*> done_;
  // Concat inputs that their producer writes straight into the concat's buffer.
  std::map<const Value*, std::pair<int, int64_t>> hint_;  // value -> (concat val, column)

  size_t ElemOf(DataType t) { return t == DataType::kF32 ? 4 : 2; }
  int NewBuf(int64_t cols, DataType t, bool is_int = false) {
    Buf b;
    b.elem = is_int ? 8 : ElemOf(t);
    const int64_t align = b.elem == 2 ? 8 : 4;
    // Per-row scalars ([batch, 1]) stay dense: kernels write them as plain float arrays.
    b.ld = is_int || cols == 1 ? cols : (cols + align - 1) / align * align;
    p_->bufs.push_back(b);
    return static_cast<int>(p_->bufs.size()) - 1;
  }
  int NewVal(Val v) {
    p_->vals.push_back(v);
    return static_cast<int>(p_->vals.size()) - 1;
  }
  // The value `v` is written to: its concat slice when hinted, else a new buffer.
  StatusOr<int> Dest(const Value* v, DataType t) {
    const int64_t cols = RowCols(v);
    if (cols <= 0) return Unimplemented("value '" + v->name + "' has no static [batch, ...] shape");
    auto h = hint_.find(v);
    int id;
    if (h != hint_.end() && p_->vals[h->second.first].type == t) {
      const Val& cat = p_->vals[h->second.first];
      id = NewVal(Val{cat.buf, cat.col + h->second.second, cols, t, false, {}});
    } else {
      id = NewVal(Val{NewBuf(cols, t), 0, cols, t, false, {}});
    }
    val_of_[v] = id;
    return id;
  }
  DataType MatType(int64_t cols) { return cols > 1 ? p_->act : DataType::kF32; }
  int64_t AddConst(const void* data, size_t bytes) {
    auto& c = p_->consts;
    const size_t off = (c.size() + 255) / 256 * 256;
    c.resize(off + bytes);
    std::memcpy(c.data() + off, data, bytes);
    return static_cast<int64_t>(off);
  }
  // A float constant converted to `t`.
  int64_t AddConstAs(const Tensor& t, DataType to) {
    const int64_t n = t.size();
    if (to == DataType::kF32) {
      std::vector<float> f(n);
      for (int64_t i = 0; i < n; ++i) f[i] = static_cast<float>(t.GetAsDouble(i));
      return AddConst(f.data(), n * 4);
    }
    std::vector<uint16_t> h(n);
    for (int64_t i = 0; i < n; ++i) {
      const float x = t.dtype() == DType::kFloat32 ? t.data<float>()[i] : static_cast<float>(t.GetAsDouble(i));
      h[i] = to == DataType::kF16 ? FloatToHalf(x) : FloatToBFloat16(x);
    }
    return AddConst(h.data(), n * 2);
  }
  // W [K, N] laid out for an input of `kp` columns (segment map of a gapped concat, or trailing
  // zero rows) and `np` output columns (trailing zero columns), in the engine's precision;
  // `transposed` stores it [np, kp] row-major, as the skinny kernel reads it.
  int64_t AddPaddedWeight(const Tensor& w, int64_t kp, int64_t np, const Val& in, bool transposed = false) {
    const int64_t K = w.dim(0), N = w.dim(1);
    if (kp == K && np == N && !transposed) return AddConstAs(w, p_->act);
    std::vector<float> v(static_cast<size_t>(kp * np), 0.f);
    auto row_to = [&](int64_t r) {
      for (const auto& sg : in.segs) {
        if (r >= sg[0] && r < sg[0] + sg[2]) return sg[1] + r - sg[0];
      }
      return r;
    };
    for (int64_t r = 0; r < K; ++r) {
      const int64_t to = row_to(r);
      for (int64_t c = 0; c < N; ++c) {
        v[transposed ? c * kp + to : to * np + c] = static_cast<float>(w.GetAsDouble(r * N + c));
      }
    }
    return AddConstAs(Tensor::FromVector<float>(transposed ? Dims{np, kp} : Dims{kp, np}, v), p_->act);
  }
  // The K a GEMM reading `in` runs with: the padded width of a gapped concat, K rounded up to 8
  // for 16-bit types where the buffer has the room (its padding then must read as finite: the
  // producer wrote it, or the buffer is zero-initialised and never shared).
  int64_t PaddedK(int in, int64_t K) {
    Val& v = p_->vals[in];
    if (!v.segs.empty()) return v.cols;
    if (p_->act == DataType::kF32 || K % 8 == 0 || v.is_int) return K;
    const int64_t kp = (K + 7) / 8 * 8;
    Buf& b = p_->bufs[v.buf];
    if (b.input >= 0 || v.col + kp > b.ld) return K;
    if (!padded_out_.count(in)) b.zero_pad = true;
    return kp;
  }
  std::set<int> padded_out_;  // vals whose padding columns a GEMM writes (as zeros)

  // A GEMM reading val `in` (run with `k` columns) into val `out` (`n` columns): the weights in
  // both layouts (cuBLASLt's and the skinny kernel's), shapes, strides, types, and the alignment
  // its operands really have (a concat slice may start mid-row).
  GemmSite MakeGemmSite(const Tensor& w, int in, int out, int64_t k, int64_t n) {
    auto align = [&](int v) { return AlignOfOffset(p_->vals[v].col * p_->bufs[p_->vals[v].buf].elem); };
    GemmSite g;
    g.w = AddPaddedWeight(w, k, n, p_->vals[in]);
    g.wt = AddPaddedWeight(w, k, n, p_->vals[in], /*transposed=*/true);
    g.in = in;
    g.out = out;
    g.desc.n = n;
    g.desc.k = k;
    g.desc.lda = p_->bufs[p_->vals[in].buf].ld;
    g.desc.ldc = p_->bufs[p_->vals[out].buf].ld;
    g.desc.a_type = g.desc.w_type = p_->act;
    g.desc.c_type = p_->vals[out].type;
    g.desc.compute = p_->compute;
    g.desc.align = std::min(align(in), align(out));
    return g;
  }

  int64_t AddInt64(const Tensor& t) {
    std::vector<int64_t> v(t.size());
    for (int64_t i = 0; i < t.size(); ++i) v[i] = t.GetAsInt64(i);
    return AddConst(v.data(), v.size() * 8);
  }
  StatusOr<int> Get(const Value* v, const Node& n) {
    auto it = val_of_.find(v);
    if (it == val_of_.end()) {
      return Unimplemented("layer '" + n.name + "' (" + n.op_type + "): input '" + (v ? v->name : "?") +
                           "' is not computed on the GPU" + (v && v->constant ? " (a constant here)" : ""));
    }
    return it->second;
  }
  // Converts val `in` to type `t` when it differs (a copy step); returns the val to read.
  StatusOr<int> AsType(int in, DataType t, const std::string& name);
  Step* AddStep(std::string name, std::string kernel, std::vector<int> vals) {
    auto s = std::make_unique<Step>();
    s->name = std::move(name);
    s->kernel = std::move(kernel);
    for (int v : vals) s->bufs.push_back(p_->vals[v].buf);
    p_->steps.push_back(std::move(s));
    return p_->steps.back().get();
  }
  const Node* OnlyConsumer(const Value* v) {
    return v && v->consumers.size() == 1 && !v->is_graph_output ? v->consumers[0] : nullptr;
  }

  void PlanConcats();
  Status LowerEmbedding(const Node& n);
  Status LowerChain(const Node& n);
  Status LowerLinear(const Node& n);
  Status LowerCross(const Node& n);
  Status LowerConcat(const Node& n);
  Status LowerAlias(const Node& n);
  void PlanArena();
};

StatusOr<int> Lowering::AsType(int in, DataType t, const std::string& name) {
  if (p_->vals[in].type == t || p_->vals[in].is_int) return in;
  const int64_t cols = p_->vals[in].cols;
  const int out = NewVal(Val{NewBuf(cols, t), 0, cols, t, false, {}});
  Step* s = AddStep(name + ":convert", "copy", {in, out});
  s->launch = [in, out, cols](const Plan& p, const LaunchCtx& c, Step&) {
    return cuda::LaunchCopy2D(p.view(c, in), p.view(c, out), c.bucket, cols, c.stream);
  };
  return out;
}

// Concat(axis 1) of [batch, n] values: one buffer; producers that only feed it (or feed it and
// readers that take strided views) write their slice directly.
void Lowering::PlanConcats() {
  for (const auto& np : g_.nodes()) {
    const Node& n = *np;
    if (n.op != OpKind::kConcat) continue;
    const Value* out = n.outputs[0];
    const int64_t axis = n.GetInt("axis", 0);
    const int rank = out->shape.rank_known ? out->shape.rank() : 0;
    if (rank != 2 || (axis != 1 && axis != -1) || RowCols(out) <= 0) continue;
    const int64_t cols = RowCols(out);
    // 16-bit tensor-core GEMMs want every segment 16-byte aligned: when only Linears read the
    // concat, its inputs start at multiples of 8 columns and the Linears' weights get zero rows
    // for the gaps.
    bool aligned = p_->act != DataType::kF32 && !out->is_graph_output;
    for (const Node* c : out->consumers) aligned &= c->op == OpKind::kLinear && c->input(0) == out;
    std::vector<std::array<int64_t, 3>> segs;
    int64_t width = 0, logical = 0;
    for (const Value* in : n.inputs) {
      const int64_t c = in ? RowCols(in) : -1;
      if (c <= 0) break;
      if (aligned) width = (width + 7) / 8 * 8;
      segs.push_back({logical, width, c});
      logical += c;
      width += c;
    }
    if (aligned) width = (width + 7) / 8 * 8;
    const int cat = NewVal(Val{NewBuf(width, MatType(cols)), 0, width, MatType(cols), false, {}});
    if (aligned && width != cols) {
      p_->vals[cat].segs = segs;
      p_->bufs[p_->vals[cat].buf].zero_pad = true;
    } else {
      p_->vals[cat].cols = cols;
    }
    val_of_[out] = cat;
    size_t si = 0;
    for (const Value* in : n.inputs) {
      const int64_t c = in ? RowCols(in) : -1;
      if (c <= 0) break;
      const int64_t col = p_->vals[cat].segs.empty() ? segs[si].at(0) : segs[si].at(1);
      ++si;
      // Producers we lower with a destination; through alias ops back to an embedding.
      const Value* v = in;
      if (!v->is_graph_input && !v->constant && !v->is_graph_output && !hint_.count(v)) {
        hint_[v] = {cat, col};
        // Through alias ops (Flatten of the embedding rows): other readers of the aliased value
        // take the slice as a strided view, which every GPU step accepts.
        while (v->producer && IsAlias(v->producer->op) && v->producer->inputs[0] &&
               !v->producer->inputs[0]->is_graph_input && !v->producer->inputs[0]->is_graph_output &&
               !hint_.count(v->producer->inputs[0]) && RowCols(v->producer->inputs[0]) == c) {
          v = v->producer->inputs[0];
          hint_[v] = {cat, col};
        }
      }
    }
  }
}

Status Lowering::LowerEmbedding(const Node& n) {
  const Value* table = n.input(0);
  const Value* ids = n.input(1);
  if (!table || !table->constant || table->constant->rank() != 2) {
    return Unimplemented("layer '" + n.name + "': EmbeddingLookup needs a constant [V, D] table");
  }
  if (!ids || ids->shape.rank() != 2 || RowCols(ids) <= 0) {
    return Unimplemented("layer '" + n.name + "': EmbeddingLookup on the GPU needs ids [batch, fields]");
  }
  for (int i : {2, 3}) {
    if (n.input(i) && !n.input(i)->constant) {
      return Unimplemented("layer '" + n.name + "': per-field offsets / sizes must be constants");
    }
  }
  ASSIGN_OR_RETURN(int ids_val, Get(ids, n));
  // A uint8 table holds row-wise quantized rows (docs/FUSED_OPS.md): uploaded as they are.
  const int row_format = table->dtype == DType::kUInt8 ? static_cast<int>(n.GetInt("row_format", 0)) : 0;
  const int64_t V = table->constant->dim(0), F = RowCols(ids);
  const int64_t D = row_format ? n.GetInt("embedding_dim", 0) : table->constant->dim(1);
  if (row_format && kernels::RowwiseBytes(static_cast<kernels::RowFormat>(row_format), D) != table->constant->dim(1)) {
    return InvalidArgument("layer '" + n.name + "': quantized table " + table->constant->Describe() +
                           " does not hold rows of " + std::to_string(D) + " values");
  }
  const Value* emb = n.outputs[0];
  std::vector<int> touched = {ids_val};
  std::string name = n.name;
  // Consumers: FM (fused), Flatten (alias into a concat slice), anything else reads the rows.
  const Node* fm = nullptr;
  bool rows_needed = emb->is_graph_output;
  for (const Node* c : emb->consumers) {
    if (c->op == OpKind::kFMInteraction && !fm && D >= 1) {
      fm = c;
    } else {
      rows_needed = true;
    }
  }
  // A first-order sibling: a D = 1 lookup of the same ids / offsets / sizes summed over fields.
  const Node* fo = nullptr;
  const Node* fo_sum = nullptr;
  if (D >= 2) {
    for (const auto& cp : g_.nodes()) {
      const Node& c = *cp;
      if (c.op != OpKind::kEmbeddingLookup || done_.count(&c) || &c == &n) continue;
      if (c.input(1) != ids || !c.input(0) || !c.input(0)->constant || c.input(0)->constant->rank() != 2 ||
          c.input(0)->constant->dim(1) != 1 || c.input(0)->constant->dim(0) != V ||
          !SameConstant(c.input(2), n.input(2)) || !SameConstant(c.input(3), n.input(3))) {
        continue;
      }
      const Node* r = OnlyConsumer(c.outputs[0]);
      if (r && r->op == OpKind::kReduceSum && r->GetInt("keepdims", 1) == 0 && r->input(1) &&
          r->input(1)->constant && r->input(1)->constant->size() == 1 &&
          r->input(1)->constant->GetAsInt64(0) == 1) {
        fo = &c;
        fo_sum = r;
        break;
      }
    }
  }
  cuda::EmbeddingArgs a;
  a.fields = F;
  a.dim = D;
  a.table_rows = V;
  a.ids_ld = p_->bufs[p_->vals[ids_val].buf].ld;
  a.table_type = p_->act;
  a.row_format = row_format;
  const int64_t table_off = row_format ? AddConst(table->constant->raw(), table->constant->nbytes())
                                       : AddConstAs(*table->constant, p_->act);
  const int64_t offsets_off = n.input(2) ? AddInt64(*n.input(2)->constant) : -1;
  const int64_t sizes_off = n.input(3) ? AddInt64(*n.input(3)->constant) : -1;
  int out_val = -1, fm_val = -1, fo_val = -1;
  int64_t fo_table = -1;
  if (rows_needed || !fm) {
    ASSIGN_OR_RETURN(out_val, Dest(emb, D >= 2 ? p_->act : MatType(F * D)));
    touched.push_back(out_val);
  }
  if (fm) {
    ASSIGN_OR_RETURN(fm_val, Dest(fm->outputs[0], DataType::kF32));
    touched.push_back(fm_val);
    done_.insert(fm);
    name += "+" + fm->name;
  }
  if (fo) {
    fo_table = AddConstAs(*fo->input(0)->constant, p_->act);
    ASSIGN_OR_RETURN(fo_val, Dest(fo_sum->outputs[0], DataType::kF32));
    touched.push_back(fo_val);
    done_.insert(fo);
    done_.insert(fo_sum);
    name += "+" + fo->name + "+" + fo_sum->name;
  }
  Step* s = AddStep(name, fm || fo ? "embedding_fused" : "embedding", touched);
  s->launch = [a, ids_val, out_val, fm_val, fo_val, table_off, offsets_off, sizes_off, fo_table](
                  const Plan& p, const LaunchCtx& c, Step&) {
    cuda::EmbeddingArgs e = a;
    e.rows = c.bucket;
    e.ids = p.ptr(c, p.vals[ids_val]);
    e.table = p.cptr(c, table_off);
    e.offsets = offsets_off >= 0 ? static_cast<const int64_t*>(p.cptr(c, offsets_off)) : nullptr;
    e.sizes = sizes_off >= 0 ? static_cast<const int64_t*>(p.cptr(c, sizes_off)) : nullptr;
    if (out_val >= 0) e.out = p.view(c, out_val);
    if (fm_val >= 0) e.fm = reinterpret_cast<float*>(p.ptr(c, p.vals[fm_val]));
    if (fo_val >= 0) {
      e.table1 = p.cptr(c, fo_table);
      e.first = reinterpret_cast<float*>(p.ptr(c, p.vals[fo_val]));
    }
    e.error = c.error;
    return cuda::LaunchEmbedding(e, c.stream);
  };
  return Status::Ok();
}

// A chain of elementwise ops, each the only consumer of the one before, as one kernel.
Status Lowering::LowerChain(const Node& first) {
  const Value* out = first.outputs[0];
  const int64_t cols = RowCols(out);
  if (cols <= 0) return Unimplemented("layer '" + first.name + "': no static [batch, ...] output shape");
  cuda::EwProgram prog;
  std::vector<std::vector<float>> vecs;  // per-column operands, uploaded below
  std::vector<int> vec_instr;
  std::vector<int> extras;               // vals
  std::vector<int> touched;
  std::string name;
  const Node* n = &first;
  const Value* cur = nullptr;  // the chain's running value
  int main_val = -1;
  while (n) {
    if (prog.count == cuda::EwProgram::kMaxInstrs) break;
    cuda::EwInstr ins;
    cuda::EwOp u;
    if (IsUnary(n->op, &u)) {
      if (!cur) cur = n->input(0);
      ins.op = u;
    } else if (IsBinary(n->op)) {
      // The running value is the main operand; the other is a constant or a tensor operand.
      int mi = 0;
      if (cur) {
        mi = n->input(0) == cur ? 0 : 1;
      } else if (n->input(0)->constant ||
                 (!n->input(1)->constant && RowCols(n->input(0)) != cols && RowCols(n->input(1)) == cols &&
                  n->op != OpKind::kSub)) {
        mi = 1;  // the tensor, or the operand that has the output's shape, leads
      }
      const Value* other = n->input(1 - mi);
      if (!cur) cur = n->input(mi);
      if (RowCols(cur) != cols) {
        if (n == &first) return Unimplemented("layer '" + n->name + "': broadcast of the main operand on the GPU");
        break;
      }
      const bool sub_rev = n->op == OpKind::kSub && mi == 1;
      if (other->constant) {
        const Tensor& t = *other->constant;
        const int64_t k = t.size();
        if (k == 1) {
          float c = static_cast<float>(t.GetAsDouble(0));
          switch (n->op) {
            case OpKind::kAdd: ins.op = cuda::EwOp::kAddConst; break;
            case OpKind::kSub:
              if (sub_rev) {  // c - x
                prog.instrs[prog.count++] = cuda::EwInstr{cuda::EwOp::kNeg};
                if (prog.count == cuda::EwProgram::kMaxInstrs) return Unimplemented("elementwise chain too long");
              } else {
                c = -c;
              }
              ins.op = cuda::EwOp::kAddConst;
              break;
            case OpKind::kMul: ins.op = cuda::EwOp::kMulConst; break;
            case OpKind::kDiv:
              if (mi != 0) return Unimplemented("layer '" + n->name + "': constant / tensor on the GPU");
              ins.op = cuda::EwOp::kMulConst;
              c = 1.f / c;
              break;
            case OpKind::kPow:
              if (mi != 0) return Unimplemented("layer '" + n->name + "': constant ^ tensor on the GPU");
              ins.op = cuda::EwOp::kPowConst;
              break;
            case OpKind::kPRelu: {
              ins.op = cuda::EwOp::kPReluVec;
              vecs.emplace_back(cols, c);
              vec_instr.push_back(prog.count);
              break;
            }
            default: break;
          }
          ins.c = c;
        } else if (k == cols && (t.rank() == 1 || (t.rank() == 2 && t.dim(0) == 1))) {
          std::vector<float> v(k);
          for (int64_t i = 0; i < k; ++i) v[i] = static_cast<float>(t.GetAsDouble(i));
          switch (n->op) {
            case OpKind::kAdd: ins.op = cuda::EwOp::kAddVec; break;
            case OpKind::kSub:
              if (sub_rev) return Unimplemented("layer '" + n->name + "': vector - tensor on the GPU");
              for (float& x : v) x = -x;
              ins.op = cuda::EwOp::kAddVec;
              break;
            case OpKind::kMul: ins.op = cuda::EwOp::kMulVec; break;
            case OpKind::kDiv:
              if (mi != 0) return Unimplemented("layer '" + n->name + "': vector / tensor on the GPU");
              for (float& x : v) x = 1.f / x;
              ins.op = cuda::EwOp::kMulVec;
              break;
            case OpKind::kPRelu: ins.op = cuda::EwOp::kPReluVec; break;
            default:
              return Unimplemented("layer '" + n->name + "': " + n->op_type + " with a per-column operand on the GPU");
          }
          vecs.push_back(std::move(v));
          vec_instr.push_back(prog.count);
        } else {
          return Unimplemented("layer '" + n->name + "': " + n->op_type + " operand of shape " +
                               other->shape.ToString() + " on the GPU");
        }
      } else {
        const int64_t oc = RowCols(other);
        // An operand computed later in layer order ends the chain here (the op runs later).
        if (n != &first && !val_of_.count(other)) break;
        if ((oc != cols && oc != 1) || prog.extras == cuda::EwProgram::kMaxExtra || sub_rev ||
            !(n->op == OpKind::kAdd || n->op == OpKind::kMul || n->op == OpKind::kSub)) {
          if (n == &first) {
            return Unimplemented("layer '" + n->name + "': " + n->op_type + " of " + cur->shape.ToString() +
                                 " and " + other->shape.ToString() + " on the GPU");
          }
          break;
        }
        ASSIGN_OR_RETURN(int ov, Get(other, *n));
        ins.op = n->op == OpKind::kAdd ? cuda::EwOp::kAddTensor
                 : n->op == OpKind::kMul ? cuda::EwOp::kMulTensor
                                         : cuda::EwOp::kSubTensor;
        ins.operand = prog.extras;
        prog.extra_cols[prog.extras++] = oc;
        extras.push_back(ov);
        touched.push_back(ov);
      }
    } else {
      break;
    }
    if (main_val < 0) {
      ASSIGN_OR_RETURN(main_val, Get(cur, *n));
      touched.push_back(main_val);
    }
    prog.instrs[prog.count++] = ins;
    done_.insert(n);
    name += (name.empty() ? "" : "+") + n->name;
    out = n->outputs[0];
    cur = out;
    // Extend while the output feeds exactly one more elementwise op of the same shape.
    const Node* next = OnlyConsumer(out);
    cuda::EwOp dummy;
    if (next && RowCols(next->outputs[0]) == cols && (IsUnary(next->op, &dummy) || IsBinary(next->op)) &&
        !hint_.count(out)) {
      n = next;
    } else {
      n = nullptr;
    }
  }
  ASSIGN_OR_RETURN(int out_val, Dest(out, MatType(cols)));
  touched.push_back(out_val);
  std::vector<int64_t> vec_offs;
  for (auto& v : vecs) vec_offs.push_back(AddConst(v.data(), v.size() * 4));
  Step* s = AddStep(name, "elementwise", touched);
  s->launch = [prog, vec_instr, vec_offs, extras, main_val, out_val, cols](const Plan& p, const LaunchCtx& c,
                                                                          Step&) {
    cuda::EwProgram q = prog;
    for (size_t i = 0; i < vec_instr.size(); ++i) {
      q.instrs[vec_instr[i]].vec = static_cast<const float*>(p.cptr(c, vec_offs[i]));
    }
    for (size_t i = 0; i < extras.size(); ++i) q.extra[i] = p.view(c, extras[i]);
    return cuda::LaunchElementwise(q, p.view(c, main_val), p.view(c, out_val), c.bucket, cols, c.stream);
  };
  return Status::Ok();
}

// One Linear, or a chain of Linears (each the only consumer of the one before) as an MLP step
// that runs either the fused small-batch kernel or a chain of cuBLASLt GEMMs, chosen per bucket.
Status Lowering::LowerLinear(const Node& first) {
  std::vector<const Node*> chain = {&first};
  for (;;) {
    const Node* next = OnlyConsumer(chain.back()->outputs[0]);
    if (!next || next->op != OpKind::kLinear || next->input(0) != chain.back()->outputs[0] ||
        chain.back()->GetInt("activation", 0) == 2 || hint_.count(chain.back()->outputs[0]) ||
        static_cast<int>(chain.size()) == cuda::MlpArgs::kMaxLayers) {
      break;
    }
    chain.push_back(next);
  }
  ASSIGN_OR_RETURN(int in_val, Get(first.input(0), first));
  ASSIGN_OR_RETURN(in_val, AsType(in_val, p_->act, first.name));
  if (RowCols(first.input(0)) <= 0 || first.input(0)->shape.rank() != 2) {
    return Unimplemented("layer '" + first.name + "': Linear on the GPU needs a [batch, K] input");
  }
  Step* s = AddStep("", "gemm", {in_val});
  std::string name;
  bool fusable = chain.size() >= 2;
  cuda::MlpArgs mlp;
  mlp.w_type = p_->act;
  std::vector<int64_t> w_offs, b_offs;
  int cur = in_val;
  for (const Node* l : chain) {
    const Value* w = l->input(1);
    const Value* b = l->input(2);
    if (!w || !w->constant || w->constant->rank() != 2) {
      return Unimplemented("layer '" + l->name + "': Linear weight is not a constant [K, N]");
    }
    if (b && !b->constant) return Unimplemented("layer '" + l->name + "': Linear bias is not a constant");
    const int64_t K0 = w->constant->dim(0), N0 = w->constant->dim(1);
    const int act = static_cast<int>(l->GetInt("activation", 0));
    // Padding for 16-bit tensor cores: K to the input's padded width, N (inside the chain, where
    // only the next Linear reads it) to a multiple of 8 with zero weights and bias.
    const int64_t K = PaddedK(cur, K0);
    const bool inner = l != chain.back();
    const int64_t N = inner && p_->act != DataType::kF32 ? (N0 + 7) / 8 * 8 : N0;
    ASSIGN_OR_RETURN(int out_val, Dest(l->outputs[0], MatType(N0)));
    if (N != N0) {
      p_->vals[out_val].cols = N;  // the padding columns are written (zeros) by this GEMM
      padded_out_.insert(out_val);
    }
    s->bufs.push_back(p_->vals[out_val].buf);
    GemmSite site = MakeGemmSite(*w->constant, cur, out_val, K, N);
    site.skinny_epi = static_cast<cuda::SkinnyEpilogue>(act);
    w_offs.push_back(site.w);
    if (b) {
      std::vector<float> bias(N, 0.f);
      for (int64_t i = 0; i < N0; ++i) bias[i] = static_cast<float>(b->constant->GetAsDouble(i));
      site.bias = AddConst(bias.data(), bias.size() * 4);
    }
    b_offs.push_back(site.bias);
    site.desc.epilogue = b ? (act == 1 ? cuda::GemmEpilogue::kBiasRelu : cuda::GemmEpilogue::kBias)
                           : cuda::GemmEpilogue::kNone;
    if (act == 1 && !b) {
      // ReLU without bias: a zero bias keeps it in the epilogue.
      std::vector<float> z(static_cast<size_t>(N), 0.f);
      site.bias = AddConst(z.data(), N * 4);
      site.desc.epilogue = cuda::GemmEpilogue::kBiasRelu;
    }
    s->gemms.push_back(site);
    if (K > cuda::MlpArgs::kMaxWidth || N > cuda::MlpArgs::kMaxWidth) fusable = false;
    mlp.layers[mlp.count++] = cuda::MlpLayer{nullptr, nullptr, K, N, act};
    name += (name.empty() ? "" : "+") + l->name;
    done_.insert(l);
    cur = out_val;
  }
  s->name = name;
  const int out_val = cur;
  // Sigmoid activation (no cuBLASLt epilogue for it) runs after the GEMM chain.
  std::vector<uint8_t> sigmoid_after(chain.size(), 0);
  for (size_t i = 0; i < chain.size(); ++i) sigmoid_after[i] = chain[i]->GetInt("activation", 0) == 2;
  s->variants = {kCublasLt, kSkinny};
  if (fusable) s->variants.push_back(kFusedMlp);
  s->kernel = fusable ? "mlp" : "gemm";
  s->launch = [mlp, w_offs, b_offs, in_val, out_val, sigmoid_after](const Plan& p, const LaunchCtx& c,
                                                                   Step& st) {
    const int variant = st.VariantFor(c.bucket);
    if (variant == kSkinny) {
      for (const auto& g : st.gemms) RETURN_IF_ERROR(RunSkinny(p, c, g));
      return Status::Ok();
    }
    if (variant == kFusedMlp && c.bucket <= cuda::MlpArgs::kMaxRows) {
      cuda::MlpArgs m = mlp;
      m.rows = c.bucket;
      m.in = p.view(c, in_val);
      m.out = p.view(c, out_val);
      for (int i = 0; i < m.count; ++i) {
        m.layers[i].w = p.cptr(c, w_offs[i]);
        m.layers[i].bias = b_offs[i] >= 0 ? static_cast<const float*>(p.cptr(c, b_offs[i])) : nullptr;
      }
      return cuda::LaunchFusedMlp(m, c.stream);
    }
    for (size_t i = 0; i < st.gemms.size(); ++i) {
      RETURN_IF_ERROR(RunGemm(p, c, st.gemms[i], c.bucket));
      if (sigmoid_after[i]) {
        cuda::EwProgram q;
        q.instrs[q.count++] = cuda::EwInstr{cuda::EwOp::kSigmoid};
        const int v = st.gemms[i].out;
        RETURN_IF_ERROR(cuda::LaunchElementwise(q, p.view(c, v), p.view(c, v), c.bucket, p.vals[v].cols, c.stream));
      }
    }
    return Status::Ok();
  };
  return Status::Ok();
}

// DCN-v2 cross layer: t = xl W + b (GEMM with the bias epilogue), then x0 * t + xl in one kernel.
Status Lowering::LowerCross(const Node& n) {
  const Value* w = n.input(2);
  const Value* b = n.input(3);
  if (!w || !w->constant || !b || !b->constant) return Unimplemented("layer '" + n.name + "': Cross weights are not constants");
  ASSIGN_OR_RETURN(int x0, Get(n.input(0), n));
  ASSIGN_OR_RETURN(int xl, Get(n.input(1), n));
  ASSIGN_OR_RETURN(x0, AsType(x0, p_->act, n.name));
  ASSIGN_OR_RETURN(xl, AsType(xl, p_->act, n.name));
  const int64_t K = w->constant->dim(0);
  const int64_t Kp = PaddedK(xl, K);
  const int t = NewVal(Val{NewBuf(K, p_->act), 0, K, p_->act, false, {}});
  ASSIGN_OR_RETURN(int out, Dest(n.outputs[0], p_->act));
  GemmSite site = MakeGemmSite(*w->constant, xl, t, Kp, K);
  site.bias = AddConstAs(*b->constant, DataType::kF32);
  site.desc.epilogue = cuda::GemmEpilogue::kBias;
  site.skinny_epi = cuda::SkinnyEpilogue::kCross;
  site.x0 = x0;
  site.xl = xl;
  Step* s = AddStep(n.name, "cross", {x0, xl, t, out});
  s->variants = {kCublasLt, kSkinny};
  done_.insert(&n);
  // The skinny variant writes the layer's output directly (cross epilogue fused).
  GemmSite direct = site;
  direct.out = out;
  s->gemms.push_back(site);
  s->launch = [x0, xl, t, out, K, direct](const Plan& p, const LaunchCtx& c, Step& st) {
    if (st.VariantFor(c.bucket) == kSkinny) return RunSkinny(p, c, direct);
    RETURN_IF_ERROR(RunGemm(p, c, st.gemms[0], c.bucket));
    cuda::EwProgram q;
    q.instrs[q.count++] = cuda::EwInstr{cuda::EwOp::kMulTensor, 0.f, nullptr, 0};
    q.instrs[q.count++] = cuda::EwInstr{cuda::EwOp::kAddTensor, 0.f, nullptr, 1};
    q.extra[0] = p.view(c, x0);
    q.extra[1] = p.view(c, xl);
    q.extra_cols[0] = q.extra_cols[1] = K;
    q.extras = 2;
    return cuda::LaunchElementwise(q, p.view(c, t), p.view(c, out), c.bucket, K, c.stream);
  };
  return Status::Ok();
}

// Inputs not already written into the concat buffer by their producer are copied in.
Status Lowering::LowerConcat(const Node& n) {
  auto it = val_of_.find(n.outputs[0]);
  if (it == val_of_.end()) return Unimplemented("layer '" + n.name + "': only Concat on axis 1 of [batch, n] runs on the GPU");
  const Val cat = p_->vals[it->second];
  size_t si = 0;
  int64_t logical = 0;
  for (const Value* in : n.inputs) {
    const int64_t c = RowCols(in);
    const int64_t col = cat.segs.empty() ? logical : cat.segs[si][1];
    ++si;
    logical += c;
    ASSIGN_OR_RETURN(int v, Get(in, n));
    const Val& src = p_->vals[v];
    const bool in_place = src.buf == cat.buf && src.col == cat.col + col;
    if (!in_place) {
      const int dst = NewVal(Val{cat.buf, cat.col + col, c, cat.type, false, {}});
      Step* s = AddStep(n.name + ":" + in->name, "copy", {v, dst});
      s->launch = [v, dst, c](const Plan& p, const LaunchCtx& lc, Step&) {
        return cuda::LaunchCopy2D(p.view(lc, v), p.view(lc, dst), lc.bucket, c, lc.stream);
      };
    }
  }
  done_.insert(&n);
  return Status::Ok();
}

Status Lowering::LowerAlias(const Node& n) {
  ASSIGN_OR_RETURN(int v, Get(n.input(0), n));
  const int64_t cols = RowCols(n.outputs[0]);
  if (cols != p_->vals[v].cols) {
    return Unimplemented("layer '" + n.name + "': " + n.op_type + " that moves the batch dimension on the GPU");
  }
  val_of_[n.outputs[0]] = v;
  done_.insert(&n);
  return Status::Ok();
}

// Greedy first-fit of arena buffers by liveness (sizes at max rows, 256-byte aligned).
void Lowering::PlanArena() {
  auto& bufs = p_->bufs;
  for (size_t si = 0; si < p_->steps.size(); ++si) {
    for (int b : p_->steps[si]->bufs) {
      bufs[b].first = std::min(bufs[b].first, static_cast<int>(si));
      bufs[b].last = std::max(bufs[b].last, static_cast<int>(si));
    }
  }
  for (const auto& o : p_->outputs) {
    Buf& b = bufs[p_->vals[o.val].buf];
    b.is_output = true;
    b.last = static_cast<int>(p_->steps.size());
    if (b.first > b.last) b.first = 0;
  }
  for (Buf& b : bufs) {
    if (b.zero_pad && b.last >= 0) {
      b.first = 0;
      b.last = static_cast<int>(p_->steps.size());
    }
  }
  std::vector<int> order;
  for (size_t i = 0; i < bufs.size(); ++i) {
    if (bufs[i].input < 0 && bufs[i].last >= 0) order.push_back(static_cast<int>(i));
  }
  std::sort(order.begin(), order.end(), [&](int a, int b) {
    return bufs[a].bytes(p_->max_rows) > bufs[b].bytes(p_->max_rows);
  });
  std::vector<int> placed;
  int64_t total = 0;
  for (int i : order) {
    Buf& b = bufs[i];
    const int64_t size = (b.bytes(p_->max_rows) + 255) / 256 * 256;
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (int j : placed) {
      const Buf& o = bufs[j];
      if (o.first <= b.last && b.first <= o.last) busy.push_back({o.offset, o.offset + (o.bytes(p_->max_rows) + 255) / 256 * 256});
    }
    std::sort(busy.begin(), busy.end());
    int64_t off = 0;
    for (auto [s, e] : busy) {
      if (off + size <= s) break;
      off = std::max(off, e);
    }
    b.offset = off;
    total = std::max(total, off + size);
    placed.push_back(i);
  }
  p_->arena_bytes = total;
}

StatusOr<std::unique_ptr<Plan>> Lowering::Run() {
  const std::string& prec = prog_.meta.precision;
  if (prec == "fp32" || prec.empty()) {
    p_->act = DataType::kF32;
    p_->compute = cuda::GemmCompute::kF32;
  } else if (prec == "tf32") {
    p_->act = DataType::kF32;
    p_->compute = cuda::GemmCompute::kTF32;
  } else if (prec == "fp16") {
    p_->act = DataType::kF16;
    p_->compute = cuda::GemmCompute::kF16;
  } else if (prec == "bf16") {
    p_->act = DataType::kBF16;
    p_->compute = cuda::GemmCompute::kBF16;
  } else {
    return Unimplemented("the CUDA runtime does not run precision '" + prec + "'");
  }
  for (const auto& n : g_.nodes()) {
    if ((n->op == ir::OpKind::kLinear && n->input(1) && n->input(1)->dtype == DType::kInt8) ||
        (n->op == ir::OpKind::kCross && n->input(2) && n->input(2)->dtype == DType::kInt8)) {
      return Unimplemented("layer '" + n->name +
                           "': INT8 GEMM layers are not run by the CUDA runtime yet (the CPU runtime "
                           "runs them)");
    }
  }
  p_->max_rows = prog_.meta.profile.max;
  // Graph inputs: their own device buffers (filled by the H2D copy).
  for (size_t i = 0; i < g_.inputs.size(); ++i) {
    const Value* v = g_.inputs[i];
    const int64_t cols = v->shape.rank() == 1 ? 1 : RowCols(v);
    if (cols <= 0 || v->shape.rank() < 1) return Unimplemented("input '" + v->name + "' has no static [batch, ...] shape");
    const bool is_int = v->dtype == DType::kInt64;
    if (!is_int && v->dtype != DType::kFloat32) {
      return Unimplemented("input '" + v->name + "': the CUDA runtime takes float32 and int64 inputs");
    }
    Buf b;
    b.elem = is_int ? 8 : 4;
    b.ld = cols;
    b.input = static_cast<int>(i);
    p_->bufs.push_back(b);
    val_of_[v] = NewVal(Val{static_cast<int>(p_->bufs.size()) - 1, 0, cols, DataType::kF32, is_int, {}});
    p_->inputs.push_back({v->name, v->dtype, prog_.tensors[prog_.inputs[i]].dims, val_of_[v]});
  }
  PlanConcats();
  // An elementwise op whose chain would continue into an op with an operand computed later is
  // held back (with the ops that join it) until that operand exists, so the whole chain is one
  // kernel (DeepFM's logit sums: first-order + dense linear + FM + deep logit + sigmoid).
  std::map<const Node*, const Node*> pending;  // member of a held-back chain -> its head
  auto is_ew = [](const Node& n) {
    cuda::EwOp u;
    return IsUnary(n.op, &u) || IsBinary(n.op);
  };
  // Whether some op further down n's chain has an operand not computed yet.
  auto blocked = [&](const Node& n) {
    const Node* cur = &n;
    for (int steps = 0; steps < cuda::EwProgram::kMaxInstrs; ++steps) {
      const Node* next = OnlyConsumer(cur->outputs[0]);
      if (!next || !is_ew(*next) || hint_.count(cur->outputs[0])) return false;
      for (const Value* in : next->inputs) {
        if (in && in != cur->outputs[0] && !in->constant && !val_of_.count(in)) return true;
      }
      cur = next;
    }
    return false;
  };
  auto release = [&](const Node* head) -> Status {
    for (auto it = pending.begin(); it != pending.end();) {
      it = it->second == head ? pending.erase(it) : std::next(it);
    }
    return LowerChain(*head);
  };
  for (const auto& np : g_.nodes()) {
    const Node& n = *np;
    if (done_.count(&n)) continue;
    // Joins a held-back chain when it continues it; any other reader releases the chain first.
    const Node* joins = nullptr;
    for (const Value* in : n.inputs) {
      auto p = in && in->producer ? pending.find(in->producer) : pending.end();
      if (p == pending.end()) continue;
      if (!joins && is_ew(n) && OnlyConsumer(in) == &n) {
        joins = p->second;
      } else {
        RETURN_IF_ERROR(release(p->second));
      }
    }
    if (done_.count(&n)) continue;
    if (joins) {
      pending[&n] = joins;
      if (!blocked(n)) RETURN_IF_ERROR(release(joins));
      continue;
    }
    if (is_ew(n) && blocked(n)) {
      bool ready = true;
      for (const Value* in : n.inputs) ready &= !in || in->constant.has_value() || val_of_.count(in) > 0;
      if (ready) {
        pending[&n] = &n;
        continue;
      }
    }
    cuda::EwOp u;
    Status st;
    switch (n.op) {
      case OpKind::kEmbeddingLookup: st = LowerEmbedding(n); break;
      case OpKind::kLinear: st = LowerLinear(n); break;
      case OpKind::kCross: st = LowerCross(n); break;
      case OpKind::kConcat: st = LowerConcat(n); break;
      default:
        if (IsAlias(n.op)) {
          st = LowerAlias(n);
        } else if (IsUnary(n.op, &u) || IsBinary(n.op)) {
          st = LowerChain(n);
        } else {
          st = Unimplemented("layer '" + n.name + "': op " + n.op_type +
                             " has no CUDA kernel (build this model with --backend cpu)");
        }
    }
    RETURN_IF_ERROR(st);
  }
  while (!pending.empty()) RETURN_IF_ERROR(release(pending.begin()->second));
  // Graph outputs: FP32 on the device for the D2H copy.
  for (size_t i = 0; i < g_.outputs.size(); ++i) {
    const Value* v = g_.outputs[i];
    auto it = val_of_.find(v);
    if (it == val_of_.end()) return Unimplemented("output '" + v->name + "' is not computed on the GPU");
    int val = it->second;
    if (v->dtype != DType::kFloat32) return Unimplemented("output '" + v->name + "': the CUDA runtime returns float32 outputs");
    ASSIGN_OR_RETURN(val, AsType(val, DataType::kF32, v->name));
    if (p_->bufs[p_->vals[val].buf].input >= 0) return Unimplemented("output '" + v->name + "' is a graph input");
    p_->outputs.push_back({v->name, v->dtype, prog_.tensors[prog_.outputs[i]].dims, val});
  }
  PlanArena();
  return std::move(p_);
}

}  // namespace

StatusOr<std::unique_ptr<Plan>> BuildPlan(const engine::Program& program, const ir::Graph& graph) {
  Lowering l(program, graph);
  return l.Run();
}

}  // namespace clickrt::runtime::gpu
