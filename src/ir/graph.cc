#include "ir/graph.h"

#include <set>
#include <sstream>

namespace clickrt::ir {

namespace {
struct OpInfo {
  OpKind op;
  const char* name;
  const char* domain;
};
const OpInfo kOps[] = {
#define CLICKRT_OP(n, domain, ...) {OpKind::k##n, #n, domain},
#include "ir/op_list.inc"
#undef CLICKRT_OP
};
}  // namespace

const char* OpKindName(OpKind op) {
  for (const auto& o : kOps) {
    if (o.op == op) return o.name;
  }
  return "<unsupported>";
}

const char* OpKindDomain(OpKind op) {
  for (const auto& o : kOps) {
    if (o.op == op) return o.domain;
  }
  return "";
}

std::optional<OpKind> OpKindFromName(const std::string& op_type, const std::string& domain) {
  for (const auto& o : kOps) {
    if (op_type == o.name && domain == o.domain) return o.op;
  }
  return std::nullopt;
}

const std::vector<OpKind>& AllOpKinds() {
  static const std::vector<OpKind> all = [] {
    std::vector<OpKind> v;
    for (const auto& o : kOps) v.push_back(o.op);
    return v;
  }();
  return all;
}

Shape Shape::FromDims(const Dims& d) {
  Shape s;
  s.rank_known = true;
  for (int64_t x : d) s.dims.push_back(Dim::Known(x));
  return s;
}

bool Shape::fully_known() const {
  if (!rank_known) return false;
  for (const Dim& d : dims) {
    if (!d.known()) return false;
  }
  return true;
}

Dims Shape::ToDims() const {
  Dims out;
  for (const Dim& d : dims) out.push_back(d.value);
  return out;
}

std::string Shape::ToString() const {
  if (!rank_known) return "?";
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    if (dims[i].known()) {
      s += std::to_string(dims[i].value);
    } else {
      s += dims[i].symbol.empty() ? "?" : dims[i].symbol;
    }
  }
  return s + "]";
}

int64_t Node::GetInt(const std::string& key, int64_t def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* v = std::get_if<int64_t>(&it->second)) return *v;
  if (auto* f = std::get_if<float>(&it->second)) return static_cast<int64_t>(*f);
  return def;
}

float Node::GetFloat(const std::string& key, float def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* v = std::get_if<float>(&it->second)) return *v;
  if (auto* i = std::get_if<int64_t>(&it->second)) return static_cast<float>(*i);
  return def;
}

std::string Node::GetString(const std::string& key, const std::string& def) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return def;
  if (auto* v = std::get_if<std::string>(&it->second)) return *v;
  return def;
}

std::vector<int64_t> Node::GetInts(const std::string& key) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return {};
  if (auto* v = std::get_if<std::vector<int64_t>>(&it->second)) return *v;
  if (auto* i = std::get_if<int64_t>(&it->second)) return {*i};
  return {};
}

const Tensor* Node::GetTensor(const std::string& key) const {
  auto it = attrs.find(key);
  if (it == attrs.end()) return nullptr;
  return std::get_if<Tensor>(&it->second);
}

std::string Node::Label() const {
  return (op == OpKind::kUnsupported ? op_type : std::string(OpKindName(op))) + " '" + name + "'";
}

Value* Graph::AddValue(const std::string& name) {
  auto v = std::make_unique<Value>();
  v->name = name.empty() ? "_v" + std::to_string(values_.size()) : name;
  while (by_name_.count(v->name)) v->name += "_";
  Value* raw = v.get();
  by_name_[raw->name] = raw;
  values_.push_back(std::move(v));
  return raw;
}

Value* Graph::FindValue(const std::string& name) const {
  auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : it->second;
}

Node* Graph::AddNode(std::unique_ptr<Node> node) {
  Node* raw = node.get();
  for (Value* in : raw->inputs) {
    if (in) in->consumers.push_back(raw);
  }
  for (Value* out : raw->outputs) {
    if (out) out->producer = raw;
  }
  nodes_.push_back(std::move(node));
  return raw;
}

namespace {
// Drops `node` from the consumer lists of its inputs and from the producer of its outputs.
void Unhook(Node* node) {
  for (Value* in : node->inputs) {
    if (in) std::erase(in->consumers, node);
  }
  for (Value* out : node->outputs) {
    if (out && out->producer == node) out->producer = nullptr;
  }
}

size_t IndexOf(const std::vector<std::unique_ptr<Node>>& nodes, const Node* node) {
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (nodes[i].get() == node) return i;
  }
  return nodes.size();
}
}  // namespace

Node* Graph::ReplaceNode(Node* old, std::unique_ptr<Node> node) {
  size_t i = IndexOf(nodes_, old);
  if (i == nodes_.size()) return nullptr;
  Unhook(old);
  Node* raw = node.get();
  nodes_[i] = std::move(node);
  for (Value* in : raw->inputs) {
    if (in) in->consumers.push_back(raw);
  }
  for (Value* out : raw->outputs) {
    if (out) out->producer = raw;
  }
  return raw;
}

void Graph::RemoveNode(Node* node) {
  size_t i = IndexOf(nodes_, node);
  if (i == nodes_.size()) return;
  Unhook(node);
  nodes_.erase(nodes_.begin() + static_cast<std::ptrdiff_t>(i));
}

int Graph::RemoveUnusedValues() {
  int removed = 0;
  std::erase_if(values_, [&](const std::unique_ptr<Value>& v) {
    if (v->producer || !v->consumers.empty() || v->is_graph_input || v->is_graph_output) {
      return false;
    }
    by_name_.erase(v->name);
    ++removed;
    return true;
  });
  return removed;
}

int64_t Graph::ConstantBytes() const {
  int64_t bytes = 0;
  for (const auto& v : values_) {
    if (v->constant) bytes += static_cast<int64_t>(v->constant->nbytes());
  }
  return bytes;
}

namespace {
struct Arity {
  OpKind op;
  int min_in, max_in, min_out, max_out;
};
const Arity kArity[] = {
#define CLICKRT_OP(n, domain, a, b, c, d) {OpKind::k##n, a, b, c, d},
#include "ir/op_list.inc"
#undef CLICKRT_OP
};
}  // namespace

Status Verify(const Graph& g, bool allow_unsupported) {
  std::set<const Value*> available;
  for (const auto& v : g.values()) {
    if (v->is_graph_input || v->constant) available.insert(v.get());
  }
  for (const auto& n : g.nodes()) {
    if (n->op == OpKind::kUnsupported) {
      if (allow_unsupported) {
        for (Value* out : n->outputs) available.insert(out);
        continue;
      }
      std::string dom = n->domain.empty() ? "" : " (domain '" + n->domain + "')";
      return Unimplemented("node '" + n->name + "': op '" + n->op_type + "'" + dom +
                           " is not supported by clickrt");
    }
    const Arity& a = kArity[static_cast<int>(n->op)];
    int nin = static_cast<int>(n->inputs.size());
    int nout = static_cast<int>(n->outputs.size());
    if (nin < a.min_in || (a.max_in >= 0 && nin > a.max_in)) {
      return InvalidArgument("node " + n->Label() + " has " + std::to_string(nin) +
                             " inputs; expected " + std::to_string(a.min_in) + ".." +
                             (a.max_in < 0 ? std::string("any") : std::to_string(a.max_in)));
    }
    if (nout < a.min_out || (a.max_out >= 0 && nout > a.max_out)) {
      return InvalidArgument("node " + n->Label() + " has " + std::to_string(nout) +
                             " outputs; expected " + std::to_string(a.min_out) + ".." +
                             (a.max_out < 0 ? std::string("any") : std::to_string(a.max_out)));
    }
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      const Value* in = n->inputs[i];
      if (in && !available.count(in)) {
        return InvalidArgument("node " + n->Label() + " input " + std::to_string(i) + " '" +
                               in->name +
                               "' is not a graph input, initializer or earlier node's output "
                               "(graph not in topological order, or a dangling reference)");
      }
    }
    for (Value* out : n->outputs) {
      if (out) available.insert(out);
    }
  }
  for (const Value* out : g.outputs) {
    if (!available.count(out)) {
      return InvalidArgument("graph output '" + out->name + "' is produced by no node");
    }
  }
  return Status::Ok();
}

std::string Dump(const Graph& g) {
  std::ostringstream os;
  os << "graph " << g.name << "\n";
  for (const Value* in : g.inputs) {
    os << "  input  " << in->name << ": " << DTypeName(in->dtype) << in->shape.ToString() << "\n";
  }
  for (const auto& n : g.nodes()) {
    os << "  ";
    for (size_t i = 0; i < n->outputs.size(); ++i) {
      if (i) os << ", ";
      const Value* v = n->outputs[i];
      if (v) os << v->name << ":" << DTypeName(v->dtype) << v->shape.ToString();
    }
    os << " = " << (n->op == OpKind::kUnsupported ? n->op_type : OpKindName(n->op)) << "(";
    for (size_t i = 0; i < n->inputs.size(); ++i) {
      if (i) os << ", ";
      const Value* v = n->inputs[i];
      os << (v ? v->name : "<none>");
      if (v && v->constant) os << "{const}";
    }
    os << ")  # " << n->name << "\n";
  }
  for (const Value* out : g.outputs) {
    os << "  output " << out->name << ": " << DTypeName(out->dtype) << out->shape.ToString()
       << "\n";
  }
  return os.str();
}

}  // namespace clickrt::ir
