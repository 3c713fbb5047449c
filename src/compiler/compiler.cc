#include "compiler/compiler.h"

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <fstream>
#include <map>
#include <sstream>

#include "compiler/memory_plan.h"
#include "engine/sha256.h"
#include "import/onnx/onnx_importer.h"
#include "ir/attribute_json.h"
#include "kernels/cpu/fast/fast_kernels.h"
#include "passes/pipeline.h"

namespace clickrt::compiler {
namespace {

constexpr int64_t kAlign = 64;

std::string UtcNow() {
  std::time_t t;
  if (const char* epoch = std::getenv("SOURCE_DATE_EPOCH")) {
    t = static_cast<std::time_t>(std::strtoll(epoch, nullptr, 10));
  } else {
    t = std::time(nullptr);
  }
  char buf[32];
  std::tm tm{};
  gmtime_r(&t, &tm);
  std::strftime(buf, sizeof buf, "%Y-%m-%dT%H:%M:%SZ", &tm);
  return buf;
}

// The kernel the CPU backend will run for a node: a fast kernel for the fused ops it has, else
// the reference kernel (STYLE #3: what a backend cannot run falls back to the reference).
std::string ChooseCpuKernel(const ir::Node& n, const std::string& isa) {
  bool fp32 = !n.outputs.empty() && n.outputs[0] && n.outputs[0]->dtype == DType::kFloat32;
  auto const_input = [&](size_t i) { return n.input(i) && n.input(i)->constant.has_value(); };
  switch (n.op) {
    case ir::OpKind::kLinear:
      if (fp32 && const_input(1) && (!n.input(2) || const_input(2)) && (!n.input(3) || const_input(3))) {
        return isa + (n.input(1)->dtype == DType::kInt8 ? "_qlinear" : "_linear");
      }
      break;
    case ir::OpKind::kCross:
      if (fp32 && const_input(2) && const_input(3) && (!n.input(4) || const_input(4))) {
        return isa + (n.input(2)->dtype == DType::kInt8 ? "_qcross" : "_cross");
      }
      break;
    case ir::OpKind::kEmbeddingLookup:
      if (fp32 && const_input(0)) {
        const int64_t f = n.GetInt("row_format", 0);
        return isa + (f == 1 ? "_embedding_int8" : f == 2 ? "_embedding_int4" : "_embedding");
      }
      break;
    case ir::OpKind::kFMInteraction:
      if (fp32) return isa + "_fm";
      break;
    default:
      break;
  }
  return "ref";
}

}  // namespace

StatusOr<BuildResult> Lower(const ir::Graph& g, const BuildOptions& o) {
  BuildResult r;
  engine::Program& p = r.program;
  std::string batch_symbol;
  if (!g.inputs.empty() && g.inputs[0]->shape.rank_known && g.inputs[0]->shape.rank() > 0 &&
      !g.inputs[0]->shape.dims[0].known()) {
    batch_symbol = g.inputs[0]->shape.dims[0].symbol;
  }
  std::map<const ir::Value*, int32_t> index;
  std::vector<uint8_t>& weights = r.weights;
  // Bytes per tensor at the max batch, for activations with a fully known (up to batch) shape.
  std::vector<int64_t> max_bytes;
  auto add_tensor = [&](const ir::Value* v) -> StatusOr<int32_t> {
    auto it = index.find(v);
    if (it != index.end()) return it->second;
    engine::TensorDesc d;
    d.name = v->name;
    d.dtype = v->dtype;
    int64_t bytes = -1;
    if (v->constant) {
      const Tensor& t = *v->constant;
      d.dims = t.dims();
      size_t off = (weights.size() + kAlign - 1) / kAlign * kAlign;
      weights.resize(off + t.nbytes());
      if (t.nbytes()) std::memcpy(weights.data() + off, t.raw(), t.nbytes());
      d.weight_offset = static_cast<int64_t>(off);
      d.weight_bytes = static_cast<int64_t>(t.nbytes());
    } else if (v->shape.rank_known) {
      // -1 marks the batch, -2 any other unknown dim (such a tensor is sized at run time).
      bytes = static_cast<int64_t>(DTypeSize(v->dtype));
      for (const ir::Dim& dim : v->shape.dims) {
        const bool batch = !dim.known() && !batch_symbol.empty() && dim.symbol == batch_symbol;
        d.dims.push_back(dim.known() ? dim.value : batch ? -1 : -2);
        if (bytes >= 0) bytes = dim.known() ? bytes * dim.value : batch ? bytes * o.profile.max : -1;
      }
    }
    int32_t id = static_cast<int32_t>(p.tensors.size());
    p.tensors.push_back(std::move(d));
    max_bytes.push_back(bytes);
    index[v] = id;
    return id;
  };
  for (const ir::Value* v : g.inputs) {
    ASSIGN_OR_RETURN(int32_t id, add_tensor(v));
    p.inputs.push_back(id);
  }
  std::string isa = o.cpu_isa.empty() ? kernels::fast::Cpu().isa : o.cpu_isa;
  for (const auto& n : g.nodes()) {
    if (n->op == ir::OpKind::kUnsupported) {
      return Unimplemented("node " + n->Label() + " is not supported");
    }
    engine::Layer l;
    l.name = n->name;
    l.op = ir::OpKindName(n->op);
    l.domain = ir::OpKindDomain(n->op);
    for (const ir::Value* v : n->inputs) {
      if (v == nullptr) {
        l.inputs.push_back(-1);
        continue;
      }
      ASSIGN_OR_RETURN(int32_t id, add_tensor(v));
      l.inputs.push_back(id);
    }
    for (const ir::Value* v : n->outputs) {
      if (v == nullptr) {
        l.outputs.push_back(-1);
        continue;
      }
      ASSIGN_OR_RETURN(int32_t id, add_tensor(v));
      l.outputs.push_back(id);
    }
    l.attrs = ir::AttributesToJson(n->attrs);
    l.attrs["_opset"] = n->opset;
    // cuda: the runtime lowers layers to GPU steps at load; the tuner records each step's kernel.
    l.kernel = o.backend == "cpu" ? ChooseCpuKernel(*n, isa) : "cuda";
    p.layers.push_back(std::move(l));
  }
  for (const ir::Value* v : g.outputs) {
    ASSIGN_OR_RETURN(int32_t id, add_tensor(v));
    p.outputs.push_back(id);
  }

  // Memory plan: activations written by a layer and of known size at the max batch.
  std::vector<Lifetime> lifetimes;
  std::vector<int32_t> planned;
  std::vector<int32_t> first(p.tensors.size(), -1), last(p.tensors.size(), -1);
  for (int32_t li = 0; li < static_cast<int32_t>(p.layers.size()); ++li) {
    for (int32_t t : p.layers[li].outputs) {
      if (t >= 0 && first[t] < 0) first[t] = li;
    }
    for (int32_t t : p.layers[li].inputs) {
      if (t >= 0) last[t] = li;
    }
  }
  const int32_t end = static_cast<int32_t>(p.layers.size());
  for (int32_t t : p.outputs) last[t] = end;  // outputs live until they are returned
  for (int32_t t = 0; t < static_cast<int32_t>(p.tensors.size()); ++t) {
    if (first[t] < 0 || max_bytes[t] < 0 || p.tensors[t].is_constant()) continue;
    lifetimes.push_back({max_bytes[t], first[t], std::max(first[t], last[t])});
    planned.push_back(t);
  }
  ASSIGN_OR_RETURN(MemoryPlan plan, PlanMemory(lifetimes));
  for (size_t i = 0; i < planned.size(); ++i) p.tensors[planned[i]].arena_offset = plan.offsets[i];

  engine::Metadata& m = p.meta;
  m.clickrt_version = CLICKRT_VERSION;
  m.git_revision = CLICKRT_GIT_REV;
  m.build_time_utc = o.build_time_utc.empty() ? UtcNow() : o.build_time_utc;
  m.precision = o.precision;
  m.profile = o.profile;
  if (o.backend == "cuda" && m.profile.buckets.empty()) {
    for (int64_t b = 1; b <= m.profile.max; b *= 8) {
      if (b >= m.profile.min) m.profile.buckets.push_back(b);
    }
    if (m.profile.buckets.empty() || m.profile.buckets.front() != m.profile.min) {
      m.profile.buckets.insert(m.profile.buckets.begin(), m.profile.min);
    }
    if (m.profile.buckets.back() != m.profile.max) m.profile.buckets.push_back(m.profile.max);
  }
  m.backend = o.backend;
  m.cpu_isa = o.backend == "cpu" ? isa : "";
  if (o.backend == "cuda") {
    m.gpu_name = o.gpu.name;
    m.sm_arch = o.gpu.sm_arch;
    m.cuda_version = o.gpu.cuda_version;
    m.cublaslt_version = o.gpu.cublaslt_version;
  }
  m.arena_bytes = plan.arena_bytes;
  m.arena_bytes_no_reuse = plan.no_reuse_bytes;
  m.extra["batch_symbol"] = batch_symbol;
  m.extra["layers"] = p.layers.size();
  return r;
}

StatusOr<BuildResult> Build(const std::string& onnx_path, const BuildOptions& o) {
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  if (o.backend != "cpu" && o.backend != "cuda") {
    return InvalidArgument("unknown backend '" + o.backend + "' (expected cpu or cuda)");
  }
  if (o.backend == "cpu" && o.precision != "fp32" && o.precision != "int8") {
    return Unimplemented("precision '" + o.precision + "' is not built for the cpu backend; use fp32 or int8");
  }
  if (o.backend == "cuda" && o.precision != "fp32" && o.precision != "tf32" && o.precision != "fp16" &&
      o.precision != "bf16" && o.precision != "int8" && o.precision != "fp8") {
    return Unimplemented("precision '" + o.precision + "' is not built for the cuda backend; use fp32, tf32, "
                         "fp16, bf16, int8 or fp8");
  }
  if ((o.precision == "int8" || o.precision == "fp8") && !o.after_passes) {
    return InvalidArgument("precision " + o.precision + " needs a calibration (--calib)");
  }
  if (o.backend == "cuda" && o.gpu.sm_arch.empty()) {
    return FailedPrecondition("a cuda build needs the target GPU (none given: is a GPU visible?)");
  }
  const engine::Profile& pr = o.profile;
  if (pr.min < 1 || pr.min > pr.opt || pr.opt > pr.max) {
    return InvalidArgument("batch profile must satisfy 1 <= min <= opt <= max, got " +
                           std::to_string(pr.min) + ":" + std::to_string(pr.opt) + ":" +
                           std::to_string(pr.max));
  }
  for (size_t i = 0; i < pr.buckets.size(); ++i) {
    if (pr.buckets[i] < pr.min || pr.buckets[i] > pr.max || (i > 0 && pr.buckets[i] <= pr.buckets[i - 1])) {
      return InvalidArgument("batch buckets must increase strictly within [min, max]");
    }
  }
  const auto t0 = std::chrono::steady_clock::now();
  auto ms = [&] {
    return std::to_string(static_cast<int>(std::chrono::duration<double, std::milli>(
                                               std::chrono::steady_clock::now() - t0)
                                               .count())) + " ms";
  };
  std::ifstream in(onnx_path, std::ios::binary);
  if (!in) return NotFound("model file '" + onnx_path + "' does not exist or cannot be read");
  std::stringstream ss;
  ss << in.rdbuf();
  const std::string bytes = ss.str();
  say("[1/4] import " + onnx_path + " (" + std::to_string(bytes.size()) + " bytes)");
  ASSIGN_OR_RETURN(auto graph, onnx_import::ImportModel(onnx_path));
  const size_t nodes_before = graph->nodes().size();
  std::string before = ir::Dump(*graph);
  std::vector<passes::PassReport> reports;
  if (o.optimize) {
    passes::PipelineOptions po;
    po.batch = {o.profile.min, o.profile.max};  // a fixed batch (min == max) is built into shapes
    RETURN_IF_ERROR(passes::RunPipeline(*graph, po, &reports));
  }
  std::string pass_line;
  for (const auto& rep : reports) {
    if (rep.rewrites) pass_line += " " + rep.name + "=" + std::to_string(rep.rewrites);
  }
  say("[2/4] passes: " + std::to_string(nodes_before) + " -> " +
      std::to_string(graph->nodes().size()) + " nodes;" + (pass_line.empty() ? " no rewrites" : pass_line) +
      " (" + ms() + ")");
  nlohmann::json assignment;
  if (o.after_passes) {
    auto a = o.after_passes(*graph);
    if (!a.ok()) return a.status().WithContext("precision assignment");
    assignment = std::move(a).value();
  }
  ASSIGN_OR_RETURN(BuildResult r, Lower(*graph, o));
  if (!assignment.is_null()) r.program.meta.extra["precision_assignment"] = std::move(assignment);
  // A model that carried its own quantization (QDQ, fused by fuse_qdq) is an INT8 engine too.
  for (const auto& n : graph->nodes()) {
    const ir::Value* w = n->op == ir::OpKind::kLinear ? n->input(1)
                         : n->op == ir::OpKind::kCross ? n->input(2) : nullptr;
    if (w && w->dtype == DType::kInt8 && r.program.meta.precision != "int8") {
      r.program.meta.extra["requested_precision"] = r.program.meta.precision;
      r.program.meta.precision = "int8";
    }
  }
  r.program.meta.calibration_sha256 = o.calibration_sha256;
  r.graph_before = std::move(before);
  r.graph_after = ir::Dump(*graph);
  r.program.meta.model_sha256 = engine::Sha256Hex(
      std::span<const uint8_t>(reinterpret_cast<const uint8_t*>(bytes.data()), bytes.size()));
  nlohmann::json pj = nlohmann::json::array();
  for (const auto& rep : reports) pj.push_back({{"pass", rep.name}, {"rewrites", rep.rewrites}});
  r.program.meta.extra["passes"] = pj;
  r.program.meta.extra["nodes_before"] = nodes_before;
  int fast = 0;
  for (const auto& l : r.program.layers) fast += l.kernel != "ref";
  if (o.backend == "cpu") {
    say("[3/4] kernels: " + std::to_string(fast) + " of " + std::to_string(r.program.layers.size()) +
        " layers on fast " + r.program.meta.cpu_isa + " kernels, the rest on reference kernels");
  } else {
    say("[3/4] kernels: " + std::to_string(r.program.layers.size()) + " layers for " + o.gpu.name + " (" +
        o.gpu.sm_arch + "), " + o.precision + "; chosen by the autotuner next");
  }
  say("[4/4] memory plan: arena " + std::to_string(r.program.meta.arena_bytes) + " bytes at batch " +
      std::to_string(pr.max) + " (no reuse: " + std::to_string(r.program.meta.arena_bytes_no_reuse) +
      ") (" + ms() + ")");
  return r;
}

}  // namespace clickrt::compiler
