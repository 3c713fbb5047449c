// eliminate_dead_code: see pass.h.
#include <unordered_set>

#include "passes/pass.h"

namespace clickrt::passes {

Status EliminateDeadCode(ir::Graph& g, int* rewrites) {
  *rewrites = 0;
  // Mark every node some graph output depends on, walking producers back from the outputs.
  std::unordered_set<const ir::Node*> live;
  std::vector<const ir::Node*> work;
  for (const ir::Value* out : g.outputs) {
    if (out && out->producer && live.insert(out->producer).second) work.push_back(out->producer);
  }
  while (!work.empty()) {
    const ir::Node* n = work.back();
    work.pop_back();
    for (const ir::Value* in : n->inputs) {
      if (in && in->producer && live.insert(in->producer).second) work.push_back(in->producer);
    }
  }
  std::vector<ir::Node*> dead;
  for (const auto& n : g.nodes()) {
    if (!live.count(n.get())) dead.push_back(n.get());
  }
  for (ir::Node* n : dead) g.RemoveNode(n);
  *rewrites = static_cast<int>(dead.size()) + g.RemoveUnusedValues();
  return Status::Ok();
}

}  // namespace clickrt::passes
