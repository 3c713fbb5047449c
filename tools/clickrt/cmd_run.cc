// `clickrt run`: score a model on given inputs with the reference executor.
#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>

#include "commands.h"
#include "import/onnx/onnx_importer.h"
#include "reference/executor.h"
#include "runtime/cpu_engine.h"
#include "runtime/inference_engine.h"
#include "tensor_io.h"

namespace clickrt::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string engine;
  int threads = 0;
  int device = 0;
  std::string inputs;
  std::string save_outputs;
  bool json = false;
  int64_t max_print = 64;
};

Status Run(const RunOptions& o) {
  if (o.model.empty() == o.engine.empty()) {
    return InvalidArgument("give exactly one of --model (ONNX, reference executor) or --engine");
  }
  std::unique_ptr<ir::Graph> graph;
  std::unique_ptr<reference::Executor> exec;
  std::unique_ptr<runtime::InferenceEngine> eng;
  if (!o.model.empty()) {
    ASSIGN_OR_RETURN(graph, onnx_import::ImportModel(o.model));
    ASSIGN_OR_RETURN(exec, reference::Executor::Create(graph.get()));
  } else {
    runtime::EngineLoadOptions eo;
    eo.cpu_threads = o.threads;
    eo.device = o.device;
    eo.contexts = 1;
    ASSIGN_OR_RETURN(eng, runtime::LoadInferenceEngine(o.engine, eo));
    // The engine's graph, to read inputs against (names, dtypes, shapes).
    engine::Expectations header_only;
    header_only.verify_checksum = false;
    ASSIGN_OR_RETURN(auto le, engine::LoadEngine(o.engine, header_only));
    ASSIGN_OR_RETURN(graph, runtime::RaiseProgram(*le));
  }
  const ir::Graph& g = *graph;
  ASSIGN_OR_RETURN(auto inputs, LoadInputs(o.inputs, g));
  auto t0 = std::chrono::steady_clock::now();
  reference::TensorMap outputs;
  if (exec) {
    ASSIGN_OR_RETURN(outputs, exec->Run(inputs));
  } else {
    ASSIGN_OR_RETURN(outputs, eng->Run(inputs));
  }
  double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  if (!o.save_outputs.empty()) {
    std::error_code ec;
    std::filesystem::create_directories(o.save_outputs, ec);
    if (ec) return NotFound("cannot create '" + o.save_outputs + "': " + ec.message());
    for (const auto& [name, t] : outputs) {
      RETURN_IF_ERROR(onnx_import::WriteTensorProtoFile(
          t, name, (std::filesystem::path(o.save_outputs) / (name + ".pb")).string()));
    }
  }
  if (o.json) {
    std::cout << TensorsToJson(outputs) << "\n";
    return Status::Ok();
  }
  for (const ir::Value* v : g.outputs) PrintTensor(std::cout, v->name, outputs.at(v->name), o.max_print);
  std::cerr << "ran " << g.nodes().size() << (exec ? " nodes with the reference executor" : " layers of the engine")
            << " in " << ms << " ms\n";
  return Status::Ok();
}

}  // namespace

void RegisterRun(CLI::App& app, int* exit_code) {
  auto opts = std::make_shared<RunOptions>();
  CLI::App* cmd = app.add_subcommand(
      "run", "Score inputs with an ONNX model (reference CPU executor) or a built engine; print outputs");
  cmd->add_option("--model,-m", opts->model, "ONNX model file, run by the reference executor");
  cmd->add_option("--engine,-e", opts->engine, "Engine file from clickrt build, run by its backend's runtime (cpu or cuda)");
  cmd->add_option("--threads", opts->threads, "CPU threads for a cpu --engine (0: all)");
  cmd->add_option("--device", opts->device, "GPU index for a cuda --engine");
  cmd->add_option("--inputs,-i", opts->inputs,
                  "Inputs: a folder of ONNX TensorProto files <input_name>.pb (or input_<i>.pb), "
                  "or a JSON file {\"<input_name>\": nested arrays}")
      ->required();
  cmd->add_option("--save-outputs", opts->save_outputs,
                  "Also write each output as <output_name>.pb (ONNX TensorProto) into this folder");
  cmd->add_flag("--json", opts->json, "Print outputs as one JSON object instead of text");
  cmd->add_option("--max-print", opts->max_print, "Values printed per output (text mode)")
      ->capture_default_str();
  cmd->callback([opts, exit_code] {
    Status s = Run(*opts);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

}  // namespace clickrt::cli
