#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

StatusOr<Dims> BroadcastDims(const Dims& a, const Dims& b) {
  size_t r = std::max(a.size(), b.size());
  Dims out(r);
  for (size_t i = 0; i < r; ++i) {
    int64_t da = i + a.size() >= r ? a[i + a.size() - r] : 1;
    int64_t db = i + b.size() >= r ? b[i + b.size() - r] : 1;
    if (da != db && da != 1 && db != 1) {
      return InvalidArgument("shapes " + DimsToString(a) + " and " + DimsToString(b) +
                             " cannot be broadcast");
    }
    out[i] = da == 1 ? db : da;
  }
  return out;
}

namespace detail {

std::vector<int64_t> RowMajorStrides(const Dims& dims) {
  std::vector<int64_t> s(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i) s[i] = s[i + 1] * dims[i + 1];
  return s;
}

std::vector<int64_t> BroadcastStrides(const Dims& in, const Dims& out) {
  std::vector<int64_t> s(out.size(), 0);
  std::vector<int64_t> rm = RowMajorStrides(in);
  size_t off = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[i + off] = in[i] == 1 ? 0 : rm[i];
  return s;
}

StatusOr<int64_t> NormalizeAxis(const char* op, int64_t axis, const Tensor& t) {
  const int64_t r = t.rank();
  if (axis < -r || axis >= r) {
    return OutOfRange(std::string(op) + " axis " + std::to_string(axis) + " is out of range for " +
                      t.Describe());
  }
  return axis < 0 ? axis + r : axis;
}

BroadcastIter::BroadcastIter(const Dims& out_dims, std::vector<std::vector<int64_t>> strides)
    : dims_(out_dims),
      strides_(std::move(strides)),
      index_(out_dims.size(), 0),
      offsets_(strides_.size(), 0) {}

void BroadcastIter::Next() {
  for (int d = static_cast<int>(dims_.size()) - 1; d >= 0; --d) {
    if (++index_[d] < dims_[d]) {
      for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] += strides_[k][d];
      return;
    }
    for (size_t k = 0; k < strides_.size(); ++k) offsets_[k] -= strides_[k][d] * (dims_[d] - 1);
    index_[d] = 0;
  }
}

}  // namespace detail
}  // namespace clickrt::kernels::ref
