// Helpers shared by the pass tests: load an in-memory ONNX model, count ops, random inputs,
// run a graph with the reference executor, run a pass.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <filesystem>
#include <random>

#include <gtest/gtest.h>

#include "../onnx_builder.h"
#include "import/onnx/onnx_importer.h"
#include "passes/pass.h"
#include "passes/pipeline.h"
#include "reference/executor.h"


namespace clickrt::passes {
namespace test_util {

using ir::OpKind;
using testing::OnnxBuilder;
using TensorMap = reference::TensorMap;

constexpr int kFloat = onnx::TensorProto::FLOAT;
constexpr int kInt64 = onnx::TensorProto::INT64;

// ---- helpers ----

inline std::unique_ptr<ir::Graph> Load(const OnnxBuilder& b) {
  auto g = onnx_import::ImportModelFromBytes(b.Bytes(), ".");
  EXPECT_TRUE(g.ok()) << g.status().ToString();
  return g.ok() ? std::move(g).value() : nullptr;
}

inline int Count(const ir::Graph& g, OpKind op) {
  int n = 0;
  for (const auto& node : g.nodes()) n += node->op == op;
  return n;
}

inline const ir::Node* First(const ir::Graph& g, OpKind op) {
  for (const auto& node : g.nodes()) {
    if (node->op == op) return node.get();
  }
  return nullptr;
}

inline void FloatAttr(onnx::NodeProto* n, const std::string& name, float v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::FLOAT);
  a->set_f(v);
}

inline void IntsAttr(onnx::NodeProto* n, const std::string& name, const std::vector<int64_t>& v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INTS);
  for (int64_t x : v) a->add_ints(x);
}

inline void Int64TensorAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  auto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::TENSOR);
  a->mutable_t()->set_data_type(onnx::TensorProto::INT64);
  a->mutable_t()->add_dims(1);
  a->mutable_t()->add_int64_data(v);
}

inline std::vector<float> Iota(int n, float scale) {
  std::vector<float> v(n);
  for (int i = 0; i < n; ++i) v[i] = std::sin(0.7f * i + 0.3f) * scale;
  return v;
}

// Random inputs for every graph input, symbolic dims set to `batch`: floats in [0, 8), integer
// ids in [lo, hi) (negative and past-the-vocabulary ids exercise the clamp).
inline TensorMap RandomInputs(const ir::Graph& g, int64_t batch, uint32_t seed, int64_t lo = -2,
                       int64_t hi = 1000) {
  std::mt19937 rng(seed);
  TensorMap m;
  for (const ir::Value* in : g.inputs) {
    Dims dims;
    for (const ir::Dim& d : in->shape.dims) dims.push_back(d.known() ? d.value : batch);
    Tensor t = Tensor::Zeros(in->dtype, dims).value();
    for (int64_t i = 0; i < t.size(); ++i) {
      switch (in->dtype) {
        case DType::kFloat32:
          t.data<float>()[i] = std::uniform_real_distribution<float>(0.f, 8.f)(rng);
          break;
        case DType::kInt64:
          t.data<int64_t>()[i] = std::uniform_int_distribution<int64_t>(lo, hi - 1)(rng);
          break;
        case DType::kInt32:
          t.data<int32_t>()[i] =
              static_cast<int32_t>(std::uniform_int_distribution<int64_t>(lo, hi - 1)(rng));
          break;
        default: ADD_FAILURE() << "no random generator for input " << in->name; break;
      }
    }
    m[in->name] = t;
  }
  return m;
}

inline StatusOr<TensorMap> RunGraph(const ir::Graph& g, const TensorMap& inputs) {
  ASSIGN_OR_RETURN(auto exec, reference::Executor::Create(&g));
  return exec->Run(inputs);
}

// The rewritten graph computes what the original did, within `tol`, on `inputs`.
inline void ExpectSameOutputs(const ir::Graph& before, const ir::Graph& after, const TensorMap& inputs,
                       double tol = 1e-5) {
  auto want = RunGraph(before, inputs);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  auto got = RunGraph(after, inputs);
  ASSERT_TRUE(got.ok()) << got.status().ToString() << "\n" << ir::Dump(after);
  ASSERT_EQ(want->size(), got->size());
  for (const auto& [name, w] : *want) {
    const Tensor& o = got->at(name);
    ASSERT_EQ(w.dims(), o.dims()) << name;
    ASSERT_EQ(w.dtype(), o.dtype()) << name;
    for (int64_t i = 0; i < w.size(); ++i) {
      ASSERT_NEAR(w.GetAsDouble(i), o.GetAsDouble(i), tol) << name << " element " << i;
    }
  }
}

// Runs one pass and checks the graph still verifies.
inline int RunPass(Status (*pass)(ir::Graph&, int*), ir::Graph& g) {
  int rewrites = -1;
  Status s = pass(g, &rewrites);
  EXPECT_TRUE(s.ok()) << s.ToString();
  Status v = ir::Verify(g);
  EXPECT_TRUE(v.ok()) << v.ToString() << "\n" << ir::Dump(g);
  return rewrites;
}

inline int RunAll(ir::Graph& g) {
  std::vector<PassReport> report;
  Status s = RunPipeline(g, PipelineOptions{}, &report);
  EXPECT_TRUE(s.ok()) << s.ToString();
  int total = 0;
  for (const PassReport& r : report) total += r.rewrites;
  return total;
}


}  // namespace test_util
}  // namespace clickrt::passes
