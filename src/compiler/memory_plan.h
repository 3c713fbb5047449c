// Static memory planning: one arena per batch profile, offsets chosen from the tensors' lifetimes
// so that tensors whose lifetimes do not overlap share bytes.
#pragma once

#include <cstdint>
#include <vector>

#include "clickrt/status.h"

namespace clickrt::compiler {

// One activation tensor to place: `bytes` at the profile's max batch; alive from the step that
// writes it (`first`) to the last step that reads it (`last`), inclusive.
struct Lifetime {
  int64_t bytes = 0;
  int32_t first = 0;
  int32_t last = 0;
};

struct MemoryPlan {
  std::vector<int64_t> offsets;  // per Lifetime, 64-byte aligned
  int64_t arena_bytes = 0;       // with reuse
  int64_t no_reuse_bytes = 0;    // every tensor its own bytes (what a naive runtime allocates)
};

// Greedy best-fit by decreasing size (the usual heuristic for this NP-hard packing): each tensor
// takes the lowest offset whose bytes are free during its whole lifetime. Deterministic.
StatusOr<MemoryPlan> PlanMemory(const std::vector<Lifetime>& tensors);

// Checks that no two tensors with overlapping lifetimes overlap in the arena (for tests and
// for loading a plan from an engine file).
Status VerifyPlan(const std::vector<Lifetime>& tensors, const MemoryPlan& plan);

}  // namespace clickrt::compiler
