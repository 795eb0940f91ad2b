#include "engine/quantization/conv_gptq.h"

#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

ConvParams Same3x3(int64_t groups) {
  ConvParams p;
  p.strides = {1, 1};
  p.dilations = {1, 1};
  p.pads_begin = {1, 1};
  p.pads_end = {1, 1};
  p.groups = groups;
  return p;
}

// Smooth inputs (neighbouring pixels and channels correlated), as images
// are: with white noise H is diagonal and GPTQ has nothing to exploit.
Tensor SmoothImages(const Shape& shape, uint32_t seed) {
  Tensor x = RandomUniform(shape, seed);
  float* v = x.mutable_data<float>();
  const int64_t w = shape[3];
  for (int64_t i = 1; i < x.num_elements(); ++i) {
    if (i % w != 0) v[i] = 0.7f * v[i - 1] + 0.3f * v[i];
  }
  return x;
}

// Sum of squares of Conv(x, a - b): the output error the layer sees.
double OutputError(const ConvParams& p, const Tensor& x, const Tensor& a,
                   const Tensor& b) {
  Tensor d(DataType::kFloat32, a.shape());
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    d.mutable_data<float>()[i] = a.data<float>()[i] - b.data<float>()[i];
  }
  Tensor y;
  EXPECT_TRUE(ConvolutionReference(p, {}, x, d, nullptr, &y).ok());
  double e = 0;
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    e += double(y.data<float>()[i]) * y.data<float>()[i];
  }
  return e;
}

void ExpectBeatsRoundToNearest(const Shape& w_shape, int64_t groups,
                               const WeightScheme& scheme = {
                                   .type = QuantType::kInt4}) {
  const ConvParams p = Same3x3(groups);
  const Shape x_shape{4, w_shape[1] * groups, 10, 10};
  const Tensor x = SmoothImages(x_shape, 5);
  const Tensor w = RandomUniform(w_shape, 6, -0.5f, 0.5f);
  ConvPatchHessian h;
  ASSERT_TRUE(AccumulateConvPatchHessian(x, p, w_shape, h).ok());
  const WeightSlot slot{"conv", "Conv", "w", 0, 1};
  absl::StatusOr<GptqResult> r = GptqQuantizeConv(w, slot, scheme, h, {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->weights.shape(), w_shape);
  absl::StatusOr<QuantParams> rtn_params = ComputeWeightParams(w, slot, scheme);
  ASSERT_TRUE(rtn_params.ok());
  // The layout round-to-nearest gives this Conv, so the export is unchanged.
  EXPECT_EQ(r->params.axis, rtn_params->axis);
  EXPECT_EQ(r->params.group_size, rtn_params->group_size);
  EXPECT_EQ(r->params.scales_shape, rtn_params->scales_shape);
  ASSERT_EQ(r->params.scales.size(), rtn_params->scales.size());
  EXPECT_EQ(r->params.zero_points.size(), rtn_params->zero_points.size());
  // On the grid of the returned parameters.
  absl::StatusOr<Tensor> again = FakeQuantizeWeights(r->weights, r->params);
  ASSERT_TRUE(again.ok());
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    ASSERT_EQ(again->data<float>()[i], r->weights.data<float>()[i]) << i;
  }
  absl::StatusOr<Tensor> rtn = FakeQuantizeWeights(w, *rtn_params);
  ASSERT_TRUE(rtn.ok());
  const double gptq_error = OutputError(p, x, w, r->weights);
  const double rtn_error = OutputError(p, x, w, *rtn);
  EXPECT_LT(gptq_error, 0.9 * rtn_error);
  EXPECT_LT(r->gptq_loss, r->rtn_loss);
  // The proxy loss is that output error per patch, up to damping.
  EXPECT_NEAR(r->gptq_loss * h.patches, gptq_error, 0.05 * gptq_error);
}

TEST(ConvGptqTest, LowersTheConvOutputErrorBelowRoundToNearest) {
  ExpectBeatsRoundToNearest({8, 6, 3, 3}, 1);
}

TEST(ConvGptqTest, RoundsEachGroupWithItsOwnHessian) {
  ExpectBeatsRoundToNearest({8, 3, 3, 3}, 2);
}

TEST(ConvGptqTest, Depthwise) { ExpectBeatsRoundToNearest({6, 1, 3, 3}, 6); }

// Per-group scales cover input channels at one kernel tap: with the
// columns reordered tap-major GPTQ rounds them, in the Conv's layout.
TEST(ConvGptqTest, PerGroupScalesAsymmetric) {
  ExpectBeatsRoundToNearest({8, 8, 3, 3}, 1,
                            {.type = QuantType::kInt4,
                             .symmetric = false,
                             .granularity = WeightGranularity::kPerGroup,
                             .group_size = 4});
  ExpectBeatsRoundToNearest({8, 4, 3, 3}, 2,
                            {.type = QuantType::kInt4,
                             .granularity = WeightGranularity::kPerGroup,
                             .group_size = 2});
}

TEST(ConvGptqTest, PerTensor) {
  ExpectBeatsRoundToNearest(
      {8, 6, 3, 3}, 1,
      {.type = QuantType::kInt4, .granularity = WeightGranularity::kPerTensor});
}

TEST(ConvGptqTest, SaysWhatItCannotRound) {
  const WeightScheme grouped{.type = QuantType::kInt4,
                             .granularity = WeightGranularity::kPerGroup,
                             .group_size = 4};
  EXPECT_EQ(ConvGptqUnsupportedReason(grouped, 1, 8), "");
  EXPECT_THAT(ConvGptqUnsupportedReason(grouped, 1, 6),
              HasSubstr("does not divide"));
  const WeightScheme tensor{.granularity = WeightGranularity::kPerTensor};
  EXPECT_EQ(ConvGptqUnsupportedReason(tensor, 1, 3), "");
  EXPECT_THAT(ConvGptqUnsupportedReason(tensor, 2, 3), HasSubstr("per-tensor"));
  ConvPatchHessian h;
  const Shape w_shape{4, 2, 3, 3};
  ASSERT_TRUE(AccumulateConvPatchHessian(RandomUniform({1, 2, 5, 5}, 1),
                                         Same3x3(1), w_shape, h)
                  .ok());
  const WeightSlot slot{"conv", "Conv", "w", 0, 1};
  absl::StatusOr<GptqResult> r =
      GptqQuantizeConv(RandomUniform(w_shape, 2), slot, grouped, h, {});
  EXPECT_THAT(r.status().message(), HasSubstr("does not divide"));
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  r = GptqQuantizeConv(RandomUniform({4, 3, 3, 3}, 2), slot, {}, h, {});
  EXPECT_THAT(r.status().message(), HasSubstr("does not match"));
}

}  // namespace
}  // namespace quantd
