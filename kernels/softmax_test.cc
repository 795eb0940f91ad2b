#include "kernels/softmax.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

// oneDNN's vectorized exp is accurate to a few ulp and the sum is
// accumulated in f32 (the reference uses double): 1e-5 relative plus 1e-6
// absolute (probabilities near zero) is ~10x the observed error. Log-softmax
// subtracts oneDNN's approximate log(sum), which is off by up to ~1.5e-6
// absolute when sum is near 1, so it gets 1e-5 absolute.
bool Near(float got, float want, bool log) {
  return std::fabs(got - want) <= 1e-5 * std::fabs(want) + (log ? 1e-5 : 1e-6);
}

TEST(SoftmaxTest, MatchesReferenceOverShapesAndAxes) {
  std::mt19937 rng(31);
  std::normal_distribution<float> dist(0.f, 5.f);
  const std::vector<Shape> shapes = {
      {5},    {1},    {3, 4},    {1, 1},     {2, 3, 4, 5},
      {0, 3}, {3, 0}, {2, 1, 7}, {64, 1000}, {4, 3, 32, 32}};
  int cases = 0;
  for (bool log : {false, true}) {
    for (const Shape& shape : shapes) {
      const int rank = static_cast<int>(shape.size());
      for (int axis = -rank; axis < rank; ++axis) {
        Tensor x(DataType::kFloat32, shape);
        for (float& v : x.mutable_span<float>()) v = dist(rng);
        SoftmaxForward kernel(axis, log);
        Tensor got, want;
        ASSERT_TRUE(kernel.Forward(x, &got).ok());
        ASSERT_TRUE(SoftmaxReference(x, axis, log, &want).ok());
        ASSERT_EQ(got.shape(), shape);
        for (int64_t i = 0; i < x.num_elements(); ++i) {
          ASSERT_TRUE(Near(got.data<float>()[i], want.data<float>()[i], log))
              << x.DebugString() << " axis " << axis << " log " << log << " at "
              << i << ": " << got.data<float>()[i] << " vs "
              << want.data<float>()[i];
        }
        ++cases;
      }
    }
  }
  // Every axis twice (negative and positive), with and without log.
  EXPECT_EQ(cases, 2 * 2 * (1 + 1 + 2 + 2 + 4 + 2 + 2 + 3 + 2 + 4));
}

TEST(SoftmaxTest, StableForLargeLogitsAndInPlace) {
  Tensor x = Tensor::FromVector<float>({1, 3}, {1000.f, 0.f, -1000.f});
  SoftmaxForward softmax(-1), log_softmax(-1, true);
  Tensor y;
  ASSERT_TRUE(log_softmax.Forward(x, &y).ok());
  EXPECT_NEAR(y.data<float>()[0], 0.f, 1e-5);
  EXPECT_NEAR(y.data<float>()[1], -1000.f, 1e-3);
  const void* storage = x.raw_data();
  ASSERT_TRUE(softmax.Forward(x, &x).ok());
  EXPECT_EQ(x.raw_data(), storage);
  EXPECT_EQ(x.ToVector<float>(), (std::vector<float>{1.f, 0.f, 0.f}));
  // In place over an inner axis goes through the transpose path.
  Tensor z = Tensor::FromVector<float>({2, 2}, {0.f, 0.f, 0.f, 0.f});
  SoftmaxForward over_rows(0);
  ASSERT_TRUE(over_rows.Forward(z, &z).ok());
  EXPECT_EQ(z.ToVector<float>(), (std::vector<float>{.5f, .5f, .5f, .5f}));
}

TEST(SoftmaxTest, RejectsBadInputs) {
  Tensor y;
  SoftmaxForward axis2(2), last(-1);
  EXPECT_EQ(axis2.Forward(Tensor(DataType::kFloat32, {2, 2}), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(last.Forward(Tensor::Scalar<float>(1), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(last.Forward(Tensor(DataType::kInt64, {2}), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(last.Forward(Tensor(), &y).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
