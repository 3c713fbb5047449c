#include "quant/precision_search.h"

#include <algorithm>
#include <cstdio>
#include <set>

namespace clickrt::quant {
namespace {

std::string Fixed(double v, int digits = 5) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

StatusOr<SearchResult> SearchPrecision(const std::vector<QuantizableLayer>& layers,
                                       const SearchOptions& o, const EvaluateFn& evaluate) {
  if (!(o.max_auc_drop >= 0)) return InvalidArgument("max AUC drop must be >= 0");
  auto say = [&](const std::string& s) {
    if (o.progress) o.progress(s);
  };
  SearchResult r;
  std::set<std::string> all;
  for (const auto& l : layers) all.insert(l.name);
  auto eval = [&](const std::set<std::string>& keep, bool float_embeddings,
                  const std::string& what) -> StatusOr<double> {
    QuantizeOptions q = o.base;
    q.keep_float = keep;
    if (float_embeddings) q.embeddings = EmbeddingFormat::kFloat32;
    ++r.evaluations;
    auto auc = evaluate(q);
    if (!auc.ok()) return auc.status().WithContext("evaluating " + what);
    say("  " + what + ": AUC " + Fixed(*auc) +
        (r.evaluations > 1 ? " (drop " + Fixed(r.float_auc - *auc) + ")" : ""));
    return *auc;
  };

  say("accuracy gate: max AUC drop " + Fixed(o.max_auc_drop) + ", " +
      std::to_string(layers.size()) + " INT8-capable layers");
  ASSIGN_OR_RETURN(r.float_auc, eval(all, true, "float engine"));
  const double floor = r.float_auc - o.max_auc_drop;
  auto within = [&](double auc) { return auc >= floor - 1e-12; };

  std::string table;
  auto finish = [&](const std::set<std::string>& keep, double auc) {
    r.chosen = o.base;
    r.chosen.keep_float = keep;
    r.chosen_auc = auc;
    std::string t = "layer                          op      K x N        sensitivity  precision\n";
    for (const auto& l : layers) {
      std::string sens = "-";
      for (const auto& s : r.sensitivity) {
        if (s.layer == l.name) sens = Fixed(s.drop);
      }
      char line[256];
      std::snprintf(line, sizeof line, "%-30s %-7s %5lld x %-5lld %11s  %s\n", l.name.c_str(),
                    l.op.c_str(), static_cast<long long>(l.K), static_cast<long long>(l.N),
                    sens.c_str(), keep.count(l.name) ? "fp32" : "int8");
      t += line;
    }
    t += "embeddings: " + std::string(EmbeddingFormatName(o.base.embeddings)) + "\n";
    t += "AUC: float " + Fixed(r.float_auc) + ", all-int8 " + Fixed(r.all_int8_auc) +
         ", chosen " + Fixed(auc) + " (drop " + Fixed(r.float_auc - auc) + ", budget " +
         Fixed(o.max_auc_drop) + "), " + std::to_string(r.evaluations) + " engines evaluated\n";
    r.report = t;
  };

  ASSIGN_OR_RETURN(r.all_int8_auc, eval({}, false, "all INT8"));
  if (within(r.all_int8_auc)) {
    finish({}, r.all_int8_auc);
    return r;
  }
  auto fail = [&](const std::string& why) -> Status {
    return FailedPrecondition("the accuracy budget cannot be met: " + why + "\n" + r.report);
  };
  if (!o.allow_mixed) {
    finish({}, r.all_int8_auc);
    return fail("the all-INT8 engine loses " + Fixed(r.float_auc - r.all_int8_auc) +
                " AUC (budget " + Fixed(o.max_auc_drop) + ") and mixed precision is off");
  }
  double emb_auc = r.float_auc;
  if (o.base.embeddings != EmbeddingFormat::kFloat32) {
    ASSIGN_OR_RETURN(emb_auc, eval(all, false, std::string("float layers, ") +
                                                   EmbeddingFormatName(o.base.embeddings) +
                                                   " embeddings"));
    if (!within(emb_auc)) {
      finish(all, emb_auc);
      return fail(std::string(EmbeddingFormatName(o.base.embeddings)) +
                  " embeddings alone lose " + Fixed(r.float_auc - emb_auc) + " AUC");
    }
  }
  for (const auto& l : layers) {
    std::set<std::string> keep = all;
    keep.erase(l.name);
    ASSIGN_OR_RETURN(double auc, eval(keep, false, "only '" + l.name + "' in INT8"));
    r.sensitivity.push_back({l.name, auc, r.float_auc - auc});
  }
  std::vector<LayerSensitivity> order = r.sensitivity;
  std::stable_sort(order.begin(), order.end(),
                   [](const auto& a, const auto& b) { return a.drop < b.drop; });
  std::set<std::string> keep = all;
  double best = emb_auc;
  for (const auto& s : order) {
    std::set<std::string> trial = keep;
    trial.erase(s.layer);
    double auc = s.auc;  // the first addition is the sensitivity run itself
    if (keep.size() != all.size()) {
      ASSIGN_OR_RETURN(auc, eval(trial, false, "+ '" + s.layer + "' in INT8"));
    }
    if (within(auc)) {
      keep = std::move(trial);
      best = auc;
    }
  }
  finish(keep, best);
  if (keep.size() == all.size()) return fail("no layer can run in INT8 within the budget");
  return r;
}

}  // namespace clickrt::quant
