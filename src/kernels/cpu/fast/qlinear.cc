// QLinear: int8 weights packed once for the chosen int8 kernel; Run quantizes x a chunk of rows at
// a time into a per-thread buffer and computes every output panel of the chunk from it. The work
// is split over the pool like Linear's (rows for large M, output panels for small M).
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kernels/cpu/fast/fast_kernels.h"
#include "kernels/cpu/fast/kernel_table.h"

namespace clickrt::kernels::fast {

namespace {

// Work below this many multiply-adds runs on the calling thread (4x Linear's: int8 multiply-adds
// are cheaper; measured: 429x400 at M=1 took 1.3 us inline, 2.3 us split over 2 threads). Rows
// are split over threads only when each gets at least kMinRowBlocksPerThread row blocks.
constexpr int64_t kMinParallelMacs = 256 * 1024;
constexpr int64_t kMinRowBlocksPerThread = 2;
// Rows quantized per chunk: their codes stay in L2 while the panels of W pass over them.
constexpr int64_t kChunkRows = 96;
// int32 sums of K products of |u8| <= 255 and |s8| <= 127 cannot overflow.
constexpr int64_t kMaxK = 65536;

struct FreeDeleter {
  void operator()(void* p) const { std::free(p); }
};
template <typename T>
using Aligned = std::unique_ptr<T[], FreeDeleter>;

template <typename T>
Aligned<T> AllocAligned(int64_t n) {
  const size_t bytes = (static_cast<size_t>(n) * sizeof(T) + 63) / 64 * 64;
  return Aligned<T>(static_cast<T*>(std::aligned_alloc(64, bytes ? bytes : 64)));
}

const char* ActName(Activation a) {
  switch (a) {
    case Activation::kNone:
      return "";
    case Activation::kRelu:
      return "+relu";
    case Activation::kSigmoid:
      return "+sigmoid";
  }
  return "+?";
}

// The int8 kernel of the active ISA, or AVX2's where that one needs VNNI and the CPU lacks it.
const detail::QGemmKernel* PickKernel() {
  const detail::QGemmKernel* q = detail::ActiveKernels().qgemm;
  if (q->needs_vnni && !Cpu().avx512_vnni) {
    const detail::KernelTable* avx2 = detail::Avx2Kernels();
    q = avx2 ? avx2->qgemm : detail::GenericKernels().qgemm;
  }
  return q;
}

// Grows (never shrinks) this thread's buffer for quantized rows.
uint8_t* ThreadBuffer(size_t bytes) {
  thread_local std::vector<uint8_t> buf;
  if (buf.size() < bytes) buf.resize(bytes);
  return buf.data();
}

}  // namespace

struct QLinear::Impl {
  const detail::QGemmKernel* q = nullptr;
  int64_t K = 0, N = 0, Kp = 0, npanels = 0, lda = 0;
  float x_scale = 1.f;
  Activation act = Activation::kNone;
  ThreadPool* pool = nullptr;
  Aligned<int8_t> packed;
  Aligned<int32_t> comp;  // 128 * column sums, for kernels on uint8 codes
  Aligned<float> scale;   // x_scale * w_scale[n]
  Aligned<float> bias;

  static StatusOr<std::unique_ptr<Impl>> Create(const int8_t* wq, int64_t K, int64_t N,
                                                const float* w_scale, const float* bias,
                                                float x_scale, Activation act, ThreadPool* pool) {
    if (!wq || !w_scale) return InvalidArgument("QLinear: null weights or scales");
    if (K <= 0 || N <= 0 || K > kMaxK || N > (int64_t{1} << 30) || K * N > (int64_t{1} << 34)) {
      return InvalidArgument("QLinear: bad weight shape [" + std::to_string(K) + ", " +
                             std::to_string(N) + "] (1 <= K <= " + std::to_string(kMaxK) + ")");
    }
    if (!(x_scale > 0.f) || !std::isfinite(x_scale)) {
      return InvalidArgument("QLinear: x_scale must be finite and > 0, got " +
                             std::to_string(x_scale));
    }
    for (int64_t n = 0; n < N; ++n) {
      if (!std::isfinite(w_scale[n])) {
        return InvalidArgument("QLinear: w_scale[" + std::to_string(n) + "] is not finite");
      }
    }
    if (act != Activation::kNone && act != Activation::kRelu && act != Activation::kSigmoid) {
      return InvalidArgument("QLinear: unknown activation " +
                             std::to_string(static_cast<int>(act)));
    }
    auto impl = std::make_unique<Impl>();
    const detail::QGemmKernel* q = PickKernel();
    impl->q = q;
    const int64_t nr = q->nr, kg = q->kg;
    impl->K = K;
    impl->N = N;
    impl->Kp = (K + kg - 1) / kg * kg;
    impl->lda = impl->Kp * q->code_bytes;
    impl->npanels = (N + nr - 1) / nr;
    impl->x_scale = x_scale;
    impl->act = act;
    impl->pool = pool;
    const int64_t padded = impl->npanels * nr, Kp = impl->Kp;

    impl->packed = AllocAligned<int8_t>(impl->npanels * Kp * nr);
    impl->scale = AllocAligned<float>(padded);
    if (!impl->packed || !impl->scale) {
      return Status(StatusCode::kResourceExhausted, "QLinear: packed weights");
    }
    int8_t* dst = impl->packed.get();
    std::fill(dst, dst + impl->npanels * Kp * nr, int8_t{0});
    for (int64_t p = 0; p < impl->npanels; ++p) {
      const int64_t n0 = p * nr, nc = std::min(nr, N - n0);
      int8_t* panel = dst + p * Kp * nr;
      for (int64_t k = 0; k < K; ++k) {
        int8_t* group = panel + (k / kg) * kg * nr + k % kg;
        for (int64_t j = 0; j < nc; ++j) group[j * kg] = wq[k * N + n0 + j];
      }
    }
    std::fill(impl->scale.get(), impl->scale.get() + padded, 0.f);
    for (int64_t n = 0; n < N; ++n) impl->scale[n] = x_scale * w_scale[n];
    if (q->u8) {
      impl->comp = AllocAligned<int32_t>(padded);
      if (!impl->comp) return Status(StatusCode::kResourceExhausted, "QLinear: column sums");
      std::fill(impl->comp.get(), impl->comp.get() + padded, 0);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) impl->comp[n] += 128 * int32_t{wq[k * N + n]};
    }
    if (bias) {
      impl->bias = AllocAligned<float>(padded);
      if (!impl->bias) return Status(StatusCode::kResourceExhausted, "QLinear: bias");
      std::memcpy(impl->bias.get(), bias, N * sizeof(float));
      std::fill(impl->bias.get() + N, impl->bias.get() + padded, 0.f);
    }
    return impl;
  }

  bool RunsInline(int64_t M) const {
    const int threads = pool ? pool->size() : 1;
    return threads <= 1 || M * K * N < kMinParallelMacs;
  }
  bool SplitsRows(int64_t M) const {
    const int threads = pool ? pool->size() : 1;
    return (M + q->mr - 1) / q->mr >= kMinRowBlocksPerThread * threads;
  }

  // Rows [m0, m1) of x (row stride ldx), all panels, chunk by chunk, on this thread.
  void RunRows(const detail::QGemmArgs& g, const float* x, int64_t ldx, int64_t m0,
               int64_t m1) const {
    uint8_t* buf = ThreadBuffer(static_cast<size_t>(std::min(kChunkRows, m1 - m0) * lda));
    for (int64_t mc = m0; mc < m1; mc += kChunkRows) {
      const int64_t rows = std::min(kChunkRows, m1 - mc);
      q->quantize(x + mc * ldx, ldx, rows, K, Kp, x_scale, buf, lda);
      detail::QGemmArgs gc = g;
      gc.a = buf;
      gc.c = g.c + mc * g.ldc;
      if (g.x0) {
        gc.x0 = g.x0 + mc * g.ld0;
        gc.xl = g.xl + mc * g.ldl;
      }
      q->gemm(gc, 0, rows, 0, npanels);
    }
  }

  Status Run(detail::QGemmArgs g, const float* x, int64_t ldx, int64_t M) const {
    if (M == 0) return Status::Ok();
    g.lda = lda;
    g.packed = packed.get();
    g.Kp = Kp;
    g.N = N;
    g.comp = comp.get();
    g.scale = scale.get();
    g.bias = bias.get();
    g.act = static_cast<int32_t>(act);
    if (RunsInline(M)) {
      RunRows(g, x, ldx, 0, M);
    } else if (SplitsRows(M)) {
      const int64_t mr = q->mr;
      pool->ParallelFor((M + mr - 1) / mr, 1, [&](int64_t b0, int64_t b1) {
        RunRows(g, x, ldx, b0 * mr, std::min(M, b1 * mr));
      });
    } else {
      // Small M: quantize every row once here; each thread then reads its share of W.
      uint8_t* buf = ThreadBuffer(static_cast<size_t>(M * lda));
      q->quantize(x, ldx, M, K, Kp, x_scale, buf, lda);
      g.a = buf;
      pool->ParallelFor(npanels, 1, [&](int64_t p0, int64_t p1) { q->gemm(g, 0, M, p0, p1); });
    }
    return Status::Ok();
  }

  std::string Name(int64_t M, bool cross) const {
    const std::string split = RunsInline(M) ? "" : SplitsRows(M) ? "/rows" : "/panels";
    return std::string(q->name) + (cross ? "_qcross" : "_qgemm") + std::to_string(q->mr) + "x" +
           std::to_string(q->nr) + split + (cross ? "" : ActName(act));
  }
};

// ---------------------------------------------------------------------------------------------

QLinear::QLinear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
QLinear::~QLinear() = default;

StatusOr<std::unique_ptr<QLinear>> QLinear::Create(const int8_t* wq, int64_t K, int64_t N,
                                                   const float* w_scale, const float* bias,
                                                   float x_scale, Activation act,
                                                   ThreadPool* pool) {
  ASSIGN_OR_RETURN(auto impl, Impl::Create(wq, K, N, w_scale, bias, x_scale, act, pool));
  return std::unique_ptr<QLinear>(new QLinear(std::move(impl)));
}

Status QLinear::Run(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const {
  if (M < 0 || (M > 0 && (!x || !y)) || ldx < impl_->K || ldy < impl_->N) {
    return InvalidArgument("QLinear::Run: bad arguments (M=" + std::to_string(M) +
                           ", ldx=" + std::to_string(ldx) + ", ldy=" + std::to_string(ldy) +
                           ") for K=" + std::to_string(impl_->K) +
                           ", N=" + std::to_string(impl_->N));
  }
  detail::QGemmArgs g{};
  g.c = y;
  g.ldc = ldy;
  return impl_->Run(g, x, ldx, M);
}

Status QLinear::RunCross(const float* x0, int64_t ld0, const float* xl, int64_t ldl, int64_t M,
                         float* out, int64_t ldo) const {
  const int64_t K = impl_->K;
  if (impl_->N != K || impl_->act != Activation::kNone) {
    return InvalidArgument("QLinear::RunCross needs square weights and no activation, got [" +
                           std::to_string(K) + ", " + std::to_string(impl_->N) + "]" +
                           ActName(impl_->act));
  }
  if (M < 0 || (M > 0 && (!x0 || !xl || !out)) || ld0 < K || ldl < K || ldo < K) {
    return InvalidArgument("QLinear::RunCross: bad arguments (M=" + std::to_string(M) +
                           ") for K=" + std::to_string(K));
  }
  detail::QGemmArgs g{};
  g.c = out;
  g.ldc = ldo;
  g.x0 = x0;
  g.ld0 = ld0;
  g.xl = xl;
  g.ldl = ldl;
  return impl_->Run(g, xl, ldl, M);
}

int64_t QLinear::K() const { return impl_->K; }
int64_t QLinear::N() const { return impl_->N; }
float QLinear::x_scale() const { return impl_->x_scale; }
std::string QLinear::name(int64_t M, bool cross) const { return impl_->Name(M, cross); }

}  // namespace clickrt::kernels::fast
