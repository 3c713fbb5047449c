#include "compiler/memory_plan.h"

#include <algorithm>
#include <numeric>
#include <string>

namespace clickrt::compiler {
namespace {

constexpr int64_t kAlign = 64;
int64_t AlignUp(int64_t x) { return (x + kAlign - 1) / kAlign * kAlign; }
bool LifetimesOverlap(const Lifetime& a, const Lifetime& b) {
  return a.first <= b.last && b.first <= a.last;
}

}  // namespace

StatusOr<MemoryPlan> PlanMemory(const std::vector<Lifetime>& tensors) {
  MemoryPlan plan;
  plan.offsets.assign(tensors.size(), 0);
  std::vector<size_t> order(tensors.size());
  std::iota(order.begin(), order.end(), 0);
  for (const Lifetime& t : tensors) {
    if (t.bytes < 0 || t.first > t.last) {
      return InvalidArgument("invalid lifetime [" + std::to_string(t.first) + ", " +
                             std::to_string(t.last) + "] of " + std::to_string(t.bytes) + " bytes");
    }
    plan.no_reuse_bytes += AlignUp(t.bytes);
  }
  // Largest first; ties by earlier start then index, so the plan is deterministic.
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    if (tensors[a].bytes != tensors[b].bytes) return tensors[a].bytes > tensors[b].bytes;
    return tensors[a].first < tensors[b].first;
  });
  std::vector<size_t> placed;
  for (size_t i : order) {
    const Lifetime& t = tensors[i];
    // Intervals already taken during t's lifetime, sorted by offset.
    std::vector<std::pair<int64_t, int64_t>> busy;
    for (size_t j : placed) {
      if (LifetimesOverlap(t, tensors[j])) {
        busy.emplace_back(plan.offsets[j], plan.offsets[j] + AlignUp(tensors[j].bytes));
      }
    }
    std::sort(busy.begin(), busy.end());
    // Best fit: the smallest gap that holds the tensor; else after the last busy interval.
    const int64_t need = AlignUp(t.bytes);
    int64_t best = -1, best_gap = INT64_MAX, cursor = 0;
    for (const auto& [b, e] : busy) {
      if (b - cursor >= need && b - cursor < best_gap) {
        best = cursor;
        best_gap = b - cursor;
      }
      cursor = std::max(cursor, e);
    }
    plan.offsets[i] = best >= 0 ? best : cursor;
    plan.arena_bytes = std::max(plan.arena_bytes, plan.offsets[i] + need);
    placed.push_back(i);
  }
  return plan;
}

Status VerifyPlan(const std::vector<Lifetime>& tensors, const MemoryPlan& plan) {
  if (plan.offsets.size() != tensors.size()) return InvalidArgument("plan size differs");
  for (size_t i = 0; i < tensors.size(); ++i) {
    if (plan.offsets[i] % kAlign || plan.offsets[i] + tensors[i].bytes > plan.arena_bytes) {
      return InvalidArgument("tensor " + std::to_string(i) + " misplaced in the arena");
    }
    for (size_t j = i + 1; j < tensors.size(); ++j) {
      if (!LifetimesOverlap(tensors[i], tensors[j]) || !tensors[i].bytes || !tensors[j].bytes) continue;
      bool apart = plan.offsets[i] + tensors[i].bytes <= plan.offsets[j] ||
                   plan.offsets[j] + tensors[j].bytes <= plan.offsets[i];
      if (!apart) {
        return InvalidArgument("tensors " + std::to_string(i) + " and " + std::to_string(j) +
                               " are alive together and overlap in the arena");
      }
    }
  }
  return Status::Ok();
}

}  // namespace clickrt::compiler
