#include "engine/calibration/layer_input_statistics.h"

#include <cmath>
#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;

Tensor RandomTensor(Shape shape, std::mt19937& rng) {
  Tensor t(DataType::kFloat32, shape);
  std::normal_distribution<float> n(0.f, 1.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = n(rng) + 0.1f * (i % 3);
  }
  return t;
}

TEST(InputStatisticsTest, MatchesDirectSumsAcrossBatches) {
  InputStatisticsOptions o;
  o.hessian = true;
  o.max_sample_rows = 10;
  auto c =
      InputStatisticsCollector::Create({{"x", ChannelLayout::kLastDim}}, o);
  ASSERT_TRUE(c.ok());
  TensorHook hook = (*c)->Hook();
  std::mt19937 rng(1);
  std::vector<Tensor> batches = {RandomTensor({2, 3, 5}, rng),
                                 RandomTensor({4, 3, 5}, rng)};
  for (Tensor& b : batches) ASSERT_TRUE(hook(nullptr, "x", b).ok());
  Tensor other = RandomTensor({2, 7}, rng);
  ASSERT_TRUE(hook(nullptr, "unwatched", other).ok());

  const LayerInputStatistics* s = (*c)->Find("x");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->channels, 5);
  EXPECT_EQ(s->rows, 18);
  std::vector<double> h(25, 0.0), sum(5, 0.0);
  std::vector<float> amax(5, 0.f);
  for (const Tensor& b : batches) {
    const float* d = b.data<float>();
    for (int64_t r = 0; r < b.num_elements() / 5; ++r) {
      for (int i = 0; i < 5; ++i) {
        sum[i] += d[r * 5 + i];
        amax[i] = std::max(amax[i], std::fabs(d[r * 5 + i]));
        for (int j = 0; j < 5; ++j) h[i * 5 + j] += d[r * 5 + i] * d[r * 5 + j];
      }
    }
  }
  for (int i = 0; i < 5; ++i) {
    EXPECT_NEAR(s->Mean(i), sum[i] / 18, 1e-6);
    EXPECT_FLOAT_EQ(s->abs_max[i], amax[i]);
    for (int j = 0; j < 5; ++j) {
      EXPECT_NEAR(s->hessian[i * 5 + j], h[i * 5 + j], 1e-4);
    }
  }
  // The sample is bounded and holds real rows.
  EXPECT_EQ(s->sample_rows, 10);
  Tensor sample = s->SampleTensor();
  EXPECT_EQ(sample.shape(), (Shape{10, 5}));
  EXPECT_EQ((*c)->Find("never_seen"), nullptr);
}

TEST(InputStatisticsTest, ConvInputsUseDim1Channels) {
  auto c = InputStatisticsCollector::Create({{"x", ChannelLayout::kDim1}}, {});
  ASSERT_TRUE(c.ok());
  Tensor x(DataType::kFloat32, {2, 2, 3});
  // Channel 0 holds 1..3 and 7..9, channel 1 holds -4..-6 and -10..-12.
  const float v[] = {1, 2, 3, -4, -5, -6, 7, 8, 9, -10, -11, -12};
  std::copy(v, v + 12, x.mutable_data<float>());
  ASSERT_TRUE((*c)->Hook()(nullptr, "x", x).ok());
  const LayerInputStatistics* s = (*c)->Find("x");
  ASSERT_NE(s, nullptr);
  EXPECT_EQ(s->rows, 6);
  EXPECT_NEAR(s->Mean(0), 5.0, 1e-9);
  EXPECT_NEAR(s->Mean(1), -8.0, 1e-9);
  EXPECT_FLOAT_EQ(s->abs_max[1], 12.f);
  EXPECT_TRUE(s->hessian.empty());
}

TEST(InputStatisticsTest, RejectsChangingChannelsAndNonFloat) {
  auto c =
      InputStatisticsCollector::Create({{"x", ChannelLayout::kLastDim}}, {});
  ASSERT_TRUE(c.ok());
  std::mt19937 rng(2);
  Tensor a = RandomTensor({2, 4}, rng), b = RandomTensor({2, 5}, rng);
  ASSERT_TRUE((*c)->Hook()(nullptr, "x", a).ok());
  EXPECT_FALSE((*c)->Hook()(nullptr, "x", b).ok());
  Tensor ints(DataType::kInt64, {2, 4});
  EXPECT_FALSE((*c)->Hook()(nullptr, "x", ints).ok());
  EXPECT_FALSE(InputStatisticsCollector::Create({}, {}).ok());
}

ConvPatchLayer Conv3x3(const std::string& input, int64_t group, Shape w) {
  ConvPatchLayer l{input, {}, std::move(w)};
  l.attributes.pads = {1, 1, 1, 1};
  l.attributes.group = group;
  return l;
}

// Conv patch Hessians are kept per Conv node (two Convs reading one value
// see different patches), freed per node, and a layer whose Hessians would
// exceed the bound is never gathered, whatever its input looks like.
TEST(InputStatisticsTest, GathersConvPatchHessiansPerNode) {
  std::mt19937 rng(3);
  auto c = InputStatisticsCollector::Create(
      {{"x", ChannelLayout::kDim1}}, {},
      {{"a", Conv3x3("x", 1, {4, 2, 3, 3})},
       {"b", Conv3x3("x", 2, {4, 1, 3, 3})},
       // 4096 groups of 900 x 3 x 3 = 8100-value patches: 1 TB of Hessians.
       {"huge", Conv3x3("x", 4096, {4096, 900, 3, 3})}});
  ASSERT_TRUE(c.ok()) << c.status();
  Tensor x = RandomTensor({2, 2, 5, 5}, rng);
  ASSERT_TRUE((*c)->Hook()(nullptr, "x", x).ok());
  const ConvPatchHessian* a = (*c)->FindConvPatches("a");
  const ConvPatchHessian* b = (*c)->FindConvPatches("b");
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  EXPECT_EQ(a->groups, 1);
  EXPECT_EQ(a->patch_size, 18);
  EXPECT_EQ(b->groups, 2);
  EXPECT_EQ(b->patch_size, 9);
  EXPECT_EQ(a->patches, 50);
  EXPECT_EQ((*c)->FindConvPatches("huge"), nullptr);
  (*c)->ReleaseConvPatches("a");
  EXPECT_EQ((*c)->FindConvPatches("a"), nullptr);
  ASSERT_TRUE((*c)->Hook()(nullptr, "x", x).ok());  // "a" is not gathered
  EXPECT_EQ((*c)->FindConvPatches("a"), nullptr);
  EXPECT_EQ((*c)->FindConvPatches("b")->patches, 100);
}

// A MatMul input wider than 8192 channels would need a Hessian over the
// per-layer bound (a 400 KB [100000, 1] weight would have asked for 40 GB);
// across layers, the Hessians held at once stay within the live budget,
// Conv patches included, and released ones give their room back.
TEST(InputStatisticsTest, BoundsHessiansPerLayerAndAcrossLayers) {
  InputStatisticsOptions o;
  o.hessian = true;
  o.max_live_hessian_floats = 25 + 18 * 18;  // "a" and Conv "conv" fit
  auto c = InputStatisticsCollector::Create(
      {{"wide", ChannelLayout::kLastDim},
       {"a", ChannelLayout::kLastDim},
       {"b", ChannelLayout::kLastDim},
       {"d", ChannelLayout::kLastDim}},
      o, {{"conv", Conv3x3("x", 1, {4, 2, 3, 3})}});
  ASSERT_TRUE(c.ok()) << c.status();
  std::mt19937 rng(5);
  TensorHook hook = (*c)->Hook();
  Tensor wide = RandomTensor({2, 8193}, rng);
  ASSERT_TRUE(hook(nullptr, "wide", wide).ok());
  ASSERT_NE((*c)->Find("wide"), nullptr);
  EXPECT_TRUE((*c)->Find("wide")->hessian.empty());
  EXPECT_EQ((*c)->Find("wide")->rows, 2);  // the other statistics remain
  EXPECT_THAT((*c)->WhyNoHessian("wide"),
              AllOf(HasSubstr("input of 8193 channels"),
                    HasSubstr("over the 256 MB per layer")));

  Tensor five = RandomTensor({3, 5}, rng);
  Tensor x = RandomTensor({1, 2, 4, 4}, rng);
  ASSERT_TRUE(hook(nullptr, "a", five).ok());
  ASSERT_TRUE(hook(nullptr, "x", x).ok());
  ASSERT_TRUE(hook(nullptr, "b", five).ok());
  EXPECT_EQ((*c)->Find("a")->hessian.size(), 25u);
  ASSERT_NE((*c)->FindConvPatches("conv"), nullptr);
  EXPECT_TRUE((*c)->Find("b")->hessian.empty());
  EXPECT_THAT((*c)->WhyNoHessian("b"), HasSubstr("held at once past"));
  EXPECT_EQ((*c)->WhyNoHessian("a"), "");

  (*c)->Release("a");
  ASSERT_TRUE(hook(nullptr, "d", five).ok());
  EXPECT_EQ((*c)->Find("d")->hessian.size(), 25u);
  (*c)->ReleaseConvPatches("conv");
  EXPECT_EQ((*c)->WhyNoConvPatches("conv"), "");
}

TEST(InputStatisticsTest, SaysWhyAConvGetsNoPatchHessian) {
  InputStatisticsOptions o;
  o.hessian = true;
  o.max_live_hessian_floats = 100;
  auto c = InputStatisticsCollector::Create(
      {{"x", ChannelLayout::kDim1}}, o,
      {{"conv3d", {"x", {}, {4, 2, 3, 3, 3}}},
       {"huge", Conv3x3("x", 4096, {4096, 900, 3, 3})},
       {"over_budget", Conv3x3("x", 1, {4, 2, 3, 3})}});
  ASSERT_TRUE(c.ok()) << c.status();
  std::mt19937 rng(6);
  Tensor x = RandomTensor({1, 2, 4, 4}, rng);
  ASSERT_TRUE((*c)->Hook()(nullptr, "x", x).ok());
  EXPECT_THAT((*c)->WhyNoConvPatches("conv3d"), HasSubstr("a 3-D Conv"));
  EXPECT_THAT((*c)->WhyNoConvPatches("huge"), HasSubstr("4096 patch Hessians"));
  EXPECT_EQ((*c)->FindConvPatches("over_budget"), nullptr);
  EXPECT_THAT((*c)->WhyNoConvPatches("over_budget"),
              HasSubstr("held at once past"));
}

}  // namespace
}  // namespace quantd
