#include "base/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>

namespace clickrt {

int64_t NumElements(const Dims& dims) {
  int64_t n = 1;
  for (int64_t d : dims) n *= d;
  return n;
}

std::string DimsToString(const Dims& dims) {
  std::string s = "[";
  for (size_t i = 0; i < dims.size(); ++i) {
    if (i) s += ",";
    s += std::to_string(dims[i]);
  }
  return s + "]";
}

StatusOr<Tensor> Tensor::Zeros(DType dtype, Dims dims) {
  if (dtype == DType::kUndefined) return InvalidArgument("cannot allocate a tensor of undefined dtype");
  int64_t n = 1;
  for (int64_t d : dims) {
    if (d < 0) return InvalidArgument("negative dimension in shape " + DimsToString(dims));
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / 16 / d) {
      return InvalidArgument("tensor shape " + DimsToString(dims) + " is too large");
    }
    n *= d;
  }
  size_t bytes = static_cast<size_t>(n) * DTypeSize(dtype);
  // 64-byte alignment so vector kernels can load directly; at least one byte so data() is non-null.
  size_t alloc = (bytes + 63) / 64 * 64;
  if (alloc == 0) alloc = 64;
  void* p = std::aligned_alloc(64, alloc);
  if (p == nullptr) {
    return Status(StatusCode::kResourceExhausted,
                  "out of memory allocating " + std::to_string(bytes) + " bytes");
  }
  std::memset(p, 0, alloc);
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.data_ = p;
  t.owner_ = std::shared_ptr<void>(p, [](void* q) { std::free(q); });
  return t;
}

Tensor Tensor::View(DType dtype, Dims dims, void* data, std::shared_ptr<void> owner) {
  Tensor t;
  t.dtype_ = dtype;
  t.dims_ = std::move(dims);
  t.data_ = data;
  t.owner_ = std::move(owner);
  return t;
}

Tensor Tensor::Scalar(DType dtype, double value) {
  Tensor t = Zeros(dtype, {}).value();
  switch (dtype) {
    case DType::kFloat32: *t.data<float>() = static_cast<float>(value); break;
    case DType::kFloat64: *t.data<double>() = value; break;
    case DType::kInt64: *t.data<int64_t>() = static_cast<int64_t>(value); break;
    case DType::kInt32: *t.data<int32_t>() = static_cast<int32_t>(value); break;
    case DType::kInt8: *t.data<int8_t>() = static_cast<int8_t>(value); break;
    case DType::kUInt8: *t.data<uint8_t>() = static_cast<uint8_t>(value); break;
    case DType::kBool: *t.data<bool>() = value != 0; break;
    case DType::kFloat16: *t.data<uint16_t>() = FloatToHalf(static_cast<float>(value)); break;
    case DType::kBFloat16: *t.data<uint16_t>() = FloatToBFloat16(static_cast<float>(value)); break;
    case DType::kUndefined: break;
  }
  return t;
}

StatusOr<Tensor> Tensor::Reshaped(Dims dims) const {
  if (NumElements(dims) != size()) {
    return InvalidArgument("cannot reshape " + Describe() + " to " + DimsToString(dims));
  }
  Tensor t = *this;
  t.dims_ = std::move(dims);
  return t;
}

Tensor Tensor::Clone() const {
  Tensor t = Zeros(dtype_, dims_).value();
  if (nbytes() > 0) std::memcpy(t.data_, data_, nbytes());
  return t;
}

double Tensor::GetAsDouble(int64_t i) const {
  switch (dtype_) {
    case DType::kFloat32: return data<float>()[i];
    case DType::kFloat64: return data<double>()[i];
    case DType::kInt64: return static_cast<double>(data<int64_t>()[i]);
    case DType::kInt32: return data<int32_t>()[i];
    case DType::kInt8: return data<int8_t>()[i];
    case DType::kUInt8: return data<uint8_t>()[i];
    case DType::kBool: return data<bool>()[i] ? 1.0 : 0.0;
    case DType::kFloat16: return HalfToFloat(data<uint16_t>()[i]);
    case DType::kBFloat16: return BFloat16ToFloat(data<uint16_t>()[i]);
    case DType::kUndefined: return 0;
  }
  return 0;
}

int64_t Tensor::GetAsInt64(int64_t i) const {
  switch (dtype_) {
    case DType::kInt64: return data<int64_t>()[i];
    case DType::kInt32: return data<int32_t>()[i];
    case DType::kInt8: return data<int8_t>()[i];
    case DType::kUInt8: return data<uint8_t>()[i];
    case DType::kBool: return data<bool>()[i] ? 1 : 0;
    default: return static_cast<int64_t>(GetAsDouble(i));
  }
}

StatusOr<std::vector<int64_t>> Tensor::ToInt64Vector() const {
  if (!IsInteger(dtype_)) {
    return InvalidArgument("expected an integer tensor, got " + Describe());
  }
  std::vector<int64_t> v(static_cast<size_t>(size()));
  for (int64_t i = 0; i < size(); ++i) v[i] = GetAsInt64(i);
  return v;
}

std::string Tensor::Describe() const { return std::string(DTypeName(dtype_)) + DimsToString(dims_); }

}  // namespace clickrt
