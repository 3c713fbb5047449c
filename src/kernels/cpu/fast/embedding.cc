// Embedding gather, FM and first-order sum in one pass over the ids. Table rows are prefetched a
// few batch rows ahead (large tables live in DRAM and the ids are random); the per-row FM math is
// the ISA kernel's fm_row (fm_row_int8 / fm_row_int4 on quantized tables, which dequantize the rows
// on the fly into the output).
#include <algorithm>
#include <cstring>
#include <mutex>
#include <string>
#include <vector>

#include "base/dtype.h"
#include "kernels/cpu/fast/fast_kernels.h"
#include "kernels/cpu/fast/kernel_table.h"

namespace clickrt::kernels::fast {

namespace {

// Batch rows whose table rows are prefetched ahead of the one being computed.
constexpr int64_t kLookahead = 4;
constexpr int64_t kRowsPerGrain = 16;

struct BadId {
  int64_t row = -1, field = 0, id = 0;
};

// The first bad id over all chunks, in row-major order.
class FirstBadId {
 public:
  void Report(const BadId& b) {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_.row < 0 || b.row < first_.row || (b.row == first_.row && b.field < first_.field))
      first_ = b;
  }
  Status ToStatus(int64_t V, int64_t D) const {
    if (first_.row < 0) return Status::Ok();
    return OutOfRange("id " + std::to_string(first_.id) + " at [row " + std::to_string(first_.row) +
                      ", field " + std::to_string(first_.field) + "] is out of range [-" +
                      std::to_string(V) + ", " + std::to_string(V) + ") of table [" +
                      std::to_string(V) + ", " + std::to_string(D) + "]");
  }

 private:
  std::mutex mu_;
  BadId first_;
};

Status Check(const EmbeddingFmArgs& a) {
  const auto bad = [](const std::string& m) { return InvalidArgument("EmbeddingFm: " + m); };
  if (a.V <= 0 || a.D <= 0 || a.F <= 0 || a.B < 0) {
    return bad("bad sizes V=" + std::to_string(a.V) + " D=" + std::to_string(a.D) +
               " B=" + std::to_string(a.B) + " F=" + std::to_string(a.F));
  }
  if (a.row_format != static_cast<int32_t>(RowFormat::kFloat32) &&
      a.row_format != static_cast<int32_t>(RowFormat::kInt8Rowwise) &&
      a.row_format != static_cast<int32_t>(RowFormat::kInt4Rowwise)) {
    return bad("unknown row_format " + std::to_string(a.row_format));
  }
  if (a.row_format != 0 && !a.qtable) return bad("null qtable");
  if (a.row_format == 0 && !a.table) return bad("null table");
  if (a.B > 0 && !a.ids) return bad("null ids");
  if (a.emb_out && a.emb_stride < a.F * a.D) {
    return bad("emb_stride " + std::to_string(a.emb_stride) +
               " < F*D = " + std::to_string(a.F * a.D));
  }
  if (a.first_order_table && !a.first_order_out) return bad("first_order_out is null");
  return Status::Ok();
}

// HalfToFloat with the common case (a normal number) inline: a per-row call was a third of the
// int4 path's time.
inline float HalfBitsToFloat(uint16_t h) {
  const uint32_t e = (h >> 10) & 0x1fu;
  if (e == 0 || e == 0x1f) return HalfToFloat(h);  // zero, subnormal, inf, NaN
  const uint32_t bits =
      (static_cast<uint32_t>(h & 0x8000u) << 16) | (((h & 0x7fffu) << 13) + ((127u - 15u) << 23));
  float f;
  std::memcpy(&f, &bits, 4);
  return f;
}

// The scale and bias of a quantized row (fmt != kFloat32) as floats.
inline void RowScaleBias(RowFormat fmt, const uint8_t* row, int64_t D, float* scale, float* bias) {
  if (fmt == RowFormat::kInt8Rowwise) {
    std::memcpy(scale, row + D, 4);
    std::memcpy(bias, row + D + 4, 4);
  } else {
    uint16_t h[2];
    std::memcpy(h, row + (D + 1) / 2, 4);
    *scale = HalfBitsToFloat(h[0]);
    *bias = HalfBitsToFloat(h[1]);
  }
}

// Rows [b0, b1) of the fused pass.
void RunRows(const EmbeddingFmArgs& a, const detail::KernelTable& kt, int64_t b0, int64_t b1,
             FirstBadId* errors) {
  const int64_t F = a.F, D = a.D, V = a.V;
  const int64_t slots = kLookahead + 1;
  const RowFormat fmt = static_cast<RowFormat>(a.row_format);
  const bool quantized = fmt != RowFormat::kFloat32;
  std::vector<const float*> rows(static_cast<size_t>(slots * F));
  std::vector<const uint8_t*> qrows(quantized ? static_cast<size_t>(slots * F) : 0);
  std::vector<float> scales(quantized ? static_cast<size_t>(F) : 0), biases(scales.size());
  std::vector<int64_t> idx(a.first_order_table ? static_cast<size_t>(slots * F) : 0);
  const size_t row_bytes = static_cast<size_t>(RowwiseBytes(fmt, D));

  // Resolves row b's ids into slot b % slots and prefetches them; false on a bad id.
  const auto resolve = [&](int64_t b) {
    const int64_t* id = a.ids + b * F;
    const float** r = rows.data() + (b % slots) * F;
    int64_t* ix = idx.empty() ? nullptr : idx.data() + (b % slots) * F;
    for (int64_t f = 0; f < F; ++f) {
      int64_t i = id[f];
      if (a.sizes && (i < 0 || i >= a.sizes[f])) i = 0;
      if (a.offsets) i += a.offsets[f];
      if (i < -V || i >= V) {
        errors->Report({b, f, i});
        return false;
      }
      if (i < 0) i += V;
      const char* start;
      if (quantized) {
        qrows[(b % slots) * F + f] = a.qtable + i * static_cast<int64_t>(row_bytes);
        start = reinterpret_cast<const char*>(qrows[(b % slots) * F + f]);
      } else {
        r[f] = a.table + i * D;
        start = reinterpret_cast<const char*>(r[f]);
      }
      __builtin_prefetch(start);
      __builtin_prefetch(start + row_bytes - 1);  // rows may straddle two cache lines
      if (ix) {
        ix[f] = i;
        __builtin_prefetch(a.first_order_table + i);
      }
    }
    return true;
  };

  for (int64_t b = b0; b < std::min(b1, b0 + kLookahead); ++b) {
    if (!resolve(b)) return;
  }
  for (int64_t b = b0; b < b1; ++b) {
    if (b + kLookahead < b1 && !resolve(b + kLookahead)) return;
    float* out = a.emb_out ? a.emb_out + b * a.emb_stride : nullptr;
    const float** r = rows.data() + (b % slots) * F;
    if (quantized) {
      const uint8_t* const* qr = qrows.data() + (b % slots) * F;
      if (out || a.fm_out) {  // else only the first-order sum is wanted
        for (int64_t f = 0; f < F; ++f) RowScaleBias(fmt, qr[f], D, &scales[f], &biases[f]);
      }
      if (a.fm_out) {
        const auto fm_row = fmt == RowFormat::kInt8Rowwise ? kt.fm_row_int8 : kt.fm_row_int4;
        a.fm_out[b] = fm_row(qr, scales.data(), biases.data(), F, D, out);
      } else if (out) {
        const auto dequant = fmt == RowFormat::kInt8Rowwise ? kt.dequant_int8 : kt.dequant_int4;
        for (int64_t f = 0; f < F; ++f) dequant(qr[f], D, scales[f], biases[f], out + f * D);
      }
    } else if (a.fm_out) {
      a.fm_out[b] = kt.fm_row(r, F, D, out);
    } else if (out) {
      for (int64_t f = 0; f < F; ++f) std::memcpy(out + f * D, r[f], row_bytes);
    }
    if (a.first_order_table) {
      const int64_t* ix = idx.data() + (b % slots) * F;
      float s = 0.f;
      for (int64_t f = 0; f < F; ++f) s += a.first_order_table[ix[f]];
      a.first_order_out[b] = s;
    }
  }
}

}  // namespace

Status EmbeddingFm(const EmbeddingFmArgs& args, ThreadPool* pool) {
  RETURN_IF_ERROR(Check(args));
  if (args.B == 0) return Status::Ok();
  const detail::KernelTable& kt = detail::ActiveKernels();
  FirstBadId errors;
  ParallelFor(pool, args.B, kRowsPerGrain,
              [&](int64_t b0, int64_t b1) { RunRows(args, kt, b0, b1, &errors); });
  return errors.ToStatus(args.V, args.D);
}

Status EmbeddingLookup(const float* table, int64_t V, int64_t D, const int64_t* ids, int64_t B,
                       int64_t F, const int64_t* offsets, const int64_t* sizes, float* out,
                       int64_t out_stride, ThreadPool* pool) {
  if (B > 0 && !out) return InvalidArgument("EmbeddingLookup: null output");
  EmbeddingFmArgs a;
  a.table = table;
  a.V = V;
  a.D = D;
  a.ids = ids;
  a.B = B;
  a.F = F;
  a.offsets = offsets;
  a.sizes = sizes;
  a.emb_out = out;
  a.emb_stride = out_stride;
  return EmbeddingFm(a, pool).WithContext("EmbeddingLookup");
}

Status EmbeddingLookupQ(const uint8_t* qtable, RowFormat fmt, int64_t V, int64_t D,
                        const int64_t* ids, int64_t B, int64_t F, const int64_t* offsets,
                        const int64_t* sizes, float* out, int64_t out_stride, ThreadPool* pool) {
  if (B > 0 && !out) return InvalidArgument("EmbeddingLookupQ: null output");
  EmbeddingFmArgs a;
  a.V = V;
  a.D = D;
  a.ids = ids;
  a.B = B;
  a.F = F;
  a.offsets = offsets;
  a.sizes = sizes;
  a.emb_out = out;
  a.emb_stride = out_stride;
  if (fmt == RowFormat::kFloat32) {
    a.table = reinterpret_cast<const float*>(qtable);
  } else {
    a.qtable = qtable;
    a.row_format = static_cast<int32_t>(fmt);
  }
  return EmbeddingFm(a, pool).WithContext("EmbeddingLookupQ");
}

Status FmInteraction(const float* emb, int64_t B, int64_t F, int64_t D, int64_t in_stride,
                     float* out, ThreadPool* pool) {
  if (B < 0 || F <= 0 || D <= 0 || in_stride < F * D || (B > 0 && (!emb || !out))) {
    return InvalidArgument("FmInteraction: bad arguments B=" + std::to_string(B) +
                           " F=" + std::to_string(F) + " D=" + std::to_string(D) +
                           " in_stride=" + std::to_string(in_stride));
  }
  const detail::KernelTable& kt = detail::ActiveKernels();
  ParallelFor(pool, B, 64, [&](int64_t b0, int64_t b1) {
    std::vector<const float*> rows(static_cast<size_t>(F));
    for (int64_t b = b0; b < b1; ++b) {
      const float* e = emb + b * in_stride;
      for (int64_t f = 0; f < F; ++f) rows[f] = e + f * D;
      out[b] = kt.fm_row(rows.data(), F, D, nullptr);
    }
  });
  return Status::Ok();
}

}  // namespace clickrt::kernels::fast
