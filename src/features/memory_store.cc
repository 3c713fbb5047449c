// The embedded in-memory feature store: a hash map behind a reader-writer lock.
#include <mutex>
#include <shared_mutex>
#include <unordered_map>

#include "features/feature_store.h"

namespace clickrt::features {
namespace {

Status PastDeadline(const char* what) {
  return Status(StatusCode::kDeadlineExceeded,
                std::string("memory feature store: ") + what + " called after its deadline");
}

class MemoryStore final : public FeatureStore {
 public:
  StatusOr<std::vector<std::optional<FeatureRow>>> MultiGet(const std::vector<std::string>& keys,
                                                            Clock::time_point deadline) override {
    // The lookup itself never waits; a caller already past its deadline gets the same answer
    // every store gives, so the server's time budget behaves alike on both.
    if (Clock::now() > deadline) return PastDeadline("MultiGet");
    std::vector<std::optional<FeatureRow>> out(keys.size());
    std::shared_lock lock(mutex_);
    for (size_t i = 0; i < keys.size(); ++i) {
      auto it = rows_.find(keys[i]);
      if (it != rows_.end()) out[i] = it->second;
    }
    return out;
  }

  Status MultiPut(const std::vector<std::pair<std::string, FeatureRow>>& rows,
                  Clock::time_point deadline) override {
    if (Clock::now() > deadline) return PastDeadline("MultiPut");
    std::unique_lock lock(mutex_);
    for (const auto& [key, row] : rows) {
      FeatureRow& stored = rows_[key];
      for (const auto& [name, value] : row) stored[name] = value;
    }
    return Status::Ok();
  }

  std::string kind() const override { return "memory"; }

 private:
  std::shared_mutex mutex_;
  std::unordered_map<std::string, FeatureRow> rows_;
};

}  // namespace

StatusOr<std::unique_ptr<FeatureStore>> MakeMemoryStore() {
  return std::unique_ptr<FeatureStore>(std::make_unique<MemoryStore>());
}

}  // namespace clickrt::features
