// Accuracy of a CTR model on labelled data: ROC AUC and log loss, and scoring a dataset with any
// engine. `clickrt eval` prints them; the INT8 accuracy gate (quant/precision_search.h) compares
// them between the float and the quantized engine.
//
//  AUC      exact: the Mann-Whitney statistic, (sum of the positives' ranks - P (P + 1) / 2) /
//           (P N) with tied scores given their average rank (so a tie between a positive and a
//           negative counts one half), computed in double after sorting; O(n log n). Labels must
//           be 0 or 1, with at least one of each (FailedPrecondition otherwise: AUC is undefined).
//  logloss  -mean(y ln p + (1 - y) ln(1 - p)) with p clipped to [1e-15, 1 - 1e-15] (as
//           scikit-learn's log_loss does); labels in [0, 1], scores in [0, 1].
// Inputs of different lengths, empty inputs or NaN are InvalidArgument.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "clickrt/status.h"
#include "quant/dataset.h"
#include "reference/executor.h"

namespace clickrt::quant {

StatusOr<double> Auc(std::span<const float> scores, std::span<const float> labels);
StatusOr<double> LogLoss(std::span<const float> scores, std::span<const float> labels);

struct BinaryMetrics {
  int64_t rows = 0;
  int64_t positives = 0;
  double auc = 0;
  double logloss = 0;
};
StatusOr<BinaryMetrics> EvaluateScores(std::span<const float> scores,
                                       std::span<const float> labels);

// Scores and labels of a whole dataset, in row order.
struct ScoredData {
  std::vector<float> scores;
  std::vector<float> labels;
};

// One batch through an engine (reference executor, CPU or CUDA engine, ...).
using RunFn = std::function<StatusOr<reference::TensorMap>(const reference::TensorMap& inputs)>;

// Runs every batch of `data` (from its start; Reset() afterwards) through `run` and collects the
// output `output` ("" = the only output; an error if there are several), which must hold one
// score per row ([rows] or [rows, 1]). The dataset must have labels (open it with
// require_labels). Errors name the batch's rows.
StatusOr<ScoredData> ScoreDataset(Dataset& data, const RunFn& run, const std::string& output = "");

}  // namespace clickrt::quant
