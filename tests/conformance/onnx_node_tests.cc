// Runs ONNX's own backend node tests (Debian's libonnx-testdata) through the importer and the
// reference executor. A test is "claimed" when every op in it is in clickrt's op table (the list
// comes from src/ir/op_list.inc, never written twice). Claimed tests must pass; a claimed test is
// skipped only when it needs a dtype or mode clickrt rejects with UNIMPLEMENTED (e.g. strings,
// training mode), and the reason is printed. Exit code 1 on any failure.
//
// Usage: clickrt_conformance --data DIR [--filter SUBSTRING] [--verbose]
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <map>
#include <set>

#include <fstream>

#include <onnx/onnx_pb.h>

#include "import/onnx/onnx_importer.h"
#include "reference/executor.h"

namespace fs = std::filesystem;
using namespace clickrt;

namespace {

constexpr double kRtol = 1e-3;  // ONNX backend test defaults
constexpr double kAtol = 1e-7;

enum class Outcome { kPass, kFail, kSkip };

struct Result {
  Outcome outcome;
  std::string reason;
};

bool Close(const Tensor& got, const Tensor& want, std::string* why) {
  if (got.dtype() != want.dtype()) {
    *why = "dtype " + std::string(DTypeName(got.dtype())) + " vs expected " + DTypeName(want.dtype());
    return false;
  }
  if (got.dims() != want.dims()) {
    *why = "shape " + DimsToString(got.dims()) + " vs expected " + DimsToString(want.dims());
    return false;
  }
  for (int64_t i = 0; i < got.size(); ++i) {
    if (IsFloating(got.dtype())) {
      double a = got.GetAsDouble(i), b = want.GetAsDouble(i);
      if (std::isnan(a) && std::isnan(b)) continue;
      if (std::isinf(a) || std::isinf(b)) {
        if (a == b) continue;
      } else if (std::abs(a - b) <= kAtol + kRtol * std::abs(b)) {
        continue;
      }
      *why = "element " + std::to_string(i) + ": " + std::to_string(a) + " vs expected " +
             std::to_string(b);
      return false;
    }
    if (got.GetAsInt64(i) != want.GetAsInt64(i)) {
      *why = "element " + std::to_string(i) + ": " + std::to_string(got.GetAsInt64(i)) +
             " vs expected " + std::to_string(want.GetAsInt64(i));
      return false;
    }
  }
  return true;
}

// Whether every node of the model is an op of clickrt's table (default domain).
bool ClaimedByOpTable(const fs::path& model, std::set<std::string>* ops_seen) {
  onnx::ModelProto m;
  std::ifstream in(model, std::ios::binary);
  if (!m.ParseFromIstream(&in)) return true;  // then the import must report the corruption
  bool claimed = true;
  for (const auto& n : m.graph().node()) {
    ops_seen->insert(n.op_type());
    bool default_domain = n.domain().empty() || n.domain() == "ai.onnx";
    if (!default_domain || !ir::OpKindFromName(n.op_type(), "")) claimed = false;
  }
  return claimed;
}

Result RunOne(const fs::path& dir, std::set<std::string>* ops_seen, bool* claimed) {
  *claimed = ClaimedByOpTable(dir / "model.onnx", ops_seen);
  if (!*claimed) return {Outcome::kSkip, "uses an op outside clickrt's op table"};
  onnx_import::ImportOptions opts;
  auto g = onnx_import::ImportModel((dir / "model.onnx").string(), opts);
  if (!g.ok()) {
    if (g.status().code() == StatusCode::kUnimplemented) return {Outcome::kSkip, g.status().message()};
    return {Outcome::kFail, "import: " + g.status().ToString()};
  }
  auto exec = reference::Executor::Create(g->get());
  if (!exec.ok()) return {Outcome::kFail, exec.status().ToString()};
  std::vector<fs::path> sets;
  for (const auto& e : fs::directory_iterator(dir)) {
    if (e.is_directory() && e.path().filename().string().rfind("test_data_set_", 0) == 0) {
      sets.push_back(e.path());
    }
  }
  std::sort(sets.begin(), sets.end());
  for (const fs::path& set : sets) {
    reference::TensorMap inputs;
    for (size_t i = 0; i < (*g)->inputs.size(); ++i) {
      auto t = onnx_import::ReadTensorProtoFile((set / ("input_" + std::to_string(i) + ".pb")).string());
      if (!t.ok()) {
        if (t.status().code() == StatusCode::kUnimplemented) return {Outcome::kSkip, t.status().message()};
        return {Outcome::kFail, t.status().ToString()};
      }
      inputs[(*g)->inputs[i]->name] = std::move(t).value();
    }
    auto out = (*exec)->Run(inputs);
    if (!out.ok()) {
      if (out.status().code() == StatusCode::kUnimplemented) return {Outcome::kSkip, out.status().message()};
      return {Outcome::kFail, out.status().ToString()};
    }
    for (size_t i = 0; i < (*g)->outputs.size(); ++i) {
      fs::path file = set / ("output_" + std::to_string(i) + ".pb");
      if (!fs::exists(file)) continue;
      auto want = onnx_import::ReadTensorProtoFile(file.string());
      if (!want.ok()) {
        if (want.status().code() == StatusCode::kUnimplemented) return {Outcome::kSkip, want.status().message()};
        return {Outcome::kFail, want.status().ToString()};
      }
      std::string why;
      if (!Close(out->at((*g)->outputs[i]->name), want.value(), &why)) {
        return {Outcome::kFail, set.filename().string() + " output " + std::to_string(i) + ": " + why};
      }
    }
  }
  return {Outcome::kPass, ""};
}

}  // namespace

int main(int argc, char** argv) {
  std::string data = "/usr/share/libonnx-testdata/data/node", filter;
  bool verbose = false;
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    if (a == "--data" && i + 1 < argc) data = argv[++i];
    else if (a == "--filter" && i + 1 < argc) filter = argv[++i];
    else if (a == "--verbose") verbose = true;
    else {
      std::cerr << "usage: clickrt_conformance --data DIR [--filter SUBSTRING] [--verbose]\n";
      return 2;
    }
  }
  if (!fs::is_directory(data)) {
    std::cerr << "error: ONNX node test data not found at " << data
              << " (apt-get install libonnx-testdata)\n";
    return 1;
  }
  std::vector<fs::path> dirs;
  for (const auto& e : fs::directory_iterator(data)) {
    if (e.is_directory() && fs::exists(e.path() / "model.onnx") &&
        e.path().filename().string().find(filter) != std::string::npos) {
      dirs.push_back(e.path());
    }
  }
  std::sort(dirs.begin(), dirs.end());
  struct Counts { int pass = 0, fail = 0, skip = 0; };
  std::map<std::string, Counts> per_op;
  int pass = 0, fail = 0, skip = 0, unclaimed = 0;
  for (const fs::path& d : dirs) {
    std::set<std::string> ops;
    bool claimed = true;
    Result r = RunOne(d, &ops, &claimed);
    const std::string name = d.filename().string();
    if (!claimed) {
      ++unclaimed;
      continue;
    }
    for (const std::string& op : ops) {
      Counts& c = per_op[op];
      (r.outcome == Outcome::kPass ? c.pass : r.outcome == Outcome::kFail ? c.fail : c.skip)++;
    }
    switch (r.outcome) {
      case Outcome::kPass:
        ++pass;
        if (verbose) std::cout << "PASS " << name << "\n";
        break;
      case Outcome::kFail:
        ++fail;
        std::cout << "FAIL " << name << ": " << r.reason << "\n";
        break;
      case Outcome::kSkip:
        ++skip;
        std::cout << "SKIP " << name << ": " << r.reason << "\n";
        break;
    }
  }
  std::cout << "\nper claimed op (tests containing it: pass / fail / skip):\n";
  for (const auto& [op, c] : per_op) {
    std::cout << "  " << op << ": " << c.pass << " / " << c.fail << " / " << c.skip << "\n";
  }
  std::cout << "\n" << dirs.size() << " node tests: " << unclaimed
            << " use ops outside the op table (not claimed)\n";
  std::cout << "conformance: " << pass << " passed, " << fail << " failed, " << skip << " skipped\n";
  return fail == 0 ? 0 : 1;
}
