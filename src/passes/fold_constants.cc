// fold_constants: see pass.h.
//
// A node is evaluated by running it alone, as a one-node graph whose inputs are its constant
// inputs, through the reference executor: folding then computes exactly what the executor would
// have, with no second copy of any op's semantics.
#include <map>

#include "ops/infer.h"
#include "passes/pass.h"
#include "reference/executor.h"

namespace clickrt::passes {
namespace {

// Ops whose result can be far larger than their inputs: folded only when inference knows the
// result's size, so a huge result is refused before it is computed.
bool MayExpand(ir::OpKind op) {
  return op == ir::OpKind::kExpand || op == ir::OpKind::kTile || op == ir::OpKind::kConstantOfShape;
}

bool AllOutputsConstant(const ir::Node& n) {
  bool any = false;
  for (const ir::Value* out : n.outputs) {
    if (out == nullptr) continue;
    if (!out->constant) return false;
    any = true;
  }
  return any;
}

bool AllInputsConstant(const ir::Node& n) {
  if (n.inputs.empty()) return false;
  for (const ir::Value* in : n.inputs) {
    if (in && !in->constant) return false;
  }
  return n.input(0) != nullptr;
}

// Bytes of the outputs if inference knows all their shapes.
std::optional<int64_t> KnownOutputBytes(const ir::Node& n) {
  int64_t bytes = 0;
  for (const ir::Value* out : n.outputs) {
    if (out == nullptr) continue;
    if (!out->shape.fully_known() || out->dtype == DType::kUndefined) return std::nullopt;
    bytes += NumElements(out->shape.ToDims()) * static_cast<int64_t>(DTypeSize(out->dtype));
  }
  return bytes;
}

// Runs `n` on its constant inputs; one tensor per output slot (undefined for an omitted output).
StatusOr<std::vector<Tensor>> Evaluate(const ir::Node& n) {
  ir::Graph one;
  one.opsets[n.domain] = n.opset;
  auto copy = std::make_unique<ir::Node>();
  copy->op = n.op;
  copy->op_type = n.op_type;
  copy->domain = n.domain;
  copy->name = n.name;
  copy->opset = n.opset;
  copy->attrs = n.attrs;
  for (const ir::Value* in : n.inputs) {
    ir::Value* v = nullptr;
    if (in) {
      v = one.AddValue(in->name);
      v->dtype = in->dtype;
      v->shape = in->shape;
      v->constant = in->constant;
    }
    copy->inputs.push_back(v);
  }
  std::vector<ir::Value*> outs;
  for (const ir::Value* out : n.outputs) {
    ir::Value* v = nullptr;
    if (out) {
      v = one.AddValue(out->name);
      v->dtype = out->dtype;
      v->shape = out->shape;
      v->is_graph_output = true;
      one.outputs.push_back(v);
    }
    copy->outputs.push_back(v);
    outs.push_back(v);
  }
  one.AddNode(std::move(copy));
  ASSIGN_OR_RETURN(auto exec, reference::Executor::Create(&one));
  ASSIGN_OR_RETURN(reference::TensorMap results, exec->Run({}));
  std::vector<Tensor> tensors;
  for (const ir::Value* v : outs) tensors.push_back(v ? results.at(v->name) : Tensor());
  return tensors;
}

}  // namespace

Status FoldConstants(ir::Graph& g, int* rewrites, int64_t max_result_bytes) {
  *rewrites = 0;
  std::vector<ir::Node*> order;
  for (const auto& n : g.nodes()) order.push_back(n.get());
  // Node order is topological, so one sweep folds whole chains: each folded node's outputs are
  // constants by the time its consumers are visited. Only the visited node is ever removed.
  for (ir::Node* n : order) {
    if (n->op == ir::OpKind::kUnsupported) continue;
    if (AllOutputsConstant(*n)) {  // inference already computed it (Constant, Shape, Identity)
      g.RemoveNode(n);
      ++*rewrites;
      continue;
    }
    if (!AllInputsConstant(*n)) continue;
    std::optional<int64_t> bytes = KnownOutputBytes(*n);
    if (bytes ? *bytes > max_result_bytes : MayExpand(n->op)) continue;
    auto results = Evaluate(*n);
    if (!results.ok()) continue;  // e.g. an index out of range: left for run time to report
    bool fits = true;
    for (const Tensor& t : results.value()) {
      if (t.defined() && static_cast<int64_t>(t.nbytes()) > max_result_bytes) fits = false;
    }
    if (!fits) continue;
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      ir::Value* out = n->outputs[i];
      if (out == nullptr) continue;
      Tensor& t = results.value()[i];
      out->dtype = t.dtype();
      out->shape = ir::Shape::FromDims(t.dims());
      out->constant = std::move(t);
    }
    g.RemoveNode(n);
    ++*rewrites;
  }
  if (*rewrites > 0) {
    // Consumers of the new constants may now infer exact shapes (a Reshape's target, say).
    RETURN_IF_ERROR(ops::InferGraph(&g));
  }
  return Status::Ok();
}

}  // namespace clickrt::passes
