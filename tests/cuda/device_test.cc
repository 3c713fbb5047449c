// GPU tests. Where no GPU is visible the binary exits 77, which ctest reports as skipped.
#include <cmath>
#include <iostream>

#include <gtest/gtest.h>

#include "kernels/cpu/reference/reference_kernels.h"
#include "kernels/cuda/device.h"

namespace clickrt::cuda {
namespace {

TEST(CudaDevice, ListsAtLeastOneGpu) {
  auto devs = ListDevices();
  ASSERT_FALSE(devs.empty());
  EXPECT_FALSE(devs[0].name.empty());
  EXPECT_GT(devs[0].total_memory, 0u);
}

TEST(CudaDevice, SigmoidMatchesReference) {
  std::vector<float> x(10000);
  for (size_t i = 0; i < x.size(); ++i) x[i] = -20.f + 40.f * static_cast<float>(i) / x.size();
  std::vector<float> y(x.size());
  ASSERT_TRUE(SigmoidOnDevice(x.data(), y.data(), static_cast<int64_t>(x.size()), 0).ok());
  Tensor xt = Tensor::FromVector<float>({static_cast<int64_t>(x.size())}, x);
  Tensor ref = kernels::ref::Unary(kernels::ref::UnaryOp::kSigmoid, xt).value();
  for (size_t i = 0; i < x.size(); ++i) EXPECT_NEAR(y[i], ref.data<float>()[i], 1e-6) << x[i];
}

}  // namespace
}  // namespace clickrt::cuda

int main(int argc, char** argv) {
  if (clickrt::cuda::ListDevices().empty()) {
    std::cout << "no GPU visible: GPU tests skipped\n";
    return 77;
  }
  ::testing::InitGoogleTest(&argc, argv);
  return RUN_ALL_TESTS();
}
