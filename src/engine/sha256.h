// SHA-256 (FIPS 180-4): the engine file's checksum, and the model / calibration fingerprints
// recorded in its metadata.
#pragma once

#include <array>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "clickrt/status.h"

namespace clickrt::engine {

// Streaming hasher: Update() any number of times, then Finish() once.
class Sha256 {
 public:
  using Digest = std::array<uint8_t, 32>;

  // Uses the CPU's SHA instructions when it has them (x86 SHA-NI, ~10x faster), unless
  // `use_hardware` is false (tests compare both).
  explicit Sha256(bool use_hardware = true);
  void Update(std::span<const uint8_t> data);
  void Update(std::string_view data);
  // The digest of everything passed to Update(). The hasher must not be used afterwards.
  Digest Finish();
  bool UsesHardware() const;

  using CompressFn = void (*)(uint32_t state[8], const uint8_t* blocks, size_t count);

 private:
  CompressFn compress_;
  uint32_t state_[8];
  uint8_t buffer_[64];
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
};

// Lower-case hex of a digest (64 characters).
std::string DigestHex(const Sha256::Digest& digest);
// Hex SHA-256 of `data`.
std::string Sha256Hex(std::span<const uint8_t> data);
std::string Sha256Hex(std::string_view data);
// Hex SHA-256 of a file's bytes (e.g. the source .onnx for Metadata::model_sha256).
// NotFound when it cannot be opened, DataLoss on a read error.
StatusOr<std::string> Sha256HexOfFile(const std::string& path);

}  // namespace clickrt::engine
