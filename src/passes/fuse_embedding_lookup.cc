// fuse_embedding_lookup: see pass.h.
//
// The match walks back from the Gather: [Add(., offsets)] then [Where(valid, ids, zeros)]. The
// mask nodes are often shared by several lookups of the same ids (the exporter merges equal
// Greater / ConstantOfShape nodes), so only the Gather is replaced; the rest goes to
// eliminate_dead_code once nothing reads it.
#include "passes/pass.h"
#include "passes/pattern.h"

namespace clickrt::passes {
namespace {

using detail::ConstOf;
using detail::ProducedBy;

// Ids of rank `rank` whose last dim is F: a value whose shape is exactly that.
bool IsIdsShape(const ir::Value* v, int rank, int64_t F) {
  return v && v->shape.rank_known && v->shape.rank() == rank && v->shape.dims.back().known() &&
         v->shape.dims.back().value == F &&
         (v->dtype == DType::kInt64 || v->dtype == DType::kInt32);
}

// A constant of at most one element per position that cannot widen `ids` by broadcasting.
bool IsNarrowConst(const Tensor* t, int rank) { return t && t->size() == 1 && t->rank() <= rank; }

// valid is ids >= 0: Greater(ids, -1), or Not(Less(ids, 0)).
bool IsNonNegative(const ir::Value* valid, const ir::Value* ids, int rank) {
  if (ir::Node* gt = ProducedBy(valid, ir::OpKind::kGreater)) {
    const Tensor* c = ConstOf(gt->input(1));
    return gt->input(0) == ids && IsNarrowConst(c, rank) && c->GetAsDouble(0) == -1;
  }
  if (ir::Node* no = ProducedBy(valid, ir::OpKind::kNot)) {
    ir::Node* lt = ProducedBy(no->input(0), ir::OpKind::kLess);
    const Tensor* c = lt ? ConstOf(lt->input(1)) : nullptr;
    return lt && lt->input(0) == ids && IsNarrowConst(c, rank) && c->GetAsDouble(0) == 0;
  }
  return false;
}

// valid is ids < sizes with constant per-field sizes; returns them as int64 [F].
std::optional<Tensor> LessThanSizes(const ir::Value* valid, const ir::Value* ids, int rank,
                                    int64_t F) {
  ir::Node* lt = ProducedBy(valid, ir::OpKind::kLess);
  if (lt == nullptr || lt->input(0) != ids) return std::nullopt;
  const Tensor* sizes = ConstOf(lt->input(1));
  if (sizes == nullptr) return std::nullopt;
  return detail::AsLastAxisVector(*sizes, F, rank, DType::kInt64);
}

// zeros is ConstantOfShape(Shape(ids)) with value 0, or a constant of zeros no wider than ids.
bool IsZerosLike(const ir::Value* zeros, const ir::Value* ids, int rank) {
  if (ir::Node* cos = ProducedBy(zeros, ir::OpKind::kConstantOfShape)) {
    ir::Node* shape = ProducedBy(cos->input(0), ir::OpKind::kShape);
    const Tensor* value = cos->GetTensor("value");
    return shape && shape->input(0) == ids && !shape->HasAttr("start") && !shape->HasAttr("end") &&
           (value == nullptr || (value->size() == 1 && value->GetAsDouble(0) == 0));
  }
  const Tensor* c = ConstOf(zeros);
  if (c == nullptr || !detail::IsAllZeros(*c)) return false;
  if (IsNarrowConst(c, rank)) return true;
  return ids->shape.fully_known() && c->dims() == ids->shape.ToDims();
}

// Where(valid, ids, zeros) with valid = And(ids >= 0, ids < sizes): returns sizes, sets *ids.
std::optional<Tensor> MatchClamp(ir::Node* where, int rank, int64_t F, ir::Value** ids) {
  ir::Value* x = where->input(1);
  if (!IsIdsShape(x, rank, F) || !IsZerosLike(where->input(2), x, rank)) return std::nullopt;
  ir::Node* conj = ProducedBy(where->input(0), ir::OpKind::kAnd);
  if (conj == nullptr) return std::nullopt;
  for (int first = 0; first < 2; ++first) {
    if (!IsNonNegative(conj->input(first), x, rank)) continue;
    if (auto sizes = LessThanSizes(conj->input(1 - first), x, rank, F)) {
      *ids = x;
      return sizes;
    }
  }
  return std::nullopt;
}

// Rewrites one Gather if it is a lookup; returns whether it did.
StatusOr<bool> TryFuse(ir::Graph& g, ir::Node* gather) {
  const Tensor* table = ConstOf(gather->input(0));
  if (table == nullptr || table->rank() != 2 || !detail::IsFloat(table->dtype())) return false;
  const int64_t axis = gather->GetInt("axis", 0);
  if (axis != 0 && axis != -2) return false;
  ir::Value* idx = gather->input(1);
  if (idx == nullptr || !idx->shape.rank_known || idx->shape.rank() < 2) return false;
  const int rank = idx->shape.rank();
  if (!idx->shape.dims.back().known()) return false;
  const int64_t F = idx->shape.dims.back().value;
  if (!IsIdsShape(idx, rank, F)) return false;

  ir::Value* ids = idx;
  std::optional<Tensor> offsets, sizes;
  if (ir::Node* add = ProducedBy(ids, ir::OpKind::kAdd)) {
    for (int c = 0; c < 2 && !offsets; ++c) {
      const Tensor* k = ConstOf(add->input(c));
      ir::Value* other = add->input(1 - c);
      if (k == nullptr || !IsIdsShape(other, rank, F)) continue;
      offsets = detail::AsLastAxisVector(*k, F, rank, DType::kInt64);
      if (offsets) ids = other;
    }
  }
  if (ir::Node* where = ProducedBy(ids, ir::OpKind::kWhere)) {
    ir::Value* raw = nullptr;
    sizes = MatchClamp(where, rank, F, &raw);
    if (sizes) ids = raw;
  }

  const std::string base = gather->name + "/EmbeddingLookup";
  ir::Value* off = offsets ? detail::AddConstant(g, base + "/offsets", *offsets) : nullptr;
  ir::Value* siz = sizes ? detail::AddConstant(g, base + "/sizes", *sizes) : nullptr;
  auto node = detail::MakeFusedNode(g, ir::OpKind::kEmbeddingLookup, base,
                                    {gather->input(0), ids, off, siz});
  ASSIGN_OR_RETURN(ir::Node* fused, detail::ReplaceWithFused(g, gather, std::move(node)));
  return fused != nullptr;
}

}  // namespace

Status FuseEmbeddingLookup(ir::Graph& g, int* rewrites) {
  *rewrites = 0;
  std::vector<ir::Node*> gathers;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::OpKind::kGather) gathers.push_back(n.get());
  }
  // Each rewrite replaces only the Gather it visits, so the other pointers stay valid.
  for (ir::Node* n : gathers) {
    ASSIGN_OR_RETURN(bool fused, TryFuse(g, n));
    if (fused) ++*rewrites;
  }
  return Status::Ok();
}

}  // namespace clickrt::passes
