// clickrt's CUDA kernels against the CPU reference kernels, every kernel x type on random shapes
// (rows 1, odd widths, ld > cols, views at a column offset). FP16 / BF16 inputs are rounded on the
// host first, so the reference runs on exactly the values the GPU sees, in FP32.
// Tolerances (|got - want| <= atol + rtol * |want|), by the type of the compared output:
//   FP32 1e-5 + 1e-5 rel (3e-5 abs for the MLP / DIN dot products of up to 1024 terms),
//   FP16 2e-3 + 2e-3 rel, BF16 1e-2 + 1e-2 rel; gathers and conversions must match exactly.
#include "kernels/cuda/kernels.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <iostream>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "kernels/cpu/reference/reference_kernels.h"

namespace clickrt::cuda {
namespace {

namespace ref = kernels::ref;

#define CUDA_OK(x) ASSERT_EQ((x), cudaSuccess) << #x

const DataType kTypes[] = {DataType::kF32, DataType::kF16, DataType::kBF16};

const char* Name(DataType t) {
  return t == DataType::kF32 ? "f32" : t == DataType::kF16 ? "f16" : "bf16";
}

float RoundTo(DataType t, float v) {
  switch (t) {
    case DataType::kF16:
      return HalfToFloat(FloatToHalf(v));
    case DataType::kBF16:
      return BFloat16ToFloat(FloatToBFloat16(v));
    case DataType::kF32:
      break;
  }
  return v;
}

struct Tol {
  float atol, rtol;
};
Tol TolFor(DataType t, float f32_atol = 1e-5f) {
  switch (t) {
    case DataType::kF16:
      return {2e-3f, 2e-3f};
    case DataType::kBF16:
      return {1e-2f, 1e-2f};
    case DataType::kF32:
      break;
  }
  return {f32_atol, 1e-5f};
}

// Device memory that frees itself.
class DevBuf {
 public:
  explicit DevBuf(size_t bytes) : bytes_(bytes) {
    if (cudaMalloc(&p_, std::max<size_t>(bytes, 16)) != cudaSuccess) p_ = nullptr;
  }
  ~DevBuf() { cudaFree(p_); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename T = void>
  T* get() const {
    return static_cast<T*>(p_);
  }
  size_t bytes() const { return bytes_; }

 private:
  void* p_ = nullptr;
  size_t bytes_;
};

// Host floats <-> device elements of type t.
std::vector<uint8_t> Encode(DataType t, const std::vector<float>& v) {
  std::vector<uint8_t> out(v.size() * SizeOf(t));
  for (size_t i = 0; i < v.size(); ++i) {
    if (t == DataType::kF32) {
      std::memcpy(out.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t h = t == DataType::kF16 ? FloatToHalf(v[i]) : FloatToBFloat16(v[i]);
      std::memcpy(out.data() + 2 * i, &h, 2);
    }
  }
  return out;
}
std::vector<float> Decode(DataType t, const std::vector<uint8_t>& b) {
  std::vector<float> out(b.size() / SizeOf(t));
  for (size_t i = 0; i < out.size(); ++i) {
    if (t == DataType::kF32) {
      std::memcpy(&out[i], b.data() + 4 * i, 4);
    } else {
      uint16_t h;
      std::memcpy(&h, b.data() + 2 * i, 2);
      out[i] = t == DataType::kF16 ? HalfToFloat(h) : BFloat16ToFloat(h);
    }
  }
  return out;
}
template <typename T>
void Upload(const DevBuf& d, const std::vector<T>& v) {
  ASSERT_EQ(cudaMemcpy(d.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice),
            cudaSuccess);
}
void UploadAs(const DevBuf& d, DataType t, const std::vector<float>& v) { Upload(d, Encode(t, v)); }
std::vector<float> DownloadAs(const DevBuf& d, DataType t, size_t n) {
  std::vector<uint8_t> b(n * SizeOf(t));
  EXPECT_EQ(cudaMemcpy(b.data(), d.get(), b.size(), cudaMemcpyDeviceToHost), cudaSuccess);
  return Decode(t, b);
}

// Random values already representable in t.
std::vector<float> Random(std::mt19937& rng, size_t n, DataType t, float lo = -1.f,
                          float hi = 1.f) {
  std::uniform_real_distribution<float> u(lo, hi);
  std::vector<float> v(n);
  for (float& x : v) x = RoundTo(t, u(rng));
  return v;
}

Tensor T32(Dims dims, const std::vector<float>& v) { return Tensor::FromVector<float>(dims, v); }

// Counts elements outside tolerance (NaN counts), reporting the first few.
int CountBad(const std::vector<float>& got, const std::vector<float>& want, Tol tol,
             const std::string& what) {
  EXPECT_EQ(got.size(), want.size()) << what;
  int bad = 0;
  for (size_t i = 0; i < std::min(got.size(), want.size()); ++i) {
    if (got[i] == want[i]) continue;  // also equal infinities
    const float d = std::fabs(got[i] - want[i]);
    if (!(d <= tol.atol + tol.rtol * std::fabs(want[i]))) {
      if (++bad <= 5) {
        ADD_FAILURE() << what << ": [" << i << "] got " << got[i] << " want " << want[i];
      }
    }
  }
  return bad;
}
#define EXPECT_CLOSE(got, want, tol, what) EXPECT_EQ(CountBad(got, want, tol, what), 0) << what

// The [rows, cols] block of a host copy of a view with stride ld starting at column off.
std::vector<float> Block(const std::vector<float>& all, int64_t rows, int64_t cols, int64_t ld,
                         int64_t off) {
  std::vector<float> out;
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) out.push_back(all[r * ld + off + c]);
  }
  return out;
}
// Everything outside that block, to prove the kernel wrote nothing there.
std::vector<float> Outside(const std::vector<float>& all, int64_t rows, int64_t cols, int64_t ld,
                           int64_t off) {
  std::vector<float> out;
  for (size_t i = 0; i < all.size(); ++i) {
    const int64_t r = static_cast<int64_t>(i) / ld, c = static_cast<int64_t>(i) % ld - off;
    if (r >= rows || c < 0 || c >= cols) out.push_back(all[i]);
  }
  return out;
}

std::vector<float> ToVec(const Tensor& t) {
  std::vector<float> v(static_cast<size_t>(t.size()));
  for (int64_t i = 0; i < t.size(); ++i) v[i] = static_cast<float>(t.GetAsDouble(i));
  return v;
}

std::vector<float> Rounded(DataType t, std::vector<float> v) {
  for (float& x : v) x = RoundTo(t, x);
  return v;
}

constexpr float kSentinel = 7.25f;  // exactly representable in every type

// ---- Convert / Copy2D ------------------------------------------------------------------------

TEST(CudaKernels, ConvertEveryTypePair) {
  std::mt19937 rng(1);
  for (DataType s : kTypes) {
    for (DataType d : kTypes) {
      for (int64_t n : {1, 1000, 4099}) {
        const std::vector<float> x = Random(rng, n, s, -70000.f, 70000.f);
        DevBuf src(n * SizeOf(s)), dst(n * SizeOf(d));
        UploadAs(src, s, x);
        ASSERT_TRUE(LaunchConvert(src.get(), s, dst.get(), d, n, nullptr).ok());
        CUDA_OK(cudaDeviceSynchronize());
        // f16 saturates to inf above 65504 on both sides; RNE everywhere: exact.
        EXPECT_CLOSE(
            DownloadAs(dst, d, n), Rounded(d, x), (Tol{0.f, 0.f}),
            std::string("convert ") + Name(s) + "->" + Name(d) + " n=" + std::to_string(n));
      }
    }
  }
}

TEST(CudaKernels, Copy2DViews) {
  std::mt19937 rng(2);
  struct Shape {
    int64_t rows, cols, src_ld, src_off, dst_ld, dst_off;
  };
  const Shape shapes[] = {{1, 7, 7, 0, 7, 0},
                          {33, 16, 16, 0, 32, 8},
                          {33, 13, 20, 3, 24, 5},
                          {64, 24, 40, 4, 48, 8},
                          {257, 100, 128, 0, 101, 1}};
  for (DataType s : kTypes) {
    for (DataType d : kTypes) {
      for (const Shape& sh : shapes) {
        const std::string what = std::string("copy2d ") + Name(s) + "->" + Name(d) + " " +
                                 std::to_string(sh.rows) + "x" + std::to_string(sh.cols);
        const std::vector<float> x = Random(rng, sh.rows * sh.src_ld, s);
        DevBuf src(x.size() * SizeOf(s)), dst(sh.rows * sh.dst_ld * SizeOf(d));
        UploadAs(src, s, x);
        UploadAs(dst, d, std::vector<float>(sh.rows * sh.dst_ld, kSentinel));
        View vs{src.get<char>() + sh.src_off * SizeOf(s), s, sh.src_ld};
        View vd{dst.get<char>() + sh.dst_off * SizeOf(d), d, sh.dst_ld};
        ASSERT_TRUE(LaunchCopy2D(vs, vd, sh.rows, sh.cols, nullptr).ok()) << what;
        CUDA_OK(cudaDeviceSynchronize());
        const std::vector<float> all = DownloadAs(dst, d, sh.rows * sh.dst_ld);
        EXPECT_CLOSE(Block(all, sh.rows, sh.cols, sh.dst_ld, sh.dst_off),
                     Rounded(d, Block(x, sh.rows, sh.cols, sh.src_ld, sh.src_off)), (Tol{0, 0}),
                     what);
        const std::vector<float> rest = Outside(all, sh.rows, sh.cols, sh.dst_ld, sh.dst_off);
        EXPECT_CLOSE(rest, std::vector<float>(rest.size(), kSentinel), (Tol{0, 0}),
                     what + " (outside the view)");
      }
    }
  }
}

// ---- Elementwise -----------------------------------------------------------------------------

// The program on the host, composed from the reference kernels where one exists.
StatusOr<Tensor> RefProgram(const EwProgram& p, Tensor x, const std::vector<Tensor>& extras,
                            const std::vector<Tensor>& vecs) {
  using ref::BinaryOp;
  using ref::UnaryOp;
  const auto scalar = [](float c) { return Tensor::Scalar(DType::kFloat32, c); };
  const auto host_map = [&](const Tensor& t, auto f) {
    Tensor out = t.Clone();
    for (int64_t i = 0; i < out.size(); ++i) out.data<float>()[i] = f(out.data<float>()[i]);
    return out;
  };
  for (int i = 0; i < p.count; ++i) {
    const EwInstr& in = p.instrs[i];
    switch (in.op) {
      case EwOp::kRelu: {
        ASSIGN_OR_RETURN(x, ref::Unary(UnaryOp::kRelu, x));
        break;
      }
      case EwOp::kSigmoid: {
        ASSIGN_OR_RETURN(x, ref::Unary(UnaryOp::kSigmoid, x));
        break;
      }
      case EwOp::kTanh: {
        ASSIGN_OR_RETURN(x, ref::Unary(UnaryOp::kTanh, x));
        break;
      }
      case EwOp::kLog: {
        ASSIGN_OR_RETURN(x, ref::Unary(UnaryOp::kLog, x));
        break;
      }
      case EwOp::kExp: {
        ASSIGN_OR_RETURN(x, ref::Unary(UnaryOp::kExp, x));
        break;
      }
      case EwOp::kNeg: {
        ASSIGN_OR_RETURN(x, ref::Unary(UnaryOp::kNeg, x));
        break;
      }
      case EwOp::kSqrt: {
        ASSIGN_OR_RETURN(x, ref::Unary(UnaryOp::kSqrt, x));
        break;
      }
      // No reference Abs / Max / Min with a constant: plain host loops.
      case EwOp::kAbs:
        x = host_map(x, [](float v) { return std::fabs(v); });
        break;
      case EwOp::kMaxConst:
        x = host_map(x, [&](float v) { return std::max(v, in.c); });
        break;
      case EwOp::kMinConst:
        x = host_map(x, [&](float v) { return std::min(v, in.c); });
        break;
      case EwOp::kAddConst: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kAdd, x, scalar(in.c)));
        break;
      }
      case EwOp::kMulConst: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kMul, x, scalar(in.c)));
        break;
      }
      case EwOp::kPowConst: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kPow, x, scalar(in.c)));
        break;
      }
      case EwOp::kAddVec: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kAdd, x, vecs[i]));
        break;
      }
      case EwOp::kMulVec: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kMul, x, vecs[i]));
        break;
      }
      case EwOp::kPReluVec: {
        ASSIGN_OR_RETURN(x, ref::PRelu(x, vecs[i]));
        break;
      }
      case EwOp::kAddTensor: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kAdd, x, extras[in.operand]));
        break;
      }
      case EwOp::kMulTensor: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kMul, x, extras[in.operand]));
        break;
      }
      case EwOp::kSubTensor: {
        ASSIGN_OR_RETURN(x, ref::Binary(BinaryOp::kSub, x, extras[in.operand]));
        break;
      }
    }
  }
  return x;
}

struct EwCase {
  std::vector<EwInstr> instrs;
  std::vector<int64_t> extra_cols;  // 0 = full width (cols), 1 = [rows, 1]
};

void RunElementwise(const EwCase& c, DataType st, DataType dt, int64_t rows, int64_t cols,
                    int64_t src_ld, int64_t dst_ld, int64_t dst_off, bool in_place,
                    std::mt19937& rng) {
  const std::string what = std::string("elementwise ") + Name(st) + "->" + Name(dt) + " " +
                           std::to_string(rows) + "x" + std::to_string(cols) +
                           " instrs=" + std::to_string(c.instrs.size()) +
                           (in_place ? " in place" : "");
  SCOPED_TRACE(what);
  if (in_place) dst_ld = src_ld, dst_off = 0, dt = st;
  const std::vector<float> x = Random(rng, rows * src_ld, st);
  DevBuf src(x.size() * SizeOf(st));
  UploadAs(src, st, x);
  DevBuf dst_own(in_place ? 0 : rows * dst_ld * SizeOf(dt));
  if (!in_place) UploadAs(dst_own, dt, std::vector<float>(rows * dst_ld, kSentinel));
  void* dst_base = in_place ? src.get() : dst_own.get();

  EwProgram p;
  std::vector<std::unique_ptr<DevBuf>> keep;
  std::vector<Tensor> extras, vecs(c.instrs.size());
  for (size_t e = 0; e < c.extra_cols.size(); ++e) {
    const int64_t ec = c.extra_cols[e] == 1 ? 1 : cols, ld = ec + 3;
    const std::vector<float> v = Random(rng, rows * ld, st);
    keep.push_back(std::make_unique<DevBuf>(v.size() * SizeOf(st)));
    UploadAs(*keep.back(), st, v);
    p.extra[e] = View{keep.back()->get(), st, ld};
    p.extra_cols[e] = ec;
    extras.push_back(T32({rows, ec}, Block(v, rows, ec, ld, 0)));
  }
  p.extras = static_cast<int>(c.extra_cols.size());
  for (size_t i = 0; i < c.instrs.size(); ++i) {
    p.instrs[i] = c.instrs[i];
    const EwOp op = c.instrs[i].op;
    if (op == EwOp::kAddVec || op == EwOp::kMulVec || op == EwOp::kPReluVec) {
      const std::vector<float> v = Random(rng, cols, DataType::kF32);
      keep.push_back(std::make_unique<DevBuf>(cols * sizeof(float)));
      Upload(*keep.back(), v);
      p.instrs[i].vec = keep.back()->get<float>();
      vecs[i] = T32({cols}, v);
    }
  }
  p.count = static_cast<int>(c.instrs.size());
  const View vs{src.get(), st, src_ld};
  const View vd{static_cast<char*>(dst_base) + dst_off * SizeOf(dt), dt, dst_ld};
  const Status s = LaunchElementwise(p, vs, vd, rows, cols, nullptr);
  ASSERT_TRUE(s.ok()) << s.ToString();
  CUDA_OK(cudaDeviceSynchronize());
  auto want = RefProgram(p, T32({rows, cols}, Block(x, rows, cols, src_ld, 0)), extras, vecs);
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  const std::vector<float> all = DownloadAs(in_place ? src : dst_own, dt, rows * dst_ld);
  EXPECT_CLOSE(Block(all, rows, cols, dst_ld, dst_off), Rounded(dt, ToVec(want.value())),
               TolFor(dt), what);
  if (!in_place) {
    const std::vector<float> rest = Outside(all, rows, cols, dst_ld, dst_off);
    EXPECT_CLOSE(rest, std::vector<float>(rest.size(), kSentinel), (Tol{0, 0}), what + " outside");
  }
}

TEST(CudaKernels, ElementwiseChains) {
  std::mt19937 rng(3);
  const auto I = [](EwOp op, float c = 0.f, int operand = 0) {
    EwInstr in;
    in.op = op;
    in.c = c;
    in.operand = operand;
    return in;
  };
  const std::vector<EwCase> cases = {
      {{I(EwOp::kMulConst, 1.5f), I(EwOp::kAddVec), I(EwOp::kRelu)}, {}},
      {{I(EwOp::kAddTensor, 0, 0), I(EwOp::kSigmoid), I(EwOp::kMulTensor, 0, 1),
        I(EwOp::kSubTensor, 0, 0)},
       {0, 1}},
      {{I(EwOp::kAbs), I(EwOp::kAddConst, 0.5f), I(EwOp::kLog), I(EwOp::kExp), I(EwOp::kSqrt),
        I(EwOp::kPowConst, 2.f), I(EwOp::kNeg), I(EwOp::kTanh), I(EwOp::kMaxConst, -0.3f),
        I(EwOp::kMinConst, 0.4f), I(EwOp::kMulVec), I(EwOp::kPReluVec)},
       {}},
  };
  struct Shape {
    int64_t rows, cols, src_ld, dst_ld, dst_off;
  };
  const Shape shapes[] = {{1, 7, 7, 7, 0},
                          {5, 16, 16, 16, 0},
                          {33, 13, 20, 17, 2},
                          {64, 24, 24, 40, 4},
                          {257, 100, 128, 128, 8}};
  for (const EwCase& c : cases) {
    for (DataType t : kTypes) {
      for (const Shape& sh : shapes) {
        RunElementwise(c, t, t, sh.rows, sh.cols, sh.src_ld, sh.dst_ld, sh.dst_off, false, rng);
      }
      RunElementwise(c, t, t, 64, 24, 28, 0, 0, true, rng);
    }
    RunElementwise(c, DataType::kF16, DataType::kF32, 33, 16, 16, 20, 4, false, rng);
    RunElementwise(c, DataType::kF32, DataType::kBF16, 33, 16, 16, 20, 4, false, rng);
  }
}

TEST(CudaKernels, ElementwiseRejectsBadPrograms) {
  EwProgram p;
  p.count = 1;
  p.instrs[0].op = EwOp::kAddTensor;
  p.instrs[0].operand = 0;  // but p.extras == 0
  float* x = nullptr;
  ASSERT_EQ(cudaMalloc(&x, 64 * sizeof(float)), cudaSuccess);
  const View v{x, DataType::kF32, 8};
  Status s = LaunchElementwise(p, v, v, 8, 8, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("operand"), std::string::npos) << s.ToString();
  p.instrs[0].op = EwOp::kAddVec;  // vec null
  s = LaunchElementwise(p, v, v, 8, 8, nullptr);
  EXPECT_NE(s.message().find("vec"), std::string::npos) << s.ToString();
  p.instrs[0].op = EwOp::kRelu;
  s = LaunchElementwise(p, v, View{x, DataType::kF32, 4}, 8, 8, nullptr);
  EXPECT_NE(s.message().find("dst.ld"), std::string::npos) << s.ToString();
  p.count = 13;
  EXPECT_EQ(LaunchElementwise(p, v, v, 8, 8, nullptr).code(), StatusCode::kInvalidArgument);
  cudaFree(x);
}

// ---- Embedding -------------------------------------------------------------------------------

struct EmbCase {
  int64_t rows, fields, dim;
  DataType table_type;
  bool has_out = true;
  DataType out_type = DataType::kF32;
  int64_t out_pad = 0, out_off = 0;  // out.ld = fields * dim + out_pad, written at column out_off
  bool offsets = true, sizes = false, ids32 = false;
  int64_t ids_pad = 0;
  bool fm = true, first = true, bias_ptr = false;
  int64_t vocab = 100;  // rows per field
  int row_format = 0;   // 1 / 2: the main table is row-wise int8 / int4 (table_type: table1's)
};

std::string Describe(const EmbCase& c) {
  return "embedding rows=" + std::to_string(c.rows) + " fields=" + std::to_string(c.fields) +
         " dim=" + std::to_string(c.dim) + " table=" + Name(c.table_type) +
         (c.has_out ? std::string(" out=") + Name(c.out_type) : " no-out") +
         " off=" + std::to_string(c.out_off) + (c.offsets ? " offsets" : "") +
         (c.sizes ? " sizes" : "") + (c.ids32 ? " ids32" : " ids64") +
         (c.row_format ? " row_format=" + std::to_string(c.row_format) : "");
}

// Runs one case; `bad` lists (row, field) positions given ids far outside the table, which must
// read as zeros, and the first of which must come back in `error`.
void RunEmbedding(const EmbCase& c, std::mt19937& rng,
                  const std::vector<std::pair<int64_t, int64_t>>& bad = {}) {
  SCOPED_TRACE(Describe(c));
  ASSERT_TRUE(bad.empty() || !c.sizes) << "with sizes every id is clamped into the table";
  const int64_t B = c.rows, F = c.fields, D = c.dim;
  const int64_t V = c.offsets ? F * c.vocab : c.vocab;
  std::vector<int64_t> offsets(F), sizes(F);
  for (int64_t f = 0; f < F; ++f) offsets[f] = c.offsets ? f * c.vocab : 0, sizes[f] = c.vocab;
  const int64_t ids_ld = F + c.ids_pad;
  // Padding columns hold ids no table has: reading them would raise the error.
  std::vector<int64_t> ids(B * ids_ld, -(int64_t{1} << 30));
  std::uniform_int_distribution<int64_t> valid(0, c.vocab - 1), clamp(-3, c.vocab + 2);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t f = 0; f < F; ++f) ids[b * ids_ld + f] = c.sizes ? clamp(rng) : valid(rng);
  }
  if (!c.sizes) ids[0] = -1;  // wraps to the table's last row, as the reference Gather does
  for (auto [b, f] : bad) ids[b * ids_ld + f] = 1000 * V + 7;

  const std::vector<float> table = Random(rng, V * D, c.table_type, -0.5f, 0.5f);
  const std::vector<float> table1 = Random(rng, V, c.table_type, -0.5f, 0.5f);
  const auto fmt = static_cast<ref::RowFormat>(c.row_format);
  std::vector<uint8_t> qtable(c.row_format ? V * ref::RowwiseBytes(fmt, D) : 0);
  if (c.row_format) ASSERT_TRUE(ref::QuantizeRows(table.data(), V, D, fmt, qtable.data()).ok());
  DevBuf d_table(c.row_format ? qtable.size() : table.size() * SizeOf(c.table_type)),
      d_table1(V * SizeOf(c.table_type));
  if (c.row_format) {
    Upload(d_table, qtable);
  } else {
    UploadAs(d_table, c.table_type, table);
  }
  UploadAs(d_table1, c.table_type, table1);
  DevBuf d_ids(ids.size() * (c.ids32 ? 4 : 8)), d_off(F * 8), d_sizes(F * 8);
  if (c.ids32) {
    Upload(d_ids, std::vector<int32_t>(ids.begin(), ids.end()));
  } else {
    Upload(d_ids, ids);
  }
  Upload(d_off, offsets);
  Upload(d_sizes, sizes);
  const int64_t out_ld = F * D + c.out_pad;
  DevBuf d_out(B * out_ld * SizeOf(c.out_type)), d_fm(B * 4), d_first(B * 4), d_err(16), d_bias(4);
  UploadAs(d_out, c.out_type, std::vector<float>(B * out_ld, kSentinel));
  CUDA_OK(cudaMemset(d_err.get(), 0xff, 16));
  const float bias = 0.375f;
  Upload(d_bias, std::vector<float>{-1.25f});

  EmbeddingArgs a;
  a.rows = B, a.fields = F, a.dim = D, a.table_rows = V;
  a.ids = d_ids.get(), a.ids_int32 = c.ids32, a.ids_ld = ids_ld;
  a.offsets = c.offsets ? d_off.get<int64_t>() : nullptr;
  a.sizes = c.sizes ? d_sizes.get<int64_t>() : nullptr;
  a.table = d_table.get(), a.table_type = c.table_type, a.row_format = c.row_format;
  if (c.has_out) {
    a.out = View{d_out.get<char>() + c.out_off * SizeOf(c.out_type), c.out_type, out_ld};
  }
  a.fm = c.fm ? d_fm.get<float>() : nullptr;
  a.table1 = c.first ? d_table1.get() : nullptr;
  a.first = c.first ? d_first.get<float>() : nullptr;
  a.first_bias = bias;
  a.first_bias_ptr = c.bias_ptr ? d_bias.get<float>() : nullptr;
  a.error = d_err.get<int64_t>();
  const Status s = LaunchEmbedding(a, nullptr);
  ASSERT_TRUE(s.ok()) << s.ToString();
  CUDA_OK(cudaDeviceSynchronize());

  // Reference: bad positions look up a valid row, then read as zeros (the GPU's behaviour).
  std::vector<int64_t> ref_ids(B * F);
  for (int64_t b = 0; b < B; ++b) {
    for (int64_t f = 0; f < F; ++f) ref_ids[b * F + f] = ids[b * ids_ld + f];
  }
  for (auto [b, f] : bad) ref_ids[b * F + f] = 0;
  const Tensor t_ids = Tensor::FromVector<int64_t>({B, F}, ref_ids);
  const Tensor t_off = Tensor::FromVector<int64_t>({F}, offsets);
  const Tensor t_sizes = Tensor::FromVector<int64_t>({F}, sizes);
  const auto lookup = [&](const std::vector<float>& tab, int64_t width) -> StatusOr<Tensor> {
    const bool q = c.row_format && width == D && &tab == &table;
    const Tensor qt = q ? Tensor::FromVector<uint8_t>({V, ref::RowwiseBytes(fmt, D)}, qtable) : Tensor();
    ASSIGN_OR_RETURN(Tensor e,
                     q ? ref::EmbeddingLookupQ(qt, fmt, D, t_ids, c.offsets ? &t_off : nullptr,
                                               c.sizes ? &t_sizes : nullptr)
                       : ref::EmbeddingLookup(T32({V, width}, tab), t_ids, c.offsets ? &t_off : nullptr,
                                              c.sizes ? &t_sizes : nullptr));
    e = e.Clone();
    for (auto [b, f] : bad) {
      std::fill_n(e.data<float>() + (b * F + f) * width, width, 0.f);
    }
    return e;
  };
  auto emb = lookup(table, D);
  ASSERT_TRUE(emb.ok()) << emb.status().ToString();
  if (c.has_out) {
    const std::vector<float> all = DownloadAs(d_out, c.out_type, B * out_ld);
    EXPECT_CLOSE(Block(all, B, F * D, out_ld, c.out_off), Rounded(c.out_type, ToVec(emb.value())),
                 (Tol{0, 0}), "gathered rows");
    const std::vector<float> rest = Outside(all, B, F * D, out_ld, c.out_off);
    EXPECT_CLOSE(rest, std::vector<float>(rest.size(), kSentinel), (Tol{0, 0}), "outside out");
  }
  if (c.fm) {
    auto fm = ref::FMInteraction(emb.value());
    ASSERT_TRUE(fm.ok()) << fm.status().ToString();
    EXPECT_CLOSE(DownloadAs(d_fm, DataType::kF32, B), ToVec(fm.value()), (Tol{1e-4f, 1e-5f}), "fm");
  }
  if (c.first) {
    auto e1 = lookup(table1, 1);
    ASSERT_TRUE(e1.ok()) << e1.status().ToString();
    auto sum = ref::Reduce(ref::ReduceOp::kSum, e1.value(), {1, 2}, false, false);
    ASSERT_TRUE(sum.ok());
    std::vector<float> want = ToVec(sum.value());
    for (float& w : want) w += c.bias_ptr ? -1.25f : bias;
    EXPECT_CLOSE(DownloadAs(d_first, DataType::kF32, B), want, (Tol{1e-5f, 1e-5f}), "first");
  }
  std::vector<int64_t> err(2);
  CUDA_OK(cudaMemcpy(err.data(), d_err.get(), 16, cudaMemcpyDeviceToHost));
  std::pair<int64_t, int64_t> first_bad{-1, -1};
  if (!bad.empty()) first_bad = *std::min_element(bad.begin(), bad.end());
  EXPECT_EQ(err[0], first_bad.first);
  EXPECT_EQ(err[1], first_bad.second);
}

TEST(CudaKernels, EmbeddingEveryTableAndOutType) {
  std::mt19937 rng(4);
  for (DataType tt : kTypes) {
    for (DataType ot : kTypes) {
      EmbCase c{1, 3, 16, tt};
      c.out_type = ot;
      RunEmbedding(c, rng);
      c = EmbCase{37, 26, 16, tt};
      c.out_type = ot, c.out_pad = 21, c.out_off = 13, c.ids_pad = 3;  // misaligned view
      RunEmbedding(c, rng);
      c = EmbCase{64, 26, 16, tt};
      c.out_type = ot, c.out_pad = 16, c.out_off = 8;  // aligned view at a column offset
      RunEmbedding(c, rng);
    }
  }
}

// Row-wise int8 / int4 tables: the dequantized rows equal the CPU reference's bit for bit.
TEST(CudaKernels, EmbeddingRowwiseQuantizedTables) {
  std::mt19937 rng(14);
  for (int fmt : {1, 2}) {
    for (DataType ot : kTypes) {
      for (int64_t dim : {16, 8, 7, 10}) {  // 4 codes per lane, and 1 (odd / unaligned rows)
        EmbCase c{37, 26, dim, DataType::kF32};
        c.row_format = fmt, c.out_type = ot, c.out_pad = 5, c.out_off = 3, c.sizes = true;
        RunEmbedding(c, rng);
      }
      EmbCase c{9, 33, 16, ot};  // table1 in the engine's type; two id tiles; bad ids
      c.row_format = fmt, c.out_type = ot;
      RunEmbedding(c, rng, {{2, 7}, {5, 32}});
    }
  }
}

TEST(CudaKernels, EmbeddingShapes) {
  std::mt19937 rng(5);
  for (DataType tt : kTypes) {
    // dims covering every vector width, > 32 lanes' worth of chunks (f32 200 -> 50 float4s),
    // more than 32 fields (two id tiles), int32 ids, no out, no offsets.
    for (int64_t dim : {1, 7, 8, 10, 12, 64, 200}) {
      EmbCase c{19, 5, dim, tt};
      c.out_type = tt;
      RunEmbedding(c, rng);
    }
    EmbCase c{9, 40, 16, tt};
    c.out_type = tt, c.ids32 = true, c.ids_pad = 1;
    RunEmbedding(c, rng);
    c = EmbCase{9, 33, 8, tt};
    c.has_out = false, c.offsets = false, c.bias_ptr = true;
    RunEmbedding(c, rng);
    c = EmbCase{33, 26, 16, tt};
    c.fm = false, c.first = false, c.out_type = tt;  // a plain lookup
    RunEmbedding(c, rng);
  }
}

TEST(CudaKernels, EmbeddingLargeBatch) {
  std::mt19937 rng(6);
  for (DataType tt : kTypes) {
    EmbCase c{32768, 26, 16, tt};
    c.out_type = tt, c.vocab = 1000;
    RunEmbedding(c, rng);
  }
}

TEST(CudaKernels, EmbeddingClampsWithSizes) {
  std::mt19937 rng(7);
  for (DataType tt : kTypes) {
    EmbCase c{300, 26, 16, tt};
    c.out_type = tt, c.sizes = true, c.vocab = 5;  // ~half the ids fall outside [0, 5)
    RunEmbedding(c, rng);
    c.offsets = false, c.ids32 = true;
    RunEmbedding(c, rng);
  }
}

TEST(CudaKernels, EmbeddingReportsFirstBadId) {
  std::mt19937 rng(8);
  EmbCase c{300, 26, 16, DataType::kF32};
  RunEmbedding(c, rng, {{205, 3}, {17, 9}, {17, 4}, {299, 25}});
  c.ids32 = true, c.table_type = DataType::kF16, c.out_type = DataType::kF16;
  RunEmbedding(c, rng, {{0, 25}});
  c.offsets = false, c.fields = 40;  // the second tile of 32 fields
  RunEmbedding(c, rng, {{3, 39}, {3, 35}, {4, 0}});
}

TEST(CudaKernels, EmbeddingRejectsBadArgs) {
  EmbeddingArgs a;
  a.rows = 4, a.fields = 2, a.dim = 8, a.table_rows = 10;
  Status s = LaunchEmbedding(a, nullptr);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(s.message().find("ids"), std::string::npos) << s.ToString();
  DevBuf buf(1024);
  a.ids = buf.get(), a.ids_ld = 2, a.table = buf.get();
  a.out = View{buf.get(), DataType::kF32, 8};  // < fields * dim
  s = LaunchEmbedding(a, nullptr);
  EXPECT_NE(s.message().find("out.ld"), std::string::npos) << s.ToString();
  a.out = View{};
  a.dim = -1;
  s = LaunchEmbedding(a, nullptr);
  EXPECT_NE(s.message().find("dim"), std::string::npos) << s.ToString();
  a.dim = 8;
  a.first = buf.get<float>();  // without table1
  s = LaunchEmbedding(a, nullptr);
  EXPECT_NE(s.message().find("table1"), std::string::npos) << s.ToString();
}

// ---- Fused MLP -------------------------------------------------------------------------------

struct MlpHost {
  std::vector<std::unique_ptr<DevBuf>> keep;
  MlpArgs args;
  std::vector<Tensor> w, b;  // the reference's weights (rounded) and biases
};

// Builds weights for `widths` (in, hidden..., out) with uniform(+-sqrt(3/k)) so activations stay
// O(1) through the layers.
MlpHost MakeMlp(const std::vector<int64_t>& widths, const std::vector<int>& acts, DataType wt,
                bool bias, std::mt19937& rng) {
  MlpHost h;
  h.args.w_type = wt;
  h.args.count = static_cast<int>(widths.size()) - 1;
  for (int i = 0; i < h.args.count; ++i) {
    const int64_t k = widths[i], n = widths[i + 1];
    const float a = std::sqrt(3.f / static_cast<float>(k));
    const std::vector<float> w = Random(rng, k * n, wt, -a, a);
    const std::vector<float> bv =
        bias ? Random(rng, n, DataType::kF32, -0.1f, 0.1f) : std::vector<float>(n, 0.f);
    h.keep.push_back(std::make_unique<DevBuf>(w.size() * SizeOf(wt)));
    UploadAs(*h.keep.back(), wt, w);
    MlpLayer& l = h.args.layers[i];
    l.w = h.keep.back()->get();
    l.k = k, l.n = n, l.activation = acts[i];
    if (bias) {
      h.keep.push_back(std::make_unique<DevBuf>(n * sizeof(float)));
      Upload(*h.keep.back(), bv);
      l.bias = h.keep.back()->get<float>();
    }
    h.w.push_back(T32({k, n}, w));
    h.b.push_back(T32({n}, bv));
  }
  return h;
}

void RunMlp(const std::vector<int64_t>& widths, const std::vector<int>& acts, int64_t rows,
            DataType wt, DataType io, std::mt19937& rng, int64_t in_pad = 0, int64_t in_off = 0,
            int64_t out_pad = 0, int64_t out_off = 0, bool bias = true) {
  const std::string what =
      "mlp rows=" + std::to_string(rows) + " w=" + Name(wt) + " io=" + Name(io) +
      " layers=" + std::to_string(widths.size() - 1) + " in=" + std::to_string(widths[0]) +
      " max=" + std::to_string(*std::max_element(widths.begin(), widths.end()));
  SCOPED_TRACE(what);
  MlpHost h = MakeMlp(widths, acts, wt, bias, rng);
  const int64_t k0 = widths.front(), n_out = widths.back();
  const int64_t in_ld = k0 + in_pad, out_ld = n_out + out_pad;
  const std::vector<float> x = Random(rng, rows * in_ld, io);
  DevBuf d_in(x.size() * SizeOf(io)), d_out(rows * out_ld * SizeOf(io));
  UploadAs(d_in, io, x);
  UploadAs(d_out, io, std::vector<float>(rows * out_ld, kSentinel));
  h.args.rows = rows;
  h.args.in = View{d_in.get<char>() + in_off * SizeOf(io), io, in_ld};
  h.args.out = View{d_out.get<char>() + out_off * SizeOf(io), io, out_ld};
  const Status s = LaunchFusedMlp(h.args, nullptr);
  ASSERT_TRUE(s.ok()) << s.ToString();
  CUDA_OK(cudaDeviceSynchronize());

  Tensor t = T32({rows, k0}, Block(x, rows, k0, in_ld, in_off));
  for (int i = 0; i < h.args.count; ++i) {
    auto y = ref::Linear(t, h.w[i], &h.b[i], static_cast<ref::Activation>(acts[i]));
    ASSERT_TRUE(y.ok()) << y.status().ToString();
    t = y.value();
  }
  const std::vector<float> all = DownloadAs(d_out, io, rows * out_ld);
  EXPECT_CLOSE(Block(all, rows, n_out, out_ld, out_off), Rounded(io, ToVec(t)), TolFor(io, 3e-5f),
               what);
  const std::vector<float> rest = Outside(all, rows, n_out, out_ld, out_off);
  EXPECT_CLOSE(rest, std::vector<float>(rest.size(), kSentinel), (Tol{0, 0}), what + " outside");
}

const std::vector<int64_t> kDeepFm = {221, 200, 200, 200, 1};
const std::vector<int> kDeepFmActs = {1, 1, 1, 2};

TEST(CudaKernels, FusedMlpDeepFmShapes) {
  std::mt19937 rng(9);
  for (DataType wt : kTypes) {
    for (int64_t rows : {1, 2, 3, 8, 13, 64, 256})
      RunMlp(kDeepFm, kDeepFmActs, rows, wt, DataType::kF32, rng);
    for (DataType io : {DataType::kF16, DataType::kBF16}) {
      RunMlp(kDeepFm, kDeepFmActs, 37, wt, io, rng, 11, 5, 3, 2);
    }
    RunMlp(kDeepFm, {1, 1, 1, 0}, 9, wt, DataType::kF32, rng, 35, 32, 7, 4, false);
  }
}

TEST(CudaKernels, FusedMlpOddAndLimitWidths) {
  std::mt19937 rng(10);
  for (DataType wt : kTypes) {
    RunMlp({37, 13, 5}, {1, 0}, 9, wt, DataType::kF32, rng);             // no 16-byte weight loads
    RunMlp({3, 1024, 1024, 16}, {1, 2, 0}, 8, wt, DataType::kF32, rng);  // kMaxWidth
    RunMlp({64, 1024}, {0}, 300, wt, DataType::kF32, rng);               // above kMaxRows works too
    RunMlp({16, 24, 16, 24, 16, 24, 16, 24, 2}, {1, 2, 1, 2, 1, 2, 1, 0}, 5, wt, DataType::kF32,
           rng);  // kMaxLayers
  }
}

TEST(CudaKernels, FusedMlpRejectsBadArgs) {
  std::mt19937 rng(11);
  MlpHost h = MakeMlp({8, 4, 2}, {1, 0}, DataType::kF32, true, rng);
  DevBuf io(4096);
  h.args.rows = 2;
  h.args.in = View{io.get(), DataType::kF32, 8};
  h.args.out = View{io.get(), DataType::kF32, 2};
  h.args.layers[1].k = 5;
  Status s = LaunchFusedMlp(h.args, nullptr);
  EXPECT_NE(s.message().find("layers[1].k"), std::string::npos) << s.ToString();
  h.args.layers[1].k = 4;
  h.args.layers[0].n = h.args.layers[1].k = 2048;
  s = LaunchFusedMlp(h.args, nullptr);
  EXPECT_NE(s.message().find("widths"), std::string::npos) << s.ToString();
  h.args.layers[0].n = h.args.layers[1].k = 4;
  h.args.in.ld = 4;
  s = LaunchFusedMlp(h.args, nullptr);
  EXPECT_NE(s.message().find("in.ld"), std::string::npos) << s.ToString();
  h.args.in.ld = 8;
  h.args.count = 9;
  EXPECT_EQ(LaunchFusedMlp(h.args, nullptr).code(), StatusCode::kInvalidArgument);
}

// ---- DIN attention ---------------------------------------------------------------------------

void RunDin(int64_t rows, int64_t hist, int64_t dim, const std::vector<int64_t>& hidden,
            DataType wt, DataType io, bool use_mask, int pooling, std::mt19937& rng,
            bool bias = true) {
  const std::string what = "din rows=" + std::to_string(rows) + " hist=" + std::to_string(hist) +
                           " dim=" + std::to_string(dim) + " w=" + Name(wt) + " io=" + Name(io) +
                           " hidden=" + std::to_string(hidden.size()) + (use_mask ? " mask" : "") +
                           " pooling=" + std::to_string(pooling);
  SCOPED_TRACE(what);
  std::vector<int64_t> widths = {4 * dim};
  widths.insert(widths.end(), hidden.begin(), hidden.end());
  widths.push_back(1);
  MlpHost h = MakeMlp(widths, std::vector<int>(widths.size() - 1, 0), wt, bias, rng);
  DinAttentionArgs a;
  a.rows = rows, a.hist = hist, a.dim = dim, a.w_type = wt, a.pooling = pooling;
  a.count = h.args.count;
  for (int i = 0; i < a.count; ++i) a.layers[i] = h.args.layers[i];
  std::vector<Tensor> slopes;
  for (size_t i = 0; i < hidden.size(); ++i) {
    const std::vector<float> sl = Random(rng, hidden[i], DataType::kF32, 0.f, 0.5f);
    h.keep.push_back(std::make_unique<DevBuf>(sl.size() * sizeof(float)));
    Upload(*h.keep.back(), sl);
    a.prelu[i] = h.keep.back()->get<float>();
    slopes.push_back(T32({hidden[i]}, sl));
  }
  const int64_t q_ld = dim + 3, k_ld = hist * dim + 5, o_ld = dim + 4, o_off = 2;
  const std::vector<float> q = Random(rng, rows * q_ld, io), k = Random(rng, rows * k_ld, io);
  std::vector<uint8_t> mask(rows * hist, 1);
  std::bernoulli_distribution keep(0.7);
  if (use_mask) {
    for (auto& m : mask) m = keep(rng);
    if (rows > 2) std::fill_n(mask.begin() + hist, hist, 0);  // a fully masked row
  }
  DevBuf d_q(q.size() * SizeOf(io)), d_k(k.size() * SizeOf(io)), d_mask(mask.size()),
      d_out(rows * o_ld * SizeOf(io));
  UploadAs(d_q, io, q);
  UploadAs(d_k, io, k);
  Upload(d_mask, mask);
  UploadAs(d_out, io, std::vector<float>(rows * o_ld, kSentinel));
  a.query = View{d_q.get(), io, q_ld};
  a.keys = View{d_k.get(), io, k_ld};
  a.mask = use_mask ? d_mask.get<uint8_t>() : nullptr;
  a.out = View{d_out.get<char>() + o_off * SizeOf(io), io, o_ld};
  const Status s = LaunchDinAttention(a, nullptr);
  ASSERT_TRUE(s.ok()) << s.ToString();
  CUDA_OK(cudaDeviceSynchronize());

  std::vector<ref::DinHiddenLayer> layers;
  for (size_t i = 0; i < hidden.size(); ++i) layers.push_back({&h.w[i], &h.b[i], &slopes[i]});
  std::vector<bool> mask_b(mask.begin(), mask.end());
  auto want = ref::DinAttention(T32({rows, dim}, Block(q, rows, dim, q_ld, 0)),
                                T32({rows, hist, dim}, Block(k, rows, hist * dim, k_ld, 0)),
                                Tensor::FromVector<bool>({rows, hist}, mask_b), layers, h.w.back(),
                                h.b.back(), static_cast<ref::DinPooling>(pooling));
  ASSERT_TRUE(want.ok()) << want.status().ToString();
  const std::vector<float> all = DownloadAs(d_out, io, rows * o_ld);
  EXPECT_CLOSE(Block(all, rows, dim, o_ld, o_off), Rounded(io, ToVec(want.value())),
               TolFor(io, 3e-5f), what);
  const std::vector<float> rest = Outside(all, rows, dim, o_ld, o_off);
  EXPECT_CLOSE(rest, std::vector<float>(rest.size(), kSentinel), (Tol{0, 0}), what + " outside");
}

TEST(CudaKernels, DinAttention) {
  std::mt19937 rng(12);
  for (DataType wt : kTypes) {
    RunDin(7, 20, 16, {80, 40}, wt, DataType::kF32, true, 1, rng);
    RunDin(1, 1, 8, {16}, wt, DataType::kF32, false, 0, rng);
    RunDin(64, 50, 32, {80, 40}, wt, DataType::kF32, true, 0, rng, false);
    RunDin(5, 130, 16, {80, 40}, wt, DataType::kF32, true, 1, rng);      // two history tiles
    RunDin(3, 9, 12, {}, wt, DataType::kF32, true, 1, rng);              // scoring layer only
    RunDin(4, 33, 256, {1024, 7, 3}, wt, DataType::kF32, true, 1, rng);  // widest, 4 layers
  }
  for (DataType io : {DataType::kF16, DataType::kBF16}) {
    RunDin(9, 40, 16, {80, 40}, DataType::kF16, io, true, 1, rng);
  }
}

TEST(CudaKernels, DinAttentionRejectsBadArgs) {
  DinAttentionArgs a;
  a.rows = 2, a.hist = 3, a.dim = 4, a.count = 1;
  a.layers[0].k = 16, a.layers[0].n = 2;
  Status s = LaunchDinAttention(a, nullptr);
  // Several fields are wrong here (n of the last layer, null pointers): any may be named first.
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << s.ToString();
  EXPECT_NE(s.message().find("DinAttention"), std::string::npos) << s.ToString();
  a.layers[0].n = 1;
  a.layers[0].k = 12;
  s = LaunchDinAttention(a, nullptr);
  EXPECT_NE(s.message().find("layers[0].k"), std::string::npos) << s.ToString();
  a.layers[0].k = 16;
  s = LaunchDinAttention(a, nullptr);  // w null
  EXPECT_NE(s.message().find("layers[0].w"), std::string::npos) << s.ToString();
}

// ---- CUDA graph capture and timings ----------------------------------------------------------

// Every launcher must be capturable: the graph's results equal a direct launch's, bit for bit.
TEST(CudaKernels, LaunchersCaptureIntoGraphs) {
  std::mt19937 rng(13);
  MlpHost h = MakeMlp(kDeepFm, kDeepFmActs, DataType::kF16, true, rng);
  const int64_t rows = 32;
  const std::vector<float> x = Random(rng, rows * 221, DataType::kF32);
  DevBuf d_in(x.size() * 4), d_direct(rows * 4), d_graph(rows * 4), d_tmp(rows * 221 * 4),
      d_half(rows * 2);
  UploadAs(d_in, DataType::kF32, x);
  h.args.rows = rows;
  h.args.in = View{d_in.get(), DataType::kF32, 221};
  h.args.out = View{d_direct.get(), DataType::kF32, 1};
  ASSERT_TRUE(LaunchFusedMlp(h.args, nullptr).ok());
  CUDA_OK(cudaDeviceSynchronize());

  cudaStream_t stream;
  CUDA_OK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
  cudaGraph_t graph;
  CUDA_OK(cudaStreamBeginCapture(stream, cudaStreamCaptureModeGlobal));
  MlpArgs g = h.args;
  g.in = View{d_tmp.get(), DataType::kF32, 221};
  g.out = View{d_graph.get(), DataType::kF32, 1};
  EwProgram p;  // tmp = 1 * in, through the interpreter
  p.count = 1;
  p.instrs[0].op = EwOp::kMulConst;
  p.instrs[0].c = 1.f;
  const Status s1 = LaunchElementwise(p, h.args.in, g.in, rows, 221, stream);
  const Status s2 = LaunchFusedMlp(g, stream);
  const Status s3 = LaunchCopy2D(g.out, View{d_half.get(), DataType::kF16, 1}, rows, 1, stream);
  const cudaError_t end = cudaStreamEndCapture(stream, &graph);
  ASSERT_TRUE(s1.ok()) << s1.ToString();
  ASSERT_TRUE(s2.ok()) << s2.ToString();
  ASSERT_TRUE(s3.ok()) << s3.ToString();
  CUDA_OK(end);
  cudaGraphExec_t exec;
  CUDA_OK(cudaGraphInstantiate(&exec, graph, 0));
  CUDA_OK(cudaGraphLaunch(exec, stream));
  CUDA_OK(cudaStreamSynchronize(stream));
  EXPECT_CLOSE(DownloadAs(d_graph, DataType::kF32, rows),
               DownloadAs(d_direct, DataType::kF32, rows), (Tol{0, 0}), "graph vs direct");
  EXPECT_CLOSE(DownloadAs(d_half, DataType::kF16, rows),
               Rounded(DataType::kF16, DownloadAs(d_direct, DataType::kF32, rows)), (Tol{0, 0}),
               "graph's Copy2D");
  cudaGraphExecDestroy(exec);
  cudaGraphDestroy(graph);
  cudaStreamDestroy(stream);
}

// Median microseconds per call: `reps` samples of `batch` back-to-back launches each.
template <typename F>
double MedianUs(F launch, int batch, int reps = 15) {
  cudaEvent_t a, b;
  cudaEventCreate(&a);
  cudaEventCreate(&b);
  for (int i = 0; i < 3; ++i) launch();
  std::vector<double> us;
  for (int r = 0; r < reps; ++r) {
    cudaEventRecord(a);
    for (int i = 0; i < batch; ++i) launch();
    cudaEventRecord(b);
    cudaEventSynchronize(b);
    float ms = 0;
    cudaEventElapsedTime(&ms, a, b);
    us.push_back(1000.0 * ms / batch);
  }
  cudaEventDestroy(a);
  cudaEventDestroy(b);
  std::sort(us.begin(), us.end());
  return us[us.size() / 2];
}

// Prints figures for the lead (asserts only that the launches succeed).
TEST(CudaKernels, Timings) {
  std::mt19937 rng(14);
  for (DataType tt : {DataType::kF16, DataType::kF32}) {
    const int64_t B = 32768, F = 26, D = 16, V = 26 * 100000;
    std::vector<int64_t> ids(B * F);
    std::uniform_int_distribution<int64_t> u(0, V - 1);
    for (auto& i : ids) i = u(rng);
    DevBuf d_ids(ids.size() * 8), d_table(V * D * SizeOf(tt)), d_t1(V * SizeOf(tt)),
        d_out(B * F * D * SizeOf(tt)), d_fm(B * 4), d_first(B * 4), d_err(16);
    Upload(d_ids, ids);
    CUDA_OK(cudaMemset(d_table.get(), 0, d_table.bytes()));
    CUDA_OK(cudaMemset(d_t1.get(), 0, d_t1.bytes()));
    CUDA_OK(cudaMemset(d_err.get(), 0xff, 16));
    EmbeddingArgs a;
    a.rows = B, a.fields = F, a.dim = D, a.table_rows = V, a.ids = d_ids.get(), a.ids_ld = F;
    a.table = d_table.get(), a.table_type = tt, a.out = View{d_out.get(), tt, F * D};
    a.error = d_err.get<int64_t>();
    bool ok = true;
    const double gather = MedianUs([&] { ok &= LaunchEmbedding(a, nullptr).ok(); }, 20);
    a.fm = d_fm.get<float>(), a.table1 = d_t1.get(), a.first = d_first.get<float>();
    const double fused = MedianUs([&] { ok &= LaunchEmbedding(a, nullptr).ok(); }, 20);
    EXPECT_TRUE(ok);
    std::cout << "[timing] embedding 32768x26x16 table " << Name(tt) << ": gather " << gather
              << " us, gather+fm+first " << fused << " us\n";
  }
  for (DataType wt : {DataType::kF16, DataType::kF32}) {
    MlpHost h = MakeMlp(kDeepFm, kDeepFmActs, wt, true, rng);
    DevBuf d_in(256 * 221 * 4), d_out(256 * 4);
    CUDA_OK(cudaMemset(d_in.get(), 0, d_in.bytes()));
    h.args.in = View{d_in.get(), DataType::kF32, 221};
    h.args.out = View{d_out.get(), DataType::kF32, 1};
    for (int64_t rows : {1, 8, 64, 256}) {
      h.args.rows = rows;
      bool ok = true;
      const double stream_us = MedianUs([&] { ok &= LaunchFusedMlp(h.args, nullptr).ok(); }, 50);
      const double single_us = MedianUs([&] { ok &= LaunchFusedMlp(h.args, nullptr).ok(); }, 1, 31);
      EXPECT_TRUE(ok);
      std::cout << "[timing] fused mlp 221-200-200-200-1 w=" << Name(wt) << " rows " << rows << ": "
                << stream_us << " us/launch back-to-back, " << single_us
                << " us single launch (events around it)\n";
    }
  }
}

}  // namespace
}  // namespace clickrt::cuda
