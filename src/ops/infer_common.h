// Helpers shared by the Infer<Op> files.
#pragma once

#include <string>

#include "ops/infer.h"

namespace clickrt::ops::detail {

inline Status NodeError(const ir::Node& n, const std::string& msg) {
  return InvalidArgument("node " + n.Label() + ": " + msg);
}

inline void SetOutput(ir::Node& n, size_t i, DType dtype, ir::Shape shape) {
  if (i < n.outputs.size() && n.outputs[i]) {
    n.outputs[i]->dtype = dtype;
    n.outputs[i]->shape = std::move(shape);
  }
}

inline const Tensor* ConstInput(const ir::Node& n, size_t i) {
  ir::Value* v = n.input(i);
  return v && v->constant ? &*v->constant : nullptr;
}

Status RequireDTypes(const ir::Node& n, size_t i, std::initializer_list<DType> allowed);
Status RequireSameDTypes(const ir::Node& n);

}  // namespace clickrt::ops::detail
