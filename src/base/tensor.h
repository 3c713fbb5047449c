// Tensor: a dtype, a shape and a reference-counted buffer. Copies share the buffer; a Tensor may
// also view memory owned elsewhere (an mmapped weights file), kept alive by the shared owner.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "base/dtype.h"

namespace clickrt {

using Dims = std::vector<int64_t>;

// Product of dims (1 for a scalar). Dims are assumed non-negative.
int64_t NumElements(const Dims& dims);
// "[2,3,4]"
std::string DimsToString(const Dims& dims);

class Tensor {
 public:
  Tensor() = default;
  // Allocates zero-filled storage. Fails on negative dims or a size that overflows.
  static StatusOr<Tensor> Zeros(DType dtype, Dims dims);
  // Views `data` without copying; `owner` keeps it alive.
  static Tensor View(DType dtype, Dims dims, void* data, std::shared_ptr<void> owner);
  template <typename T>
  static Tensor FromVector(Dims dims, const std::vector<T>& values);
  static Tensor Scalar(DType dtype, double value);

  DType dtype() const { return dtype_; }
  const Dims& dims() const { return dims_; }
  int rank() const { return static_cast<int>(dims_.size()); }
  int64_t dim(int i) const { return dims_[i]; }
  int64_t size() const { return NumElements(dims_); }
  size_t nbytes() const { return static_cast<size_t>(size()) * DTypeSize(dtype_); }
  bool defined() const { return dtype_ != DType::kUndefined; }

  void* raw() { return data_; }
  const void* raw() const { return data_; }
  template <typename T> T* data() { return static_cast<T*>(data_); }
  template <typename T> const T* data() const { return static_cast<const T*>(data_); }
  template <typename T> std::span<const T> span() const { return {data<T>(), static_cast<size_t>(size())}; }

  // Same buffer, new dims with the same element count.
  StatusOr<Tensor> Reshaped(Dims dims) const;
  // A deep copy.
  Tensor Clone() const;
  // Element i converted to double / int64 (any dtype); for small metadata tensors.
  double GetAsDouble(int64_t i) const;
  int64_t GetAsInt64(int64_t i) const;
  // All elements as int64 (shape inputs, axes); error if the dtype is not integer.
  StatusOr<std::vector<int64_t>> ToInt64Vector() const;
  // "float32[2,3]"
  std::string Describe() const;

 private:
  DType dtype_ = DType::kUndefined;
  Dims dims_;
  void* data_ = nullptr;
  std::shared_ptr<void> owner_;
};

template <typename T>
Tensor Tensor::FromVector(Dims dims, const std::vector<T>& values) {
  Tensor t = Zeros(DTypeOf<T>::value, std::move(dims)).value();
  for (size_t i = 0; i < values.size() && i < static_cast<size_t>(t.size()); ++i) t.data<T>()[i] = values[i];
  return t;
}

}  // namespace clickrt
