#include "kernels/layer_norm.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

// oneDNN accumulates the statistics in f32 over up to a few thousand
// elements (the reference uses double); outputs are O(1), so 1e-4 relative
// plus 1e-5 absolute covers the accumulated rounding with room to spare.
void ExpectClose(const Tensor& got, const Tensor& want,
                 const std::string& what) {
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    const float g = got.data<float>()[i], w = want.data<float>()[i];
    ASSERT_NEAR(g, w, 1e-4 * std::fabs(w) + 1e-5) << what << " at " << i;
  }
}

Tensor Random(const Shape& shape, float offset, std::mt19937* rng) {
  std::normal_distribution<float> dist(0.f, 1.f);
  Tensor t(DataType::kFloat32, shape);
  for (float& v : t.mutable_span<float>()) v = offset + dist(*rng);
  return t;
}

struct Case {
  Shape x;
  int axis;
  Shape param;   // shape of scale and bias
  float offset;  // added to x: a large mean tests the variance's stability
};

TEST(LayerNormTest, MatchesReference) {
  const std::vector<Case> cases = {
      {{10}, 0, {10}, 0},         {{10}, -1, {10}, 0},
      {{4, 16}, -1, {16}, 0},     {{4, 16}, 0, {4, 16}, 0},
      {{4, 16}, 1, {1, 16}, 0},   {{2, 3, 8}, -1, {8}, 0},
      {{2, 3, 8}, -2, {3, 8}, 0}, {{2, 3, 8}, -2, {8}, 0},
      {{2, 3, 8}, 1, {1, 8}, 0},  {{2, 3, 8}, 0, {2, 3, 8}, 0},
      {{2, 5, 1}, -1, {1}, 0},    {{3, 768}, -1, {768}, 100},
      {{1, 7}, 1, {7}, -50},      {{8, 4, 4096}, -1, {4096}, 0},
      {{0, 8}, -1, {8}, 0},       {{1, 4, 1, 1}, 1, {4, 1, 1}, 0},
  };
  std::mt19937 rng(11);
  int runs = 0;
  for (const Case& c : cases) {
    for (int params = 0; params < 4; ++params) {  // none, scale, bias, both
      Tensor x = Random(c.x, c.offset, &rng);
      Tensor scale = Random(c.param, 1.f, &rng);
      Tensor bias = Random(c.param, 0.f, &rng);
      const Tensor* s = params & 1 ? &scale : nullptr;
      const Tensor* b = params & 2 ? &bias : nullptr;
      LayerNormForward kernel(c.axis, 1e-5f);
      Tensor y, mean, inv, ry, rmean, rinv;
      ASSERT_TRUE(kernel.Forward(x, s, b, &y, &mean, &inv).ok());
      ASSERT_TRUE(
          LayerNormReference(x, s, b, c.axis, 1e-5f, &ry, &rmean, &rinv).ok());
      const std::string what =
          x.DebugString() + " axis " + std::to_string(c.axis);
      ExpectClose(y, ry, what + " y");
      ExpectClose(mean, rmean, what + " mean");
      ExpectClose(inv, rinv, what + " inv_std_dev");
      // Without statistics outputs oneDNN runs its inference variant.
      Tensor y2;
      ASSERT_TRUE(kernel.Forward(x, s, b, &y2).ok());
      ExpectClose(y2, ry, what + " y (inference)");
      ++runs;
    }
  }
  EXPECT_EQ(runs, 4 * static_cast<int>(cases.size()));
}

TEST(LayerNormTest, StatisticShapesAndEmptyRows) {
  LayerNormForward ln(-2);
  Tensor x(DataType::kFloat32, {2, 0, 3}), y, mean, inv;
  ASSERT_TRUE(ln.Forward(x, nullptr, nullptr, &y, &mean, &inv).ok());
  EXPECT_EQ(y.shape(), (Shape{2, 0, 3}));
  EXPECT_EQ(mean.shape(), (Shape{2, 1, 1}));
  EXPECT_TRUE(std::isnan(mean.data<float>()[0]));
  Tensor z = Tensor::FromVector<float>({1, 2}, {1.f, 3.f});
  LayerNormForward last(-1, 0.f);
  ASSERT_TRUE(last.Forward(z, nullptr, nullptr, &y, &mean, &inv).ok());
  EXPECT_EQ(mean.shape(), (Shape{1, 1}));
  EXPECT_FLOAT_EQ(mean.data<float>()[0], 2.f);
  EXPECT_FLOAT_EQ(inv.data<float>()[0], 1.f);
  EXPECT_FLOAT_EQ(y.data<float>()[0], -1.f);
}

TEST(LayerNormTest, RejectsBadInputs) {
  Tensor x(DataType::kFloat32, {2, 3, 4}), y;
  Tensor wrong(DataType::kFloat32, {3});
  Tensor grows(DataType::kFloat32, {2, 4});
  Tensor ints(DataType::kInt64, {4});
  LayerNormForward ln(-1), far(3), eps(-1, -1.f), mid(1);
  EXPECT_EQ(ln.Forward(x, &wrong, nullptr, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ln.Forward(x, nullptr, &ints, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(mid.Forward(x, &grows, nullptr, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(far.Forward(x, nullptr, nullptr, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(eps.Forward(x, nullptr, nullptr, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(ln.Forward(Tensor::Scalar<float>(1), nullptr, nullptr, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      ln.Forward(Tensor(DataType::kInt32, {2}), nullptr, nullptr, &y).code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
