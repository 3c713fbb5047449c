// The feature service: where the server fetches a user's profile and each candidate ad's item
// features before it assembles the model's inputs.
//
// A feature row is a flat map feature name -> raw value as text ("C1" -> "68fd1e64",
// "I3" -> "12"); the schema (features/schema.h) turns raw values into model inputs. Keys are
// namespaced by the caller: "user:<id>", "item:<ad id>".
//
// Reads hand out stored rows shared, never copied: a StoredRow is immutable once made, and a
// write never changes a row a reader holds; it makes the merged row anew and swaps it in. So a
// reader may keep what it got (and what was derived from it, such as the row's encoding for a
// schema, cached on the row) for as long as it likes without seeing it change or go stale.
//
// Every call takes a deadline (an absolute steady_clock time): a store that cannot answer by then
// returns DeadlineExceeded, never blocks past it. A key that does not exist is not an error: its
// slot in the result is null (the caller counts it as a miss and uses the schema defaults).
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "clickrt/status.h"

namespace clickrt::features {

using Clock = std::chrono::steady_clock;
using FeatureRow = std::map<std::string, std::string>;

class EncodedRow;  // a row encoded for one schema (features/schema.h)

// A row as a store hands it out. Immutable; shared by every reader that got it.
class StoredRow {
 public:
  explicit StoredRow(FeatureRow values) : values_(std::move(values)) {}
  ~StoredRow();  // frees the encodings (in features/schema.cc, with the code that makes them)
  StoredRow(const StoredRow&) = delete;
  StoredRow& operator=(const StoredRow&) = delete;

  const FeatureRow& values() const { return values_; }

  // The row's encodings for up to kEncodingSlots schemas, made on first use by Schema::Encoded
  // and freed with the row (the row never changes, so neither does an encoding of it). Only
  // features/schema.cc reads and writes these; the protocol is there.
  struct EncodingSlot {
    std::atomic<uint64_t> schema{0};  // the schema whose encoding the slot holds; 0: none
    std::atomic<const EncodedRow*> encoding{nullptr};
  };
  static constexpr int kEncodingSlots = 4;
  EncodingSlot& encoding_slot(int i) const { return encodings_[static_cast<size_t>(i)]; }

 private:
  mutable std::array<EncodingSlot, kEncodingSlots> encodings_;  // first: read on every request
  const FeatureRow values_;
};
using RowPtr = std::shared_ptr<const StoredRow>;

class FeatureStore {
 public:
  virtual ~FeatureStore() = default;

  // One result per key, in order; null where the key does not exist. Thread-safe.
  virtual StatusOr<std::vector<RowPtr>> MultiGet(const std::vector<std::string>& keys,
                                                 Clock::time_point deadline) = 0;

  // Writes rows (bulk load; tests). A row is merged into the stored one: the fields it names are
  // overwritten, the others kept (Redis HSET semantics); rows already handed out keep their
  // values. Thread-safe.
  virtual Status MultiPut(const std::vector<std::pair<std::string, FeatureRow>>& rows,
                          Clock::time_point deadline) = 0;

  // "memory" or "redis".
  virtual std::string kind() const = 0;
};

// The embedded in-memory store: the default when no Redis is configured.
// File format (one row per line, UTF-8): `<key>\t<name>=<value>\t<name>=<value>...`;
// blank lines and lines starting with '#' are skipped. A malformed line is an error naming the
// file and the line number. Also accepts the same rows as JSON Lines: {"key": k, "features": {..}}.
// A value may hold '=' (the name ends at the first one) but no tab or newline; an empty value
// (`C5=`) is stored as present-but-empty, which the schema treats as missing.
StatusOr<std::unique_ptr<FeatureStore>> MakeMemoryStore();
Status LoadFeatureFile(const std::string& path, FeatureStore* store,
                       Clock::duration per_batch_timeout = std::chrono::seconds(10));

// Streams a feature file: `sink` gets the rows in batches of at most `batch_rows`, in file order
// (the last batch may be smaller). A sink error stops the read and is returned.
using FeatureBatch = std::vector<std::pair<std::string, FeatureRow>>;
Status ReadFeatureFile(const std::string& path, size_t batch_rows,
                       const std::function<Status(FeatureBatch&)>& sink);

struct RedisOptions {
  std::string host = "127.0.0.1";
  int port = 6379;
  int pool_size = 4;  // connections; a call waits for a free one until its deadline
  std::chrono::milliseconds connect_timeout{200};
  std::string key_prefix;  // prepended to every key (e.g. "clickrt:")
};

// Redis (hiredis): one hash per key (HGETALL / HSET), reads pipelined, a connection pool, a
// deadline on every call, reconnection after an error. Create() connects once to check the
// address and fails with Unavailable naming host:port if nothing answers.
// A call waits for a free pooled connection only until its deadline. A connection that fails
// (I/O error, timeout, protocol error) is closed and re-made on its next use; a call whose reused
// connection turns out broken (the server restarted) retries once on a fresh one.
StatusOr<std::unique_ptr<FeatureStore>> MakeRedisStore(const RedisOptions& options);

// "host:port" (or "host", port 6379) -> options with the other fields at their defaults.
StatusOr<RedisOptions> ParseRedisAddress(const std::string& address);

}  // namespace clickrt::features
