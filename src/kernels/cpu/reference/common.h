// Internal helpers for the reference kernels: dtype dispatch and broadcast iteration.
#pragma once

#include <string>

#include "kernels/cpu/reference/reference_kernels.h"

namespace clickrt::kernels::ref::detail {

template <typename T> struct Tag { using type = T; };

// Calls f(Tag<T>{}) for the C++ type of `t`; float16 / bfloat16 are not visited (callers widen
// them to float32 first).
template <typename F>
Status Visit(DType t, F&& f, bool allow_bool = true) {
  switch (t) {
    case DType::kFloat32: return f(Tag<float>{});
    case DType::kFloat64: return f(Tag<double>{});
    case DType::kInt64: return f(Tag<int64_t>{});
    case DType::kInt32: return f(Tag<int32_t>{});
    case DType::kInt8: return f(Tag<int8_t>{});
    case DType::kUInt8: return f(Tag<uint8_t>{});
    case DType::kBool:
      if (allow_bool) return f(Tag<bool>{});
      break;
    default: break;
  }
  return Unimplemented(std::string("dtype ") + DTypeName(t) + " is not supported by this kernel");
}

inline bool IsHalf(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }

// Row-major strides of `dims`, with 0 where a dim of `in` (right-aligned into `out`) is 1.
std::vector<int64_t> BroadcastStrides(const Dims& in, const Dims& out);

// Iterates over every element of `out_dims`, keeping a running offset per input.
class BroadcastIter {
 public:
  BroadcastIter(const Dims& out_dims, std::vector<std::vector<int64_t>> strides);
  // Offsets into each input for the current output element.
  const std::vector<int64_t>& offsets() const { return offsets_; }
  void Next();

 private:
  Dims dims_;
  std::vector<std::vector<int64_t>> strides_;
  std::vector<int64_t> index_;
  std::vector<int64_t> offsets_;
};

std::vector<int64_t> RowMajorStrides(const Dims& dims);

// Maps `axis` in [-rank, rank) of `t` to [0, rank); OutOfRange naming `op` and the tensor.
StatusOr<int64_t> NormalizeAxis(const char* op, int64_t axis, const Tensor& t);

}  // namespace clickrt::kernels::ref::detail
