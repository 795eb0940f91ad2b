// Finite-difference checks of every backward kernel in backward.h: for
// random inputs and a random dy, the loss L = sum(dy * f(inputs)) is
// evaluated with the forward kernels' references (double accumulation) and
// its central differences compared with the analytic gradients.
#include "kernels/backward.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <functional>
#include <map>
#include <numeric>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "gtest/gtest-spi.h"
#include "gtest/gtest.h"
#include "kernels/binary.h"
#include "kernels/convolution.h"
#include "kernels/eltwise.h"
#include "kernels/kernel_test_util.h"
#include "kernels/layer_norm.h"
#include "kernels/matmul.h"
#include "kernels/pooling.h"
#include "kernels/reduction.h"
#include "kernels/reorder.h"
#include "kernels/softmax.h"

namespace quantd {
namespace {

using Fn = std::function<absl::Status(const std::vector<Tensor>&, Tensor*)>;

struct FdResult {
  int checked = 0;
  int bad = 0;
  double max_abs = 0;  // max |analytic - fd|
  double max_rel = 0;  // max |analytic - fd| / max(|fd|, 1e-2)
};

// Worst errors per family, printed at the end.
std::map<std::string, FdResult>& Summary() {
  static auto* m = new std::map<std::string, FdResult>();
  return *m;
}

double Loss(const Fn& f, const std::vector<Tensor>& inputs, const Tensor& r) {
  Tensor y;
  absl::Status s = f(inputs, &y);
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok() || y.shape() != r.shape()) {
    ADD_FAILURE() << "forward output " << y.DebugString() << " vs dy "
                  << r.DebugString();
    return 0;
  }
  double l = 0;
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    l += double(r.data<float>()[i]) * y.data<float>()[i];
  }
  return l;
}

// Compares grads[i] (skipped when undefined) with central differences of
// L = sum(r * f(inputs)) with respect to inputs[i]. Failing elements are
// |analytic - fd| > atol + rtol * |fd|.
FdResult CheckGradients(const Fn& f, std::vector<Tensor> inputs,
                        const Tensor& r, const std::vector<Tensor>& grads,
                        double eps, double rtol = 1e-2, double atol = 1e-3) {
  FdResult res;
  for (Tensor& t : inputs) t = t.Clone();  // perturbed in place
  for (size_t i = 0; i < grads.size(); ++i) {
    if (!grads[i].defined()) continue;
    EXPECT_EQ(grads[i].shape(), inputs[i].shape()) << "gradient " << i;
    if (grads[i].shape() != inputs[i].shape()) {
      ++res.bad;
      continue;
    }
    float* p = inputs[i].mutable_data<float>();
    for (int64_t j = 0; j < inputs[i].num_elements(); ++j) {
      const float v = p[j];
      const float plus = v + static_cast<float>(eps);
      const float minus = v - static_cast<float>(eps);
      p[j] = plus;
      const double lp = Loss(f, inputs, r);
      p[j] = minus;
      const double lm = Loss(f, inputs, r);
      p[j] = v;
      const double fd = (lp - lm) / (double(plus) - double(minus));
      const double a = grads[i].data<float>()[j];
      const double err = std::fabs(a - fd);
      ++res.checked;
      res.max_abs = std::max(res.max_abs, err);
      res.max_rel = std::max(res.max_rel, err / std::max(std::fabs(fd), 1e-2));
      if (!(err <= atol + rtol * std::fabs(fd))) {
        if (++res.bad <= 5) {
          ADD_FAILURE() << "input " << i << " element " << j << ": analytic "
                        << a << " vs finite difference " << fd;
        }
      }
    }
  }
  return res;
}

void ExpectGradients(const std::string& family, const Fn& f,
                     const std::vector<Tensor>& inputs, const Tensor& r,
                     const std::vector<Tensor>& grads, double eps,
                     double rtol = 1e-2, double atol = 1e-3) {
  FdResult res = CheckGradients(f, inputs, r, grads, eps, rtol, atol);
  EXPECT_EQ(res.bad, 0) << family << ": of " << res.checked;
  EXPECT_GT(res.checked, 0) << family;
  FdResult& s = Summary()[family];
  s.checked += res.checked;
  s.bad += res.bad;
  s.max_abs = std::max(s.max_abs, res.max_abs);
  s.max_rel = std::max(s.max_rel, res.max_rel);
}

class SummaryPrinter : public ::testing::Environment {
 public:
  void TearDown() override {
    for (const auto& [family, r] : Summary()) {
      std::printf("FD %-14s checked %6d  max abs err %.2e  max rel err %.2e\n",
                  family.c_str(), r.checked, r.max_abs, r.max_rel);
    }
  }
};
const auto* const kPrinter =
    ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

// Distinct values spaced `gap` apart in random order (no near-ties for max).
Tensor Distinct(Shape shape, std::mt19937& rng, float gap = 0.01f) {
  Tensor t(DataType::kFloat32, std::move(shape));
  std::vector<int> order(t.num_elements());
  std::iota(order.begin(), order.end(), 0);
  std::shuffle(order.begin(), order.end(), rng);
  const float mid = gap * t.num_elements() / 2;
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = order[i] * gap - mid;
  }
  return t;
}

// The checker must catch a wrong gradient.
TEST(GradientCheckTest, DetectsWrongGradient) {
  std::mt19937 rng(1);
  Tensor a = RandomFloat({3, 4}, rng), b = RandomFloat({3, 4}, rng);
  Tensor r = RandomFloat({3, 4}, rng);
  Fn mul = [](const std::vector<Tensor>& in, Tensor* y) {
    return BinaryReference(BinaryOp::kMul, in[0], in[1], y);
  };
  Tensor da, db;
  ASSERT_TRUE(BinaryBackward(BinaryOp::kMul, a, b, r, &da, &db).ok());
  EXPECT_EQ(CheckGradients(mul, {a, b}, r, {da, db}, 1e-2).bad, 0);
  Tensor wrong = da.Clone();
  wrong.mutable_data<float>()[5] *= 1.05f;
  wrong.mutable_data<float>()[5] += 0.01f;
  {
    ::testing::TestPartResultArray failures;
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &failures);
    EXPECT_EQ(CheckGradients(mul, {a, b}, r, {wrong, Tensor()}, 1e-2).bad, 1);
  }
  // Swapped gradients (shapes agree) are caught too.
  {
    ::testing::TestPartResultArray failures;
    ::testing::ScopedFakeTestPartResultReporter reporter(
        ::testing::ScopedFakeTestPartResultReporter::
            INTERCEPT_ONLY_CURRENT_THREAD,
        &failures);
    EXPECT_GT(CheckGradients(mul, {a, b}, r, {db, da}, 1e-2).bad, 0);
  }
}

// --- Convolution -----------------------------------------------------------

struct ConvCase {
  std::string name;
  Shape x, w;
  ConvParams p;
};

ConvParams Conv(std::vector<int64_t> strides, std::vector<int64_t> pb,
                std::vector<int64_t> pe, std::vector<int64_t> dil,
                int64_t groups) {
  ConvParams p;
  p.strides = std::move(strides);
  p.pads_begin = std::move(pb);
  p.pads_end = std::move(pe);
  p.dilations = std::move(dil);
  p.groups = groups;
  return p;
}

class ConvBackwardTest : public ::testing::TestWithParam<ConvCase> {};

TEST_P(ConvBackwardTest, MatchesReferenceAndFiniteDifferences) {
  const ConvCase& c = GetParam();
  std::mt19937 rng(7);
  Tensor x = RandomFloat(c.x, rng), w = RandomFloat(c.w, rng);
  Tensor b = RandomFloat({c.w[0]}, rng);
  absl::StatusOr<Shape> out = ConvOutputShape(c.p, c.x, c.w);
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor dy = RandomFloat(*out, rng);
  Tensor dx, dw, db, rdx, rdw, rdb;
  absl::Status s = ConvolutionBackward(c.p, x, w, dy, &dx, &dw, &db);
  ASSERT_TRUE(s.ok()) << s;
  s = ConvolutionBackwardReference(c.p, x, w, dy, &rdx, &rdw, &rdb);
  ASSERT_TRUE(s.ok()) << s;
  ExpectClose(dx, rdx, 1e-4);
  ExpectClose(dw, rdw, 1e-4);
  ExpectClose(db, rdb, 1e-4);
  const ConvParams p = c.p;
  Fn f = [p](const std::vector<Tensor>& in, Tensor* y) {
    return ConvolutionReference(p, PostOps{}, in[0], in[1], &in[2], y);
  };
  // Conv is linear in each input: the differences have no truncation error.
  ExpectGradients("conv", f, {x, w, b}, dy, {dx, dw, db}, 1e-2);
  // Only dx requested.
  Tensor only_dx;
  ASSERT_TRUE(
      ConvolutionBackward(c.p, x, w, dy, &only_dx, nullptr, nullptr).ok());
  ExpectClose(only_dx, rdx, 1e-4);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ConvBackwardTest,
    ::testing::Values(
        ConvCase{
            "plain3x3", {2, 3, 6, 5}, {4, 3, 3, 3}, Conv({}, {}, {}, {}, 1)},
        ConvCase{"strided_asym_pads_dilated_groups",
                 {2, 4, 7, 8},
                 {6, 2, 3, 2},
                 Conv({2, 1}, {1, 0}, {2, 1}, {2, 1}, 2)},
        ConvCase{"depthwise",
                 {1, 4, 6, 6},
                 {4, 1, 3, 3},
                 Conv({2, 2}, {1, 1}, {1, 1}, {}, 4)},
        ConvCase{
            "pointwise", {2, 5, 4, 3}, {3, 5, 1, 1}, Conv({}, {}, {}, {}, 1)},
        ConvCase{"conv1d", {2, 3, 11}, {4, 3, 3}, Conv({2}, {1}, {2}, {2}, 1)},
        ConvCase{"conv3d",
                 {1, 2, 4, 5, 4},
                 {3, 2, 2, 3, 2},
                 Conv({1, 2, 1}, {0, 1, 1}, {1, 0, 0}, {}, 1)}),
    [](const auto& info) { return info.param.name; });

// Cached primitives run with a scratchpad per execution: several threads may
// share one.
TEST(ConvBackwardTest, ConcurrentCallsAgree) {
  std::mt19937 rng(59);
  ConvParams p = Conv({1, 1}, {1, 1}, {1, 1}, {}, 1);
  Tensor x = RandomFloat({4, 8, 12, 12}, rng);
  Tensor w = RandomFloat({16, 8, 3, 3}, rng);
  Tensor dy = RandomFloat({4, 16, 12, 12}, rng);
  Tensor b = RandomFloat({12, 5}, rng), mm_dy = RandomFloat({4, 8, 12, 5}, rng);
  Tensor dx, dw, db, da_mm, db_mm;
  ASSERT_TRUE(ConvolutionBackward(p, x, w, dy, &dx, &dw, &db).ok());
  ASSERT_TRUE(MatMulBackward(x, b, mm_dy, false, &da_mm, &db_mm).ok());
  std::vector<std::thread> threads;
  std::vector<Tensor> dxs(4), dws(4), das(4), dbs(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 5; ++i) {
        Tensor db_t;
        EXPECT_TRUE(
            ConvolutionBackward(p, x, w, dy, &dxs[t], &dws[t], &db_t).ok());
        EXPECT_TRUE(MatMulBackward(x, b, mm_dy, false, &das[t], &dbs[t]).ok());
      }
    });
  }
  for (std::thread& t : threads) t.join();
  for (int t = 0; t < 4; ++t) {
    ExpectClose(dxs[t], dx, 1e-5);     // a shared scratchpad would be far off
    ExpectClose(dws[t], dw, 1e-5);     // a shared scratchpad would be far off
    ExpectClose(das[t], da_mm, 1e-5);  // a shared scratchpad would be far off
    ExpectClose(dbs[t], db_mm, 1e-5);  // a shared scratchpad would be far off
  }
}

TEST(ConvBackwardTest, RejectsWrongDyShape) {
  std::mt19937 rng(1);
  Tensor x = RandomFloat({1, 2, 5, 5}, rng), w = RandomFloat({3, 2, 3, 3}, rng);
  Tensor dy = RandomFloat({1, 3, 5, 5}, rng);
  Tensor dx, dw, db;
  absl::Status s = ConvolutionBackward(ConvParams{}, x, w, dy, &dx, &dw, &db);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
}

// --- MatMul / bias -----------------------------------------------------------

struct MatMulCase {
  std::string name;
  Shape a, b;
  bool transpose_b;
};

class MatMulBackwardTest : public ::testing::TestWithParam<MatMulCase> {};

TEST_P(MatMulBackwardTest, FiniteDifferences) {
  const MatMulCase& c = GetParam();
  std::mt19937 rng(11);
  Tensor a = RandomFloat(c.a, rng), b = RandomFloat(c.b, rng);
  absl::StatusOr<Shape> out = MatMulOutputShape(c.a, c.b, c.transpose_b);
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor dy = RandomFloat(*out, rng);
  Tensor da, db;
  absl::Status s = MatMulBackward(a, b, dy, c.transpose_b, &da, &db);
  ASSERT_TRUE(s.ok()) << s;
  const bool t = c.transpose_b;
  Fn f = [t](const std::vector<Tensor>& in, Tensor* y) {
    return MatMulReference(PostOps{}, t, in[0], in[1], nullptr, y);
  };
  ExpectGradients("matmul", f, {a, b}, dy, {da, db}, 1e-2);
  Tensor rda, rdb;
  s = MatMulBackwardReference(a, b, dy, c.transpose_b, &rda, &rdb);
  ASSERT_TRUE(s.ok()) << s;
  ExpectClose(da, rda, 1e-5);
  ExpectClose(db, rdb, 1e-5);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MatMulBackwardTest,
    ::testing::Values(
        MatMulCase{"plain", {3, 4}, {4, 5}, false},
        MatMulCase{"batch_broadcast", {2, 1, 3, 4}, {5, 4, 6}, false},
        MatMulCase{"broadcast_a", {3, 4}, {2, 4, 5}, false},
        MatMulCase{"transpose_b", {2, 3, 4}, {5, 4}, true},
        MatMulCase{"transpose_b_batched", {2, 3, 4}, {2, 5, 4}, true},
        MatMulCase{"vector_a", {4}, {2, 4, 3}, false},
        MatMulCase{"vector_b", {2, 3, 4}, {4}, false},
        MatMulCase{"linear_shared_weight", {2, 3, 4}, {4, 5}, false},
        MatMulCase{"linear_shared_weight_t", {2, 3, 4}, {5, 4}, true},
        MatMulCase{"both_broadcast", {3, 1, 2, 4}, {1, 2, 4, 3}, false},
        MatMulCase{"attention", {2, 3, 5, 4}, {2, 3, 5, 4}, true}),
    [](const auto& info) { return info.param.name; });

// Sizes where oneDNN picks its blocked GEMM paths (and threads).
TEST(MatMulBackwardTest, LargeLinearMatchesReference) {
  std::mt19937 rng(53);
  Tensor a = RandomFloat({8, 64, 96}, rng), b = RandomFloat({96, 80}, rng);
  Tensor dy = RandomFloat({8, 64, 80}, rng);
  Tensor da, db, rda, rdb;
  ASSERT_TRUE(MatMulBackward(a, b, dy, false, &da, &db).ok());  // creation
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE(MatMulBackward(a, b, dy, false, &da, &db).ok());
  const auto t1 = std::chrono::steady_clock::now();
  ASSERT_TRUE(MatMulBackwardReference(a, b, dy, false, &rda, &rdb).ok());
  const auto t2 = std::chrono::steady_clock::now();
  ExpectClose(da, rda, 1e-4);
  ExpectClose(db, rdb, 1e-4);
  std::printf(
      "matmul backward [8,64,96]x[96,80]: oneDNN %.2f ms "
      "(cached primitives), loops %.2f ms\n",
      std::chrono::duration<double, std::milli>(t1 - t0).count(),
      std::chrono::duration<double, std::milli>(t2 - t1).count());
}

TEST(BiasGradientTest, GemmAndConvBias) {
  std::mt19937 rng(3);
  // Gemm: y = x + bias[N] over [M, N].
  Tensor x = RandomFloat({4, 5}, rng), bias = RandomFloat({5}, rng);
  Tensor dy = RandomFloat({4, 5}, rng);
  Tensor db;
  ASSERT_TRUE(BiasGradient(dy, -1, &db).ok());
  Fn add = [](const std::vector<Tensor>& in, Tensor* y) {
    return BinaryReference(BinaryOp::kAdd, in[0], in[1], y);
  };
  ExpectGradients("bias", add, {x, bias}, dy, {Tensor(), db}, 1e-2);
  // Conv-style: bias [C] over [N, C, H, W] (viewed as [C, 1, 1]).
  Tensor y4 = RandomFloat({2, 3, 2, 2}, rng),
         dy4 = RandomFloat({2, 3, 2, 2}, rng);
  Tensor cb = RandomFloat({3, 1, 1}, rng);
  ASSERT_TRUE(BiasGradient(dy4, 1, &db).ok());
  ASSERT_EQ(db.shape(), Shape({3}));
  absl::StatusOr<Tensor> db3 = db.Reshaped({3, 1, 1});
  ASSERT_TRUE(db3.ok());
  ExpectGradients("bias", add, {y4, cb}, dy4, {Tensor(), *db3}, 1e-2);
}

// --- Eltwise ---------------------------------------------------------------

struct EltwiseCase {
  EltwiseOp op;
  float alpha, beta;
  float lo, hi;              // input range
  std::vector<float> kinks;  // points to keep away from
};

class EltwiseBackwardTest : public ::testing::TestWithParam<EltwiseCase> {};

TEST_P(EltwiseBackwardTest, FiniteDifferences) {
  const EltwiseCase& c = GetParam();
  std::mt19937 rng(5);
  Tensor x = RandomFloat({3, 7, 5}, rng, c.lo, c.hi);
  for (float& v : x.mutable_span<float>()) {
    for (float k : c.kinks) {
      if (std::fabs(v - k) < 0.02f) v = k + (v < k ? -0.05f : 0.05f);
    }
  }
  Tensor dy = RandomFloat(x.shape(), rng);
  Tensor dx;
  absl::Status s = EltwiseBackward(c.op, c.alpha, c.beta, x, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  const EltwiseCase cc = c;
  Fn f = [cc](const std::vector<Tensor>& in, Tensor* y) {
    return EltwiseReference(cc.op, cc.alpha, cc.beta, in[0], y);
  };
  ExpectGradients("eltwise", f, {x}, dy, {dx}, 1e-3);
}

const float kInf = std::numeric_limits<float>::infinity();

INSTANTIATE_TEST_SUITE_P(
    Ops, EltwiseBackwardTest,
    ::testing::Values(
        EltwiseCase{EltwiseOp::kRelu, 0, 0, -3, 3, {0}},
        EltwiseCase{EltwiseOp::kLeakyRelu, 0.1f, 0, -3, 3, {0}},
        EltwiseCase{EltwiseOp::kSigmoid, 0, 0, -5, 5, {}},
        EltwiseCase{EltwiseOp::kHardSigmoid, 0.2f, 0.5f, -4, 4, {-2.5f, 2.5f}},
        EltwiseCase{EltwiseOp::kHardSwish, 0, 0, -5, 5, {-3, 3}},
        EltwiseCase{EltwiseOp::kTanh, 0, 0, -3, 3, {}},
        EltwiseCase{EltwiseOp::kErf, 0, 0, -2.5f, 2.5f, {}},
        EltwiseCase{EltwiseOp::kGeluErf, 0, 0, -4, 4, {}},
        EltwiseCase{EltwiseOp::kGeluTanh, 0, 0, -4, 4, {}},
        EltwiseCase{EltwiseOp::kClip, -0.5f, 0.7f, -2, 2, {-0.5f, 0.7f}},
        EltwiseCase{EltwiseOp::kClip, -kInf, kInf, -2, 2, {}},
        EltwiseCase{EltwiseOp::kExp, 0, 0, -3, 2, {}},
        EltwiseCase{EltwiseOp::kLog, 0, 0, 0.2f, 4, {}},
        EltwiseCase{EltwiseOp::kSqrt, 0, 0, 0.2f, 4, {}},
        EltwiseCase{EltwiseOp::kAbs, 0, 0, -2, 2, {0}},
        EltwiseCase{EltwiseOp::kNeg, 0, 0, -2, 2, {}},
        EltwiseCase{EltwiseOp::kElu, 1.0f, 0, -3, 3, {0}},
        EltwiseCase{EltwiseOp::kLinear, 1.5f, -0.25f, -2, 2, {}}),
    [](const auto& info) {
      return std::string(EltwiseOpName(info.param.op)) +
             std::to_string(info.index);
    });

TEST(EltwiseBackwardTest, UnsupportedOpIsUnimplemented) {
  EXPECT_FALSE(HasEltwiseBackward(EltwiseOp::kSelu));
  Tensor x = Tensor::Zeros(DataType::kFloat32, {2}), dx;
  EXPECT_EQ(EltwiseBackward(EltwiseOp::kSelu, 1, 1, x, x, &dx).code(),
            absl::StatusCode::kUnimplemented);
}

// --- Pooling ---------------------------------------------------------------

struct PoolCase {
  std::string name;
  Shape x;
  PoolParams p;
};

PoolParams Pool(PoolKind kind, std::vector<int64_t> kernel,
                std::vector<int64_t> strides, std::vector<int64_t> pads,
                bool ceil_mode = false, bool include_pad = false,
                std::vector<int64_t> dilations = {}) {
  PoolParams p;
  p.kind = kind;
  p.kernel = std::move(kernel);
  p.strides = std::move(strides);
  p.pads = std::move(pads);
  p.ceil_mode = ceil_mode;
  p.count_include_pad = include_pad;
  p.dilations = std::move(dilations);
  return p;
}

class PoolingBackwardTest : public ::testing::TestWithParam<PoolCase> {};

TEST_P(PoolingBackwardTest, FiniteDifferences) {
  const PoolCase& c = GetParam();
  std::mt19937 rng(13);
  // Distinct values 0.01 apart: a perturbation of 1e-3 never moves a max.
  Tensor x = Distinct(c.x, rng);
  absl::StatusOr<Shape> out = PoolOutputShape(c.p, c.x);
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor dy = RandomFloat(*out, rng);
  Tensor dx;
  absl::Status s = PoolingBackward(c.p, x, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  const PoolParams p = c.p;
  Fn f = [p](const std::vector<Tensor>& in, Tensor* y) {
    return PoolReference(p, in[0], y);
  };
  ExpectGradients("pooling", f, {x}, dy, {dx}, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, PoolingBackwardTest,
    ::testing::Values(
        PoolCase{
            "max2x2", {2, 3, 6, 6}, Pool(PoolKind::kMax, {2, 2}, {2, 2}, {})},
        PoolCase{"max3x3_overlap_pads_ceil",
                 {1, 2, 7, 6},
                 Pool(PoolKind::kMax, {3, 3}, {2, 2}, {1, 0, 1, 1}, true)},
        PoolCase{
            "max_dilated",
            {1, 2, 7, 7},
            Pool(PoolKind::kMax, {2, 2}, {1, 2}, {}, false, false, {2, 2})},
        PoolCase{"max1d", {2, 2, 9}, Pool(PoolKind::kMax, {3}, {2}, {1, 1})},
        PoolCase{"avg_exclude_pad",
                 {2, 2, 6, 5},
                 Pool(PoolKind::kAverage, {3, 3}, {2, 2}, {1, 1, 1, 1})},
        PoolCase{
            "avg_include_pad_ceil",
            {1, 3, 6, 7},
            Pool(PoolKind::kAverage, {3, 2}, {2, 2}, {1, 0, 0, 1}, true, true)},
        PoolCase{"avg3d",
                 {1, 2, 4, 4, 5},
                 Pool(PoolKind::kAverage, {2, 2, 3}, {2, 1, 2}, {})},
        PoolCase{
            "global_avg", {2, 3, 4, 5}, GlobalPoolParams(PoolKind::kAverage)},
        PoolCase{"global_max", {2, 3, 4, 5}, GlobalPoolParams(PoolKind::kMax)}),
    [](const auto& info) { return info.param.name; });

// --- Softmax / LayerNorm ---------------------------------------------------

TEST(SoftmaxBackwardTest, FiniteDifferences) {
  for (bool log : {false, true}) {
    for (int axis : {-1, 1, 0}) {
      SCOPED_TRACE(testing::Message() << "log " << log << " axis " << axis);
      std::mt19937 rng(17);
      Tensor x = RandomFloat({3, 5, 4}, rng, -2, 2);
      Tensor dy = RandomFloat(x.shape(), rng);
      Tensor y, dx;
      ASSERT_TRUE(SoftmaxReference(x, axis, log, &y).ok());
      absl::Status s = SoftmaxBackward(y, dy, axis, log, &dx);
      ASSERT_TRUE(s.ok()) << s;
      Fn f = [axis, log](const std::vector<Tensor>& in, Tensor* out) {
        return SoftmaxReference(in[0], axis, log, out);
      };
      ExpectGradients("softmax", f, {x}, dy, {dx}, 1e-3);
    }
  }
}

struct LayerNormCase {
  std::string name;
  Shape x, scale, bias;  // empty scale/bias: none
  int axis;
};

class LayerNormBackwardTest : public ::testing::TestWithParam<LayerNormCase> {};

TEST_P(LayerNormBackwardTest, FiniteDifferences) {
  const LayerNormCase& c = GetParam();
  std::mt19937 rng(19);
  Tensor x = RandomFloat(c.x, rng, -2, 2);
  Tensor scale =
      c.scale.empty() ? Tensor() : RandomFloat(c.scale, rng, 0.5, 1.5);
  Tensor bias = c.bias.empty() ? Tensor() : RandomFloat(c.bias, rng);
  Tensor dy = RandomFloat(c.x, rng);
  const float epsilon = 1e-5f;
  Tensor dx, dscale, dbias;
  const Tensor* sp = scale.defined() ? &scale : nullptr;
  const Tensor* bp = bias.defined() ? &bias : nullptr;
  absl::Status s =
      LayerNormBackward(x, sp, bp, dy, c.axis, epsilon, &dx,
                        sp ? &dscale : nullptr, bp ? &dbias : nullptr);
  ASSERT_TRUE(s.ok()) << s;
  const int axis = c.axis;
  const bool has_scale = sp != nullptr, has_bias = bp != nullptr;
  Fn f = [=](const std::vector<Tensor>& in, Tensor* y) {
    return LayerNormReference(in[0], has_scale ? &in[1] : nullptr,
                              has_bias ? &in[2] : nullptr, axis, epsilon, y);
  };
  ExpectGradients("layernorm", f, {x, scale, bias}, dy, {dx, dscale, dbias},
                  1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, LayerNormBackwardTest,
    ::testing::Values(
        LayerNormCase{"last_axis", {2, 3, 8}, {8}, {8}, -1},
        LayerNormCase{"two_axes_tiled_scale", {2, 3, 6}, {6}, {3, 6}, 1},
        LayerNormCase{"no_affine", {4, 7}, {}, {}, -1},
        LayerNormCase{"scale_only_keepdim", {3, 5}, {1, 5}, {}, 1}),
    [](const auto& info) { return info.param.name; });

// --- Binary ----------------------------------------------------------------

struct BinaryCase {
  std::string name;
  BinaryOp op;
  Shape a, b;
};

class BinaryBackwardTest : public ::testing::TestWithParam<BinaryCase> {};

TEST_P(BinaryBackwardTest, FiniteDifferences) {
  const BinaryCase& c = GetParam();
  std::mt19937 rng(23);
  Tensor a = Distinct(c.a, rng, 0.037f), b = Distinct(c.b, rng, 0.029f);
  if (c.op == BinaryOp::kDiv) {  // keep the divisor away from 0
    for (float& v : b.mutable_span<float>()) v = v < 0 ? v - 0.5f : v + 0.5f;
  }
  absl::StatusOr<Shape> out = BroadcastShapes(c.a, c.b);
  ASSERT_TRUE(out.ok());
  Tensor dy = RandomFloat(*out, rng);
  Tensor da, db;
  absl::Status s = BinaryBackward(c.op, a, b, dy, &da, &db);
  ASSERT_TRUE(s.ok()) << s;
  ASSERT_EQ(da.shape(), c.a);
  ASSERT_EQ(db.shape(), c.b);
  const BinaryOp op = c.op;
  Fn f = [op](const std::vector<Tensor>& in, Tensor* y) {
    return BinaryReference(op, in[0], in[1], y);
  };
  ExpectGradients("binary", f, {a, b}, dy, {da, db}, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, BinaryBackwardTest,
    ::testing::Values(
        BinaryCase{"add_same", BinaryOp::kAdd, {2, 3}, {2, 3}},
        BinaryCase{"add_bcast", BinaryOp::kAdd, {2, 3, 4}, {3, 1}},
        BinaryCase{"sub_both_bcast", BinaryOp::kSub, {1, 4}, {2, 3, 1}},
        BinaryCase{"mul_bcast", BinaryOp::kMul, {2, 3, 4}, {4}},
        BinaryCase{"mul_scalar", BinaryOp::kMul, {}, {2, 3}},
        BinaryCase{"div_bcast", BinaryOp::kDiv, {2, 1, 4}, {3, 1}},
        BinaryCase{"div_same", BinaryOp::kDiv, {3, 4}, {3, 4}},
        BinaryCase{"sub_same", BinaryOp::kSub, {3, 4}, {3, 4}},
        BinaryCase{"mul_same", BinaryOp::kMul, {2, 3, 2}, {2, 3, 2}},
        BinaryCase{"max_same", BinaryOp::kMax, {3, 4}, {3, 4}},
        BinaryCase{"min_same", BinaryOp::kMin, {3, 4}, {3, 4}},
        BinaryCase{"max_bcast", BinaryOp::kMax, {2, 3}, {3}},
        BinaryCase{"min_bcast", BinaryOp::kMin, {2, 1}, {2, 4}}),
    [](const auto& info) { return info.param.name; });

TEST(SumToShapeTest, SumsBroadcastDims) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor out;
  ASSERT_TRUE(SumToShape(x, {3}, &out).ok());
  EXPECT_EQ(out.ToVector<float>(), std::vector<float>({5, 7, 9}));
  ASSERT_TRUE(SumToShape(x, {2, 1}, &out).ok());
  EXPECT_EQ(out.ToVector<float>(), std::vector<float>({6, 15}));
  ASSERT_TRUE(SumToShape(x, {}, &out).ok());
  EXPECT_EQ(out.ToVector<float>(), std::vector<float>({21}));
  EXPECT_FALSE(SumToShape(x, {2}, &out).ok());
  EXPECT_FALSE(SumToShape(x, {4, 2, 3}, &out).ok());
}

// --- Reductions ------------------------------------------------------------

struct ReduceCase {
  std::string name;
  ReduceOp op;
  Shape x;
  std::vector<int64_t> axes;
  bool keepdims;
};

class ReductionBackwardTest : public ::testing::TestWithParam<ReduceCase> {};

TEST_P(ReductionBackwardTest, FiniteDifferences) {
  const ReduceCase& c = GetParam();
  std::mt19937 rng(29);
  Tensor x = Distinct(c.x, rng);
  if (c.op == ReduceOp::kLogSum || c.op == ReduceOp::kL1) {
    // LogSum needs positive sums; L1 a distance from the kink at 0.
    for (float& v : x.mutable_span<float>()) v = std::fabs(v) + 0.05f;
    if (c.op == ReduceOp::kL1) {
      for (int64_t i = 0; i < x.num_elements(); i += 2) {
        x.mutable_data<float>()[i] *= -1;
      }
    }
  }
  absl::StatusOr<Shape> out = ReduceOutputShape(c.x, c.axes, c.keepdims);
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor dy = RandomFloat(*out, rng);
  Tensor dx;
  absl::Status s =
      ReductionBackward(c.op, x, c.axes, c.keepdims, false, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  const ReduceCase cc = c;
  Fn f = [cc](const std::vector<Tensor>& in, Tensor* y) {
    return ReduceReference(cc.op, in[0], cc.axes, cc.keepdims, false, y);
  };
  ExpectGradients("reduction", f, {x}, dy, {dx}, 1e-3);
}

INSTANTIATE_TEST_SUITE_P(
    Ops, ReductionBackwardTest,
    ::testing::Values(
        ReduceCase{"sum_axis1_keep", ReduceOp::kSum, {2, 3, 4}, {1}, true},
        ReduceCase{"sum_02_drop", ReduceOp::kSum, {2, 3, 4}, {0, 2}, false},
        ReduceCase{"sum_all", ReduceOp::kSum, {2, 3, 4}, {}, false},
        ReduceCase{"mean_hw", ReduceOp::kMean, {2, 3, 4, 5}, {2, 3}, true},
        ReduceCase{"mean_neg_axis", ReduceOp::kMean, {3, 4}, {-1}, false},
        ReduceCase{"max_axis1", ReduceOp::kMax, {2, 5, 3}, {1}, true},
        ReduceCase{"max_all", ReduceOp::kMax, {3, 4}, {}, false},
        ReduceCase{"min_axis0", ReduceOp::kMin, {4, 3}, {0}, false},
        ReduceCase{"l1", ReduceOp::kL1, {2, 3, 4}, {1, 2}, true},
        ReduceCase{"l2", ReduceOp::kL2, {2, 3, 4}, {-1}, false},
        ReduceCase{"sum_square", ReduceOp::kSumSquare, {3, 4}, {0}, true},
        ReduceCase{"log_sum", ReduceOp::kLogSum, {2, 3, 4}, {1}, true},
        ReduceCase{"log_sum_exp", ReduceOp::kLogSumExp, {2, 5, 3}, {1}, false}),
    [](const auto& info) { return info.param.name; });

TEST(ReductionBackwardTest, TiesGoToTheFirstMaximum) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, 5, 5, 2, 2, 0});
  Tensor dy = Tensor::FromVector<float>({2}, {1, 10});
  Tensor dx;
  ASSERT_TRUE(
      ReductionBackward(ReduceOp::kMax, x, {1}, false, false, dy, &dx).ok());
  EXPECT_EQ(dx.ToVector<float>(), std::vector<float>({0, 1, 0, 10, 0, 0}));
  EXPECT_EQ(
      ReductionBackward(ReduceOp::kProd, x, {1}, false, false, dy, &dx).code(),
      absl::StatusCode::kUnimplemented);
}

// --- Data movement ---------------------------------------------------------

TEST(TransposeBackwardTest, FiniteDifferences) {
  std::mt19937 rng(31);
  const std::vector<int64_t> perm = {2, 0, 3, 1};
  Tensor x = RandomFloat({2, 3, 4, 5}, rng);
  absl::StatusOr<Shape> out = TransposeOutputShape(x.shape(), perm);
  ASSERT_TRUE(out.ok());
  Tensor dy = RandomFloat(*out, rng);
  Tensor dx;
  ASSERT_TRUE(TransposeBackward(perm, dy, &dx).ok());
  Fn f = [perm](const std::vector<Tensor>& in, Tensor* y) {
    return TransposeReference(in[0], perm, y);
  };
  ExpectGradients("data_movement", f, {x}, dy, {dx}, 1e-2);
}

// Test-local forwards of Slice / Concat / Gather (plain loops).
absl::Status SliceForward(const Tensor& x, const std::vector<int64_t>& starts,
                          const std::vector<int64_t>& steps, const Shape& out,
                          Tensor* y) {
  *y = Tensor(DataType::kFloat32, out);
  std::vector<int64_t> idx(out.size(), 0);
  for (int64_t i = 0; i < y->num_elements(); ++i) {
    int64_t off = 0;
    for (size_t d = 0; d < out.size(); ++d) {
      off = off * x.dim(d) + starts[d] + idx[d] * steps[d];
    }
    y->mutable_data<float>()[i] = x.data<float>()[off];
    for (int d = static_cast<int>(out.size()) - 1; d >= 0; --d) {
      if (++idx[d] < out[d]) break;
      idx[d] = 0;
    }
  }
  return absl::OkStatus();
}

TEST(SliceBackwardTest, FiniteDifferences) {
  std::mt19937 rng(37);
  Tensor x = RandomFloat({4, 5, 6}, rng);
  const std::vector<int64_t> starts = {1, 0, 5}, steps = {2, 1, -2};
  const Shape out = {2, 5, 3};
  Tensor dy = RandomFloat(out, rng);
  Tensor dx;
  absl::Status s = SliceBackward(x.shape(), starts, steps, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  Fn f = [&](const std::vector<Tensor>& in, Tensor* y) {
    return SliceForward(in[0], starts, steps, out, y);
  };
  ExpectGradients("data_movement", f, {x}, dy, {dx}, 1e-2);
  EXPECT_FALSE(
      SliceBackward(x.shape(), {3, 0, 5}, steps, dy, &dx).ok());  // 3+2 >= 4
}

absl::Status ConcatForward(const std::vector<Tensor>& in, int axis, Tensor* y) {
  Shape shape = in[0].shape();
  shape[axis] = 0;
  for (const Tensor& t : in) shape[axis] += t.dim(axis);
  *y = Tensor(DataType::kFloat32, shape);
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < axis; ++i) outer *= shape[i];
  for (size_t i = axis + 1; i < shape.size(); ++i) inner *= shape[i];
  float* p = y->mutable_data<float>();
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor& t : in) {
      const int64_t chunk = t.dim(axis) * inner;
      for (int64_t i = 0; i < chunk; ++i) *p++ = t.data<float>()[o * chunk + i];
    }
  }
  return absl::OkStatus();
}

TEST(ConcatBackwardTest, FiniteDifferencesAndSplit) {
  std::mt19937 rng(41);
  std::vector<Tensor> in = {RandomFloat({2, 1, 3}, rng),
                            RandomFloat({2, 3, 3}, rng),
                            RandomFloat({2, 2, 3}, rng)};
  Tensor dy = RandomFloat({2, 6, 3}, rng);
  std::vector<Tensor> dxs;
  std::vector<Shape> shapes = {in[0].shape(), in[1].shape(), in[2].shape()};
  absl::Status s = ConcatBackward(shapes, 1, dy, &dxs);
  ASSERT_TRUE(s.ok()) << s;
  Fn f = [](const std::vector<Tensor>& t, Tensor* y) {
    return ConcatForward(t, 1, y);
  };
  ExpectGradients("data_movement", f, in, dy, dxs, 1e-2);
  // Split is Concat's transpose: concatenating the pieces gives dy back, and
  // a missing piece is zeros.
  Tensor back;
  ASSERT_TRUE(SplitBackward(shapes, -2, dxs, &back).ok());
  EXPECT_EQ(back.ToVector<float>(), dy.ToVector<float>());
  ASSERT_TRUE(SplitBackward(shapes, 1, {dxs[0], Tensor(), dxs[2]}, &back).ok());
  EXPECT_EQ(back.data<float>()[1 * 3], 0.f);  // [0, 1, 0] is piece 1
  EXPECT_EQ(back.data<float>()[0], dy.data<float>()[0]);
  EXPECT_FALSE(ConcatBackward({{2, 1, 3}}, 1, dy, &dxs).ok());
}

TEST(GatherBackwardTest, FiniteDifferencesWithRepeatsAndNegatives) {
  std::mt19937 rng(43);
  Tensor data = RandomFloat({3, 5, 2}, rng);
  Tensor indices =
      Tensor::FromVector<int64_t>({2, 2}, {4, 0, -1, 2});  // 4 twice
  const int axis = 1;
  Tensor dy = RandomFloat({3, 2, 2, 2}, rng);
  Tensor dx;
  absl::Status s = GatherBackward(data.shape(), indices, axis, dy, &dx);
  ASSERT_TRUE(s.ok()) << s;
  Fn f = [&](const std::vector<Tensor>& in, Tensor* y) {
    *y = Tensor(DataType::kFloat32, {3, 2, 2, 2});
    float* p = y->mutable_data<float>();
    for (int64_t o = 0; o < 3; ++o) {
      for (int64_t j = 0; j < 4; ++j) {
        int64_t idx = indices.data<int64_t>()[j];
        if (idx < 0) idx += 5;
        for (int64_t i = 0; i < 2; ++i) {
          *p++ = in[0].data<float>()[(o * 5 + idx) * 2 + i];
        }
      }
    }
    return absl::OkStatus();
  };
  ExpectGradients("data_movement", f, {data}, dy, {dx}, 1e-2);
  Tensor bad = Tensor::FromVector<int32_t>({1}, {5});
  EXPECT_FALSE(
      GatherBackward(data.shape(), bad, axis, RandomFloat({3, 1, 2}, rng), &dx)
          .ok());
}

}  // namespace
}  // namespace quantd

namespace quantd {
namespace {

// --- ConvTranspose ----------------------------------------------------------

struct DeconvCase {
  std::string name;
  Shape x, w;  // w [C, OC/groups, k...]
  ConvParams p;
};

class DeconvBackwardTest : public ::testing::TestWithParam<DeconvCase> {};

TEST_P(DeconvBackwardTest, FiniteDifferences) {
  const DeconvCase& c = GetParam();
  std::mt19937 rng(47);
  Tensor x = RandomFloat(c.x, rng), w = RandomFloat(c.w, rng);
  absl::StatusOr<Shape> out = DeconvOutputShape(c.p, c.x, c.w);
  ASSERT_TRUE(out.ok()) << out.status();
  Tensor b = RandomFloat({(*out)[1]}, rng);
  Tensor dy = RandomFloat(*out, rng);
  Tensor dx, dw, db;
  absl::Status s = DeconvolutionBackward(c.p, x, w, dy, &dx, &dw, &db);
  ASSERT_TRUE(s.ok()) << s;
  const ConvParams p = c.p;
  Fn f = [p](const std::vector<Tensor>& in, Tensor* y) {
    return DeconvolutionReference(p, PostOps{}, in[0], in[1], &in[2], y);
  };
  ExpectGradients("conv_transpose", f, {x, w, b}, dy, {dx, dw, db}, 1e-2);
}

ConvParams Deconv(std::vector<int64_t> strides, std::vector<int64_t> pb,
                  std::vector<int64_t> pe, std::vector<int64_t> dil,
                  int64_t groups, std::vector<int64_t> output_padding) {
  ConvParams p = Conv(std::move(strides), std::move(pb), std::move(pe),
                      std::move(dil), groups);
  p.output_padding = std::move(output_padding);
  return p;
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DeconvBackwardTest,
    ::testing::Values(
        DeconvCase{
            "plain", {2, 3, 4, 5}, {3, 2, 3, 3}, Deconv({}, {}, {}, {}, 1, {})},
        DeconvCase{"stride2_pads_output_padding",
                   {1, 4, 4, 3},
                   {4, 3, 3, 3},
                   Deconv({2, 2}, {1, 0}, {1, 1}, {}, 1, {1, 0})},
        DeconvCase{"groups_dilated",
                   {2, 4, 3, 4},
                   {4, 2, 2, 3},
                   Deconv({2, 1}, {0, 1}, {1, 0}, {2, 1}, 2, {1, 0})},
        DeconvCase{"deconv1d",
                   {2, 2, 5},
                   {2, 3, 4},
                   Deconv({3}, {1}, {2}, {}, 1, {2})}),
    [](const auto& info) { return info.param.name; });

}  // namespace
}  // namespace quantd
