// Linear and Cross: weights packed once into panels for the active ISA's micro-kernel; Run splits
// the work over the pool by output panels (small M: each thread reads only its share of W) or by
// row blocks (large M: each thread streams all of W from its own cache).
#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <string>

#include "kernels/cpu/fast/fast_kernels.h"
#include "kernels/cpu/fast/kernel_table.h"

namespace clickrt::kernels::fast {

namespace {

// Work below this many multiply-adds runs on the calling thread: waking a worker costs more.
constexpr int64_t kMinParallelMacs = 64 * 1024;
// Split rows over threads only when each thread gets at least this many row blocks; below that,
// split the output panels (small M is bound by reading W, so each thread should read half of it).
constexpr int64_t kMinRowBlocksPerThread = 2;

struct FreeDeleter {
  void operator()(float* p) const { std::free(p); }
};
using AlignedFloats = std::unique_ptr<float[], FreeDeleter>;

AlignedFloats AllocAligned(int64_t n) {
  const size_t bytes = (static_cast<size_t>(n) * sizeof(float) + 63) / 64 * 64;
  return AlignedFloats(static_cast<float*>(std::aligned_alloc(64, bytes ? bytes : 64)));
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

}  // namespace

struct Linear::Impl {
  const detail::KernelTable* kt = nullptr;
  int64_t K = 0, N = 0, npanels = 0;
  Activation act = Activation::kNone;
  bool cross = false;
  bool small_n = false;  // N <= kSmallN: W stored transposed for dot products
  int64_t ldwt = 0;
  ThreadPool* pool = nullptr;
  AlignedFloats packed;
  AlignedFloats bias;  // padded to npanels * nr, or null

  static StatusOr<std::unique_ptr<Impl>> Create(const char* what, const float* w, int64_t K,
                                                int64_t N, const float* bias, Activation act,
                                                bool cross, ThreadPool* pool) {
    if (!w) return InvalidArgument(std::string(what) + ": null weights");
    if (K <= 0 || N <= 0 || K > (int64_t{1} << 30) || N > (int64_t{1} << 30) ||
        K * N > (int64_t{1} << 34)) {
      return InvalidArgument(std::string(what) + ": bad weight shape [" + std::to_string(K) + ", " +
                             std::to_string(N) + "]");
    }
    if (act != Activation::kNone && act != Activation::kRelu && act != Activation::kSigmoid) {
      return InvalidArgument(std::string(what) + ": unknown activation " +
                             std::to_string(static_cast<int>(act)));
    }
    auto impl = std::make_unique<Impl>();
    impl->kt = &detail::ActiveKernels();
    const int64_t nr = impl->kt->nr;
    impl->K = K;
    impl->N = N;
    impl->npanels = (N + nr - 1) / nr;
    impl->act = act;
    impl->cross = cross;
    impl->pool = pool;
    const int64_t padded = impl->npanels * nr;
    impl->small_n = N <= detail::kSmallN;
    if (impl->small_n) {
      impl->ldwt = (K + 15) / 16 * 16;
      impl->packed = AllocAligned(N * impl->ldwt);
      if (!impl->packed) return Status(StatusCode::kResourceExhausted, "packed weights");
      float* dst = impl->packed.get();
      std::fill(dst, dst + N * impl->ldwt, 0.f);
      for (int64_t k = 0; k < K; ++k)
        for (int64_t n = 0; n < N; ++n) dst[n * impl->ldwt + k] = w[k * N + n];
    } else {
      impl->packed = AllocAligned(K * padded);
      if (!impl->packed) return Status(StatusCode::kResourceExhausted, "packed weights");
      float* dst = impl->packed.get();
      for (int64_t p = 0; p < impl->npanels; ++p) {
        const int64_t n0 = p * nr, nc = std::min(nr, N - n0);
        for (int64_t k = 0; k < K; ++k) {
          float* row = dst + (p * K + k) * nr;
          std::memcpy(row, w + k * N + n0, nc * sizeof(float));
          std::fill(row + nc, row + nr, 0.f);
        }
      }
    }
    if (bias) {
      impl->bias = AllocAligned(padded);
      if (!impl->bias) return Status(StatusCode::kResourceExhausted, "packed bias");
      std::memcpy(impl->bias.get(), bias, N * sizeof(float));
      std::fill(impl->bias.get() + N, impl->bias.get() + padded, 0.f);
    }
    return impl;
  }

  Status Run(detail::GemmArgs g, int64_t M) const {
    if (M == 0) return Status::Ok();
    g.packed = packed.get();
    g.bias = bias.get();
    g.K = K;
    g.N = N;
    g.act = static_cast<int32_t>(act);
    const detail::KernelTable& t = *kt;
    const int threads = pool ? pool->size() : 1;
    const int64_t row_blocks = (M + t.mr - 1) / t.mr;
    if (small_n) {
      g.wt = packed.get();
      g.ldwt = ldwt;
      if (threads <= 1 || M * K * N < kMinParallelMacs) {
        t.small_n(g, 0, M);
      } else {
        pool->ParallelFor(M, 16, [&](int64_t m0, int64_t m1) { t.small_n(g, m0, m1); });
      }
    } else if (threads <= 1 || M * K * N < kMinParallelMacs) {
      t.gemm(g, 0, M, 0, npanels);
    } else if (row_blocks >= kMinRowBlocksPerThread * threads) {
      pool->ParallelFor(row_blocks, 1, [&](int64_t b0, int64_t b1) {
        t.gemm(g, b0 * t.mr, std::min(M, b1 * t.mr), 0, npanels);
      });
    } else {
      pool->ParallelFor(npanels, 1, [&](int64_t p0, int64_t p1) { t.gemm(g, 0, M, p0, p1); });
    }
    return Status::Ok();
  }

  std::string Name(int64_t M) const {
    const int threads = pool ? pool->size() : 1;
    const int64_t row_blocks = (M + kt->mr - 1) / kt->mr;
    const bool inline_run = threads <= 1 || M * K * N < kMinParallelMacs;
    if (small_n) {
      return std::string(kt->name) + (cross ? "_cross" : "") + "_dot" +
             (inline_run ? "" : "/rows") + ActName(act);
    }
    const std::string split = inline_run                                       ? ""
                              : row_blocks >= kMinRowBlocksPerThread * threads ? "/rows"
                                                                               : "/panels";
    return std::string(kt->name) + (cross ? "_cross" : "_gemm") + std::to_string(kt->mr) + "x" +
           std::to_string(kt->nr) + split + ActName(act);
  }
};

// ---------------------------------------------------------------------------------------------

Linear::Linear(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Linear::~Linear() = default;

StatusOr<std::unique_ptr<Linear>> Linear::Create(const float* w, int64_t K, int64_t N,
                                                 const float* bias, Activation act,
                                                 ThreadPool* pool) {
  ASSIGN_OR_RETURN(auto impl, Impl::Create("Linear", w, K, N, bias, act, false, pool));
  return std::unique_ptr<Linear>(new Linear(std::move(impl)));
}

Status Linear::Run(const float* x, int64_t M, int64_t ldx, float* y, int64_t ldy) const {
  if (M < 0 || (M > 0 && (!x || !y)) || ldx < impl_->K || ldy < impl_->N) {
    return InvalidArgument("Linear::Run: bad arguments (M=" + std::to_string(M) +
                           ", ldx=" + std::to_string(ldx) + ", ldy=" + std::to_string(ldy) +
                           ") for K=" + std::to_string(impl_->K) +
                           ", N=" + std::to_string(impl_->N));
  }
  detail::GemmArgs g{};
  g.a = x;
  g.lda = ldx;
  g.c = y;
  g.ldc = ldy;
  return impl_->Run(g, M);
}

int64_t Linear::K() const { return impl_->K; }
int64_t Linear::N() const { return impl_->N; }
std::string Linear::name(int64_t M) const { return impl_->Name(M); }

// ---------------------------------------------------------------------------------------------

Cross::Cross(std::unique_ptr<Linear::Impl> impl) : impl_(std::move(impl)) {}
Cross::~Cross() = default;

StatusOr<std::unique_ptr<Cross>> Cross::Create(const float* w, int64_t K, const float* bias,
                                               ThreadPool* pool) {
  ASSIGN_OR_RETURN(auto impl,
                   Linear::Impl::Create("Cross", w, K, K, bias, Activation::kNone, true, pool));
  return std::unique_ptr<Cross>(new Cross(std::move(impl)));
}

Status Cross::Run(const float* x0, int64_t ld0, const float* xl, int64_t ldl, int64_t M, float* out,
                  int64_t ldo) const {
  const int64_t K = impl_->K;
  if (M < 0 || (M > 0 && (!x0 || !xl || !out)) || ld0 < K || ldl < K || ldo < K) {
    return InvalidArgument("Cross::Run: bad arguments (M=" + std::to_string(M) +
                           ") for K=" + std::to_string(K));
  }
  detail::GemmArgs g{};
  g.a = xl;
  g.lda = ldl;
  g.c = out;
  g.ldc = ldo;
  g.x0 = x0;
  g.ld0 = ld0;
  g.xl = xl;
  g.ldl = ldl;
  return impl_->Run(g, M);
}

Status Cross::Run(const float* x0, const float* xl, int64_t M, float* out) const {
  const int64_t K = impl_->K;
  return Run(x0, K, xl, K, M, out, K);
}

std::string Cross::name(int64_t M) const { return impl_->Name(M); }

}  // namespace clickrt::kernels::fast
