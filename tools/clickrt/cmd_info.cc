// `clickrt info`: what a model holds and whether clickrt can run it. `clickrt devices`: the GPUs.
#include <iostream>
#include <map>
#include <memory>

#include "commands.h"
#include "import/onnx/onnx_importer.h"
#ifdef CLICKRT_HAVE_CUDA
#include "kernels/cuda/device.h"
#endif

namespace clickrt::cli {
namespace {

struct InfoOptions {
  std::string model;
  bool dump = false;
};

std::string Bytes(int64_t b) {
  char buf[64];
  if (b >= (1 << 20)) {
    snprintf(buf, sizeof buf, "%.2f MiB", b / 1048576.0);
  } else if (b >= 1024) {
    snprintf(buf, sizeof buf, "%.1f KiB", b / 1024.0);
  } else {
    snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(b));
  }
  return buf;
}

Status Info(const InfoOptions& o) {
  onnx_import::ImportOptions io;
  io.allow_unsupported = true;
  ASSIGN_OR_RETURN(auto g, onnx_import::ImportModel(o.model, io));
  std::cout << "model: " << o.model << "\n";
  std::cout << "graph: " << (g->name.empty() ? "(unnamed)" : g->name) << "\n";
  std::cout << "opsets:";
  for (const auto& [domain, v] : g->opsets) std::cout << " " << (domain.empty() ? "ai.onnx" : domain) << "=" << v;
  std::cout << "\ninputs:\n";
  for (const ir::Value* v : g->inputs) {
    std::cout << "  " << v->name << ": " << DTypeName(v->dtype) << v->shape.ToString() << "\n";
  }
  std::cout << "outputs:\n";
  for (const ir::Value* v : g->outputs) {
    std::cout << "  " << v->name << ": " << DTypeName(v->dtype) << v->shape.ToString() << "\n";
  }
  int64_t params = 0, tensors = 0;
  for (const auto& v : g->values()) {
    if (v->constant && !v->producer) {
      params += v->constant->size();
      ++tensors;
    }
  }
  std::cout << "parameters: " << params << " values in " << tensors << " initializers, "
            << Bytes(g->ConstantBytes()) << "\n";
  std::map<std::string, int> hist;
  std::vector<const ir::Node*> unsupported;
  for (const auto& n : g->nodes()) {
    ++hist[n->op_type];
    if (n->op == ir::OpKind::kUnsupported) unsupported.push_back(n.get());
  }
  std::cout << "ops (" << g->nodes().size() << " nodes):\n";
  for (const auto& [op, count] : hist) std::cout << "  " << op << " " << count << "\n";
  if (unsupported.empty()) {
    std::cout << "unsupported ops: none\n";
  } else {
    std::cout << "unsupported ops: " << unsupported.size() << " nodes\n";
    for (const ir::Node* n : unsupported) {
      std::cout << "  " << n->op_type << (n->domain.empty() ? "" : " (" + n->domain + ")") << " '"
                << n->name << "'\n";
    }
  }
  if (o.dump) std::cout << "\n" << ir::Dump(*g);
  return Status::Ok();
}

}  // namespace

void RegisterInfo(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<InfoOptions>();
  CLI::App* cmd = app.add_subcommand(
      "info", "Show a model's inputs, outputs, op histogram, parameter bytes and unsupported ops");
  cmd->add_option("model", opts->model, "ONNX model file")->required();
  cmd->add_flag("--dump", opts->dump, "Also print the graph, one node per line, with inferred shapes");
  cmd->callback([opts, exit_code] {
    Status s = Info(*opts);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

void RegisterDevices(CLI::App& app, int* exit_code) {
  CLI::App* cmd = app.add_subcommand("devices", "List the GPUs clickrt can use");
  cmd->callback([exit_code] {
#ifdef CLICKRT_HAVE_CUDA
    auto devs = cuda::ListDevices();
    std::cout << "CUDA runtime " << cuda::RuntimeVersion() << ", driver " << cuda::DriverVersion()
              << "\n";
    if (devs.empty()) std::cout << "no GPU visible; clickrt runs on the CPU\n";
    for (const auto& d : devs) {
      std::cout << "  [" << d.index << "] " << d.name << " sm_" << d.sm_major << d.sm_minor << " "
                << d.total_memory / (1 << 20) << " MiB, " << d.multiprocessors << " SMs\n";
    }
#else
    std::cout << "clickrt was built without CUDA; it runs on the CPU\n";
#endif
    *exit_code = 0;
  });
}

}  // namespace clickrt::cli
