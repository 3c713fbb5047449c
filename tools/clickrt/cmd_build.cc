// `clickrt build`, `clickrt inspect`: compile an ONNX model to an engine file and look inside one.
#include <chrono>
#include <fstream>
#include <iostream>
#include <memory>

#include <sstream>

#include "commands.h"
#include "gpu.h"
#include "compiler/compiler.h"
#include "engine/engine_file.h"
#include "quant_build.h"

namespace clickrt::cli {
namespace {

struct BuildCmd {
  std::string model, output, backend = "cpu", precision = "fp32", batch = "1:64:4096", isa;
  std::string buckets, timing_cache;
  int device = 0;
  bool dump_graph = false, no_optimize = false, quiet = false;
  QuantFlags quant;
};

StatusOr<engine::Profile> ParseProfile(const std::string& s) {
  engine::Profile p;
  std::vector<int64_t> v;
  size_t pos = 0;
  while (pos <= s.size()) {
    size_t c = s.find(':', pos);
    std::string part = s.substr(pos, c == std::string::npos ? std::string::npos : c - pos);
    try {
      size_t used = 0;
      v.push_back(std::stoll(part, &used));
      if (used != part.size()) throw std::invalid_argument(part);
    } catch (const std::exception&) {
      return InvalidArgument("--batch expects N or MIN:OPT:MAX, got '" + s + "'");
    }
    if (c == std::string::npos) break;
    pos = c + 1;
  }
  if (v.size() == 1) {
    p.min = 1;
    p.opt = p.max = v[0];
  } else if (v.size() == 3) {
    p.min = v[0];
    p.opt = v[1];
    p.max = v[2];
  } else {
    return InvalidArgument("--batch expects N or MIN:OPT:MAX, got '" + s + "'");
  }
  return p;
}

Status Build(const BuildCmd& c) {
  compiler::BuildOptions o;
  o.backend = c.backend;
  o.precision = c.precision;
  ASSIGN_OR_RETURN(o.profile, ParseProfile(c.batch));
  o.cpu_isa = c.isa;
  o.optimize = !c.no_optimize;
  if (!c.quiet) o.progress = [](const std::string& s) { std::cerr << s << "\n"; };
  if (!c.buckets.empty()) {
    std::stringstream ss(c.buckets);
    std::string part;
    while (std::getline(ss, part, ',')) {
      try {
        o.profile.buckets.push_back(std::stoll(part));
      } catch (const std::exception&) {
        return InvalidArgument("--buckets expects comma-separated batch sizes, got '" + c.buckets + "'");
      }
    }
  }
  if (WantsQuantization(c.precision, c.quant)) {
    if (c.no_optimize) return InvalidArgument("quantization needs the pass pipeline (drop --no-optimize)");
    RETURN_IF_ERROR(PrepareQuantization(c.model, c.quant, &o));
  }
  if (c.backend == "cuda") return gpu::BuildCuda(c.model, o, c.output, c.timing_cache, c.device, c.dump_graph);
  ASSIGN_OR_RETURN(compiler::BuildResult r, compiler::Build(c.model, o));
  if (c.dump_graph) {
    std::cout << "== graph before passes\n" << r.graph_before << "\n== graph after passes\n"
              << r.graph_after;
  }
  RETURN_IF_ERROR(engine::WriteEngine(r.program, r.weights, c.output));
  std::cerr << "wrote " << c.output << ": " << r.program.layers.size() << " layers, "
            << r.weights.size() << " bytes of weights, arena " << r.program.meta.arena_bytes
            << " bytes, backend " << r.program.meta.backend << " (" << r.program.meta.cpu_isa
            << "), batch " << o.profile.min << ":" << o.profile.opt << ":" << o.profile.max << "\n";
  return Status::Ok();
}

}  // namespace

void RegisterBuild(CLI::App& app, int* exit_code) {
  auto c = std::make_shared<BuildCmd>();
  CLI::App* cmd = app.add_subcommand(
      "build", "Compile an ONNX model into an engine file: passes, kernel choice, memory plan");
  cmd->add_option("model", c->model, "ONNX model file")->required();
  cmd->add_option("-o,--output", c->output, "Engine file to write")->required();
  cmd->add_option("--backend", c->backend, "cpu or cuda (cuda autotunes on the GPU given by --device)")
      ->capture_default_str();
  cmd->add_option("--precision", c->precision,
                  "cpu: fp32, int8; cuda: fp32, tf32, fp16, bf16 (int8 needs --calib; the CUDA "
                  "runtime does not run INT8 layers yet)")->capture_default_str();
  QuantFlags& q = c->quant;
  cmd->add_option("--calib", q.calib.data, "int8: calibration data: a folder of <input>.pb tensors, a .tsv "
                  "(with --schema or schema.json beside it), or the server's requests.log");
  cmd->add_option("--calib-cache", q.calib.cache, "int8: calibration cache file; reused when it was made "
                  "for this model, calibrator, data and clickrt version, written otherwise; one made "
                  "for something else is an error (see --calib-overwrite)");
  cmd->add_flag("--calib-overwrite", q.calib.overwrite, "Replace a --calib-cache made for another key");
  cmd->add_option("--calibrator", q.calib.calibrator, "percentile (of |x|, --percentile), entropy (KL "
                  "divergence, TensorRT's method) or minmax; percentile is the default: on the zoo "
                  "models entropy clips the log-dense features and loses 0.01-0.03 AUC "
                  "(docs/QUANTIZATION.md)")
      ->capture_default_str();
  cmd->add_option("--percentile", q.calib.percentile, "percentile calibrator: the percentile of |x| kept")
      ->capture_default_str();
  cmd->add_option("--calib-rows", q.calib.max_rows, "Calibrate on at most this many rows (0 = all)")
      ->capture_default_str();
  cmd->add_option("--calib-batch", q.calib.batch, "Rows per calibration batch")->capture_default_str();
  cmd->add_option("--calib-hours", q.calib.hours, "Request-log data: only the last H hours of records "
                  "(0 = all)");
  cmd->add_option("--edge-cases", q.calib.edge_cases, "Request-log data: a file of hand-picked rows (JSONL or "
                  ".tsv) added to the calibration set");
  cmd->add_option("--schema", q.calib.schema, "schema.json for .tsv data (default: beside the .tsv)");
  cmd->add_option("--embeddings", q.embeddings, "Embedding table storage: fp32, int8 or int4 (row-wise, "
                  "a scale and bias per row; any precision)")->capture_default_str();
  cmd->add_option("--eval", q.eval, "Labelled validation data: run the accuracy gate (cpu backend): "
                  "layers that cost more AUC than --max-auc-drop stay in fp32; the build fails with "
                  "a report when the budget cannot be met");
  cmd->add_option("--max-auc-drop", q.max_auc_drop, "The gate's budget: AUC lost against the fp32 engine")
      ->capture_default_str();
  cmd->add_flag("--no-mixed", q.no_mixed, "Gate: fail instead of keeping sensitive layers in fp32");
  cmd->add_option("--buckets", c->buckets, "cuda: batch sizes with their own tuned kernels and CUDA graph, "
                  "e.g. 1,8,64,512 (default: min, max and the powers of 8 between); requests are padded "
                  "to the next bucket");
  cmd->add_option("--timing-cache", c->timing_cache, "cuda: timing cache file, read when it matches this "
                  "GPU / CUDA / cuBLASLt / clickrt and rewritten with the new timings");
  cmd->add_option("--device", c->device, "cuda: GPU index to tune on")->capture_default_str();
  cmd->add_option("--batch", c->batch, "Batch profile MIN:OPT:MAX (or one MAX); the engine "
                  "accepts batches in [MIN, MAX] and plans memory for MAX")->capture_default_str();
  cmd->add_option("--isa", c->isa, "CPU kernels to build for: generic, avx2, avx512 "
                  "(default: this machine's best); the engine loads only on CPUs that have it");
  cmd->add_flag("--dump-graph", c->dump_graph, "Print the graph before and after the passes");
  cmd->add_flag("--no-optimize", c->no_optimize, "Skip the pass pipeline (debugging)");
  cmd->add_flag("-q,--quiet", c->quiet, "No progress lines");
  cmd->callback([c, exit_code] {
    Status s = Build(*c);
    *exit_code = s.ok() ? 0 : Fail(s);
  });
}

void RegisterInspect(CLI::App& app, int* exit_code) {
  auto path = std::make_shared<std::string>();
  auto compact = std::make_shared<bool>(false);
  CLI::App* cmd = app.add_subcommand(
      "inspect", "Print an engine file's metadata, tensors and layers (with chosen kernels) as JSON");
  cmd->add_option("engine", *path, "Engine file")->required();
  cmd->add_flag("--compact", *compact, "One line of JSON");
  cmd->callback([path, compact, exit_code] {
    auto e = engine::LoadEngine(*path);
    if (!e.ok()) {
      *exit_code = Fail(e.status());
      return;
    }
    std::cout << engine::ProgramToJson((*e)->program(), !*compact) << "\n";
    *exit_code = 0;
  });
}

}  // namespace clickrt::cli
