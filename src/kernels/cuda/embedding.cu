// Embedding gather + FM + first-order sum in one pass over the ids, one warp per batch row.
//
// A warp resolves up to 32 fields' ids at once (one lane each, so every id, offset and size is
// read once), then its lanes split into P groups of `chunks` lanes: group g copies fields g, g+P,
// ... and each lane of a group moves VEC consecutive elements (16-byte loads where dim, type and
// alignment allow: dim 16 fp32 -> 4 lanes x float4, dim 16 fp16 -> 2 lanes x uint4). The FM sums
// stay per lane (each lane always owns the same VEC dims) until one shuffle tree at the end.
#include <algorithm>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_types.cuh"

namespace clickrt::cuda {
namespace {

constexpr int kWarpsPerBlock = 4;

// Bytes per row of a row-wise format (kernels/cpu/quant_format.h's RowwiseBytes).
__host__ __device__ __forceinline__ int64_t RowBytes(int fmt, int64_t dim) {
  return fmt == 1 ? dim + 8 : (dim + 1) / 2 + 4;
}
constexpr unsigned kFullMask = 0xffffffffu;

struct alignas(16) BadPos {
  long long row, field;
};

// Keeps the smallest (row, field) in row-major order in error[0..1]; error starts at {-1, -1}.
__device__ void ReportBadId(int64_t* error, int64_t row, int64_t field) {
#if __CUDA_ARCH__ >= 900
  BadPos* slot = reinterpret_cast<BadPos*>(error);
  BadPos seen{static_cast<long long>(*reinterpret_cast<volatile int64_t*>(error)),
              static_cast<long long>(*reinterpret_cast<volatile int64_t*>(error + 1))};
  const BadPos mine{row, field};
  for (;;) {
    if (seen.row >= 0 && (seen.row < row || (seen.row == row && seen.field <= field))) return;
    const BadPos old = atomicCAS(slot, seen, mine);
    if (old.row == seen.row && old.field == seen.field) return;
    seen = old;
  }
#else
  // No 16-byte CAS before sm_90: the first bad id to arrive wins (still a consistent pair).
  auto* r = reinterpret_cast<unsigned long long*>(error);
  if (atomicCAS(r, ~0ull, static_cast<unsigned long long>(row)) == ~0ull) error[1] = field;
#endif
}

// The table row for (row, f), or -1 (reported) when it falls outside the table. Negative rows
// in [-V, 0) wrap, as the reference Gather does.
__device__ __forceinline__ int64_t ResolveId(const EmbeddingArgs& a, int64_t row, int64_t f) {
  const int64_t at = row * a.ids_ld + f;
  int64_t id = a.ids_int32 ? static_cast<int64_t>(__ldg(static_cast<const int32_t*>(a.ids) + at))
                           : __ldg(reinterpret_cast<const long long*>(a.ids) + at);
  if (a.sizes && (id < 0 || id >= __ldg(reinterpret_cast<const long long*>(a.sizes) + f))) id = 0;
  if (a.offsets) id += __ldg(reinterpret_cast<const long long*>(a.offsets) + f);
  if (id < -a.table_rows || id >= a.table_rows) {
    if (a.error) ReportBadId(a.error, row, f);
    return -1;
  }
  return id < 0 ? id + a.table_rows : id;
}

// Row access: a dense [rows, dim] table of TT, or row-wise quantized rows (FMT 1 int8, 2 int4;
// layout in kernels/cpu/quant_format.h) dequantized with one fused multiply-add (one rounding, as
// the CPU kernels do), so the values equal the CPU's bit for bit.
template <typename TT, int FMT>
struct Rows {
  const uint8_t* base;
  int64_t dim, bytes;  // row bytes
  template <int VEC>
  __device__ __forceinline__ void Load(int64_t idx, int64_t col, float (&v)[VEC]) const {
    if constexpr (FMT == 0) {
      LoadVec<TT, VEC>(reinterpret_cast<const TT*>(base) + idx * dim + col, v);
    } else {
      const uint8_t* r = base + idx * bytes;
      float scale, bias;
      if constexpr (FMT == 1) {
        scale = LoadUnaligned<float>(r + dim);
        bias = LoadUnaligned<float>(r + dim + 4);
      } else {
        const int64_t nb = (dim + 1) / 2;
        scale = __half2float(__ushort_as_half(LoadUnaligned<unsigned short>(r + nb)));
        bias = __half2float(__ushort_as_half(LoadUnaligned<unsigned short>(r + nb + 2)));
      }
#pragma unroll
      for (int e = 0; e < VEC; ++e) {
        const int64_t j = col + e;
        int code;
        if constexpr (FMT == 1) {
          code = __ldg(r + j);
        } else {
          const int b = __ldg(r + j / 2);
          code = (j & 1) ? (b >> 4) : (b & 15);
        }
        v[e] = __fmaf_rn(static_cast<float>(code), scale, bias);
      }
    }
  }
  // Bytes-level reads of a value the row layout may leave unaligned.
  template <typename T>
  __device__ __forceinline__ static T LoadUnaligned(const uint8_t* p) {
    T t;
    uint8_t* d = reinterpret_cast<uint8_t*>(&t);
#pragma unroll
    for (int i = 0; i < static_cast<int>(sizeof(T)); ++i) d[i] = __ldg(p + i);
    return t;
  }
};

__device__ __forceinline__ float WarpSum(float v) {
#pragma unroll
  for (int o = 16; o > 0; o /= 2) v += __shfl_xor_sync(kFullMask, v, o);
  return v;
}

// chunks = dim / VEC; cw = lanes per field group = min(chunks, 32); groups = P (a power of two,
// 1 when chunks > 32, in which case the chunk loop runs several rounds).
template <typename TT, typename OT, int VEC, int FMT>
__global__ void __launch_bounds__(kWarpsPerBlock * 32)
    EmbeddingKernel(const EmbeddingArgs a, int chunks, int cw, int groups) {
  const int lane = threadIdx.x & 31;
  const int64_t row = blockIdx.x * static_cast<int64_t>(kWarpsPerBlock) + threadIdx.x / 32;
  if (row >= a.rows) return;  // uniform per warp: every shuffle below sees all 32 lanes

  const Rows<TT, FMT> table{static_cast<const uint8_t*>(a.table), a.dim,
                            FMT == 0 ? 0 : RowBytes(FMT, a.dim)};
  OT* out = a.out.data ? static_cast<OT*>(a.out.data) + row * a.out.ld : nullptr;
  const int g = lane / cw, cl = lane % cw;
  const int64_t dim = a.dim;
  float fm_acc = 0.f, first_acc = 0.f;

  for (int c0 = 0; c0 < chunks; c0 += cw) {
    const int c = c0 + cl;
    const bool lane_active = g < groups && c < chunks;
    float s[VEC], q[VEC];
#pragma unroll
    for (int v = 0; v < VEC; ++v) s[v] = q[v] = 0.f;

    for (int64_t f0 = 0; f0 < a.fields; f0 += 32) {
      const int tile = static_cast<int>(a.fields - f0 < 32 ? a.fields - f0 : 32);
      const int64_t my_idx = lane < tile ? ResolveId(a, row, f0 + lane) : -1;
      if (a.table1 && c0 == 0 && my_idx >= 0) {
        first_acc += LoadF(static_cast<const TT*>(a.table1) + my_idx);
      }
      for (int it = 0; it * groups < tile; ++it) {
        const int fl = it * groups + g;
        const int64_t idx = __shfl_sync(kFullMask, my_idx, fl & 31);
        if (!lane_active || fl >= tile) continue;
        float v[VEC];
        if (idx >= 0) {
          table.template Load<VEC>(idx, c * VEC, v);
        } else {
#pragma unroll
          for (int e = 0; e < VEC; ++e) v[e] = 0.f;
        }
        if (out) StoreVec<OT, VEC>(out + (f0 + fl) * dim + c * VEC, v);
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          s[e] += v[e];
          q[e] = fmaf(v[e], v[e], q[e]);
        }
      }
    }
    if (a.fm) {
      // Lanes sharing a chunk are cw apart; fold groups g >= st onto g - st.
      for (int st = groups / 2; st >= 1; st /= 2) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) {
          s[e] += __shfl_down_sync(kFullMask, s[e], st * cw);
          q[e] += __shfl_down_sync(kFullMask, q[e], st * cw);
        }
      }
      if (g == 0 && c < chunks) {
#pragma unroll
        for (int e = 0; e < VEC; ++e) fm_acc += s[e] * s[e] - q[e];
      }
    }
  }
  if (a.fm) {
    fm_acc = WarpSum(fm_acc);
    if (lane == 0) a.fm[row] = 0.5f * fm_acc;
  }
  if (a.table1) {
    first_acc = WarpSum(first_acc);
    if (lane == 0) {
      a.first[row] = first_acc + (a.first_bias_ptr ? *a.first_bias_ptr : a.first_bias);
    }
  }
}

Status Check(const EmbeddingArgs& a) {
  const auto bad = [](const std::string& m) { return InvalidArgument("Embedding: " + m); };
  if (a.rows < 0) return bad("rows = " + Str(a.rows) + " < 0");
  if (a.fields <= 0) return bad("fields = " + Str(a.fields) + " must be > 0");
  if (a.dim <= 0) return bad("dim = " + Str(a.dim) + " must be > 0");
  if (a.table_rows <= 0) return bad("table_rows = " + Str(a.table_rows) + " must be > 0");
  if (!ValidType(a.table_type)) return bad("bad table_type");
  if (a.out.data && !ValidType(a.out.type)) return bad("bad out.type");
  if ((a.table1 == nullptr) != (a.first == nullptr)) {
    return bad("table1 and first must be given together");
  }
  if (a.rows == 0) return Status::Ok();
  if (!a.ids) return bad("ids is null");
  if (!a.table) return bad("table is null");
  if (a.ids_ld < a.fields) return bad("ids_ld " + Str(a.ids_ld) + " < fields " + Str(a.fields));
  if (a.out.data && a.out.ld < a.fields * a.dim) {
    return bad("out.ld " + Str(a.out.ld) + " < fields * dim = " + Str(a.fields * a.dim));
  }
  if (a.error && !AlignedTo(a.error, 16)) return bad("error must be 16-byte aligned");
  if (!AlignedTo(a.ids, a.ids_int32 ? 4 : 8)) return bad("ids is misaligned");
  if (a.row_format < 0 || a.row_format > 2) return bad("row_format " + Str(a.row_format) + " is not 0, 1 or 2");
  if (a.row_format == 0 && !AlignedTo(a.table, SizeOf(a.table_type))) return bad("table is misaligned");
  return Status::Ok();
}

template <typename TT, typename OT, int VEC, int FMT>
void Launch(const EmbeddingArgs& a, cudaStream_t stream) {
  const int chunks = static_cast<int>(a.dim / VEC);
  const int cw = std::min(chunks, 32);
  int groups = 1;
  while (groups * 2 * cw <= 32) groups *= 2;
  const int64_t blocks = (a.rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  EmbeddingKernel<TT, OT, VEC, FMT>
      <<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(a, chunks, cw, groups);
}

}  // namespace

Status LaunchEmbedding(const EmbeddingArgs& args, cudaStream_t stream) {
  RETURN_IF_ERROR(Check(args));
  if (args.rows == 0) return Status::Ok();
  if ((args.rows + kWarpsPerBlock - 1) / kWarpsPerBlock > 0x7fffffff) {
    return InvalidArgument("Embedding: rows = " + Str(args.rows) + " is too many for one launch");
  }
  const size_t ts = SizeOf(args.table_type);
  const DataType out_type = args.out.data ? args.out.type : DataType::kF32;
  if (args.row_format != 0) {
    // Quantized rows: 4 codes per lane where the row layout keeps them 4-aligned (dim % 4 == 0:
    // int8 rows of dim + 8 bytes, int4 rows of dim / 2 + 4), else one.
    int vec = args.dim % 4 == 0 ? 4 : 1;
    if (args.out.data) vec = std::min(vec, VecWidth(args.out.data, args.out.ld, args.dim, SizeOf(out_type), vec));
    DispatchType(args.table_type, [&](auto t) {
      using TT = decltype(t);
      DispatchType(out_type, [&](auto o) {
        using OT = decltype(o);
        const bool four = vec == 4;
        if (args.row_format == 1) {
          four ? Launch<TT, OT, 4, 1>(args, stream) : Launch<TT, OT, 1, 1>(args, stream);
        } else {
          four ? Launch<TT, OT, 4, 2>(args, stream) : Launch<TT, OT, 1, 2>(args, stream);
        }
      });
    });
    CUDA_RETURN_IF_ERROR(cudaGetLastError());
    return Status::Ok();
  }
  int vec = VecWidth(args.table, args.dim, args.dim, ts, static_cast<int>(16 / ts));
  if (args.out.data) {
    vec = std::min(vec, VecWidth(args.out.data, args.out.ld, args.dim, SizeOf(out_type), vec));
  }
  DispatchType(args.table_type, [&](auto t) {
    using TT = decltype(t);
    DispatchType(out_type, [&](auto o) {
      using OT = decltype(o);
      switch (vec) {
        case 8:
          if constexpr (sizeof(TT) == 2) Launch<TT, OT, 8, 0>(args, stream);
          break;
        case 4:
          Launch<TT, OT, 4, 0>(args, stream);
          break;
        case 2:
          Launch<TT, OT, 2, 0>(args, stream);
          break;
        default:
          Launch<TT, OT, 1, 0>(args, stream);
          break;
      }
    });
  });
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace clickrt::cuda
