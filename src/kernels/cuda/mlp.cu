// The whole MLP in one launch for small batches, where launch latency and the weights' trip from
// L2 dominate, not FLOPs.
//
// Grid: (C, ceil(rows / R)) with thread-block clusters of C blocks along x (Hopper). The C blocks
// of a cluster own the same R rows and split every layer's output columns between them, so each
// SM streams only 1/C of the weights; the finished columns go into every peer's shared memory
// (distributed shared memory) and a cluster barrier ends the layer. Inside a block, threads take
// (column group, k-slice) pairs: a column group is NV consecutive outputs read as one 16-byte
// weight load (coalesced across threads), a k-slice a run of k for all R rows, and the slices'
// partial sums meet in shared memory. Activations never leave shared memory between layers
// (FP32); the last layer writes `out` directly.
#include <cooperative_groups.h>

#include <algorithm>
#include <map>
#include <mutex>
#include <tuple>

#include "kernels/cuda/cuda_check.h"
#include "kernels/cuda/cuda_types.cuh"

namespace clickrt::cuda {
namespace {

namespace cg = cooperative_groups;

constexpr int kThreads = 256;
constexpr int kMaxSlices = 32;  // more slices make the partial-sum reduction the long pole
constexpr int kMaxCluster = 8;  // the portable cluster size

// Which columns and k-slices one block of the cluster takes in a layer; host and device use the
// same function, so the host can size the partial-sum buffer exactly.
struct LayerSplit {
  int j0 = 0, nj = 0, slices = 1, kc = 1;
};
__host__ __device__ inline LayerSplit SplitLayer(int64_t k, int64_t ncol, int c, int rank) {
  LayerSplit s;
  s.j0 = static_cast<int>(ncol * rank / c);
  s.nj = static_cast<int>(ncol * (rank + 1) / c) - s.j0;
  int slices = s.nj > 0 ? kThreads / s.nj : 1;
  slices = slices < 1 ? 1 : slices > kMaxSlices ? kMaxSlices : slices;
  if (slices > k) slices = static_cast<int>(k);
  s.kc = static_cast<int>((k + slices - 1) / slices);
  s.slices = static_cast<int>((k + s.kc - 1) / s.kc);
  return s;
}

// Whether a cluster of config's size can be resident, asked once per (device, kernel, smem, size):
// the answer never changes and the query costs microseconds of host time.
bool ClusterFits(int device, const void* kernel, size_t smem, const cudaLaunchConfig_t* config) {
  struct Key {
    int device;
    const void* kernel;
    size_t smem;
    unsigned c;
    bool operator<(const Key& o) const {
      return std::tie(device, kernel, smem, c) < std::tie(o.device, o.kernel, o.smem, o.c);
    }
  };
  static std::mutex mu;
  static std::map<Key, bool> known;
  const Key key{device, kernel, smem, config->gridDim.x};
  std::lock_guard<std::mutex> lock(mu);
  auto it = known.find(key);
  if (it != known.end()) return it->second;
  int clusters = 0;
  const bool fits =
      cudaOccupancyMaxActiveClusters(&clusters, kernel, config) == cudaSuccess && clusters > 0;
  if (!fits) cudaGetLastError();  // a failed query is not a launch error
  known.emplace(key, fits);
  return fits;
}

__device__ __forceinline__ float Activate(float v, int act) {
  if (act == 1) return v > 0.f ? v : 0.f;
  if (act == 2) return v >= 0.f ? 1.f / (1.f + expf(-v)) : expf(v) / (1.f + expf(v));
  return v;
}

// One layer for this block's columns: x [R, width_pad] (shared) -> the peers' y, or `out`.
template <typename WT, int R, int NV>
__device__ void LayerPass(const MlpArgs& a, const MlpLayer& layer, bool last, const float* x,
                          float* y, float* part, int width_pad, int64_t row0, int rows_here) {
  cg::cluster_group cluster = cg::this_cluster();
  const int c = static_cast<int>(cluster.num_blocks());
  const LayerSplit sp =
      SplitLayer(layer.k, layer.n / NV, c, static_cast<int>(cluster.block_rank()));
  const int64_t n = layer.n;
  const int nloc = sp.nj * NV;
  const WT* w = static_cast<const WT*>(layer.w);

  for (int t = threadIdx.x; t < sp.slices * sp.nj; t += kThreads) {
    const int jl = t % sp.nj, s = t / sp.nj;
    const int k_beg = s * sp.kc;
    const int k_end = min(static_cast<int>(layer.k), k_beg + sp.kc);
    float acc[R][NV];
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int v = 0; v < NV; ++v) acc[r][v] = 0.f;
    }
    const WT* wp = w + static_cast<int64_t>(sp.j0 + jl) * NV;
#pragma unroll 4
    for (int kk = k_beg; kk < k_end; ++kk) {
      float wv[NV];
      LoadVec<WT, NV>(wp + kk * n, wv);
#pragma unroll
      for (int r = 0; r < R; ++r) {
        const float xv = x[r * width_pad + kk];
#pragma unroll
        for (int v = 0; v < NV; ++v) acc[r][v] = fmaf(xv, wv[v], acc[r][v]);
      }
    }
#pragma unroll
    for (int r = 0; r < R; ++r) {
#pragma unroll
      for (int v = 0; v < NV; ++v) part[(s * R + r) * nloc + jl * NV + v] = acc[r][v];
    }
  }
  __syncthreads();

  for (int o = threadIdx.x; o < R * nloc; o += kThreads) {
    const int r = o / nloc, col = o - r * nloc;
    const int64_t j = static_cast<int64_t>(sp.j0) * NV + col;
    float sum = 0.f;
    for (int s = 0; s < sp.slices; ++s) sum += part[(s * R + r) * nloc + col];
    if (layer.bias) sum += __ldg(layer.bias + j);
    sum = Activate(sum, layer.activation);
    if (last) {
      if (r < rows_here) StoreAny(a.out.data, a.out.type, (row0 + r) * a.out.ld + j, sum);
    } else {
      for (int q = 0; q < c; ++q) cluster.map_shared_rank(y, q)[r * width_pad + j] = sum;
    }
  }
}

// nv_wide: bit i set when layer i's weights take VMAX-wide loads (else one element at a time).
template <typename WT, int R>
__global__ void __launch_bounds__(kThreads)
    FusedMlpKernel(const __grid_constant__ MlpArgs a, int width_pad, unsigned nv_wide) {
  constexpr int kVMax = 16 / sizeof(WT);
  extern __shared__ float smem[];
  float* part = smem + 2 * R * width_pad;
  cg::cluster_group cluster = cg::this_cluster();

  const int64_t row0 = static_cast<int64_t>(blockIdx.y) * R;
  const int rows_here = static_cast<int>(min(static_cast<int64_t>(R), a.rows - row0));
  const int64_t k0 = a.layers[0].k;
  for (int i = threadIdx.x; i < R * k0; i += kThreads) {
    const int r = static_cast<int>(i / k0);
    const int64_t kk = i - r * k0;
    smem[r * width_pad + kk] =
        r < rows_here ? LoadAny(a.in.data, a.in.type, (row0 + r) * a.in.ld + kk) : 0.f;
  }
  // Peers write into this block's shared memory from layer 0 on: all must have started.
  cluster.sync();
  for (int l = 0; l < a.count; ++l) {
    const bool last = l == a.count - 1;
    const float* x = smem + (l & 1) * R * width_pad;
    float* y = smem + ((l + 1) & 1) * R * width_pad;
    if ((nv_wide >> l) & 1u) {
      LayerPass<WT, R, kVMax>(a, a.layers[l], last, x, y, part, width_pad, row0, rows_here);
    } else {
      LayerPass<WT, R, 1>(a, a.layers[l], last, x, y, part, width_pad, row0, rows_here);
    }
    // Makes the layer's columns visible everywhere and keeps peers from overwriting the buffer
    // we still read. The last layer touches no peer memory, so no barrier before exiting.
    if (!last) cluster.sync();
  }
}

Status Check(const MlpArgs& a) {
  const auto bad = [](const std::string& m) { return InvalidArgument("FusedMlp: " + m); };
  if (a.rows < 0) return bad("rows = " + Str(a.rows) + " < 0");
  if (a.count < 1 || a.count > MlpArgs::kMaxLayers) {
    return bad("count = " + Str(a.count) + " not in [1, " + Str(MlpArgs::kMaxLayers) + "]");
  }
  if (!ValidType(a.w_type)) return bad("bad w_type");
  if (!ValidType(a.in.type) || !ValidType(a.out.type)) return bad("bad in/out type");
  for (int i = 0; i < a.count; ++i) {
    const MlpLayer& l = a.layers[i];
    const std::string name = "layers[" + Str(i) + "]";
    if (l.k <= 0 || l.k > MlpArgs::kMaxWidth || l.n <= 0 || l.n > MlpArgs::kMaxWidth) {
      return bad(name + " is [" + Str(l.k) + ", " + Str(l.n) + "], widths must be in [1, " +
                 Str(MlpArgs::kMaxWidth) + "]");
    }
    if (i > 0 && l.k != a.layers[i - 1].n) {
      return bad(name + ".k = " + Str(l.k) + " != layers[" + Str(i - 1) +
                 "].n = " + Str(a.layers[i - 1].n));
    }
    if (l.activation < 0 || l.activation > 2) {
      return bad(name + ".activation = " + Str(l.activation));
    }
    if (!l.w) return bad(name + ".w is null");
    if (!AlignedTo(l.w, SizeOf(a.w_type))) return bad(name + ".w is misaligned");
  }
  if (a.rows == 0) return Status::Ok();
  if (a.rows > 65535LL * 8) return bad("rows = " + Str(a.rows) + " is too many for one launch");
  if (!a.in.data) return bad("in.data is null");
  if (!a.out.data) return bad("out.data is null");
  const int64_t k0 = a.layers[0].k, n_last = a.layers[a.count - 1].n;
  if (a.rows > 1 && a.in.ld < k0) return bad("in.ld " + Str(a.in.ld) + " < " + Str(k0));
  if (a.rows > 1 && a.out.ld < n_last) return bad("out.ld " + Str(a.out.ld) + " < " + Str(n_last));
  return Status::Ok();
}

template <typename WT, int R>
Status Launch(MlpArgs a, cudaStream_t stream) {
  constexpr int kVMax = 16 / sizeof(WT);
  if (a.rows == 1) a.in.ld = a.layers[0].k, a.out.ld = a.layers[a.count - 1].n;
  unsigned nv_wide = 0;
  int64_t width = a.layers[0].k;
  for (int i = 0; i < a.count; ++i) {
    if (a.layers[i].n % kVMax == 0 && AlignedTo(a.layers[i].w, 16)) nv_wide |= 1u << i;
    width = std::max(width, a.layers[i].n);
  }
  const int width_pad = static_cast<int>((width + 3) / 4 * 4);
  const int64_t row_blocks = (a.rows + R - 1) / R;

  int device = 0, sms = 0;
  CUDA_RETURN_IF_ERROR(cudaGetDevice(&device));
  CUDA_RETURN_IF_ERROR(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  int c = kMaxCluster;
  while (c > 1 && row_blocks * c > sms) c /= 2;

  const auto kernel = FusedMlpKernel<WT, R>;
  for (;; c /= 2) {
    // Exact partial-sum space: the largest slices x columns any block of the cluster takes.
    int64_t part = 0;
    for (int i = 0; i < a.count; ++i) {
      const int nv = (nv_wide >> i) & 1u ? kVMax : 1;
      for (int rank = 0; rank < c; ++rank) {
        const LayerSplit sp = SplitLayer(a.layers[i].k, a.layers[i].n / nv, c, rank);
        part = std::max<int64_t>(part, static_cast<int64_t>(sp.slices) * sp.nj * nv * R);
      }
    }
    const size_t smem = sizeof(float) * (2 * static_cast<size_t>(R) * width_pad + part);
    if (smem > 48 * 1024) {
      CUDA_RETURN_IF_ERROR(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                                static_cast<int>(smem)));
    }
    cudaLaunchConfig_t config = {};
    config.gridDim = dim3(static_cast<unsigned>(c), static_cast<unsigned>(row_blocks));
    config.blockDim = dim3(kThreads);
    config.dynamicSmemBytes = smem;
    config.stream = stream;
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeClusterDimension;
    attr[0].val.clusterDim.x = static_cast<unsigned>(c);
    attr[0].val.clusterDim.y = 1;
    attr[0].val.clusterDim.z = 1;
    config.attrs = attr;
    config.numAttrs = 1;
    // A cluster that cannot be co-scheduled (shared memory, a small GPC) falls back to a
    // smaller one instead of failing the launch.
    if (c > 1 && !ClusterFits(device, reinterpret_cast<const void*>(kernel), smem, &config)) {
      continue;
    }
    CUDA_RETURN_IF_ERROR(cudaLaunchKernelEx(&config, kernel, a, width_pad, nv_wide));
    return Status::Ok();
  }
}

}  // namespace

Status LaunchFusedMlp(const MlpArgs& args, cudaStream_t stream) {
  RETURN_IF_ERROR(Check(args));
  if (args.rows == 0) return Status::Ok();
  // R rows share each weight load; 8 keeps the FMAs per byte of weights near the SM's balance.
  const int64_t r = args.rows >= 8 ? 8 : args.rows >= 4 ? 4 : args.rows >= 2 ? 2 : 1;
  RETURN_IF_ERROR(DispatchType(args.w_type, [&](auto w) -> Status {
    using WT = decltype(w);
    switch (r) {
      case 8:
        return Launch<WT, 8>(args, stream);
      case 4:
        return Launch<WT, 4>(args, stream);
      case 2:
        return Launch<WT, 2>(args, stream);
      default:
        return Launch<WT, 1>(args, stream);
    }
  }));
  CUDA_RETURN_IF_ERROR(cudaGetLastError());
  return Status::Ok();
}

}  // namespace clickrt::cuda
