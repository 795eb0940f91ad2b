#include "kernels/eltwise.h"

#include <cmath>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

struct Case {
  EltwiseOp op;
  float alpha;
  float beta;
  float lo;  // inputs are uniform in [lo, hi]
  float hi;
};

const Case kCases[] = {
    {EltwiseOp::kRelu, 0, 0, -6, 6},
    {EltwiseOp::kLeakyRelu, 0.01f, 0, -6, 6},
    {EltwiseOp::kSigmoid, 0, 0, -12, 12},
    {EltwiseOp::kHardSigmoid, 0.2f, 0.5f, -6, 6},
    {EltwiseOp::kHardSwish, 0, 0, -6, 6},
    {EltwiseOp::kTanh, 0, 0, -6, 6},
    {EltwiseOp::kErf, 0, 0, -4, 4},
    {EltwiseOp::kGeluErf, 0, 0, -6, 6},
    {EltwiseOp::kGeluTanh, 0, 0, -6, 6},
    {EltwiseOp::kClip, -1.5f, 2.5f, -6, 6},
    {EltwiseOp::kClip, 0.f, 6.f, -10, 10},
    {EltwiseOp::kExp, 0, 0, -20, 20},
    {EltwiseOp::kLog, 0, 0, 1e-3f, 100},
    {EltwiseOp::kSqrt, 0, 0, 0, 100},
    {EltwiseOp::kAbs, 0, 0, -6, 6},
    {EltwiseOp::kNeg, 0, 0, -6, 6},
    {EltwiseOp::kReciprocal, 0, 0, -6, 6},
    {EltwiseOp::kPow, 2.f, 0, -6, 6},
    {EltwiseOp::kPow, 3.f, 0, -6, 6},
    {EltwiseOp::kPow, 0.5f, 0, 0, 10},
    {EltwiseOp::kPow, 2.5f, 0, 0, 10},
    {EltwiseOp::kSoftplus, 0, 0, -15, 15},
    {EltwiseOp::kElu, 1.f, 0, -6, 6},
    {EltwiseOp::kElu, 0.5f, 0, -6, 6},
    {EltwiseOp::kSelu, 1.67326f, 1.0507f, -6, 6},
    {EltwiseOp::kLinear, 0.5f, -2.f, -6, 6},
};

const std::vector<Shape> kShapes = {
    {}, {1}, {0}, {7}, {3, 5}, {2, 3, 4, 5}, {1, 0, 3}, {1000}, {64, 1001}};

// oneDNN's exp/log/erf/tanh are polynomial approximations: ~1e-7 relative
// error in general, but up to ~2e-6 absolute where results cross or approach
// zero (log near 1, Softplus and Gelu tails). rtol 1e-5 + atol 1e-5 accepts
// that and still catches any wrong formula or parameter.
void ExpectNear(float got, float want, const std::string& what) {
  if (std::isnan(want)) {
    EXPECT_TRUE(std::isnan(got)) << what;
    return;
  }
  if (std::isinf(want)) {
    EXPECT_EQ(got, want) << what;
    return;
  }
  EXPECT_NEAR(got, want, 1e-5 * std::fabs(want) + 1e-5) << what;
}

TEST(EltwiseTest, MatchesReferenceForEveryOpAndShape) {
  std::mt19937 rng(2024);
  int cases = 0;
  for (const Case& c : kCases) {
    EltwiseForward kernel(c.op, c.alpha, c.beta);
    std::uniform_real_distribution<float> dist(c.lo, c.hi);
    for (const Shape& shape : kShapes) {
      Tensor x(DataType::kFloat32, shape);
      for (float& v : x.mutable_span<float>()) v = dist(rng);
      Tensor got, want;
      ASSERT_TRUE(kernel.Forward(x, &got).ok());
      ASSERT_TRUE(EltwiseReference(c.op, c.alpha, c.beta, x, &want).ok());
      ASSERT_EQ(got.shape(), shape);
      int bad = 0;
      for (int64_t i = 0; i < x.num_elements() && bad < 5; ++i) {
        float g = got.data<float>()[i], w = want.data<float>()[i];
        bool ok = std::isnan(w) ? std::isnan(g)
                  : std::isinf(w)
                      ? g == w
                      : std::fabs(g - w) <= 1e-5 * std::fabs(w) + 1e-5;
        if (!ok) {
          ++bad;
          ExpectNear(g, w,
                     std::string(EltwiseOpName(c.op)) +
                         " x=" + std::to_string(x.data<float>()[i]));
        }
      }
      ++cases;
    }
  }
  EXPECT_EQ(cases, static_cast<int>(std::size(kCases) * kShapes.size()));
}

TEST(EltwiseTest, SpecialValues) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::FromVector<float>({5}, {-1.f, 0.f, 1.f, inf, -inf});
  Tensor y;
  EltwiseForward log(EltwiseOp::kLog);
  ASSERT_TRUE(log.Forward(x, &y).ok());
  EXPECT_TRUE(std::isnan(y.data<float>()[0]));
  EXPECT_EQ(y.data<float>()[1], -inf);
  EXPECT_EQ(y.data<float>()[3], inf);
  EltwiseForward relu(EltwiseOp::kRelu);
  ASSERT_TRUE(relu.Forward(x, &y).ok());
  EXPECT_EQ(y.ToVector<float>(), (std::vector<float>{0, 0, 1, inf, 0}));
  EltwiseForward sigmoid(EltwiseOp::kSigmoid);
  ASSERT_TRUE(sigmoid.Forward(x, &y).ok());
  EXPECT_FLOAT_EQ(y.data<float>()[3], 1.f);
  EXPECT_FLOAT_EQ(y.data<float>()[4], 0.f);
  EltwiseForward erf(EltwiseOp::kErf);
  ASSERT_TRUE(erf.Forward(x, &y).ok());
  EXPECT_EQ(y.data<float>()[3], 1.f);
  EXPECT_EQ(y.data<float>()[4], -1.f);
}

// Erf is quantd's own approximation (eltwise.cc), not oneDNN's: held to
// its documented error on a dense grid, relative accuracy near 0, exact
// +-1 in the tails and NaN through.
TEST(EltwiseTest, ErfIsWithinItsDocumentedError) {
  const int n = 240001;
  Tensor x(DataType::kFloat32, {n});
  for (int i = 0; i < n; ++i)
    x.mutable_data<float>()[i] = -6.f + 12.f * i / (n - 1);
  EltwiseForward erf(EltwiseOp::kErf);
  Tensor y;
  ASSERT_TRUE(erf.Forward(x, &y).ok());
  double worst = 0;
  for (int i = 0; i < n; ++i) {
    const double want = std::erf(double{x.data<float>()[i]});
    worst = std::max(worst, std::fabs(y.data<float>()[i] - want));
  }
  EXPECT_LE(worst, 2e-7);
  Tensor small = Tensor::FromVector<float>({4}, {1e-30f, -1e-6f, 1e-3f, 0.f});
  ASSERT_TRUE(erf.Forward(small, &y).ok());
  for (int i = 0; i < 4; ++i) {
    const double want = std::erf(double{small.data<float>()[i]});
    EXPECT_NEAR(y.data<float>()[i], want, 1e-6 * std::fabs(want)) << i;
  }
  Tensor tails = Tensor::FromVector<float>({3}, {3.95f, -10.f, std::nanf("")});
  ASSERT_TRUE(erf.Forward(tails, &y).ok());
  EXPECT_EQ(y.data<float>()[0], 1.f);
  EXPECT_EQ(y.data<float>()[1], -1.f);
  EXPECT_TRUE(std::isnan(y.data<float>()[2]));
}

TEST(EltwiseTest, InPlaceAndOutputReuse) {
  Tensor x = Tensor::FromVector<float>({4}, {-2, -1, 1, 2});
  EltwiseForward neg(EltwiseOp::kNeg);
  const void* storage = x.raw_data();
  ASSERT_TRUE(neg.Forward(x, &x).ok());
  EXPECT_EQ(x.raw_data(), storage);
  EXPECT_EQ(x.ToVector<float>(), (std::vector<float>{2, 1, -1, -2}));
  EltwiseForward selu(EltwiseOp::kSelu, 1.67326f, 1.0507f);  // two passes
  ASSERT_TRUE(selu.Forward(x, &x).ok());
  EXPECT_FLOAT_EQ(x.data<float>()[0], 2 * 1.0507f);
  EXPECT_NEAR(x.data<float>()[3], 1.0507f * 1.67326f * std::expm1(-2.f), 1e-6);
  // A wrongly shaped output is replaced.
  Tensor y(DataType::kFloat32, {3});
  ASSERT_TRUE(neg.Forward(x, &y).ok());
  EXPECT_EQ(y.shape(), (Shape{4}));
}

TEST(EltwiseTest, RejectsNonFloatInputs) {
  EltwiseForward relu(EltwiseOp::kRelu);
  Tensor y;
  EXPECT_EQ(relu.Forward(Tensor::FromVector<int64_t>({2}, {1, 2}), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(relu.Forward(Tensor(), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(relu.Forward(Tensor::Scalar<float>(1), nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
