#include "engine/calibration/conv_patch_hessian.h"

#include <cmath>

#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

ConvParams Params2d(int64_t stride, int64_t pad, int64_t dilation,
                    int64_t groups) {
  ConvParams p;
  p.strides = {stride, stride};
  p.dilations = {dilation, dilation};
  p.pads_begin = {pad, pad};
  p.pads_end = {pad, pad};
  p.groups = groups;
  return p;
}

struct Case {
  const char* name;
  Shape x, w;
  ConvParams params;
};

std::vector<Case> Cases() {
  ConvParams one_d;
  one_d.strides = {2};
  one_d.dilations = {1};
  one_d.pads_begin = {1};
  one_d.pads_end = {0};
  return {
      {"3x3 padded", {2, 3, 7, 6}, {4, 3, 3, 3}, Params2d(1, 1, 1, 1)},
      {"stride 2, dilation 2",
       {1, 2, 9, 9},
       {3, 2, 3, 3},
       Params2d(2, 2, 2, 1)},
      {"two groups", {2, 4, 5, 5}, {6, 2, 3, 3}, Params2d(1, 1, 1, 2)},
      {"depthwise", {1, 5, 6, 6}, {5, 1, 3, 3}, Params2d(2, 1, 1, 5)},
      {"1-D", {2, 3, 11}, {2, 3, 4}, one_d},
      // K = 8 * 9 = 72 > 64: the GEMM path, with a short last slice.
      {"GEMM path", {1, 8, 70, 70}, {4, 8, 3, 3}, Params2d(1, 1, 1, 1)},
  };
}

TEST(ConvPatchHessianTest, MatchesTheReference) {
  uint32_t seed = 1;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    const Tensor x = RandomUniform(c.x, ++seed);
    ConvPatchHessian fast, ref;
    for (int batch = 0; batch < 2; ++batch) {  // sums across batches
      ASSERT_TRUE(AccumulateConvPatchHessian(x, c.params, c.w, fast).ok());
      ASSERT_TRUE(
          AccumulateConvPatchHessianReference(x, c.params, c.w, ref).ok());
    }
    ASSERT_EQ(fast.hessian.size(), ref.hessian.size());
    EXPECT_EQ(fast.patches, ref.patches);
    EXPECT_EQ(fast.groups, c.params.groups);
    for (size_t i = 0; i < ref.hessian.size(); ++i) {
      ASSERT_NEAR(fast.hessian[i], ref.hessian[i],
                  1e-4 * (1 + std::fabs(ref.hessian[i])))
          << i;
    }
  }
}

// What GPTQ relies on: a weight change D moves the Conv's output by
// sum over groups of tr(D_g H_g D_g^T), measured with the reference Conv.
TEST(ConvPatchHessianTest, GivesTheConvOutputErrorOfAWeightChange) {
  uint32_t seed = 20;
  for (const Case& c : Cases()) {
    SCOPED_TRACE(c.name);
    const Tensor x = RandomUniform(c.x, ++seed);
    const Tensor d = RandomUniform(c.w, ++seed, -0.1f, 0.1f);
    ConvPatchHessian h;
    ASSERT_TRUE(AccumulateConvPatchHessianReference(x, c.params, c.w, h).ok());
    Tensor y;
    ASSERT_TRUE(ConvolutionReference(c.params, {}, x, d, nullptr, &y).ok());
    double measured = 0;
    for (int64_t i = 0; i < y.num_elements(); ++i) {
      measured += double(y.data<float>()[i]) * y.data<float>()[i];
    }
    const int64_t k = h.patch_size, per_group = c.w[0] / h.groups;
    double predicted = 0;
    for (int64_t g = 0; g < h.groups; ++g) {
      const float* hg = h.Group(g);
      for (int64_t m = g * per_group; m < (g + 1) * per_group; ++m) {
        const float* row = d.data<float>() + m * k;
        for (int64_t a = 0; a < k; ++a) {
          for (int64_t b = 0; b < k; ++b) {
            predicted += double(row[a]) * hg[a * k + b] * row[b];
          }
        }
      }
    }
    EXPECT_NEAR(predicted, measured, 1e-4 * measured);
  }
}

TEST(ConvPatchHessianTest, RejectsWhatDoesNotFit) {
  ConvPatchHessian h;
  const ConvParams p = Params2d(1, 0, 1, 1);
  const Tensor x = RandomUniform({1, 3, 5, 5}, 1);
  absl::Status st = AccumulateConvPatchHessian(x, p, {2, 4, 3, 3}, h);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("does not match"));
  st = AccumulateConvPatchHessian(x, p, {2, 3, 7, 7}, h);
  EXPECT_THAT(st.message(), HasSubstr("no output positions"));
  st = AccumulateConvPatchHessian(RandomUniform({1, 3, 5, 5, 5}, 2), p,
                                  {2, 3, 3, 3, 3}, h);
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  ASSERT_TRUE(AccumulateConvPatchHessian(x, p, {2, 3, 3, 3}, h).ok());
  st = AccumulateConvPatchHessian(x, p, {2, 3, 1, 1}, h);
  EXPECT_THAT(st.message(), HasSubstr("between batches"));
  ConvPatchHessian wide;
  st = AccumulateConvPatchHessian(RandomUniform({1, 1024, 3, 3}, 3), p,
                                  {2, 1024, 3, 3}, wide);
  EXPECT_THAT(st.message(), HasSubstr("exceed"));
}

// The bound is on groups x K^2: Hessians are K times the weights' size, so
// a per-group bound alone lets thousands of groups through.
TEST(ConvPatchHessianTest, BoundsTheWholeLayersHessians) {
  EXPECT_TRUE(ConvPatchHessianSupported({64, 8192, 1, 1}, 1));
  EXPECT_FALSE(ConvPatchHessianSupported({64, 8193, 1, 1}, 1));
  EXPECT_TRUE(ConvPatchHessianSupported({4096, 1, 3, 3}, 4096));  // depthwise
  EXPECT_TRUE(ConvPatchHessianSupported({4, 512, 3, 3}, 2));      // 2 x 21M
  EXPECT_FALSE(ConvPatchHessianSupported({4, 512, 3, 3}, 4));     // 4 x 21M
  EXPECT_TRUE(ConvPatchHessianSupported({4096, 900, 3, 3}, 1));
  EXPECT_FALSE(ConvPatchHessianSupported({4096, 900, 3, 3}, 4096));
  EXPECT_FALSE(ConvPatchHessianSupported({4, 2, 3, 3, 3}, 1));  // 3-D
  EXPECT_FALSE(ConvPatchHessianSupported({4, 2, 0, 3}, 1));
  EXPECT_FALSE(ConvPatchHessianSupported({4, 2, 3, 3}, 0));
  EXPECT_FALSE(
      ConvPatchHessianSupported({4, int64_t{1} << 40, int64_t{1} << 40}, 1));
}

}  // namespace
}  // namespace quantd
