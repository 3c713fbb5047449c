// Conformance of the fast CPU kernels against the reference kernels (STYLE #4): every fast kernel,
// in every ISA variant this CPU can run (generic / avx2 / avx512, forced one at a time), with 1 and
// 2 threads, on random shapes (odd sizes, K and N not multiples of the vector width, strided rows).
//
// Tolerance: sums may be reordered, so an element with reference value r passes when
//   |fast - r| <= 1e-5 * (1 + magnitude),
// where magnitude is the sum of the absolute values of the terms that make up r (for Linear:
// sum_k |x[m,k] * w[k,n]| + |bias[n]|). Embedding gathers are copies and must match exactly.
#include "kernels/cpu/fast/fast_kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/reference/reference_kernels.h"

namespace clickrt::kernels {
namespace {

constexpr double kTol = 1e-5;

std::vector<float> RandomVector(std::mt19937& rng, int64_t n, float lo = -1.f, float hi = 1.f) {
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return v;
}

// Runs the body once per ISA variant this CPU supports x thread counts {1, 2}.
struct Variant {
  fast::Isa isa;
  int threads;
  std::string Name() const {
    return std::string(fast::IsaName(isa)) + "/t" + std::to_string(threads);
  }
};

std::vector<Variant> Variants() {
  std::vector<Variant> out;
  for (fast::Isa isa : {fast::Isa::kGeneric, fast::Isa::kAvx2, fast::Isa::kAvx512}) {
    if (static_cast<int>(isa) > static_cast<int>(fast::Cpu().best)) continue;
    for (int t : {1, 2}) out.push_back({isa, t});
  }
  return out;
}

class FastKernelsTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fast::ForceIsa(GetParam().isa).ok());
    pool_ = std::make_unique<fast::ThreadPool>(GetParam().threads);
  }
  void TearDown() override { (void)fast::ForceIsa(fast::Cpu().best); }
  std::unique_ptr<fast::ThreadPool> pool_;
};

// ---------------------------------------------------------------------------------------------
// Linear

struct LinearCase {
  int64_t M, K, N;
  bool bias;
  fast::Activation act;
  int64_t x_pad, y_pad;  // extra floats per row (strided in / out)
};

void CheckLinear(const LinearCase& c, fast::ThreadPool* pool, std::mt19937& rng) {
  SCOPED_TRACE("M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) +
               " N=" + std::to_string(c.N) + " bias=" + std::to_string(c.bias) +
               " act=" + std::to_string(static_cast<int>(c.act)) + " ldx+" +
               std::to_string(c.x_pad) + " ldy+" + std::to_string(c.y_pad));
  const int64_t ldx = c.K + c.x_pad, ldy = c.N + c.y_pad;
  std::vector<float> x = RandomVector(rng, c.M * c.K);
  std::vector<float> w = RandomVector(rng, c.K * c.N);
  std::vector<float> b = RandomVector(rng, c.N);
  std::vector<float> xs(static_cast<size_t>(c.M * ldx), 7.f);
  for (int64_t m = 0; m < c.M; ++m) std::copy_n(x.begin() + m * c.K, c.K, xs.begin() + m * ldx);

  auto lin = fast::Linear::Create(w.data(), c.K, c.N, c.bias ? b.data() : nullptr, c.act, pool);
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  const float kSentinel = -12345.f;
  std::vector<float> y(static_cast<size_t>(c.M * ldy), kSentinel);
  ASSERT_TRUE((*lin)->Run(xs.data(), c.M, ldx, y.data(), ldy).ok());

  Tensor tx = Tensor::FromVector<float>({c.M, c.K}, x);
  Tensor tw = Tensor::FromVector<float>({c.K, c.N}, w);
  Tensor tb = Tensor::FromVector<float>({c.N}, b);
  auto ref = ref::Linear(tx, tw, c.bias ? &tb : nullptr, static_cast<ref::Activation>(c.act));
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  const float* r = ref->data<float>();
  int failures = 0;
  for (int64_t m = 0; m < c.M && failures < 5; ++m) {
    for (int64_t n = 0; n < c.N && failures < 5; ++n) {
      double mag = c.bias ? std::fabs(b[n]) : 0.0;
      for (int64_t k = 0; k < c.K; ++k) mag += std::fabs(double(x[m * c.K + k]) * w[k * c.N + n]);
      const double got = y[m * ldy + n], want = r[m * c.N + n];
      if (!(std::fabs(got - want) <= kTol * (1 + mag))) {
        ADD_FAILURE() << "y[" << m << "," << n << "] = " << got << ", reference " << want;
        ++failures;
      }
    }
    for (int64_t n = c.N; n < ldy; ++n) {
      if (y[m * ldy + n] != kSentinel) {
        ADD_FAILURE() << "wrote past N in row " << m;
        ++failures;
      }
    }
  }
}

TEST_P(FastKernelsTest, LinearMatchesReference) {
  std::mt19937 rng(1234);
  // Shapes that matter (the DeepFM MLP) plus edges around the micro-kernel sizes.
  std::vector<LinearCase> cases = {
      {1, 429, 400, true, fast::Activation::kRelu, 0, 0},
      {8, 400, 400, true, fast::Activation::kRelu, 0, 0},
      {64, 400, 1, true, fast::Activation::kSigmoid, 0, 0},  // the logit layer (dot path)
      {1000, 37, 3, true, fast::Activation::kRelu, 2, 1},    // dot path split over threads
      {600, 429, 400, true, fast::Activation::kRelu, 3, 5},
      {1, 1, 1, false, fast::Activation::kNone, 0, 0},
      {0, 5, 7, true, fast::Activation::kNone, 0, 0},
  };
  const int64_t ms[] = {1, 2, 3, 4, 5, 7, 8, 9, 13, 16, 17, 23, 31, 33, 64, 97, 257, 600};
  const int64_t ks[] = {1, 3, 8, 15, 16, 17, 31, 48, 49, 100, 129};
  const int64_t ns[] = {1,  2,  3,  4,  5,  7,  8,  9,  15, 16, 17,
                        24, 25, 33, 47, 48, 49, 63, 65, 97, 130};
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  for (int i = 0; i < 80; ++i) {
    LinearCase c;
    c.M = ms[pick(rng) % std::size(ms)];
    c.K = ks[pick(rng) % std::size(ks)];
    c.N = ns[pick(rng) % std::size(ns)];
    c.bias = pick(rng) % 2;
    c.act = static_cast<fast::Activation>(pick(rng) % 3);
    c.x_pad = pick(rng) % 2 ? pick(rng) % 9 : 0;
    c.y_pad = pick(rng) % 2 ? pick(rng) % 9 : 0;
    cases.push_back(c);
  }
  for (const LinearCase& c : cases) CheckLinear(c, pool_.get(), rng);
}

TEST_P(FastKernelsTest, LinearNameSaysIsa) {
  std::vector<float> w(16 * 16, 1.f);
  auto lin = fast::Linear::Create(w.data(), 16, 16, nullptr, fast::Activation::kRelu, pool_.get());
  ASSERT_TRUE(lin.ok());
  EXPECT_NE((*lin)->name(1).find(fast::IsaName(GetParam().isa)), std::string::npos)
      << (*lin)->name(1);
  EXPECT_NE((*lin)->name(1).find("+relu"), std::string::npos);
}

// ---------------------------------------------------------------------------------------------
// Cross

TEST_P(FastKernelsTest, CrossMatchesReference) {
  std::mt19937 rng(99);
  const int64_t shapes[][2] = {{1, 429},  {7, 13}, {64, 48}, {33, 49},
                               {600, 17}, {5, 1},  {9, 3},   {300, 100}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], K = s[1];
    for (bool strided : {false, true}) {
      SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K) +
                   (strided ? " strided" : ""));
      const int64_t ld0 = K + (strided ? 3 : 0), ldl = K + (strided ? 5 : 0),
                    ldo = K + (strided ? 1 : 0);
      std::vector<float> x0 = RandomVector(rng, M * K), xl = RandomVector(rng, M * K);
      std::vector<float> w = RandomVector(rng, K * K), b = RandomVector(rng, K);
      std::vector<float> x0s(M * ld0), xls(M * ldl), out(M * ldo, 0.f);
      for (int64_t m = 0; m < M; ++m) {
        std::copy_n(x0.begin() + m * K, K, x0s.begin() + m * ld0);
        std::copy_n(xl.begin() + m * K, K, xls.begin() + m * ldl);
      }
      auto cross = fast::Cross::Create(w.data(), K, b.data(), pool_.get());
      ASSERT_TRUE(cross.ok()) << cross.status().ToString();
      Status st = strided ? (*cross)->Run(x0s.data(), ld0, xls.data(), ldl, M, out.data(), ldo)
                          : (*cross)->Run(x0.data(), xl.data(), M, out.data());
      ASSERT_TRUE(st.ok()) << st.ToString();
      auto ref =
          ref::Cross(Tensor::FromVector<float>({M, K}, x0), Tensor::FromVector<float>({M, K}, xl),
                     Tensor::FromVector<float>({K, K}, w), Tensor::FromVector<float>({K}, b));
      ASSERT_TRUE(ref.ok()) << ref.status().ToString();
      int failures = 0;
      for (int64_t m = 0; m < M && failures < 5; ++m) {
        for (int64_t n = 0; n < K && failures < 5; ++n) {
          double mag = std::fabs(b[n]);
          for (int64_t k = 0; k < K; ++k) mag += std::fabs(double(xl[m * K + k]) * w[k * K + n]);
          mag = std::fabs(x0[m * K + n]) * mag + std::fabs(xl[m * K + n]);
          const double got = out[m * ldo + n], want = ref->data<float>()[m * K + n];
          if (!(std::fabs(got - want) <= kTol * (1 + mag))) {
            ADD_FAILURE() << "out[" << m << "," << n << "] = " << got << ", reference " << want;
            ++failures;
          }
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------------------------
// Embeddings and FM

struct EmbCase {
  int64_t B, F, D, V;
  bool offsets, sizes;
  int64_t stride_pad;
};

TEST_P(FastKernelsTest, EmbeddingFmMatchesReference) {
  std::mt19937 rng(7);
  const EmbCase cases[] = {
      {1, 26, 16, 1000, true, true, 429 - 416},  // DeepFM: rows land in a [B, 429] concat buffer
      {4096, 26, 16, 5000, true, true, 0},      {37, 3, 5, 40, false, false, 2},
      {100, 7, 33, 300, true, false, 0},        {65, 1, 1, 10, false, true, 1},
      {17, 4, 64, 50, true, true, 0},
  };
  for (const EmbCase& c : cases) {
    SCOPED_TRACE("B=" + std::to_string(c.B) + " F=" + std::to_string(c.F) +
                 " D=" + std::to_string(c.D) + " V=" + std::to_string(c.V));
    std::vector<float> table = RandomVector(rng, c.V * c.D), fo_table = RandomVector(rng, c.V);
    // Fields share the table in equal slices; ids run past each field's size (clamped to 0) and
    // below 0 (also clamped), or wrap negative when there are no sizes.
    std::vector<int64_t> offsets(c.F), sizes(c.F), ids(c.B * c.F);
    const int64_t slice = c.V / c.F;
    for (int64_t f = 0; f < c.F; ++f) {
      offsets[f] = c.offsets ? f * slice : 0;
      sizes[f] = slice;
    }
    std::uniform_int_distribution<int64_t> id_dist(c.sizes ? -3 : -slice, slice + 2);
    for (int64_t i = 0; i < c.B * c.F; ++i) {
      int64_t id = id_dist(rng);
      if (!c.sizes) id = std::clamp<int64_t>(id, -slice, slice - 1);
      ids[i] = id;
    }
    const int64_t* off = c.offsets ? offsets.data() : nullptr;
    const int64_t* sz = c.sizes ? sizes.data() : nullptr;
    const int64_t stride = c.F * c.D + c.stride_pad;

    std::vector<float> emb(c.B * stride, -7.f), emb2(c.B * stride, -7.f);
    std::vector<float> fm(c.B), fo(c.B), fm2(c.B);
    fast::EmbeddingFmArgs a;
    a.table = table.data();
    a.V = c.V;
    a.D = c.D;
    a.ids = ids.data();
    a.B = c.B;
    a.F = c.F;
    a.offsets = off;
    a.sizes = sz;
    a.emb_out = emb.data();
    a.emb_stride = stride;
    a.fm_out = fm.data();
    a.first_order_table = fo_table.data();
    a.first_order_out = fo.data();
    Status st = fast::EmbeddingFm(a, pool_.get());
    ASSERT_TRUE(st.ok()) << st.ToString();
    st = fast::EmbeddingLookup(table.data(), c.V, c.D, ids.data(), c.B, c.F, off, sz, emb2.data(),
                               stride, pool_.get());
    ASSERT_TRUE(st.ok()) << st.ToString();
    st = fast::FmInteraction(emb.data(), c.B, c.F, c.D, stride, fm2.data(), pool_.get());
    ASSERT_TRUE(st.ok()) << st.ToString();

    Tensor tids = Tensor::FromVector<int64_t>({c.B, c.F}, ids);
    Tensor toff = Tensor::FromVector<int64_t>({c.F}, offsets);
    Tensor tsz = Tensor::FromVector<int64_t>({c.F}, sizes);
    auto ref_emb = ref::EmbeddingLookup(Tensor::FromVector<float>({c.V, c.D}, table), tids,
                                        c.offsets ? &toff : nullptr, c.sizes ? &tsz : nullptr);
    ASSERT_TRUE(ref_emb.ok()) << ref_emb.status().ToString();
    auto ref_fm = ref::FMInteraction(*ref_emb);
    ASSERT_TRUE(ref_fm.ok()) << ref_fm.status().ToString();
    auto ref_fo_rows = ref::EmbeddingLookup(Tensor::FromVector<float>({c.V, 1}, fo_table), tids,
                                            c.offsets ? &toff : nullptr, c.sizes ? &tsz : nullptr);
    ASSERT_TRUE(ref_fo_rows.ok());
    auto ref_fo = ref::Reduce(ref::ReduceOp::kSum, *ref_fo_rows, {1, 2}, false, false);
    ASSERT_TRUE(ref_fo.ok());

    const float* re = ref_emb->data<float>();
    int failures = 0;
    for (int64_t b = 0; b < c.B && failures < 5; ++b) {
      for (int64_t j = 0; j < c.F * c.D; ++j) {
        if (emb[b * stride + j] != re[b * c.F * c.D + j] ||
            emb2[b * stride + j] != re[b * c.F * c.D + j]) {
          ADD_FAILURE() << "embedding row " << b << " element " << j;
          ++failures;
          break;
        }
      }
      for (int64_t j = c.F * c.D; j < stride; ++j) {
        if (emb[b * stride + j] != -7.f) {
          ADD_FAILURE() << "wrote past F*D in row " << b;
          ++failures;
        }
      }
      double mag = 0, fo_mag = 0;
      for (int64_t d = 0; d < c.D; ++d) {
        double s = 0;
        for (int64_t f = 0; f < c.F; ++f) s += std::fabs(re[(b * c.F + f) * c.D + d]);
        mag += s * s;
      }
      for (int64_t f = 0; f < c.F; ++f)
        fo_mag += std::fabs(ref_fo_rows->data<float>()[b * c.F + f]);
      const double want = ref_fm->data<float>()[b];
      EXPECT_NEAR(fm[b], want, kTol * (1 + mag)) << "fm row " << b;
      EXPECT_NEAR(fm2[b], want, kTol * (1 + mag)) << "FmInteraction row " << b;
      EXPECT_NEAR(fo[b], ref_fo->data<float>()[b], kTol * (1 + fo_mag)) << "first order row " << b;
    }
  }
}

TEST_P(FastKernelsTest, EmbeddingOutOfRangeIdIsAnError) {
  const int64_t V = 10, D = 4, B = 40, F = 3;
  std::vector<float> table(V * D, 1.f), out(B * F * D);
  std::vector<int64_t> ids(B * F, 1);
  ids[17 * F + 2] = 10;  // first bad id: row 17, field 2
  ids[30 * F + 0] = -11;
  Status st = fast::EmbeddingLookup(table.data(), V, D, ids.data(), B, F, nullptr, nullptr,
                                    out.data(), F * D, pool_.get());
  EXPECT_EQ(st.code(), StatusCode::kOutOfRange);
  EXPECT_NE(st.message().find("id 10 at [row 17, field 2]"), std::string::npos) << st.message();

  // Offsets push an in-size id past the table.
  std::vector<int64_t> ok_ids(B * F, 0), offsets = {0, 5, 10}, sizes = {5, 5, 5};
  fast::EmbeddingFmArgs a;
  a.table = table.data();
  a.V = V;
  a.D = D;
  a.ids = ok_ids.data();
  a.B = B;
  a.F = F;
  a.offsets = offsets.data();
  a.sizes = sizes.data();
  std::vector<float> fm(B);
  a.fm_out = fm.data();
  st = fast::EmbeddingFm(a, pool_.get());
  EXPECT_EQ(st.code(), StatusCode::kOutOfRange);
  EXPECT_NE(st.message().find("id 10 at [row 0, field 2]"), std::string::npos) << st.message();

  // Negative ids wrap like ONNX Gather when there is no clamp.
  std::vector<int64_t> neg(B * F, -1);
  st = fast::EmbeddingLookup(table.data(), V, D, neg.data(), B, F, nullptr, nullptr, out.data(),
                             F * D, pool_.get());
  EXPECT_TRUE(st.ok()) << st.ToString();
}

TEST_P(FastKernelsTest, BadArgumentsAreErrors) {
  std::vector<float> w(12, 1.f);
  EXPECT_EQ(fast::Linear::Create(nullptr, 3, 4, nullptr, fast::Activation::kNone, nullptr)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(fast::Linear::Create(w.data(), 0, 4, nullptr, fast::Activation::kNone, nullptr)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(fast::Linear::Create(w.data(), 3, 4, nullptr, static_cast<fast::Activation>(7), nullptr)
                .status()
                .code(),
            StatusCode::kInvalidArgument);
  auto lin = fast::Linear::Create(w.data(), 3, 4, nullptr, fast::Activation::kNone, pool_.get());
  ASSERT_TRUE(lin.ok());
  std::vector<float> x(6), y(8);
  EXPECT_EQ((*lin)->Run(x.data(), 2, 2, y.data(), 4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*lin)->Run(x.data(), 2, 3, y.data(), 3).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*lin)->Run(x.data(), 2, 3, y.data(), 4).ok());
  fast::EmbeddingFmArgs a;
  EXPECT_EQ(fast::EmbeddingFm(a, nullptr).code(), StatusCode::kInvalidArgument);
}

// Several threads sharing one Linear and one pool: the pool's second caller runs inline.
TEST_P(FastKernelsTest, ConcurrentRunsAgree) {
  std::mt19937 rng(5);
  const int64_t M = 64, K = 100, N = 77;
  std::vector<float> w = RandomVector(rng, K * N), x = RandomVector(rng, M * K);
  auto lin = fast::Linear::Create(w.data(), K, N, nullptr, fast::Activation::kRelu, pool_.get());
  ASSERT_TRUE(lin.ok());
  std::vector<float> want(M * N);
  ASSERT_TRUE((*lin)->Run(x.data(), M, K, want.data(), N).ok());
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&] {
      std::vector<float> y(M * N);
      for (int i = 0; i < 50; ++i) {
        if (!(*lin)->Run(x.data(), M, K, y.data(), N).ok() || y != want) ++mismatches;
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, FastKernelsTest, ::testing::ValuesIn(Variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           std::string n = info.param.Name();
                           std::replace(n.begin(), n.end(), '/', '_');
                           return n;
                         });

// ---------------------------------------------------------------------------------------------
// ThreadPool and CPU detection

TEST(FastThreadPoolTest, CoversRangeOnceAndNests) {
  for (int threads : {1, 2, 3}) {
    fast::ThreadPool pool(threads);
    EXPECT_EQ(pool.size(), threads);
    for (int64_t n : {0, 1, 2, 3, 17, 1000}) {
      for (int64_t grain : {1, 4, 5000}) {
        std::vector<std::atomic<int>> hits(static_cast<size_t>(n));
        pool.ParallelFor(n, grain, [&](int64_t b, int64_t e) {
          EXPECT_LE(0, b);
          EXPECT_LT(b, e);
          EXPECT_LE(e, n);
          if (e - b < grain) {
            EXPECT_EQ(e - b, n) << "chunk below grain";
          }
          // A nested call runs inline on this thread.
          pool.ParallelFor(e - b, 1, [&](int64_t b2, int64_t e2) {
            for (int64_t i = b + b2; i < b + e2; ++i) hits[i]++;
          });
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "n=" << n << " i=" << i;
      }
    }
  }
}

TEST(FastThreadPoolTest, SurvivesIdleSleep) {
  fast::ThreadPool pool(2);
  std::atomic<int64_t> sum{0};
  for (int round = 0; round < 3; ++round) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));  // workers go to sleep
    pool.ParallelFor(100, 1, [&](int64_t b, int64_t e) { sum += e - b; });
  }
  EXPECT_EQ(sum.load(), 300);
}

TEST(FastCpuTest, DetectsAndForces) {
  const fast::CpuInfo& c = fast::Cpu();
  EXPECT_GE(c.threads, 1);
  EXPECT_EQ(c.isa, fast::IsaName(c.best));
  EXPECT_EQ(fast::ActiveIsa(), c.best);
  EXPECT_TRUE(fast::ForceIsa(fast::Isa::kGeneric).ok());
  EXPECT_EQ(fast::ActiveIsa(), fast::Isa::kGeneric);
  if (!c.avx512) {
    EXPECT_EQ(fast::ForceIsa(fast::Isa::kAvx512).code(), StatusCode::kFailedPrecondition);
  }
  EXPECT_TRUE(fast::ForceIsa(c.best).ok());
}

}  // namespace
}  // namespace clickrt::kernels
