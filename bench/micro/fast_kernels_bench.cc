// Microbenchmarks of the fast CPU kernels, with oneDNN matmul on the same shapes for comparison
// (OpenBLAS 0.3.21 sgemm was measured too and dropped: 30-37 GFLOP/s at these shapes with 2
// threads). Shapes are the DeepFM benchmark model's: 26 fields x 16-dim embeddings + 13 dense
// features -> MLP 429-400-400-400-1.
//
//   fast_kernels_bench --benchmark_counter_tabular=true
//   fast_kernels_bench --benchmark_filter='BM_Linear/K:429/N:400/M:64/isa:1'
//   fast_kernels_bench --benchmark_filter='BM_DeepFmKernels/.*/t:2/'
//
// Args of the Linear benchmarks: K, N, M, ISA (0 generic, 1 avx2, 2 avx512), threads. On a shared
// machine pin the process (taskset -c 2,3) and use --benchmark_repetitions.

// GCC 12 flags the undefined registers inside its own AVX-512 intrinsics as uninitialized.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

// clang-format off
#include <immintrin.h>
// clang-format on

#include <benchmark/benchmark.h>

#include <cstring>
#include <memory>
#include <oneapi/dnnl/dnnl.hpp>
#include <random>
#include <vector>

#include "kernels/cpu/fast/fast_kernels.h"

namespace clickrt::kernels::fast {
namespace {

std::vector<float> Random(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = d(rng);
  return v;
}

void SetFlops(benchmark::State& state, double flops_per_iter) {
  state.counters["GFLOPS"] =
      benchmark::Counter(flops_per_iter * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}

ThreadPool* Pool(int threads) {
  static std::unique_ptr<ThreadPool> pools[9];
  if (!pools[threads]) pools[threads] = std::make_unique<ThreadPool>(threads);
  return pools[threads].get();
}

// The core's FMA peak for an ISA (register-only FMAs, 12 or 24 independent chains), so the
// kernels' GFLOPS can be read as a fraction of what this machine can do. Arg: ISA, threads.
__attribute__((target("avx2,fma"))) float PeakAvx2(int64_t iters) {
  __m256 acc[12];
  for (int i = 0; i < 12; ++i) acc[i] = _mm256_set1_ps(static_cast<float>(i));
  const __m256 a = _mm256_set1_ps(0.999f), b = _mm256_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 12
    for (int i = 0; i < 12; ++i) acc[i] = _mm256_fmadd_ps(acc[i], a, b);
  }
  for (int i = 1; i < 12; ++i) acc[0] = _mm256_add_ps(acc[0], acc[i]);
  return _mm256_cvtss_f32(acc[0]);
}
__attribute__((target("avx512f,avx2,fma"))) float PeakAvx512(int64_t iters) {
  __m512 acc[24];
  for (int i = 0; i < 24; ++i) acc[i] = _mm512_set1_ps(static_cast<float>(i));
  const __m512 a = _mm512_set1_ps(0.999f), b = _mm512_set1_ps(0.001f);
  for (int64_t it = 0; it < iters; ++it) {
#pragma GCC unroll 24
    for (int i = 0; i < 24; ++i) acc[i] = _mm512_fmadd_ps(acc[i], a, b);
  }
  for (int i = 1; i < 24; ++i) acc[0] = _mm512_add_ps(acc[0], acc[i]);
  return _mm512_reduce_add_ps(acc[0]);
}
void BM_PeakFma(benchmark::State& state) {
  const bool avx512 = state.range(0) == 2;
  if (avx512 ? !Cpu().avx512 : !(Cpu().avx2 && Cpu().fma)) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  ThreadPool* pool = Pool(static_cast<int>(state.range(1)));
  const int64_t iters = 100000;
  for (auto _ : state) {
    pool->ParallelFor(pool->size(), 1, [&](int64_t, int64_t) {
      benchmark::DoNotOptimize(avx512 ? PeakAvx512(iters) : PeakAvx2(iters));
    });
  }
  SetFlops(state, 2.0 * iters * (avx512 ? 24 * 16 : 12 * 8) * pool->size());
}
BENCHMARK(BM_PeakFma)->ArgsProduct({{1, 2}, {1, 2}})->UseRealTime()->ArgNames({"isa", "t"});

void BM_Linear(benchmark::State& state) {
  const int64_t K = state.range(0), N = state.range(1), M = state.range(2);
  const Isa isa = static_cast<Isa>(state.range(3));
  if (!ForceIsa(isa).ok()) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  auto w = Random(K * N, 1), b = Random(N, 2), x = Random(M * K, 3);
  std::vector<float> y(M * N);
  auto lin = Linear::Create(w.data(), K, N, b.data(), Activation::kRelu,
                            Pool(static_cast<int>(state.range(4))));
  (void)ForceIsa(Cpu().best);
  if (!lin.ok()) {
    state.SkipWithError(lin.status().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize((*lin)->Run(x.data(), M, K, y.data(), N));
    benchmark::ClobberMemory();
  }
  SetFlops(state, 2.0 * M * K * N);
  state.SetLabel((*lin)->name(M));
}

void LinearArgs(benchmark::internal::Benchmark* b) {
  for (int64_t kn : {429, 400}) {
    for (int64_t m : {1, 8, 64, 512, 4096}) {
      for (int isa : {0, 1, 2}) {
        for (int t : {1, 2}) {
          if (isa == 0 && m > 512) continue;  // generic is only a fallback
          b->Args({kn, 400, m, isa, t});
        }
      }
    }
  }
  for (int64_t m : {1, 64, 4096}) b->Args({400, 1, m, 2, 2});  // the final logit layer
}
BENCHMARK(BM_Linear)->Apply(LinearArgs)->UseRealTime()->ArgNames({"K", "N", "M", "isa", "t"});

// The int8 Linear on the same shapes (x quantized on the fly, per-channel weight scales, bias +
// ReLU): avx512 runs the VNNI kernel where Cpu().avx512_vnni. Same args as BM_Linear; GFLOPS
// counts 2 integer ops per multiply-add so the two read side by side.
void BM_QLinear(benchmark::State& state) {
  const int64_t K = state.range(0), N = state.range(1), M = state.range(2);
  const Isa isa = static_cast<Isa>(state.range(3));
  if (!ForceIsa(isa).ok()) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  auto b = Random(N, 2), x = Random(M * K, 3), w_scale = Random(N, 4);
  std::vector<int8_t> wq(K * N);
  std::mt19937 rng(1);
  for (auto& v : wq) v = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
  for (auto& s : w_scale) s = 0.01f + 0.005f * s;
  std::vector<float> y(M * N);
  auto lin = QLinear::Create(wq.data(), K, N, w_scale.data(), b.data(), 1.f / 127.f,
                             Activation::kRelu, Pool(static_cast<int>(state.range(4))));
  (void)ForceIsa(Cpu().best);
  if (!lin.ok()) {
    state.SkipWithError(lin.status().ToString().c_str());
    return;
  }
  for (auto _ : state) {
    benchmark::DoNotOptimize((*lin)->Run(x.data(), M, K, y.data(), N));
    benchmark::ClobberMemory();
  }
  SetFlops(state, 2.0 * M * K * N);
  state.SetLabel((*lin)->name(M));
}

void QLinearArgs(benchmark::internal::Benchmark* b) {
  for (int64_t kn : {429, 400}) {
    for (int64_t m : {1, 8, 64, 512, 4096}) {
      for (int isa : {1, 2}) {
        for (int t : {1, 2}) b->Args({kn, 400, m, isa, t});
      }
    }
  }
}
BENCHMARK(BM_QLinear)->Apply(QLinearArgs)->UseRealTime()->ArgNames({"K", "N", "M", "isa", "t"});

// oneDNN matmul + bias + relu with weights in the layout oneDNN picks, primitive built for fixed M.
void BM_OneDnnMatmul(benchmark::State& state) {
  using namespace dnnl;
  using tag = memory::format_tag;
  using dt = memory::data_type;
  const int64_t K = state.range(0), N = state.range(1), M = state.range(2);
  engine eng(engine::kind::cpu, 0);
  stream s(eng);
  memory::desc src_md({M, K}, dt::f32, tag::ab), wany_md({K, N}, dt::f32, tag::any),
      w_md({K, N}, dt::f32, tag::ab), b_md({1, N}, dt::f32, tag::ab),
      dst_md({M, N}, dt::f32, tag::ab);
  post_ops po;
  po.append_eltwise(1.f, algorithm::eltwise_relu, 0.f, 0.f);
  primitive_attr attr;
  attr.set_post_ops(po);
  matmul::primitive_desc pd(matmul::desc(src_md, wany_md, b_md, dst_md), attr, eng);
  auto w = Random(K * N, 1), b = Random(N, 2), x = Random(M * K, 3);
  std::vector<float> y(M * N);
  memory w_user(w_md, eng, w.data()), w_mem(pd.weights_desc(), eng);
  reorder(w_user, w_mem).execute(s, w_user, w_mem);
  memory x_mem(src_md, eng, x.data()), b_mem(b_md, eng, b.data()), y_mem(dst_md, eng, y.data());
  matmul mm(pd);
  for (auto _ : state) {
    mm.execute(s, {{DNNL_ARG_SRC, x_mem},
                   {DNNL_ARG_WEIGHTS, w_mem},
                   {DNNL_ARG_BIAS, b_mem},
                   {DNNL_ARG_DST, y_mem}});
    s.wait();
  }
  SetFlops(state, 2.0 * M * K * N);
  state.SetLabel(std::string("onednn ") + pd.impl_info_str());
}
BENCHMARK(BM_OneDnnMatmul)
    ->ArgsProduct({{429, 400}, {400}, {1, 8, 64, 512, 4096}})
    ->UseRealTime()
    ->ArgNames({"K", "N", "M"});

// Fused embedding gather + FM + first order: B rows of F fields x D floats from a V-row table.
// Args: B, F, D, V, threads. GFLOPS counts the FM's 3 flops per element.
void BM_EmbeddingFm(benchmark::State& state) {
  const int64_t B = state.range(0), F = state.range(1), D = state.range(2), V = state.range(3);
  auto table = Random(V * D, 1), fo = Random(V, 2);
  std::vector<int64_t> ids(B * F), offsets(F), sizes(F);
  std::mt19937_64 rng(4);
  for (int64_t f = 0; f < F; ++f) {
    offsets[f] = f * (V / F);
    sizes[f] = V / F;
  }
  for (auto& id : ids) id = static_cast<int64_t>(rng() % (V / F));
  const int64_t stride = 429;  // rows land in the MLP's [B, 429] input
  std::vector<float> emb(B * stride), fm(B), first(B);
  EmbeddingFmArgs a;
  a.table = table.data();
  a.V = V;
  a.D = D;
  a.ids = ids.data();
  a.B = B;
  a.F = F;
  a.offsets = offsets.data();
  a.sizes = sizes.data();
  a.emb_out = emb.data();
  a.emb_stride = stride;
  a.fm_out = fm.data();
  a.first_order_table = fo.data();
  a.first_order_out = first.data();
  ThreadPool* pool = Pool(static_cast<int>(state.range(4)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(EmbeddingFm(a, pool));
    benchmark::ClobberMemory();
  }
  SetFlops(state, 3.0 * B * F * D);
  state.counters["GB/s"] =
      benchmark::Counter(B * F * D * 4.0 * 2 * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EmbeddingFm)
    ->ArgsProduct({{1, 64, 4096}, {26}, {16}, {26 * 1000, 26 * 100000}, {1, 2}})
    ->UseRealTime()
    ->ArgNames({"B", "F", "D", "V", "t"});

// The fused pass on a row-wise quantized table (row format 1 = int8, 2 = int4; 0 = float32 for
// comparison). Args: B, F, D, V, threads, format. GB/s counts the table bytes read.
void BM_EmbeddingFmQuantized(benchmark::State& state) {
  const int64_t B = state.range(0), F = state.range(1), D = state.range(2), V = state.range(3);
  const auto fmt = static_cast<RowFormat>(state.range(5));
  const int64_t row_bytes = RowwiseBytes(fmt, D);
  // Random codes and scales stand in for a quantized table (the reference quantizer is not linked).
  std::vector<uint8_t> q(static_cast<size_t>(V * row_bytes));
  std::mt19937 gen(1);
  for (auto& v : q) v = static_cast<uint8_t>(gen());
  for (int64_t v = 0; v < V && fmt != RowFormat::kFloat32; ++v) {
    uint8_t* tail = q.data() + (v + 1) * row_bytes - (fmt == RowFormat::kInt8Rowwise ? 8 : 4);
    if (fmt == RowFormat::kInt8Rowwise) {
      const float sb[2] = {0.01f, -1.f};
      std::memcpy(tail, sb, 8);
    } else {
      const uint16_t sb[2] = {0x2000, 0xbc00};  // fp16 ~0.0078, -1
      std::memcpy(tail, sb, 4);
    }
  }
  auto fo = Random(V, 2);
  std::vector<int64_t> ids(B * F), offsets(F), sizes(F);
  std::mt19937_64 rng(4);
  for (int64_t f = 0; f < F; ++f) {
    offsets[f] = f * (V / F);
    sizes[f] = V / F;
  }
  for (auto& id : ids) id = static_cast<int64_t>(rng() % (V / F));
  const int64_t stride = 429;
  std::vector<float> emb(B * stride), fm(B), first(B);
  EmbeddingFmArgs a;
  if (fmt == RowFormat::kFloat32) {
    a.table = reinterpret_cast<const float*>(q.data());
  } else {
    a.qtable = q.data();
    a.row_format = static_cast<int32_t>(fmt);
  }
  a.V = V;
  a.D = D;
  a.ids = ids.data();
  a.B = B;
  a.F = F;
  a.offsets = offsets.data();
  a.sizes = sizes.data();
  a.emb_out = emb.data();
  a.emb_stride = stride;
  a.fm_out = fm.data();
  a.first_order_table = fo.data();
  a.first_order_out = first.data();
  ThreadPool* pool = Pool(static_cast<int>(state.range(4)));
  for (auto _ : state) {
    benchmark::DoNotOptimize(EmbeddingFm(a, pool));
    benchmark::ClobberMemory();
  }
  state.counters["GB/s"] =
      benchmark::Counter(B * F * row_bytes * 1e-9, benchmark::Counter::kIsIterationInvariantRate);
}
BENCHMARK(BM_EmbeddingFmQuantized)
    ->ArgsProduct({{64, 4096}, {26}, {16}, {26 * 100000}, {1, 2}, {0, 1, 2}})
    ->UseRealTime()
    ->ArgNames({"B", "F", "D", "V", "t", "fmt"});

// The DeepFM model's kernels end to end (no graph runtime): embeddings + FM + first order, the
// dense features copied into the concat buffer, then the MLP. Compare with ONNX Runtime's 0.174 /
// 0.233 / 0.80 / 6.0 / 49 ms at batch 1 / 8 / 64 / 512 / 4096 (2 threads).
void BM_DeepFmKernels(benchmark::State& state) {
  const int64_t B = state.range(0), F = 26, D = 16, V = 26 * 100000, dense = 13;
  const int64_t width = F * D + dense;  // 429
  ThreadPool* pool = Pool(static_cast<int>(state.range(1)));
  if (!ForceIsa(static_cast<Isa>(state.range(2))).ok()) {
    state.SkipWithError("ISA not supported on this CPU");
    return;
  }
  auto table = Random(V * D, 1), fo = Random(V, 2), xd = Random(B * dense, 3);
  std::vector<int64_t> ids(B * F), offsets(F), sizes(F);
  std::mt19937_64 rng(4);
  for (int64_t f = 0; f < F; ++f) {
    offsets[f] = f * (V / F);
    sizes[f] = V / F;
  }
  for (auto& id : ids) id = static_cast<int64_t>(rng() % (V / F));
  const int64_t dims[] = {width, 400, 400, 400, 1};
  std::vector<std::unique_ptr<Linear>> layers;
  for (int l = 0; l < 4; ++l) {
    auto w = Random(dims[l] * dims[l + 1], 10 + l), b = Random(dims[l + 1], 20 + l);
    auto lin = Linear::Create(w.data(), dims[l], dims[l + 1], b.data(),
                              l < 3 ? Activation::kRelu : Activation::kSigmoid, pool);
    layers.push_back(std::move(lin).value());
  }
  state.SetLabel(layers[0]->name(B));
  std::vector<float> x(B * width), h1(B * 400), h2(B * 400), logit(B), fm(B), first(B);
  EmbeddingFmArgs a;
  a.table = table.data();
  a.V = V;
  a.D = D;
  a.ids = ids.data();
  a.B = B;
  a.F = F;
  a.offsets = offsets.data();
  a.sizes = sizes.data();
  a.emb_out = x.data();
  a.emb_stride = width;
  a.fm_out = fm.data();
  a.first_order_table = fo.data();
  a.first_order_out = first.data();
  for (auto _ : state) {
    (void)EmbeddingFm(a, pool);
    for (int64_t b = 0; b < B; ++b) {
      std::copy_n(xd.data() + b * dense, dense, x.data() + b * width + F * D);
    }
    (void)layers[0]->Run(x.data(), B, width, h1.data(), 400);
    (void)layers[1]->Run(h1.data(), B, 400, h2.data(), 400);
    (void)layers[2]->Run(h2.data(), B, 400, h1.data(), 400);
    (void)layers[3]->Run(h1.data(), B, 400, logit.data(), 1);
    benchmark::ClobberMemory();
  }
  SetFlops(state, 2.0 * B * (429 * 400 + 2 * 400 * 400 + 400));
  (void)ForceIsa(Cpu().best);
}
BENCHMARK(BM_DeepFmKernels)
    ->ArgsProduct({{1, 8, 64, 512, 4096}, {1, 2}, {1, 2}})
    ->UseRealTime()
    ->Unit(benchmark::kMicrosecond)
    ->ArgNames({"B", "t", "isa"});

}  // namespace
}  // namespace clickrt::kernels::fast

BENCHMARK_MAIN();
