// Reference Gather and GatherElements (ONNX semantics). Elements are copied as bytes, so every
// dtype works without dispatch.
#include <cstring>
#include <string>

#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

namespace {

using detail::NormalizeAxis;

Status CheckIndices(const char* op, const Tensor& indices) {
  if (indices.dtype() != DType::kInt64 && indices.dtype() != DType::kInt32) {
    return InvalidArgument(std::string(op) + " indices must be int32 or int64, got " +
                           indices.Describe());
  }
  return Status::Ok();
}

// "[2, 5]": the multi-index of flat element `flat` in a row-major tensor of shape `dims`.
std::string PositionString(int64_t flat, const Dims& dims) {
  Dims pos(dims.size(), 0);
  for (int i = static_cast<int>(dims.size()) - 1; i >= 0; --i) {
    if (dims[i] > 0) {
      pos[i] = flat % dims[i];
      flat /= dims[i];
    }
  }
  std::string s = "[";
  for (size_t i = 0; i < pos.size(); ++i) {
    if (i) s += ", ";
    s += std::to_string(pos[i]);
  }
  return s + "]";
}

// Reads indices[i] and wraps a negative value into [0, n).
StatusOr<int64_t> ReadIndex(const Tensor& indices, int64_t i, int64_t n, int64_t axis) {
  const int64_t v = indices.GetAsInt64(i);
  if (v < -n || v >= n) {
    return OutOfRange("index " + std::to_string(v) + " at " + PositionString(i, indices.dims()) +
                      " of indices " + indices.Describe() + " is out of range [-" +
                      std::to_string(n) + ", " + std::to_string(n) + ") along axis " +
                      std::to_string(axis));
  }
  return v < 0 ? v + n : v;
}

}  // namespace

StatusOr<Tensor> Gather(const Tensor& data, const Tensor& indices, int64_t axis_in) {
  if (data.rank() < 1)
    return InvalidArgument("Gather data must have rank >= 1, got " + data.Describe());
  RETURN_IF_ERROR(CheckIndices("Gather", indices));
  ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("Gather", axis_in, data));
  const Dims& dd = data.dims();
  const int64_t n = dd[axis];

  // Validate every index before writing anything, so the error does not depend on data's shape.
  std::vector<int64_t> idx(static_cast<size_t>(indices.size()));
  for (int64_t j = 0; j < indices.size(); ++j) {
    ASSIGN_OR_RETURN(idx[j], ReadIndex(indices, j, n, axis));
  }

  Dims out_dims(dd.begin(), dd.begin() + axis);
  out_dims.insert(out_dims.end(), indices.dims().begin(), indices.dims().end());
  out_dims.insert(out_dims.end(), dd.begin() + axis + 1, dd.end());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(data.dtype(), out_dims));

  // data viewed as [outer, n, inner]; out as [outer, num_indices, inner].
  const int64_t outer = NumElements(Dims(dd.begin(), dd.begin() + axis));
  const int64_t inner = NumElements(Dims(dd.begin() + axis + 1, dd.end()));
  const size_t row_bytes = static_cast<size_t>(inner) * DTypeSize(data.dtype());
  if (row_bytes == 0) return out;
  const char* src = static_cast<const char*>(data.raw());
  char* dst = static_cast<char*>(out.raw());
  const int64_t m = static_cast<int64_t>(idx.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t j = 0; j < m; ++j) {
      std::memcpy(dst + (o * m + j) * row_bytes, src + (o * n + idx[j]) * row_bytes, row_bytes);
    }
  }
  return out;
}

StatusOr<Tensor> GatherElements(const Tensor& data, const Tensor& indices, int64_t axis_in) {
  if (data.rank() < 1) {
    return InvalidArgument("GatherElements data must have rank >= 1, got " + data.Describe());
  }
  RETURN_IF_ERROR(CheckIndices("GatherElements", indices));
  if (indices.rank() != data.rank()) {
    return InvalidArgument("GatherElements indices " + indices.Describe() +
                           " must have the rank of data " + data.Describe());
  }
  ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("GatherElements", axis_in, data));
  for (int d = 0; d < data.rank(); ++d) {
    if (d != axis && indices.dim(d) > data.dim(d)) {
      return InvalidArgument("GatherElements indices " + indices.Describe() +
                             " is larger than data " + data.Describe() + " along axis " +
                             std::to_string(d));
    }
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(data.dtype(), indices.dims()));

  // out[i0, .., ik, ..] = data[i0, .., indices[i0, .., ik, ..], ..] with k = axis.
  std::vector<int64_t> strides = detail::RowMajorStrides(data.dims());
  const int64_t axis_stride = strides[axis];
  strides[axis] = 0;
  detail::BroadcastIter it(indices.dims(), {strides});
  const size_t es = DTypeSize(data.dtype());
  const char* src = static_cast<const char*>(data.raw());
  char* dst = static_cast<char*>(out.raw());
  const int64_t n = data.dim(static_cast<int>(axis));
  for (int64_t i = 0; i < indices.size(); ++i, it.Next()) {
    ASSIGN_OR_RETURN(const int64_t k, ReadIndex(indices, i, n, axis));
    std::memcpy(dst + i * es, src + (it.offsets()[0] + k * axis_stride) * es, es);
  }
  return out;
}

}  // namespace clickrt::kernels::ref
