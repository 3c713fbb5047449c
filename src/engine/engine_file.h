// The clickrt engine file: what `clickrt build` writes and the runtime loads.
//
// ============================== FILE FORMAT, version 1 ==============================
//
// All integers are little-endian. The file is three regions:
//
//   offset 0             fixed header, 64 bytes
//   offset 64            JSON document (UTF-8, no terminator), `json_bytes` long
//   zero padding         up to the next multiple of 64
//   offset weights_off   weights blob, `weights_bytes` long (end of file)
//
// Header (64 bytes; struct layout given as offset: type name):
//    0: char[8]  magic           "CLKRTENG"
//    8: uint32   format_version  kFormatVersion; a loader reads exactly one version
//   12: uint32   header_bytes    64 (a later version may grow the header)
//   16: uint64   json_offset     == header_bytes
//   24: uint64   json_bytes
//   32: uint64   weights_offset  round_up(json_offset + json_bytes, 64)
//   40: uint64   weights_bytes
//   48: uint64   file_bytes      weights_offset + weights_bytes: the whole file's size
//   56: uint64   checksum        the first 8 bytes of SHA-256 (FIPS 180-4), read as a
//                                little-endian uint64, of the whole file with bytes 56..63
//                                (this field) taken as zero. Covers header, JSON, padding
//                                and weights.
//
// JSON document (one object; keys sorted, so equal programs give equal bytes):
//   {"meta":    {"format_version": uint, "clickrt_version": str, "git_revision": str,
//                "build_time_utc": str, "model_sha256": str, "precision": str,
//                "profile": {"min": int, "opt": int, "max": int, "buckets": [int...]},
//                "backend": str, "cpu_isa": str, "gpu_name": str, "sm_arch": str,
//                "cuda_version": str, "cublaslt_version": str, "calibration_sha256": str,
//                "arena_bytes": int, "arena_bytes_no_reuse": int, "extra": any},
//    "tensors": [{"name": str, "dtype": "float32"|"int64"|... (DTypeName), "dims": [int...],
//                 "weight_offset": int, "weight_bytes": int, "arena_offset": int}...],
//    "layers":  [{"name": str, "op": str, "domain": str, "inputs": [int...],
//                 "outputs": [int...], "attrs": object|null, "kernel": str}...],
//    "inputs": [int...], "outputs": [int...]}
//   Every key is always written and required on load ("extra" may be null). Non-finite numbers
//   in "attrs" / "extra" are written as null (JSON has no NaN / Inf).
//
// Weights: each constant tensor's bytes lie at weights blob offset `weight_offset` (a multiple
// of 64, so with a page-aligned mmap every weight pointer is 64-byte aligned), length
// `weight_bytes` == element count * dtype size, raw little-endian elements in row-major order.
// Tensors may share bytes (the writer does not dedupe; it only checks the range).
//
// Memory plan: `arena_offset` is a byte offset into one activation arena of
// `meta.arena_bytes` bytes, planned for batch == profile.max. Because a tensor at batch
// b <= max is no larger than at max, the same offsets serve every batch in the profile.
// -1 means "not in the arena" (constants; tensors the runtime binds to caller buffers).
//
// Reproducible builds: the writer embeds nothing time- or host-dependent of its own; the only
// timestamp is meta.build_time_utc, which the caller sets (the compiler takes it from
// SOURCE_DATE_EPOCH when set). Equal Program + weights => byte-identical files.
//
// Load-time checks, in order (first failure wins; messages name what was expected and found):
//   file missing                                   -> NotFound
//   empty / shorter than the header                -> DataLoss
//   magic is not "CLKRTENG"                        -> InvalidArgument "not a clickrt engine file:
//                                                     magic is ... (looks like an ONNX model)"
//   format_version != kFormatVersion               -> FailedPrecondition naming both versions
//   header fields inconsistent, file shorter or
//   longer than file_bytes (truncated)             -> DataLoss naming both sizes
//   checksum                                       -> DataLoss "checksum mismatch"
//   JSON parse, a missing or ill-typed field       -> DataLoss naming the field
//   a weight range outside the blob or unaligned,
//   a tensor index out of range, a bad profile,
//   an arena range outside meta.arena_bytes        -> DataLoss naming the tensor / layer
//   Expectations (backend, CPU ISA, SM arch, CUDA) -> FailedPrecondition naming both sides
//
// Changing anything above means bumping kFormatVersion (old engines are then refused with a
// clear error and must be rebuilt; clickrt does not read old versions).
// =====================================================================================
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json.hpp>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "base/dtype.h"
#include "base/tensor.h"
#include "clickrt/status.h"

namespace clickrt::engine {

inline constexpr char kMagic[8] = {'C', 'L', 'K', 'R', 'T', 'E', 'N', 'G'};
inline constexpr uint32_t kFormatVersion = 1;
inline constexpr uint64_t kHeaderBytes = 64;
inline constexpr uint64_t kWeightAlignment = 64;  // of every weight_offset and weights_offset

// Batch sizes the engine serves: 1 <= min <= opt <= max; buckets (optional) strictly
// increasing within [min, max] (e.g. the batch sizes with their own tuned kernels / CUDA graphs).
struct Profile {
  int64_t min = 1, opt = 1, max = 1;
  std::vector<int64_t> buckets;
  friend bool operator==(const Profile&, const Profile&) = default;
};

// Who built the engine, from what, for which machine. Strings are "" when not applicable.
struct Metadata {
  uint32_t format_version = kFormatVersion;  // the writer always writes kFormatVersion
  std::string clickrt_version, git_revision;
  std::string build_time_utc;  // ISO 8601, "2024-05-01T12:00:00Z"; set by the caller
  std::string model_sha256;    // hex SHA-256 of the source .onnx bytes
  std::string precision;       // "fp32", "fp16", "bf16", "int8", ...
  Profile profile;
  std::string backend;               // "cpu" | "cuda"
  std::string cpu_isa;               // "avx512", "avx2", ... ; "" = runs on any x86-64
  std::string gpu_name;              // "NVIDIA H100 80GB HBM3" (cuda backend)
  std::string sm_arch;               // "sm_90" (cuda backend)
  std::string cuda_version;          // "12.4" (cuda backend)
  std::string cublaslt_version;      // "12.4.5" (cuda backend)
  std::string calibration_sha256;    // "" when not calibrated
  int64_t arena_bytes = 0;           // activation arena for batch profile.max
  int64_t arena_bytes_no_reuse = 0;  // the same without buffer reuse (for reports)
  nlohmann::json extra;              // free-form (pass list, timings), kept as-is
  friend bool operator==(const Metadata&, const Metadata&) = default;
};

struct TensorDesc {
  std::string name;
  DType dtype = DType::kUndefined;  // never kUndefined in a valid program
  std::vector<int64_t> dims;        // -1 marks the batch dimension (not allowed for constants);
                                    // -2 a dynamic non-batch dimension (activations outside
                                    // the arena only, sized at run time)
  // Constants: byte range in the weights blob (offset a multiple of 64); -1 / 0 otherwise.
  int64_t weight_offset = -1, weight_bytes = 0;
  // Activations: offset in the arena (see "Memory plan" above); -1 when not in the arena.
  int64_t arena_offset = -1;
  bool is_constant() const { return weight_offset >= 0; }
  friend bool operator==(const TensorDesc&, const TensorDesc&) = default;
};

struct Layer {
  std::string name, op;
  std::string domain;            // "" = ONNX, "clickrt" = fused ops
  std::vector<int32_t> inputs;   // indices into Program::tensors; -1 = omitted optional
  std::vector<int32_t> outputs;  // likewise
  nlohmann::json attrs;          // object: attribute name -> number / string / array (or null)
  std::string kernel;            // the chosen kernel, e.g. "onednn_matmul_relu", "ref"
  friend bool operator==(const Layer&, const Layer&) = default;
};

// The compiled graph: layers in execution order.
struct Program {
  Metadata meta;
  std::vector<TensorDesc> tensors;
  std::vector<Layer> layers;
  std::vector<int32_t> inputs, outputs;  // graph inputs / outputs (indices into tensors)
  friend bool operator==(const Program&, const Program&) = default;
};

// What the loader checks the engine against; an empty field means "don't care".
struct Expectations {
  std::string backend;                // "cpu" | "cuda": must equal meta.backend
  std::vector<std::string> cpu_isas;  // ISAs this CPU runs; a cpu engine's non-empty
                                      // meta.cpu_isa must be one of them (else SIGILL later)
  std::string sm_arch;                // "sm_80": must equal meta.sm_arch (cuda engines only)
  std::string cuda_major;             // "12": must equal meta.cuda_version's major (cuda only)
  // Off skips the checksum, so a huge engine's weights are not all read at load (mmap pages
  // in lazily). Structure is still fully validated; only weight *values* go unchecked.
  bool verify_checksum = true;
};

// Writes `program` and `weights` (the raw blob the TensorDesc weight offsets point into) to
// `path`, through a temporary file renamed into place, so a reader never sees half a file.
// InvalidArgument when the program fails the load-time validation (bad offsets, alignment,
// indices, profile; non-UTF-8 strings); NotFound / FailedPrecondition / ResourceExhausted on
// I/O errors.
Status WriteEngine(const Program& program, std::span<const uint8_t> weights,
                   const std::string& path);
// The same bytes as WriteEngine, in memory.
StatusOr<std::string> SerializeEngine(const Program& program, std::span<const uint8_t> weights);

// A loaded engine: the Program and the weights, viewed in place in a read-only mapping of the
// file (or an aligned copy, for LoadEngineFromBytes). Tensors from Weight() keep it alive.
// Weight memory is read-only: writing through a Weight() tensor's pointer faults.
class LoadedEngine : public std::enable_shared_from_this<LoadedEngine> {
 public:
  ~LoadedEngine();
  LoadedEngine(const LoadedEngine&) = delete;
  LoadedEngine& operator=(const LoadedEngine&) = delete;

  const Program& program() const { return program_; }
  std::span<const uint8_t> weights() const { return weights_; }
  // The file path, or "<memory>".
  const std::string& source() const { return source_; }
  // A Tensor viewing constant tensor `tensor_index`'s bytes in place (64-byte aligned).
  // OutOfRange for a bad index; InvalidArgument for a tensor that is not a constant.
  StatusOr<Tensor> Weight(int32_t tensor_index) const;

 private:
  friend class EngineLoader;
  LoadedEngine() = default;
  Program program_;
  std::span<const uint8_t> weights_;
  std::string source_;
  void* map_base_ = nullptr;  // munmap on destruction (file loads)
  size_t map_bytes_ = 0;
  void* owned_ = nullptr;  // aligned copy (LoadEngineFromBytes)
};

// Maps `path` read-only and validates it (see "Load-time checks" above).
StatusOr<std::shared_ptr<LoadedEngine>> LoadEngine(const std::string& path,
                                                   const Expectations& expect = {});
// The same from bytes in memory (copied once into a 64-byte aligned buffer).
StatusOr<std::shared_ptr<LoadedEngine>> LoadEngineFromBytes(std::string_view bytes,
                                                            const Expectations& expect = {});

// The JSON document of the file format above (for `clickrt inspect`); invalid UTF-8 in a
// string is shown as U+FFFD.
std::string ProgramToJson(const Program& program, bool pretty);

}  // namespace clickrt::engine
