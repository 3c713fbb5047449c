// The clickrt graph IR: Values (tensors, with dtype and a possibly symbolic shape), Nodes (one op
// each, in topological order) and the Graph that owns both.
//
// Values may carry a constant (initializers, folded results). A node whose op clickrt does not know
// is kept with OpKind::kUnsupported so tools can report it; the verifier and executors reject it.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "base/tensor.h"

namespace clickrt::ir {

enum class OpKind : int {
#define CLICKRT_OP(name, ...) k##name,
#include "ir/op_list.inc"
#undef CLICKRT_OP
  kUnsupported,
};

// The op_type of a supported op ("Gather"), or "<unsupported>".
const char* OpKindName(OpKind op);
// Its domain: "" for ai.onnx, "clickrt" for fused ops.
const char* OpKindDomain(OpKind op);
// Looks up an op_type in a domain ("" = ai.onnx).
std::optional<OpKind> OpKindFromName(const std::string& op_type, const std::string& domain = "");
// Every supported op, in table order.
const std::vector<OpKind>& AllOpKinds();

// One dimension: a known size, a named symbol ("batch"), or unknown.
struct Dim {
  int64_t value = -1;  // >= 0 when known
  std::string symbol;  // non-empty for a symbolic dimension
  bool known() const { return value >= 0; }
  static Dim Known(int64_t v) { return Dim{v, {}}; }
  static Dim Symbol(std::string s) { return Dim{-1, std::move(s)}; }
  bool operator==(const Dim& o) const {
    return known() ? value == o.value : (!o.known() && !symbol.empty() && symbol == o.symbol);
  }
};

struct Shape {
  bool rank_known = false;
  std::vector<Dim> dims;
  static Shape Unknown() { return Shape{}; }
  static Shape FromDims(const Dims& d);
  int rank() const { return static_cast<int>(dims.size()); }
  bool fully_known() const;
  Dims ToDims() const;  // only when fully_known()
  std::string ToString() const;  // "[batch,13]", "?" if rank unknown
};

class Node;

class Value {
 public:
  std::string name;
  DType dtype = DType::kUndefined;
  Shape shape;
  std::optional<Tensor> constant;  // initializer or folded constant
  Node* producer = nullptr;
  std::vector<Node*> consumers;
  bool is_graph_input = false;
  bool is_graph_output = false;
};

using Attribute = std::variant<int64_t, float, std::string, std::vector<int64_t>,
                               std::vector<float>, std::vector<std::string>, Tensor>;

class Node {
 public:
  OpKind op = OpKind::kUnsupported;
  std::string op_type;  // as written in the model (kept for unsupported ops)
  std::string domain;   // "" = ai.onnx
  std::string name;
  int opset = 0;  // the model's opset for this node's domain
  std::vector<Value*> inputs;   // nullptr for an omitted optional input
  std::vector<Value*> outputs;  // nullptr for an omitted optional output
  std::map<std::string, Attribute> attrs;

  bool HasAttr(const std::string& key) const { return attrs.count(key) > 0; }
  int64_t GetInt(const std::string& key, int64_t def) const;
  float GetFloat(const std::string& key, float def) const;
  std::string GetString(const std::string& key, const std::string& def) const;
  std::vector<int64_t> GetInts(const std::string& key) const;
  const Tensor* GetTensor(const std::string& key) const;
  // Input i if present (non-null), else nullptr; safe for i past the end.
  Value* input(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
  // "Gather 'emb_gather'" for messages.
  std::string Label() const;
};

class Graph {
 public:
  std::string name;
  std::map<std::string, int> opsets;  // domain -> version
  std::vector<Value*> inputs;         // real inputs only (not initializers)
  std::vector<Value*> outputs;

  // Creates a value; names must be unique (empty names get a generated one).
  Value* AddValue(const std::string& name);
  Value* FindValue(const std::string& name) const;
  Node* AddNode(std::unique_ptr<Node> node);  // appended; wires producer / consumers
  const std::vector<std::unique_ptr<Node>>& nodes() const { return nodes_; }
  const std::vector<std::unique_ptr<Value>>& values() const { return values_; }
  // Bytes held by constants (initializers).
  int64_t ConstantBytes() const;

  // --- Mutation, for the compiler's passes (src/passes/). Values are never freed while a node
  // refers to them, so a pass may hold Value pointers across these calls.

  // Puts `node` at `old`'s place in the node order and removes `old`. A fused node usually takes
  // over `old`'s outputs (node->outputs = old->outputs), so their consumers need no rewiring.
  // Every input of `node` must be available at that place (true for the inputs of any subgraph
  // that ends at `old`). Returns the new node, or nullptr (and changes nothing) if `old` is not
  // in this graph.
  Node* ReplaceNode(Node* old, std::unique_ptr<Node> node);
  // Removes a node: drops it from its inputs' consumer lists and clears its outputs' producer;
  // the output Values stay (with any constant they hold).
  void RemoveNode(Node* node);
  // Frees Values nothing produces or consumes that are not graph inputs or outputs (unused
  // constants, outputs of removed nodes). Returns how many.
  int RemoveUnusedValues();

 private:
  std::vector<std::unique_ptr<Value>> values_;
  std::map<std::string, Value*> by_name_;
  std::vector<std::unique_ptr<Node>> nodes_;
};

// Checks structure: every input produced earlier or a graph input / constant, unique names,
// input counts within the op table, no unsupported ops (when `allow_unsupported` is false).
Status Verify(const Graph& g, bool allow_unsupported = false);

// Text dump: one line per node with dtypes and shapes.
std::string Dump(const Graph& g);

}  // namespace clickrt::ir
