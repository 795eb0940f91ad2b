// Finite-difference checks of the backward kernels (conv, conv transpose,
// matmul, eltwise, pooling); backward_more_test.cc has the others.
#include "kernels/backward.h"

#include "gtest/gtest-spi.h"
#include "kernels/backward.h"
#include "kernels/backward_test_util.h"

namespace quantd {
namespace {

using namespace backward_test;  // NOLINT: the checker's vocabulary

const auto* const kPrinter =
    ::testing::AddGlobalTestEnvironment(new SummaryPrinter);

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
