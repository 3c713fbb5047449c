// The skinny GEMM kernel (few rows, fused epilogues) against a double-precision CPU reference,
// for every type, every epilogue, K with and without vector alignment, and strided views.
#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

#include "base/dtype.h"
#include "kernels/cuda/kernels.h"

namespace clickrt::cuda {
namespace {

// Rounds through the device type, so the reference sees the values the kernel sees.
float Round(float x, DataType t) {
  if (t == DataType::kF16) return HalfToFloat(FloatToHalf(x));
  if (t == DataType::kBF16) return BFloat16ToFloat(FloatToBFloat16(x));
  return x;
}

struct DeviceBuf {
  void* p = nullptr;
  explicit DeviceBuf(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, std::max<size_t>(bytes, 16)), cudaSuccess); }
  ~DeviceBuf() { cudaFree(p); }
};

void Upload(const std::vector<float>& v, DataType t, void* dst) {
  std::vector<uint16_t> h(v.size());
  if (t == DataType::kF32) {
    ASSERT_EQ(cudaMemcpy(dst, v.data(), v.size() * 4, cudaMemcpyHostToDevice), cudaSuccess);
    return;
  }
  for (size_t i = 0; i < v.size(); ++i) h[i] = t == DataType::kF16 ? FloatToHalf(v[i]) : FloatToBFloat16(v[i]);
  ASSERT_EQ(cudaMemcpy(dst, h.data(), h.size() * 2, cudaMemcpyHostToDevice), cudaSuccess);
}

std::vector<float> Download(const void* src, DataType t, size_t n) {
  std::vector<float> v(n);
  if (t == DataType::kF32) {
    EXPECT_EQ(cudaMemcpy(v.data(), src, n * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    return v;
  }
  std::vector<uint16_t> h(n);
  EXPECT_EQ(cudaMemcpy(h.data(), src, n * 2, cudaMemcpyDeviceToHost), cudaSuccess);
  for (size_t i = 0; i < n; ++i) v[i] = t == DataType::kF16 ? HalfToFloat(h[i]) : BFloat16ToFloat(h[i]);
  return v;
}

void RunCase(DataType t, DataType ct, int64_t rows, int64_t k, int64_t n, SkinnyEpilogue epi, int64_t pad,
             std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-1.f, 1.f);
  const int64_t lda = k + pad, ldc = n + pad;
  std::vector<float> a(rows * lda), wt(n * k), bias(n), x0(rows * ldc), xl(rows * ldc);
  for (auto* v : {&a, &wt, &x0, &xl}) {
    for (float& x : *v) x = Round(u(rng), t);
  }
  for (float& x : bias) x = u(rng);
  DeviceBuf da(a.size() * 4), dw(wt.size() * 4), db(bias.size() * 4), d0(x0.size() * 4), dl(xl.size() * 4),
      dc(rows * ldc * 4);
  Upload(a, t, da.p);
  Upload(wt, t, dw.p);
  Upload(bias, DataType::kF32, db.p);
  Upload(x0, t, d0.p);
  Upload(xl, t, dl.p);
  ASSERT_EQ(cudaMemset(dc.p, 0, rows * ldc * 4), cudaSuccess);
  SkinnyGemmArgs s;
  s.rows = rows;
  s.n = n;
  s.k = k;
  s.a = View{da.p, t, lda};
  s.wt = dw.p;
  s.bias = static_cast<const float*>(db.p);
  s.epilogue = epi;
  s.x0 = View{d0.p, t, ldc};
  s.xl = View{dl.p, t, ldc};
  s.c = View{dc.p, ct, ldc};
  Status st = LaunchSkinnyGemm(s, nullptr);
  ASSERT_TRUE(st.ok()) << st.ToString();
  ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
  std::vector<float> c = Download(dc.p, ct, rows * ldc);
  const double tol = t == DataType::kF32 ? 1e-5 : t == DataType::kF16 ? 4e-3 : 3e-2;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t j = 0; j < n; ++j) {
      double acc = bias[j], mag = std::fabs(bias[j]);
      for (int64_t i = 0; i < k; ++i) {
        acc += static_cast<double>(a[r * lda + i]) * wt[j * k + i];
        mag += std::fabs(static_cast<double>(a[r * lda + i]) * wt[j * k + i]);
      }
      double want = acc;
      if (epi == SkinnyEpilogue::kRelu) want = std::max(acc, 0.0);
      if (epi == SkinnyEpilogue::kSigmoid) want = 1.0 / (1.0 + std::exp(-acc));
      if (epi == SkinnyEpilogue::kCross) {
        want = x0[r * ldc + j] * acc + xl[r * ldc + j];
        mag = mag * std::fabs(x0[r * ldc + j]) + std::fabs(xl[r * ldc + j]);
      }
      ASSERT_NEAR(c[r * ldc + j], want, tol * (1.0 + mag))
          << "type " << static_cast<int>(t) << " rows " << rows << " k " << k << " n " << n << " epi "
          << static_cast<int>(epi) << " at " << r << "," << j;
    }
    for (int64_t j = n; j < ldc; ++j) ASSERT_EQ(c[r * ldc + j], 0.f) << "wrote past n";
  }
}

TEST(SkinnyGemm, MatchesReferenceForEveryTypeAndEpilogue) {
  std::mt19937 rng(7);
  for (DataType t : {DataType::kF32, DataType::kF16, DataType::kBF16}) {
    for (SkinnyEpilogue e : {SkinnyEpilogue::kNone, SkinnyEpilogue::kRelu, SkinnyEpilogue::kSigmoid,
                             SkinnyEpilogue::kCross}) {
      RunCase(t, t, 1, 432, 429, e, 0, rng);    // vector path (k % 8 == 0)
      RunCase(t, t, 7, 13, 40, e, 3, rng);      // scalar path, strided
      RunCase(t, t, 64, 512, 24, e, 8, rng);    // the largest row count
      RunCase(t, DataType::kF32, 9, 200, 1, e, 0, rng);  // FP32 logit from 16-bit inputs
    }
  }
}

TEST(SkinnyGemm, RejectsBadArguments) {
  SkinnyGemmArgs s;
  s.rows = 65;
  EXPECT_EQ(LaunchSkinnyGemm(s, nullptr).code(), StatusCode::kInvalidArgument);
  s.rows = 1;
  s.n = s.k = 4;
  EXPECT_NE(LaunchSkinnyGemm(s, nullptr).message().find("must be set"), std::string::npos);
}

}  // namespace
}  // namespace clickrt::cuda
