// The embedded in-memory feature store: shared immutable rows in a hash table behind a
// reader-writer lock. A read copies pointers; a write builds the merged row and swaps it in.
#include <mutex>
#include <shared_mutex>
#include <string_view>

#include "features/feature_store.h"

namespace clickrt::features {
namespace {

Status PastDeadline(const char* what) {
  return Status(StatusCode::kDeadlineExceeded,
                std::string("memory feature store: ") + what + " called after its deadline");
}

// Key -> row. Open addressing (linear probing) over 8-byte slots {hash tag, entry}, the entries
// (key and row) kept densely: a lookup touches one slot line and one entry. Keys are never
// removed. A ranking request looks up ~100 keys at once; MultiGet goes through them in stages,
// prefetching, so their cache misses overlap instead of following one another.
class RowTable {
 public:
  static uint64_t Hash(std::string_view key) { return std::hash<std::string_view>{}(key); }

  // The entry of `key`, or -1.
  int64_t Find(std::string_view key, uint64_t hash) const {
    if (slots_.empty()) return -1;
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.entry == 0) return -1;
      if (s.tag == Tag(hash) && entries_[s.entry - 1].key == key) return s.entry - 1;
    }
  }

  RowPtr& Upsert(const std::string& key) {
    const uint64_t hash = Hash(key);
    if (int64_t e = Find(key, hash); e >= 0) return entries_[static_cast<size_t>(e)].row;
    if (2 * (entries_.size() + 1) > slots_.size()) Grow();
    entries_.push_back({key, nullptr});
    Place(hash, static_cast<uint32_t>(entries_.size()));
    return entries_.back().row;
  }

  void Get(const std::vector<std::string>& keys, std::vector<RowPtr>* out) const {
    if (slots_.empty()) return;
    const size_t n = keys.size();
    std::vector<uint64_t> hash(n);
    std::vector<int64_t> candidate(n, -1);
    for (size_t i = 0; i < n; ++i) {
      hash[i] = Hash(keys[i]);
      __builtin_prefetch(&slots_[hash[i] & mask_]);
    }
    for (size_t i = 0; i < n; ++i) {  // the first slot with the key's tag: almost always its own
      for (size_t j = hash[i] & mask_; slots_[j].entry != 0; j = (j + 1) & mask_) {
        if (slots_[j].tag != Tag(hash[i])) continue;
        candidate[i] = slots_[j].entry - 1;
        __builtin_prefetch(&entries_[static_cast<size_t>(candidate[i])]);
        break;
      }
    }
    for (size_t i = 0; i < n; ++i) {
      int64_t& e = candidate[i];
      if (e >= 0 && entries_[static_cast<size_t>(e)].key != keys[i]) e = Find(keys[i], hash[i]);
      // The row's first line: its encodings, read next (and its count, just before it).
      if (e >= 0) __builtin_prefetch(entries_[static_cast<size_t>(e)].row.get());
    }
    for (size_t i = 0; i < n; ++i) {
      if (candidate[i] >= 0) (*out)[i] = entries_[static_cast<size_t>(candidate[i])].row;
    }
  }

 private:
  struct Slot {
    uint32_t tag = 0;
    uint32_t entry = 0;  // index + 1; 0: empty
  };
  struct Entry {
    std::string key;
    RowPtr row;
  };

  static uint32_t Tag(uint64_t hash) { return static_cast<uint32_t>(hash >> 32); }

  void Place(uint64_t hash, uint32_t entry) {
    size_t i = hash & mask_;
    while (slots_[i].entry != 0) i = (i + 1) & mask_;
    slots_[i] = {Tag(hash), entry};
  }

  void Grow() {
    slots_.assign(slots_.empty() ? 64 : 2 * slots_.size(), Slot());
    mask_ = slots_.size() - 1;
    for (size_t e = 0; e < entries_.size(); ++e) {
      Place(Hash(entries_[e].key), static_cast<uint32_t>(e + 1));
    }
  }

  std::vector<Slot> slots_;  // a power of two, at most half full
  size_t mask_ = 0;
  std::vector<Entry> entries_;
};

class MemoryStore final : public FeatureStore {
 public:
  StatusOr<std::vector<RowPtr>> MultiGet(const std::vector<std::string>& keys,
                                         Clock::time_point deadline) override {
    // The lookup itself never waits; a caller already past its deadline gets the same answer
    // every store gives, so the server's time budget behaves alike on both.
    if (Clock::now() > deadline) return PastDeadline("MultiGet");
    std::vector<RowPtr> out(keys.size());
    std::shared_lock lock(mutex_);
    rows_.Get(keys, &out);
    return out;
  }

  Status MultiPut(const std::vector<std::pair<std::string, FeatureRow>>& rows,
                  Clock::time_point deadline) override {
    if (Clock::now() > deadline) return PastDeadline("MultiPut");
    std::unique_lock lock(mutex_);
    for (const auto& [key, row] : rows) {
      RowPtr& stored = rows_.Upsert(key);
      FeatureRow merged = stored ? stored->values() : FeatureRow();
      for (const auto& [name, value] : row) merged[name] = value;
      stored = std::make_shared<const StoredRow>(std::move(merged));
    }
    return Status::Ok();
  }

  std::string kind() const override { return "memory"; }

 private:
  std::shared_mutex mutex_;
  RowTable rows_;
};

}  // namespace

StatusOr<std::unique_ptr<FeatureStore>> MakeMemoryStore() {
  return std::unique_ptr<FeatureStore>(std::make_unique<MemoryStore>());
}

}  // namespace clickrt::features
