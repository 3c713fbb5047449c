// Small matching and rewriting helpers shared by the passes (internal to src/passes/).
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "ir/graph.h"

namespace clickrt::passes::detail {

// v's producer if it is a node of `op`, else nullptr.
ir::Node* ProducedBy(const ir::Value* v, ir::OpKind op);
// v's constant, or nullptr.
const Tensor* ConstOf(const ir::Value* v);
// True if v is read by exactly one input slot of one node and is not a graph output: a pass may
// then fold its producer into that consumer.
bool HasSingleUse(const ir::Value* v);
// True if every use of v is by a node in `users` and v is not a graph output.
bool UsedOnlyBy(const ir::Value* v, const std::vector<const ir::Node*>& users);

// True if t has exactly one element and it equals `x`.
bool IsSingleValue(const Tensor* t, double x);
// True if every element of t is zero.
bool IsAllZeros(const Tensor& t);
bool IsFloat(DType t);

// A constant that, added to / compared with a tensor of rank `rank` whose last dim is `n`,
// broadcasts only along that last axis (shape [], [1], [n], [1,..,1,n] or [1,..,1]; rank <= rank),
// as a 1-D [n] tensor of dtype `to`; nullopt for any other shape.
std::optional<Tensor> AsLastAxisVector(const Tensor& t, int64_t n, int rank, DType to);

// The reduce axes of a ReduceSum / ReduceMean node normalized against `rank`, if given and
// constant; nullopt otherwise.
std::optional<std::vector<int64_t>> ReduceAxes(const ir::Node& n, int rank);

// Makes every node that reads `from` read `to` instead (same input slots); `from` is then unused
// (a graph output must not be bypassed this way: its name is the model's interface).
void ReplaceAllUses(ir::Value* from, ir::Value* to);

// Makes input slot i of n read v (consumer lists updated).
void SetInput(ir::Node* n, size_t i, ir::Value* v);

// Adds a constant Value named after `name`.
ir::Value* AddConstant(ir::Graph& g, const std::string& name, Tensor t);

// A node of fused op `op` (domain "clickrt", opset 1) with outputs not yet set.
std::unique_ptr<ir::Node> MakeFusedNode(ir::Graph& g, ir::OpKind op, const std::string& name,
                                        std::vector<ir::Value*> inputs);

// Infers `fused` on detached outputs and checks its dtypes and shapes agree with `root`'s
// outputs (a dim known on both sides must match). On success `fused` takes over root's outputs and
// root's place (Graph::ReplaceNode) and the new node is returned; on disagreement nothing changes
// and nullptr is returned (a non-match). Errors are from inference (the matcher let a bad input
// through).
StatusOr<ir::Node*> ReplaceWithFused(ir::Graph& g, ir::Node* root, std::unique_ptr<ir::Node> fused);

// True if both ranks are known and equal and each dim pair is the same known size or the same
// symbol ("batch"): the two tensors surely have one shape.
bool SameKnownShape(const ir::Shape& a, const ir::Shape& b);

}  // namespace clickrt::passes::detail
