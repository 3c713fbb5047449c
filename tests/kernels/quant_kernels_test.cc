// The int8 / int4 kernels: the reference formats (round trips, exact bytes of hand-computed rows),
// and every fast kernel against the reference (STYLE #4) in every ISA variant this CPU can run
// (forced one at a time), with 1 and 2 threads.
//
// Tolerances: QLinear's int32 sums must equal the reference's exactly (checked bit for bit where
// the scales are 1, so y is the sum itself); otherwise an element with reference value r passes
// when |fast - r| <= 1e-5 * (1 + magnitude), magnitude = s * sum_k |q[m,k] * wq[k,n]| + |bias[n]|
// (Cross: |x0| * that + |xl|). Dequantized embedding rows must match the reference bit for bit;
// the FM term is held to fast_kernels_test's tolerance.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/cpu/fast/fast_kernels.h"
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

std::vector<int8_t> RandomCodes(std::mt19937& rng, int64_t n) {
  std::uniform_int_distribution<int> dist(-127, 127);
  std::vector<int8_t> v(static_cast<size_t>(n));
  for (auto& x : v) x = static_cast<int8_t>(dist(rng));
  return v;
}

std::vector<uint8_t> Bytes(const void* p, size_t n) {
  const auto* b = static_cast<const uint8_t*>(p);
  return std::vector<uint8_t>(b, b + n);
}

// ---------------------------------------------------------------------------------------------
// Reference formats

TEST(QuantFormatTest, RowBytes) {
  EXPECT_EQ(RowwiseBytes(RowFormat::kFloat32, 16), 64);
  EXPECT_EQ(RowwiseBytes(RowFormat::kInt8Rowwise, 16), 24);
  EXPECT_EQ(RowwiseBytes(RowFormat::kInt4Rowwise, 16), 12);
  EXPECT_EQ(RowwiseBytes(RowFormat::kInt4Rowwise, 5), 7);
  EXPECT_EQ(RowwiseBytes(static_cast<RowFormat>(9), 5), -1);
  EXPECT_EQ(RowwiseBytes(RowFormat::kInt8Rowwise, -1), -1);
}

TEST(QuantFormatTest, Int8RowBytesByHand) {
  // min -2, max 125.5: scale 127.5 / 255 = 0.5, bias -2. Codes: 0, 0.5 -> 0 and 1.5 -> 2 (half to
  // even), 255.
  const float row[] = {-2.f, -1.75f, -1.25f, 125.5f};
  std::vector<uint8_t> out(12);
  ASSERT_TRUE(ref::QuantizeRows(row, 1, 4, RowFormat::kInt8Rowwise, out.data()).ok());
  const std::vector<uint8_t> want = {0x00, 0x00, 0x02, 0xff,   // codes
                                     0x00, 0x00, 0x00, 0x3f,   // 0.5f
                                     0x00, 0x00, 0x00, 0xc0};  // -2.0f
  EXPECT_EQ(out, want);
  float back[4];
  ref::DequantizeRow(out.data(), 4, RowFormat::kInt8Rowwise, back);
  EXPECT_EQ(back[0], -2.f);
  EXPECT_EQ(back[1], -2.f);
  EXPECT_EQ(back[2], -1.f);
  EXPECT_EQ(back[3], 125.5f);
}

TEST(QuantFormatTest, Int4RowBytesByHand) {
  // min 1, max 16: scale 1, bias 1 (both exact in fp16, 0x3c00). Codes 0, 1, 3, 15, 7.5 -> 8.
  const float row[] = {1.f, 2.f, 4.f, 16.f, 8.5f};
  std::vector<uint8_t> out(7);
  ASSERT_TRUE(ref::QuantizeRows(row, 1, 5, RowFormat::kInt4Rowwise, out.data()).ok());
  const std::vector<uint8_t> want = {0x10, 0xf3, 0x08,  // nibbles (low = even element)
                                     0x00, 0x3c,        // scale 1.0 (fp16)
                                     0x00, 0x3c};       // bias 1.0 (fp16)
  EXPECT_EQ(out, want);
  float back[5];
  ref::DequantizeRow(out.data(), 5, RowFormat::kInt4Rowwise, back);
  EXPECT_EQ(Bytes(back, sizeof(back)), Bytes(std::vector<float>({1, 2, 4, 16, 9}).data(), 20));
}

TEST(QuantFormatTest, Float32RowsAreCopies) {
  const float row[] = {1.5f, -2.f, 3.25f};
  std::vector<uint8_t> out(12);
  ASSERT_TRUE(ref::QuantizeRows(row, 1, 3, RowFormat::kFloat32, out.data()).ok());
  EXPECT_EQ(out, Bytes(row, 12));
}

// Every row comes back within scale / 2 (plus float rounding of the dequantization).
TEST(QuantFormatTest, RoundTripErrorIsAtMostHalfAScale) {
  std::mt19937 rng(11);
  for (RowFormat fmt : {RowFormat::kInt8Rowwise, RowFormat::kInt4Rowwise}) {
    for (int64_t D : {1, 2, 3, 15, 16, 17, 33, 64, 100}) {
      const int64_t V = 40;
      std::vector<float> table;
      for (int64_t v = 0; v < V; ++v) {
        // Rows at several magnitudes and offsets, some constant.
        const float center = v % 4 == 0 ? 0.f : (v % 4 == 1 ? 100.f : -3.f);
        const float width = v % 5 == 0 ? 0.f : std::pow(10.f, static_cast<float>(v % 7) - 3.f);
        auto row = RandomVector(rng, D, center - width, center + width);
        table.insert(table.end(), row.begin(), row.end());
      }
      const int64_t rb = RowwiseBytes(fmt, D);
      std::vector<uint8_t> q(V * rb);
      ASSERT_TRUE(ref::QuantizeRows(table.data(), V, D, fmt, q.data()).ok());
      std::vector<float> back(D);
      for (int64_t v = 0; v < V; ++v) {
        SCOPED_TRACE("fmt " + std::to_string(static_cast<int>(fmt)) + " D " + std::to_string(D) +
                     " row " + std::to_string(v));
        const uint8_t* row = q.data() + v * rb;
        float scale;
        if (fmt == RowFormat::kInt8Rowwise) {
          std::memcpy(&scale, row + D, 4);
        } else {
          uint16_t h;
          std::memcpy(&h, row + (D + 1) / 2, 2);
          scale = HalfToFloat(h);
        }
        ref::DequantizeRow(row, D, fmt, back.data());
        float amax = 0.f, lo = table[v * D], hi = lo;
        for (int64_t d = 0; d < D; ++d) {
          amax = std::max(amax, std::fabs(table[v * D + d]));
          lo = std::min(lo, table[v * D + d]);
          hi = std::max(hi, table[v * D + d]);
        }
        if (lo == hi && fmt == RowFormat::kInt8Rowwise) {
          EXPECT_EQ(scale, 0.f);
        }
        const double bound = scale / 2.0 + 4e-7 * amax;
        for (int64_t d = 0; d < D; ++d) {
          ASSERT_LE(std::fabs(double(back[d]) - table[v * D + d]), bound)
              << "element " << d << ": " << table[v * D + d] << " -> " << back[d] << ", scale "
              << scale;
        }
      }
    }
  }
}

TEST(QuantFormatTest, QuantizeRowsRejectsBadInput) {
  std::vector<float> t = {1.f, 2.f, std::nanf(""), 4.f};
  std::vector<uint8_t> out(64);
  EXPECT_EQ(ref::QuantizeRows(t.data(), 2, 2, RowFormat::kInt8Rowwise, out.data()).code(),
            StatusCode::kInvalidArgument);
  t[2] = 3.f;
  EXPECT_EQ(ref::QuantizeRows(t.data(), 2, 0, RowFormat::kInt8Rowwise, out.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ref::QuantizeRows(t.data(), 2, 2, static_cast<RowFormat>(5), out.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ref::QuantizeRows(nullptr, 2, 2, RowFormat::kInt8Rowwise, out.data()).code(),
            StatusCode::kInvalidArgument);
  const float huge[] = {-1e6f, 1e6f};  // beyond fp16
  EXPECT_EQ(ref::QuantizeRows(huge, 1, 2, RowFormat::kInt4Rowwise, out.data()).code(),
            StatusCode::kInvalidArgument);
  EXPECT_TRUE(ref::QuantizeRows(huge, 1, 2, RowFormat::kInt8Rowwise, out.data()).ok());
}

TEST(QuantRefTest, WeightsPerChannel) {
  std::mt19937 rng(3);
  const int64_t K = 37, N = 9;
  std::vector<float> w = RandomVector(rng, K * N, -2.f, 2.f);
  for (int64_t k = 0; k < K; ++k) w[k * N + 4] = 0.f;  // an all-zero column
  w[5 * N + 2] = -3.f;                                 // column 2's max is negative
  std::vector<int8_t> wq(K * N);
  std::vector<float> scale(N);
  ASSERT_TRUE(ref::QuantizeWeightsPerChannel(w.data(), K, N, wq.data(), scale.data()).ok());
  EXPECT_EQ(scale[4], 1.f);
  EXPECT_EQ(scale[2], 3.f / 127.f);
  EXPECT_EQ(wq[5 * N + 2], -127);
  for (int64_t n = 0; n < N; ++n) {
    for (int64_t k = 0; k < K; ++k) {
      EXPECT_LE(std::abs(int{wq[k * N + n]}), 127);
      EXPECT_LE(std::fabs(wq[k * N + n] * scale[n] - w[k * N + n]), scale[n] * 0.5001f);
    }
  }
  EXPECT_EQ(ref::QuantizeWeightsPerChannel(nullptr, K, N, wq.data(), scale.data()).code(),
            StatusCode::kInvalidArgument);
  w[3] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(ref::QuantizeWeightsPerChannel(w.data(), K, N, wq.data(), scale.data()).code(),
            StatusCode::kInvalidArgument);
}

TEST(QuantRefTest, ActivationRoundsHalfToEvenAndClamps) {
  EXPECT_EQ(ref::QuantizeActivation(0.25f, 0.5f), 0);  // 0.5 -> 0
  EXPECT_EQ(ref::QuantizeActivation(0.75f, 0.5f), 2);  // 1.5 -> 2
  EXPECT_EQ(ref::QuantizeActivation(1.25f, 0.5f), 2);  // 2.5 -> 2
  EXPECT_EQ(ref::QuantizeActivation(-0.75f, 0.5f), -2);
  EXPECT_EQ(ref::QuantizeActivation(100.f, 0.5f), 127);
  EXPECT_EQ(ref::QuantizeActivation(-100.f, 0.5f), -128);  // ONNX int8 saturation
  EXPECT_EQ(ref::QuantizeActivation(-63.75f, 0.5f), -128);  // -127.5: half to even
  EXPECT_EQ(ref::QuantizeActivation(-63.25f, 0.5f), -126);  // -126.5: half to even
  EXPECT_EQ(ref::QuantizeActivation(std::nanf(""), 0.5f), -128);
}

TEST(QuantRefTest, QLinearRejectsBadInput) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor wq = Tensor::FromVector<int8_t>({3, 2}, {1, 2, 3, 4, 5, 6});
  Tensor ws = Tensor::FromVector<float>({2}, {1, 1});
  Tensor wf = Tensor::FromVector<float>({3, 2}, {1, 2, 3, 4, 5, 6});
  EXPECT_TRUE(ref::QLinear(x, wq, ws, nullptr, 1.f, ref::Activation::kNone).ok());
  EXPECT_EQ(ref::QLinear(x, wf, ws, nullptr, 1.f, ref::Activation::kNone).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ref::QLinear(x, wq, ws, nullptr, 0.f, ref::Activation::kNone).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ref::QLinear(x, wq, x, nullptr, 1.f, ref::Activation::kNone).status().code(),
            StatusCode::kInvalidArgument);
  EXPECT_EQ(ref::QCross(x, x, wq, ws, nullptr, 1.f).status().code(), StatusCode::kInvalidArgument);
}

// ---------------------------------------------------------------------------------------------
// Fast kernels, per ISA

struct Variant {
  fast::Isa isa;
  int threads;
  std::string Name() const {
    return std::string(fast::IsaName(isa)) + "_t" + std::to_string(threads);
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

class QuantKernelsTest : public ::testing::TestWithParam<Variant> {
 protected:
  void SetUp() override {
    ASSERT_TRUE(fast::ForceIsa(GetParam().isa).ok());
    pool_ = std::make_unique<fast::ThreadPool>(GetParam().threads);
  }
  void TearDown() override { (void)fast::ForceIsa(fast::Cpu().best); }
  std::unique_ptr<fast::ThreadPool> pool_;
};

struct QCase {
  int64_t M, K, N;
  bool bias;
  fast::Activation act;
  int64_t x_pad, y_pad;
};

// x in [-1, 1] with some entries beyond 127 * x_scale (clamped) and some exactly halfway between
// two codes (round half to even).
struct QInputs {
  std::vector<float> x, w_scale, bias;
  std::vector<int8_t> wq;
  float x_scale = 1.f / 100.f;
};

QInputs MakeInputs(std::mt19937& rng, int64_t M, int64_t K, int64_t N) {
  QInputs in;
  in.x_scale = 1.f / 128.f;  // power of two: x = (c + 0.5) / 128 is exactly a tie
  in.x = RandomVector(rng, M * K, -1.2f, 1.2f);
  std::uniform_int_distribution<int> pick(0, 3);
  for (float& v : in.x) {
    if (pick(rng) == 0) v = (std::floor(v * 128.f) + 0.5f) / 128.f;
  }
  in.wq = RandomCodes(rng, K * N);
  in.w_scale = RandomVector(rng, N, 0.001f, 0.02f);
  in.bias = RandomVector(rng, N);
  return in;
}

// magnitude of y[m, n] before the activation.
double Magnitude(const QInputs& in, int64_t m, int64_t n, int64_t K, int64_t N, bool bias) {
  double sum = 0;
  for (int64_t k = 0; k < K; ++k) {
    sum +=
        std::fabs(double(ref::QuantizeActivation(in.x[m * K + k], in.x_scale)) * in.wq[k * N + n]);
  }
  return sum * in.x_scale * in.w_scale[n] + (bias ? std::fabs(in.bias[n]) : 0.0);
}

void CheckQLinear(const QCase& c, fast::ThreadPool* pool, std::mt19937& rng) {
  SCOPED_TRACE("M=" + std::to_string(c.M) + " K=" + std::to_string(c.K) +
               " N=" + std::to_string(c.N) + " bias=" + std::to_string(c.bias) +
               " act=" + std::to_string(static_cast<int>(c.act)) + " ldx+" +
               std::to_string(c.x_pad) + " ldy+" + std::to_string(c.y_pad));
  const QInputs in = MakeInputs(rng, c.M, c.K, c.N);
  const int64_t ldx = c.K + c.x_pad, ldy = c.N + c.y_pad;
  std::vector<float> xs(static_cast<size_t>(c.M * ldx), 1e9f);  // padding would clamp loudly
  for (int64_t m = 0; m < c.M; ++m) std::copy_n(in.x.begin() + m * c.K, c.K, xs.begin() + m * ldx);

  auto lin = fast::QLinear::Create(in.wq.data(), c.K, c.N, in.w_scale.data(),
                                   c.bias ? in.bias.data() : nullptr, in.x_scale, c.act, pool);
  ASSERT_TRUE(lin.ok()) << lin.status().ToString();
  const float kSentinel = -12345.f;
  std::vector<float> y(static_cast<size_t>(c.M * ldy), kSentinel);
  Status st = (*lin)->Run(xs.data(), c.M, ldx, y.data(), ldy);
  ASSERT_TRUE(st.ok()) << st.ToString();

  Tensor tb = Tensor::FromVector<float>({c.N}, in.bias);
  auto ref = ref::QLinear(Tensor::FromVector<float>({c.M, c.K}, in.x),
                          Tensor::FromVector<int8_t>({c.K, c.N}, in.wq),
                          Tensor::FromVector<float>({c.N}, in.w_scale), c.bias ? &tb : nullptr,
                          in.x_scale, static_cast<ref::Activation>(c.act));
  ASSERT_TRUE(ref.ok()) << ref.status().ToString();
  int failures = 0;
  for (int64_t m = 0; m < c.M && failures < 5; ++m) {
    for (int64_t n = 0; n < c.N && failures < 5; ++n) {
      const double got = y[m * ldy + n], want = ref->data<float>()[m * c.N + n];
      if (!(std::fabs(got - want) <= kTol * (1 + Magnitude(in, m, n, c.K, c.N, c.bias)))) {
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

TEST_P(QuantKernelsTest, QLinearMatchesReference) {
  std::mt19937 rng(1234);
  std::vector<QCase> cases = {
      {1, 429, 400, true, fast::Activation::kRelu, 0, 0},  // the DeepFM MLP's first layer
      {64, 400, 1, true, fast::Activation::kSigmoid, 0, 0},
      {513, 429, 200, true, fast::Activation::kRelu, 3, 5},
      {3, 1, 1, false, fast::Activation::kNone, 0, 0},
      {0, 5, 7, true, fast::Activation::kNone, 0, 0},
  };
  const int64_t ms[] = {1, 2, 3, 5, 7, 8, 9, 17, 64, 96, 97, 200, 513};
  const int64_t ks[] = {1, 2, 3, 4, 5, 7, 15, 17, 63, 65, 66, 129, 130};
  const int64_t ns[] = {1, 2, 3, 5, 8, 16, 17, 24, 25, 47, 48, 49, 97, 200};
  std::uniform_int_distribution<int> pick(0, 1 << 20);
  for (int i = 0; i < 80; ++i) {
    QCase c;
    c.M = ms[pick(rng) % std::size(ms)];
    c.K = ks[pick(rng) % std::size(ks)];
    c.N = ns[pick(rng) % std::size(ns)];
    c.bias = pick(rng) % 2;
    c.act = static_cast<fast::Activation>(pick(rng) % 3);
    c.x_pad = pick(rng) % 2 ? pick(rng) % 9 : 0;
    c.y_pad = pick(rng) % 2 ? pick(rng) % 9 : 0;
    cases.push_back(c);
  }
  for (const QCase& c : cases) CheckQLinear(c, pool_.get(), rng);
}

// With x_scale = w_scale = 1, no bias and no activation, y is the int32 sum itself (exact in float
// below 2^24), so the fast sums must equal the reference's bit for bit.
TEST_P(QuantKernelsTest, QLinearInt32SumsAreExact) {
  std::mt19937 rng(77);
  for (const auto& s : std::vector<std::array<int64_t, 3>>{
           {1, 429, 400}, {13, 67, 49}, {100, 3, 5}, {513, 130, 2}, {9, 1000, 33}}) {
    const int64_t M = s[0], K = s[1], N = s[2];
    SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K) + " N=" + std::to_string(N));
    std::vector<float> x = RandomVector(rng, M * K, -140.f, 140.f);  // beyond +-127: clamped
    for (size_t i = 0; i < x.size(); i += 3) x[i] = std::floor(x[i]) + 0.5f;  // ties
    std::vector<int8_t> wq = RandomCodes(rng, K * N);
    std::vector<float> ones(N, 1.f);
    auto lin = fast::QLinear::Create(wq.data(), K, N, ones.data(), nullptr, 1.f,
                                     fast::Activation::kNone, pool_.get());
    ASSERT_TRUE(lin.ok());
    std::vector<float> y(M * N);
    ASSERT_TRUE((*lin)->Run(x.data(), M, K, y.data(), N).ok());
    int failures = 0;
    for (int64_t m = 0; m < M && failures < 5; ++m) {
      for (int64_t n = 0; n < N && failures < 5; ++n) {
        int64_t acc = 0;
        for (int64_t k = 0; k < K; ++k) {
          acc += int64_t{ref::QuantizeActivation(x[m * K + k], 1.f)} * wq[k * N + n];
        }
        if (y[m * N + n] != static_cast<float>(acc)) {
          ADD_FAILURE() << "sum[" << m << "," << n << "] = " << y[m * N + n] << ", want " << acc;
          ++failures;
        }
      }
    }
  }
}

TEST_P(QuantKernelsTest, QCrossMatchesReference) {
  std::mt19937 rng(99);
  const int64_t shapes[][2] = {{1, 429}, {7, 13}, {64, 48}, {33, 49}, {600, 17}, {5, 1}, {3, 2}};
  for (const auto& s : shapes) {
    const int64_t M = s[0], K = s[1];
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE("M=" + std::to_string(M) + " K=" + std::to_string(K) +
                   (with_bias ? " bias" : ""));
      const QInputs in = MakeInputs(rng, M, K, K);
      const std::vector<float> x0 = RandomVector(rng, M * K);
      const int64_t ld0 = K + 3, ldl = K + 5, ldo = K + 1;
      std::vector<float> x0s(M * ld0), xls(M * ldl), out(M * ldo, 0.f);
      for (int64_t m = 0; m < M; ++m) {
        std::copy_n(x0.begin() + m * K, K, x0s.begin() + m * ld0);
        std::copy_n(in.x.begin() + m * K, K, xls.begin() + m * ldl);
      }
      auto q = fast::QLinear::Create(in.wq.data(), K, K, in.w_scale.data(),
                                     with_bias ? in.bias.data() : nullptr, in.x_scale,
                                     fast::Activation::kNone, pool_.get());
      ASSERT_TRUE(q.ok()) << q.status().ToString();
      Status st = (*q)->RunCross(x0s.data(), ld0, xls.data(), ldl, M, out.data(), ldo);
      ASSERT_TRUE(st.ok()) << st.ToString();
      Tensor tb = Tensor::FromVector<float>({K}, in.bias);
      auto ref = ref::QCross(
          Tensor::FromVector<float>({M, K}, x0), Tensor::FromVector<float>({M, K}, in.x),
          Tensor::FromVector<int8_t>({K, K}, in.wq), Tensor::FromVector<float>({K}, in.w_scale),
          with_bias ? &tb : nullptr, in.x_scale);
      ASSERT_TRUE(ref.ok()) << ref.status().ToString();
      int failures = 0;
      for (int64_t m = 0; m < M && failures < 5; ++m) {
        for (int64_t n = 0; n < K && failures < 5; ++n) {
          const double mag = std::fabs(x0[m * K + n]) * Magnitude(in, m, n, K, K, with_bias) +
                             std::fabs(in.x[m * K + n]);
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

TEST_P(QuantKernelsTest, QLinearNameSaysKernel) {
  std::vector<int8_t> wq(16 * 16, 1);
  std::vector<float> ws(16, 1.f);
  auto q = fast::QLinear::Create(wq.data(), 16, 16, ws.data(), nullptr, 1.f,
                                 fast::Activation::kRelu, pool_.get());
  ASSERT_TRUE(q.ok());
  std::string want = fast::IsaName(GetParam().isa);
  if (GetParam().isa == fast::Isa::kAvx512) want = fast::Cpu().avx512_vnni ? "avx512vnni" : "avx2";
  EXPECT_EQ((*q)->name(1).rfind(want + "_qgemm", 0), 0u) << (*q)->name(1);
  EXPECT_NE((*q)->name(1).find("+relu"), std::string::npos);
  EXPECT_NE((*q)->name(1, true).find("_qcross"), std::string::npos);
}

TEST_P(QuantKernelsTest, QLinearBadArgumentsAreErrors) {
  std::vector<int8_t> wq(12, 1);
  std::vector<float> ws(4, 1.f);
  const auto code = [&](const int8_t* w, int64_t K, int64_t N, const float* s, float xs,
                        fast::Activation act) {
    return fast::QLinear::Create(w, K, N, s, nullptr, xs, act, pool_.get()).status().code();
  };
  const auto kNone = fast::Activation::kNone;
  EXPECT_EQ(code(nullptr, 3, 4, ws.data(), 1.f, kNone), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(wq.data(), 3, 4, nullptr, 1.f, kNone), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(wq.data(), 0, 4, ws.data(), 1.f, kNone), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(wq.data(), 65537, 4, ws.data(), 1.f, kNone), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(wq.data(), 3, 4, ws.data(), 0.f, kNone), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(wq.data(), 3, 4, ws.data(), -1.f, kNone), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(wq.data(), 3, 4, ws.data(), std::nanf(""), kNone), StatusCode::kInvalidArgument);
  EXPECT_EQ(code(wq.data(), 3, 4, ws.data(), 1.f, static_cast<fast::Activation>(7)),
            StatusCode::kInvalidArgument);
  ws[2] = std::numeric_limits<float>::infinity();
  EXPECT_EQ(code(wq.data(), 3, 4, ws.data(), 1.f, kNone), StatusCode::kInvalidArgument);
  ws[2] = 1.f;

  auto q = fast::QLinear::Create(wq.data(), 3, 4, ws.data(), nullptr, 1.f, kNone, pool_.get());
  ASSERT_TRUE(q.ok());
  std::vector<float> x(6), y(8);
  EXPECT_EQ((*q)->Run(x.data(), 2, 2, y.data(), 4).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*q)->Run(x.data(), 2, 3, y.data(), 3).code(), StatusCode::kInvalidArgument);
  EXPECT_EQ((*q)->Run(nullptr, 2, 3, y.data(), 4).code(), StatusCode::kInvalidArgument);
  EXPECT_TRUE((*q)->Run(x.data(), 2, 3, y.data(), 4).ok());
  // RunCross needs K == N and no activation.
  EXPECT_EQ((*q)->RunCross(x.data(), 4, x.data(), 4, 1, y.data(), 4).code(),
            StatusCode::kInvalidArgument);
  std::vector<int8_t> sq(9, 1);
  auto relu = fast::QLinear::Create(sq.data(), 3, 3, ws.data(), nullptr, 1.f,
                                    fast::Activation::kRelu, pool_.get());
  ASSERT_TRUE(relu.ok());
  EXPECT_EQ((*relu)->RunCross(x.data(), 3, x.data(), 3, 1, y.data(), 3).code(),
            StatusCode::kInvalidArgument);
}

// Several threads sharing one QLinear and one pool (each thread has its own quantized-x buffer).
TEST_P(QuantKernelsTest, ConcurrentRunsAgree) {
  std::mt19937 rng(5);
  const int64_t M = 300, K = 100, N = 77;
  const QInputs in = MakeInputs(rng, M, K, N);
  auto q = fast::QLinear::Create(in.wq.data(), K, N, in.w_scale.data(), in.bias.data(), in.x_scale,
                                 fast::Activation::kRelu, pool_.get());
  ASSERT_TRUE(q.ok());
  std::vector<float> want(M * N);
  ASSERT_TRUE((*q)->Run(in.x.data(), M, K, want.data(), N).ok());
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 3; ++t) {
    threads.emplace_back([&, t] {
      std::vector<float> y(M * N);
      for (int i = 0; i < 30; ++i) {
        const int64_t rows = (t + i) % 2 ? M : 5;  // both the row and the panel split
        if (!(*q)->Run(in.x.data(), rows, K, y.data(), N).ok() ||
            !std::equal(y.begin(), y.begin() + rows * N, want.begin())) {
          ++mismatches;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  EXPECT_EQ(mismatches.load(), 0);
}

// ---------------------------------------------------------------------------------------------
// Quantized embeddings

struct EmbCase {
  int64_t B, F, D, V;
  bool offsets, sizes;
  int64_t stride_pad;
};

TEST_P(QuantKernelsTest, QuantizedEmbeddingFmMatchesReference) {
  std::mt19937 rng(7);
  const EmbCase cases[] = {
      {1, 26, 16, 1000, true, true, 13},  // DeepFM: rows land in a [B, 429] concat buffer
      {600, 26, 16, 5000, true, true, 0}, {37, 3, 5, 40, false, false, 2},
      {100, 7, 33, 300, true, false, 0},  {65, 1, 1, 10, false, true, 1},
      {17, 4, 64, 50, true, true, 0},     {20, 5, 7, 30, true, true, 0},
      {20, 2, 15, 30, false, false, 0},   {20, 2, 17, 30, false, false, 3},
  };
  for (RowFormat fmt : {RowFormat::kInt8Rowwise, RowFormat::kInt4Rowwise}) {
    for (const EmbCase& c : cases) {
      SCOPED_TRACE("fmt=" + std::to_string(static_cast<int>(fmt)) + " B=" + std::to_string(c.B) +
                   " F=" + std::to_string(c.F) + " D=" + std::to_string(c.D) +
                   " V=" + std::to_string(c.V));
      const std::vector<float> table = RandomVector(rng, c.V * c.D);
      const std::vector<float> fo_table = RandomVector(rng, c.V);
      const int64_t rb = RowwiseBytes(fmt, c.D);
      std::vector<uint8_t> qtable(c.V * rb);
      ASSERT_TRUE(ref::QuantizeRows(table.data(), c.V, c.D, fmt, qtable.data()).ok());

      std::vector<int64_t> offsets(c.F), sizes(c.F), ids(c.B * c.F);
      const int64_t slice = c.V / c.F;
      for (int64_t f = 0; f < c.F; ++f) {
        offsets[f] = c.offsets ? f * slice : 0;
        sizes[f] = slice;
      }
      std::uniform_int_distribution<int64_t> id_dist(c.sizes ? -3 : -slice, slice + 2);
      for (auto& id : ids) {
        id = id_dist(rng);
        if (!c.sizes) id = std::clamp<int64_t>(id, -slice, slice - 1);
      }
      const int64_t* off = c.offsets ? offsets.data() : nullptr;
      const int64_t* sz = c.sizes ? sizes.data() : nullptr;
      const int64_t stride = c.F * c.D + c.stride_pad;

      std::vector<float> emb(c.B * stride, -7.f), emb2(c.B * stride, -7.f);
      std::vector<float> fm(c.B), fo(c.B), fm_only(c.B), fo_only(c.B);
      fast::EmbeddingFmArgs a;
      a.qtable = qtable.data();
      a.row_format = static_cast<int32_t>(fmt);
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
      // FM without the rows (dequantized into scratch), and first order alone.
      fast::EmbeddingFmArgs b = a;
      b.emb_out = nullptr;
      b.fm_out = fm_only.data();
      b.first_order_out = fo_only.data();
      st = fast::EmbeddingFm(b, pool_.get());
      ASSERT_TRUE(st.ok()) << st.ToString();
      std::vector<float> fo_alone(c.B);
      fast::EmbeddingFmArgs first_only = b;
      first_only.fm_out = nullptr;
      first_only.first_order_out = fo_alone.data();
      st = fast::EmbeddingFm(first_only, pool_.get());
      ASSERT_TRUE(st.ok()) << st.ToString();
      st = fast::EmbeddingLookupQ(qtable.data(), fmt, c.V, c.D, ids.data(), c.B, c.F, off, sz,
                                  emb2.data(), stride, pool_.get());
      ASSERT_TRUE(st.ok()) << st.ToString();

      // The FM on the dequantized rows is bit for bit the float32 kernel's on the same floats.
      std::vector<float> fm_float(c.B);
      st = fast::FmInteraction(emb.data(), c.B, c.F, c.D, stride, fm_float.data(), pool_.get());
      ASSERT_TRUE(st.ok()) << st.ToString();

      Tensor tids = Tensor::FromVector<int64_t>({c.B, c.F}, ids);
      Tensor toff = Tensor::FromVector<int64_t>({c.F}, offsets);
      Tensor tsz = Tensor::FromVector<int64_t>({c.F}, sizes);
      Tensor tq = Tensor::FromVector<uint8_t>({c.V, rb}, qtable);
      auto ref_emb = ref::EmbeddingLookupQ(tq, fmt, c.D, tids, c.offsets ? &toff : nullptr,
                                           c.sizes ? &tsz : nullptr);
      ASSERT_TRUE(ref_emb.ok()) << ref_emb.status().ToString();
      auto ref_fm = ref::FMInteraction(*ref_emb);
      ASSERT_TRUE(ref_fm.ok()) << ref_fm.status().ToString();
      auto ref_fo_rows =
          ref::EmbeddingLookup(Tensor::FromVector<float>({c.V, 1}, fo_table), tids,
                               c.offsets ? &toff : nullptr, c.sizes ? &tsz : nullptr);
      ASSERT_TRUE(ref_fo_rows.ok());

      const float* re = ref_emb->data<float>();
      int failures = 0;
      for (int64_t b = 0; b < c.B && failures < 5; ++b) {
        for (int64_t j = 0; j < c.F * c.D; ++j) {
          if (Bytes(&emb[b * stride + j], 4) != Bytes(&re[b * c.F * c.D + j], 4) ||
              Bytes(&emb2[b * stride + j], 4) != Bytes(&re[b * c.F * c.D + j], 4)) {
            ADD_FAILURE() << "embedding row " << b << " element " << j << ": "
                          << emb[b * stride + j] << " / " << emb2[b * stride + j] << ", reference "
                          << re[b * c.F * c.D + j];
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
        double mag = 0, fo_sum = 0, fo_mag = 0;
        for (int64_t d = 0; d < c.D; ++d) {
          double s = 0;
          for (int64_t f = 0; f < c.F; ++f) s += std::fabs(re[(b * c.F + f) * c.D + d]);
          mag += s * s;
        }
        for (int64_t f = 0; f < c.F; ++f) {
          fo_sum += ref_fo_rows->data<float>()[b * c.F + f];
          fo_mag += std::fabs(ref_fo_rows->data<float>()[b * c.F + f]);
        }
        const double want = ref_fm->data<float>()[b];
        EXPECT_NEAR(fm[b], want, kTol * (1 + mag)) << "fm row " << b;
        EXPECT_EQ(fm_only[b], fm[b]) << "fm without rows, row " << b;
        EXPECT_EQ(fm_float[b], fm[b]) << "float32 FM on the dequantized rows, row " << b;
        EXPECT_NEAR(fo[b], fo_sum, kTol * (1 + fo_mag)) << "first order row " << b;
        EXPECT_EQ(fo_only[b], fo[b]);
        EXPECT_EQ(fo_alone[b], fo[b]);
      }
    }
  }
}

TEST_P(QuantKernelsTest, QuantizedEmbeddingOutOfRangeIdIsAnError) {
  const int64_t V = 10, D = 4, B = 40, F = 3;
  const RowFormat fmt = RowFormat::kInt8Rowwise;
  std::vector<float> table(V * D, 1.f), out(B * F * D);
  std::vector<uint8_t> q(V * RowwiseBytes(fmt, D));
  ASSERT_TRUE(ref::QuantizeRows(table.data(), V, D, fmt, q.data()).ok());
  std::vector<int64_t> ids(B * F, 1);
  ids[17 * F + 2] = 10;  // first bad id: row 17, field 2
  ids[30 * F + 0] = -11;
  Status st = fast::EmbeddingLookupQ(q.data(), fmt, V, D, ids.data(), B, F, nullptr, nullptr,
                                     out.data(), F * D, pool_.get());
  EXPECT_EQ(st.code(), StatusCode::kOutOfRange);
  EXPECT_NE(st.message().find("id 10 at [row 17, field 2]"), std::string::npos) << st.message();

  // The reference names the same id.
  auto r = ref::EmbeddingLookupQ(Tensor::FromVector<uint8_t>({V, RowwiseBytes(fmt, D)}, q), fmt, D,
                                 Tensor::FromVector<int64_t>({B, F}, ids), nullptr, nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kOutOfRange);
}

TEST_P(QuantKernelsTest, QuantizedEmbeddingBadArgumentsAreErrors) {
  const int64_t V = 4, D = 3;
  std::vector<uint8_t> q(V * RowwiseBytes(RowFormat::kInt4Rowwise, D));
  std::vector<int64_t> ids(2, 0);
  std::vector<float> out(2 * D), fm(2);
  fast::EmbeddingFmArgs a;
  a.V = V;
  a.D = D;
  a.ids = ids.data();
  a.B = 2;
  a.F = 1;
  a.fm_out = fm.data();
  a.row_format = 1;  // int8 without a qtable
  EXPECT_EQ(fast::EmbeddingFm(a, pool_.get()).code(), StatusCode::kInvalidArgument);
  a.qtable = q.data();
  a.row_format = 3;  // unknown format
  EXPECT_EQ(fast::EmbeddingFm(a, pool_.get()).code(), StatusCode::kInvalidArgument);
  a.row_format = 2;
  EXPECT_TRUE(fast::EmbeddingFm(a, pool_.get()).ok());
  EXPECT_EQ(fast::EmbeddingLookupQ(q.data(), RowFormat::kInt4Rowwise, V, D, ids.data(), 2, 1,
                                   nullptr, nullptr, nullptr, D, pool_.get())
                .code(),
            StatusCode::kInvalidArgument);
  // The reference wants the table's row width to match the format.
  auto r = ref::EmbeddingLookupQ(Tensor::FromVector<uint8_t>({V, 8}, std::vector<uint8_t>(V * 8)),
                                 RowFormat::kInt4Rowwise, D, Tensor::FromVector<int64_t>({2}, ids),
                                 nullptr, nullptr);
  EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(AllIsas, QuantKernelsTest, ::testing::ValuesIn(Variants()),
                         [](const ::testing::TestParamInfo<Variant>& info) {
                           return info.param.Name();
                         });

TEST(QuantCpuTest, VnniImpliesAvx512) {
  const fast::CpuInfo& c = fast::Cpu();
  if (c.avx512_vnni) {
    EXPECT_TRUE(c.avx512);
  }
}

}  // namespace
}  // namespace clickrt::kernels
