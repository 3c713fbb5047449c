// Mixed precision under an accuracy budget: which layers may run in INT8 so that the engine's AUC
// on validation data stays within `max_auc_drop` of the float engine's.
//
// The search is backend-neutral: the caller supplies `evaluate`, which builds an engine with a
// given assignment (QuantizeOptions) and returns its AUC on the validation set (tools/clickrt
// builds it on the target backend and runs it there, so the figure is the deployed engine's).
//
// Method (each step one evaluate call, all printed through `progress`):
//  1. the float engine (no layer in INT8, float embeddings): the reference AUC;
//  2. every quantizable layer in INT8 (+ the requested embedding format): done if within budget;
//  3. otherwise each layer's sensitivity: the AUC drop with only that layer in INT8;
//  4. layers are added to INT8 least sensitive first, each addition kept only if the whole
//     engine stays within budget.
// Fails (FailedPrecondition, with the report) when the budget is exceeded by the embedding format
// alone, when no layer can run in INT8 within it, or when mixed precision is not allowed and the
// all-INT8 engine misses it.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "quant/quantize_graph.h"

namespace clickrt::quant {

struct SearchOptions {
  double max_auc_drop = 0.001;
  bool allow_mixed = true;  // false: all INT8 or fail
  QuantizeOptions base;     // scales and embedding format; keep_float is the search's to set
  std::function<void(const std::string&)> progress;
};

struct LayerSensitivity {
  std::string layer;
  double auc = 0, drop = 0;  // with only this layer in INT8
};

struct SearchResult {
  QuantizeOptions chosen;  // base with keep_float filled in
  double float_auc = 0, chosen_auc = 0, all_int8_auc = 0;
  std::vector<LayerSensitivity> sensitivity;  // empty when all-INT8 met the budget
  int evaluations = 0;
  std::string report;  // a table: layer, sensitivity, precision chosen; the AUC figures
};

using EvaluateFn = std::function<StatusOr<double>(const QuantizeOptions&)>;

StatusOr<SearchResult> SearchPrecision(const std::vector<QuantizableLayer>& layers,
                                       const SearchOptions& options, const EvaluateFn& evaluate);

}  // namespace clickrt::quant
