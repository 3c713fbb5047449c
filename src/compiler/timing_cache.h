// The timing cache: autotuning results kept in a file so that a rebuild skips the timing.
//
// Timings are only valid on the GPU, CUDA runtime, cuBLASLt and clickrt they were measured with,
// so the file records that context; a file made for another context is reported as stale (the
// caller says so and re-times; it never silently trusts it).
//
// File format, version 1 (UTF-8 text, '\n' line ends, every line terminated):
//
//   clickrt-timing-cache 1
//   context {"clickrt_version":"0.1.0","cublaslt_version":"13.1.0","cuda_version":"13.0",...}
//   entry <key>\t<choice>\t<ms>      (zero or more lines, sorted by key)
//   end <number of entry lines>
//
// - line 1 is the magic and the format version; another version is an error, not stale.
// - context is one line of JSON: an object with the five string fields of TimingContext
//   (gpu_name, sm_arch, cuda_version, cublaslt_version, clickrt_version; others are ignored).
// - key: what was timed, e.g. "gemm:" + GemmDesc::Key(); choice: what won, e.g. an algorithm's
//   GemmAlgo::ToHex() or "fused_mlp"; ms: its time in milliseconds, a finite number >= 0 written
//   in the shortest form that reads back exactly. Key and choice are non-empty and hold no tab,
//   CR or newline; a key appears once.
// - the `end` line makes a truncated file detectable.
// Saving writes a temporary file in the same directory and renames it over the target, so a
// reader sees either the old file or the new one, never a partial one.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "clickrt/status.h"

namespace clickrt::compiler {

// Where timings were measured. Two contexts match when all five fields are equal.
struct TimingContext {
  std::string gpu_name;          // "NVIDIA H100 80GB HBM3"
  std::string sm_arch;           // "sm_90"
  std::string cuda_version;      // CUDA runtime, "13.0"
  std::string cublaslt_version;  // "13.1.0"
  std::string clickrt_version;   // CLICKRT_VERSION

  // The canonical one-line JSON written to the file (keys sorted).
  std::string Key() const;
  // "NVIDIA H100 80GB HBM3 (sm_90), CUDA 13.0, cuBLASLt 13.1.0, clickrt 0.1.0": for messages.
  std::string Describe() const;
  bool operator==(const TimingContext& other) const;
  bool operator!=(const TimingContext& other) const { return !(*this == other); }
};

class TimingCache {
 public:
  struct Entry {
    std::string choice;
    double ms = 0;
  };

  // An empty cache for `context`.
  explicit TimingCache(TimingContext context);

  // Reads `path`. Errors: NotFound when the file does not exist (start with an empty cache);
  // DataLoss naming the file and line for a corrupt, truncated or foreign file. When the file's
  // context differs from `current`, *stale is set and the result is an empty cache for `current`
  // whose stale_context() is the file's (for the "built for X, this is Y" message); with a null
  // `stale` that case is a FailedPrecondition instead.
  static StatusOr<TimingCache> Load(const std::string& path, const TimingContext& current,
                                    bool* stale);

  // The entry for `key`, counting a hit or a miss.
  std::optional<Entry> Find(const std::string& key) const;
  // Adds or replaces. Keys and choices that the format cannot hold are rejected by Save.
  void Put(const std::string& key, Entry entry);
  // Writes the file atomically (temporary file + rename). InvalidArgument for an entry the format
  // cannot hold; the I/O error otherwise; the old file is untouched on any error.
  Status Save(const std::string& path) const;

  size_t size() const { return entries_.size(); }
  int64_t hits() const { return hits_; }
  int64_t misses() const { return misses_; }
  const TimingContext& context() const { return context_; }
  // The context of the stale file Load ignored, if it did.
  const std::optional<TimingContext>& stale_context() const { return stale_context_; }
  const std::map<std::string, Entry>& entries() const { return entries_; }

 private:
  TimingContext context_;
  std::optional<TimingContext> stale_context_;
  std::map<std::string, Entry> entries_;
  // Progress counters for the build's output; the cache is used by one thread.
  mutable int64_t hits_ = 0, misses_ = 0;
};

}  // namespace clickrt::compiler
