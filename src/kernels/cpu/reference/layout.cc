// Reference data-movement kernels: Concat, Split, Slice, Transpose, Expand, Tile (ONNX semantics).
// Elements are copied as bytes, so every dtype works without dispatch.
#include <algorithm>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/cpu/reference/common.h"

namespace clickrt::kernels::ref {

namespace {

using detail::NormalizeAxis;

// Writes out[i] = x[offset_i] for every element of `out`, where offset_i walks `walk_dims`
// (whose element count equals out's) with per-dim element strides `strides` into x, from `base`.
void StridedCopy(const Tensor& x, int64_t base, const Dims& walk_dims,
                 const std::vector<int64_t>& strides, Tensor* out) {
  const size_t es = DTypeSize(x.dtype());
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(out->raw());
  detail::BroadcastIter it(walk_dims, {strides});
  for (int64_t i = 0; i < out->size(); ++i, it.Next()) {
    std::memcpy(dst + i * es, src + (base + it.offsets()[0]) * es, es);
  }
}

// Copies x viewed as [outer, rows, inner] into out viewed as [outer, out_rows, inner], placing
// x's rows at out rows [row_offset, row_offset + rows). `src_row_offset` skips rows of x.
void CopyRows(const Tensor& x, int64_t src_row_offset, int64_t rows, int64_t x_rows, int64_t outer,
              int64_t inner, int64_t row_offset, int64_t out_rows, Tensor* out) {
  const size_t row_bytes = static_cast<size_t>(inner) * DTypeSize(x.dtype());
  if (row_bytes == 0 || rows == 0) return;
  const char* src = static_cast<const char*>(x.raw());
  char* dst = static_cast<char*>(out->raw());
  for (int64_t o = 0; o < outer; ++o) {
    std::memcpy(dst + (o * out_rows + row_offset) * row_bytes,
                src + (o * x_rows + src_row_offset) * row_bytes, rows * row_bytes);
  }
}

}  // namespace

StatusOr<Tensor> Concat(const std::vector<Tensor>& xs, int64_t axis_in) {
  if (xs.empty()) return InvalidArgument("Concat needs at least one input");
  const Tensor& first = xs[0];
  if (first.rank() < 1)
    return InvalidArgument("Concat inputs must have rank >= 1, got " + first.Describe());
  ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("Concat", axis_in, first));
  Dims out_dims = first.dims();
  out_dims[axis] = 0;
  for (const Tensor& x : xs) {
    if (x.dtype() != first.dtype() || x.rank() != first.rank()) {
      return InvalidArgument("Concat inputs " + first.Describe() + " and " + x.Describe() +
                             " differ in dtype or rank");
    }
    for (int d = 0; d < x.rank(); ++d) {
      if (d != axis && x.dim(d) != first.dim(d)) {
        return InvalidArgument("Concat inputs " + first.Describe() + " and " + x.Describe() +
                               " differ outside axis " + std::to_string(axis));
      }
    }
    out_dims[axis] += x.dim(static_cast<int>(axis));
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(first.dtype(), out_dims));
  const int64_t outer = NumElements(Dims(out_dims.begin(), out_dims.begin() + axis));
  const int64_t inner = NumElements(Dims(out_dims.begin() + axis + 1, out_dims.end()));
  int64_t row = 0;
  for (const Tensor& x : xs) {
    const int64_t rows = x.dim(static_cast<int>(axis));
    CopyRows(x, 0, rows, rows, outer, inner, row, out_dims[axis], &out);
    row += rows;
  }
  return out;
}

StatusOr<std::vector<Tensor>> Split(const Tensor& x, int64_t axis_in,
                                    const std::vector<int64_t>& sizes) {
  if (x.rank() < 1) return InvalidArgument("Split input must have rank >= 1, got " + x.Describe());
  ASSIGN_OR_RETURN(const int64_t axis, NormalizeAxis("Split", axis_in, x));
  const int64_t n = x.dim(static_cast<int>(axis));
  int64_t total = 0;
  for (int64_t s : sizes) {
    if (s < 0 || s > n - total) {
      return InvalidArgument("Split sizes " + DimsToString(sizes) + " do not sum to dim " +
                             std::to_string(n) + " of " + x.Describe() + " along axis " +
                             std::to_string(axis));
    }
    total += s;
  }
  if (sizes.empty() || total != n) {
    return InvalidArgument("Split sizes " + DimsToString(sizes) + " do not sum to dim " +
                           std::to_string(n) + " of " + x.Describe() + " along axis " +
                           std::to_string(axis));
  }
  const Dims& dims = x.dims();
  const int64_t outer = NumElements(Dims(dims.begin(), dims.begin() + axis));
  const int64_t inner = NumElements(Dims(dims.begin() + axis + 1, dims.end()));
  std::vector<Tensor> outs;
  int64_t row = 0;
  for (int64_t s : sizes) {
    Dims d = dims;
    d[axis] = s;
    ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), d));
    CopyRows(x, row, s, n, outer, inner, 0, s, &out);
    outs.push_back(std::move(out));
    row += s;
  }
  return outs;
}

StatusOr<Tensor> Slice(const Tensor& x, std::vector<int64_t> starts, std::vector<int64_t> ends,
                       std::vector<int64_t> axes, std::vector<int64_t> steps) {
  const size_t k = starts.size();
  if (axes.empty()) {
    for (size_t i = 0; i < k; ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (steps.empty()) steps.assign(k, 1);
  if (ends.size() != k || axes.size() != k || steps.size() != k) {
    return InvalidArgument("Slice of " + x.Describe() + ": starts " + DimsToString(starts) +
                           ", ends " + DimsToString(ends) + ", axes " + DimsToString(axes) +
                           " and steps " + DimsToString(steps) + " differ in length");
  }
  const int r = x.rank();
  // Per input dim: first element, step, and element count of the output.
  std::vector<int64_t> first(r, 0), step(r, 1);
  Dims out_dims = x.dims();
  std::vector<bool> seen(r, false);
  for (size_t i = 0; i < k; ++i) {
    ASSIGN_OR_RETURN(const int64_t a, NormalizeAxis("Slice", axes[i], x));
    if (seen[a]) {
      return InvalidArgument("Slice axes " + DimsToString(axes) + " repeat axis " +
                             std::to_string(a));
    }
    seen[a] = true;
    if (steps[i] == 0)
      return InvalidArgument("Slice step along axis " + std::to_string(a) + " is 0");
    const int64_t dim = x.dim(static_cast<int>(a));
    int64_t s = starts[i] < 0 ? starts[i] + dim : starts[i];
    int64_t e = ends[i] < 0 ? ends[i] + dim : ends[i];
    int64_t diff;  // distance covered from s towards e, in elements
    if (steps[i] > 0) {
      s = std::clamp<int64_t>(s, 0, dim);
      e = std::clamp<int64_t>(e, 0, dim);
      diff = e - s;
    } else if (dim == 0) {
      s = 0;
      diff = 0;
    } else {
      s = std::clamp<int64_t>(s, 0, dim - 1);
      e = std::clamp<int64_t>(e, -1, dim - 1);
      diff = s - e;
    }
    // |step| as unsigned: -INT64_MIN does not fit in int64.
    const uint64_t abs_step =
        steps[i] > 0 ? static_cast<uint64_t>(steps[i]) : 0 - static_cast<uint64_t>(steps[i]);
    const int64_t count =
        diff > 0 ? static_cast<int64_t>((static_cast<uint64_t>(diff) - 1) / abs_step + 1) : 0;
    first[a] = s;
    step[a] = steps[i];
    out_dims[a] = count;
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), out_dims));
  if (out.size() == 0) return out;
  // out[j0, j1, ..] = x[first0 + j0 * step0, first1 + j1 * step1, ..]. A step is only multiplied
  // by an index below count, so j * step stays within the dim.
  const std::vector<int64_t> xs = detail::RowMajorStrides(x.dims());
  std::vector<int64_t> strides(r);
  int64_t base = 0;
  for (int d = 0; d < r; ++d) {
    base += first[d] * xs[d];
    strides[d] = out_dims[d] > 1 ? step[d] * xs[d] : 0;
  }
  StridedCopy(x, base, out_dims, strides, &out);
  return out;
}

StatusOr<Tensor> Transpose(const Tensor& x, const std::vector<int64_t>& perm_in) {
  const int r = x.rank();
  std::vector<int64_t> perm = perm_in;
  if (perm.empty()) {
    for (int d = r - 1; d >= 0; --d) perm.push_back(d);
  }
  std::vector<bool> seen(r, false);
  bool valid = static_cast<int>(perm.size()) == r;
  for (size_t i = 0; valid && i < perm.size(); ++i) {
    valid = perm[i] >= 0 && perm[i] < r && !seen[perm[i]];
    if (valid) seen[perm[i]] = true;
  }
  if (!valid) {
    return InvalidArgument("Transpose perm " + DimsToString(perm_in) +
                           " is not a permutation of the axes of " + x.Describe());
  }
  // out[j0, j1, ..] = x[..] with x's axis perm[i] at j_i.
  const std::vector<int64_t> xs = detail::RowMajorStrides(x.dims());
  Dims out_dims(r);
  std::vector<int64_t> strides(r);
  for (int i = 0; i < r; ++i) {
    out_dims[i] = x.dim(static_cast<int>(perm[i]));
    strides[i] = xs[perm[i]];
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), out_dims));
  StridedCopy(x, 0, out_dims, strides, &out);
  return out;
}

StatusOr<Tensor> Expand(const Tensor& x, const Dims& shape) {
  for (int64_t d : shape) {
    if (d < 0) {
      return InvalidArgument("Expand of " + x.Describe() + " to negative shape " +
                             DimsToString(shape));
    }
  }
  StatusOr<Dims> out_dims = BroadcastDims(x.dims(), shape);
  if (!out_dims.ok()) return out_dims.status().WithContext("Expand of " + x.Describe());
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), out_dims.value()));
  StridedCopy(x, 0, out.dims(), detail::BroadcastStrides(x.dims(), out.dims()), &out);
  return out;
}

StatusOr<Tensor> Tile(const Tensor& x, const std::vector<int64_t>& repeats) {
  const int r = x.rank();
  if (static_cast<int>(repeats.size()) != r) {
    return InvalidArgument("Tile repeats " + DimsToString(repeats) + " do not match the rank of " +
                           x.Describe());
  }
  Dims out_dims(r);
  for (int d = 0; d < r; ++d) {
    const int64_t n = x.dim(d);
    if (repeats[d] < 0 || (n != 0 && repeats[d] > std::numeric_limits<int64_t>::max() / n)) {
      return InvalidArgument("Tile repeats " + DimsToString(repeats) + " are invalid for " +
                             x.Describe());
    }
    out_dims[d] = n * repeats[d];
  }
  ASSIGN_OR_RETURN(Tensor out, Tensor::Zeros(x.dtype(), out_dims));
  // Walks the output as [repeats0, dim0, repeats1, dim1, ..] in row-major order: along each axis
  // the pair (k, j) is output index k * dim + j, and x's element is at j whatever k is.
  const std::vector<int64_t> xs = detail::RowMajorStrides(x.dims());
  Dims walk_dims;
  std::vector<int64_t> strides;
  for (int d = 0; d < r; ++d) {
    walk_dims.insert(walk_dims.end(), {repeats[d], x.dim(d)});
    strides.insert(strides.end(), {0, xs[d]});
  }
  StridedCopy(x, 0, walk_dims, strides, &out);
  return out;
}

}  // namespace clickrt::kernels::ref
