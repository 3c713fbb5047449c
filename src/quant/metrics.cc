#include "quant/metrics.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace clickrt::quant {

namespace {

Status CheckSizes(std::span<const float> scores, std::span<const float> labels) {
  if (scores.size() != labels.size()) {
    return InvalidArgument(std::to_string(scores.size()) + " scores but " +
                           std::to_string(labels.size()) + " labels");
  }
  if (scores.empty()) return InvalidArgument("no rows to evaluate");
  for (size_t i = 0; i < scores.size(); ++i) {
    if (std::isnan(scores[i]))
      return InvalidArgument("score of row " + std::to_string(i) + " is NaN");
    if (std::isnan(labels[i])) return InvalidArgument("row " + std::to_string(i) + " has no label");
  }
  return Status::Ok();
}

}  // namespace

StatusOr<double> Auc(std::span<const float> scores, std::span<const float> labels) {
  RETURN_IF_ERROR(CheckSizes(scores, labels));
  const size_t n = scores.size();
  int64_t positives = 0;
  for (size_t i = 0; i < n; ++i) {
    if (labels[i] != 0.f && labels[i] != 1.f) {
      return InvalidArgument("AUC needs 0/1 labels; row " + std::to_string(i) + " has " +
                             std::to_string(labels[i]));
    }
    positives += labels[i] == 1.f;
  }
  const int64_t negatives = static_cast<int64_t>(n) - positives;
  if (positives == 0 || negatives == 0) {
    return FailedPrecondition("AUC is undefined: the labels hold " + std::to_string(positives) +
                              " positives and " + std::to_string(negatives) + " negatives");
  }
  std::vector<size_t> order(n);
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return scores[a] < scores[b]; });
  // Ranks are 1-based; a run of equal scores [i, j) shares the average rank (i + 1 + j) / 2.
  double positive_rank_sum = 0;
  for (size_t i = 0; i < n;) {
    size_t j = i + 1;
    while (j < n && scores[order[j]] == scores[order[i]]) ++j;
    const double rank = (static_cast<double>(i + 1) + static_cast<double>(j)) / 2.0;
    for (size_t k = i; k < j; ++k) {
      if (labels[order[k]] == 1.f) positive_rank_sum += rank;
    }
    i = j;
  }
  const double p = static_cast<double>(positives), q = static_cast<double>(negatives);
  return (positive_rank_sum - p * (p + 1) / 2.0) / (p * q);
}

StatusOr<double> LogLoss(std::span<const float> scores, std::span<const float> labels) {
  RETURN_IF_ERROR(CheckSizes(scores, labels));
  constexpr double kEps = 1e-15;
  double sum = 0;
  for (size_t i = 0; i < scores.size(); ++i) {
    const double y = labels[i];
    if (y < 0 || y > 1) {
      return InvalidArgument("log loss needs labels in [0, 1]; row " + std::to_string(i) + " has " +
                             std::to_string(y));
    }
    if (scores[i] < 0 || scores[i] > 1) {
      return InvalidArgument("log loss needs probabilities; the score of row " + std::to_string(i) +
                             " is " + std::to_string(scores[i]));
    }
    const double p = std::clamp(static_cast<double>(scores[i]), kEps, 1 - kEps);
    sum += y * std::log(p) + (1 - y) * std::log(1 - p);
  }
  return -sum / static_cast<double>(scores.size());
}

StatusOr<BinaryMetrics> EvaluateScores(std::span<const float> scores,
                                       std::span<const float> labels) {
  BinaryMetrics m;
  ASSIGN_OR_RETURN(m.auc, Auc(scores, labels));
  ASSIGN_OR_RETURN(m.logloss, LogLoss(scores, labels));
  m.rows = static_cast<int64_t>(scores.size());
  for (float l : labels) m.positives += l == 1.f;
  return m;
}

StatusOr<ScoredData> ScoreDataset(Dataset& data, const RunFn& run, const std::string& output) {
  if (!data.has_labels()) {
    return InvalidArgument("data " + data.Describe() + " has no labels to evaluate against");
  }
  RETURN_IF_ERROR(data.Reset());
  ScoredData out;
  Batch b;
  int64_t done = 0;
  while (true) {
    ASSIGN_OR_RETURN(bool more, data.Next(&b));
    if (!more) break;
    const std::string rows =
        "rows " + std::to_string(done) + ".." + std::to_string(done + b.rows - 1);
    auto result = run(b.inputs);
    if (!result.ok()) return result.status().WithContext(rows);
    const Tensor* t = nullptr;
    if (output.empty()) {
      if (result->size() != 1) {
        return InvalidArgument("the model has " + std::to_string(result->size()) +
                               " outputs: name the one holding the scores");
      }
      t = &result->begin()->second;
    } else {
      auto it = result->find(output);
      if (it == result->end()) return NotFound("the model has no output '" + output + "'");
      t = &it->second;
    }
    if (t->size() != b.rows || t->rank() < 1 || t->dim(0) != b.rows) {
      return InvalidArgument(rows + ": the output is " + t->Describe() +
                             ", expected one score per row");
    }
    for (int64_t i = 0; i < b.rows; ++i)
      out.scores.push_back(static_cast<float>(t->GetAsDouble(i)));
    out.labels.insert(out.labels.end(), b.labels.begin(), b.labels.end());
    done += b.rows;
  }
  RETURN_IF_ERROR(data.Reset());
  if (done == 0) return InvalidArgument("data " + data.Describe() + " has no rows");
  return out;
}

}  // namespace clickrt::quant
