#include "engine/quantization/weight_rounding.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "engine/quantization/bias_correction.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// LinearLayersGraph with a bias on the last layer: y = MatMul(r, wo) + bo,
// so that bias correction has something to correct on "out" (q and k have
// no bias: their outputs meet in an Add of two activations).
Graph BiasedGraph() {
  Graph g = LinearLayersGraph();
  g.nodes.back().outputs = {"yo"};
  g.nodes.push_back(MakeNode("bias_add", "Add", {"yo", "bo"}, "y"));
  g.initializers["bo"] = Tensor::FromVector<float>({4}, {0.1f, -0.2f, 0, 1});
  return g;
}

// Int4 per group of 2 along the input dim; an explicit int8 magnitude keeps
// the int8 fallback independent of this CPU's VNNI.
WeightScheme Int4Scheme() {
  WeightScheme s;
  s.type = QuantType::kInt4;
  s.symmetric = false;
  s.granularity = WeightGranularity::kPerGroup;
  s.group_size = 2;
  s.int8_max_magnitude = 100;
  return s;
}

QuantParams U8(float scale) {
  QuantParams p;
  p.type = QuantType::kUInt8;
  p.qmin = 0;
  p.qmax = 255;
  p.scales = {scale};
  p.zero_points = {128};
  return p;
}

// Calibrated ranges of the static mode's layer inputs.
std::map<std::string, QuantParams> Ranges() {
  return {{"h", U8(0.05f)}, {"r", U8(0.02f)}};
}

class WeightRoundingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<std::vector<WeightSlot>> s =
        FindQuantizableWeights(graph_, {});
    ASSERT_TRUE(s.ok()) << s.status();
    slots_ = *s;
    ASSERT_EQ(slots_.size(), 3u);
  }
  const WeightSlot& Slot(const std::string& node) const {
    for (const WeightSlot& s : slots_) {
      if (s.node == node) return s;
    }
    ADD_FAILURE() << "no slot for " << node;
    return slots_[0];
  }
  RoundingConfig Config(RoundingConfig::Activations a =
                            RoundingConfig::Activations::kStatic) const {
    RoundingConfig c;
    c.scheme = Int4Scheme();
    c.activations = a;
    return c;
  }

  const Graph graph_ = BiasedGraph();
  std::vector<WeightSlot> slots_;
};

TEST(WeightRoundingPrecisionTest, RequestedPrecisionFollowsTheType) {
  WeightScheme s;
  for (QuantType t : {QuantType::kInt8, QuantType::kUInt8}) {
    s.type = t;
    EXPECT_EQ(RequestedPrecision(s), LayerPrecision::kInt8) << QuantTypeName(t);
  }
  for (QuantType t : {QuantType::kInt4, QuantType::kUInt4}) {
    s.type = t;
    EXPECT_EQ(RequestedPrecision(s), LayerPrecision::kInt4) << QuantTypeName(t);
  }
  EXPECT_STREQ(LayerPrecisionName(LayerPrecision::kFloat), "float");
  EXPECT_STREQ(LayerPrecisionName(LayerPrecision::kInt8), "int8");
  EXPECT_STREQ(LayerPrecisionName(LayerPrecision::kInt4), "int4");
}

TEST(WeightRoundingPrecisionTest, SchemeAtKeepsTheRequestOrFallsBackToInt8) {
  const WeightScheme int4 = Int4Scheme();
  const WeightScheme same = SchemeAt(int4, LayerPrecision::kInt4);
  EXPECT_EQ(same.type, QuantType::kInt4);
  EXPECT_FALSE(same.symmetric);
  EXPECT_EQ(same.granularity, WeightGranularity::kPerGroup);
  EXPECT_EQ(same.group_size, 2);

  // The fallback is what oneDNN's int8 kernels run: per output channel,
  // symmetric, within the requested int8 magnitude.
  const WeightScheme fallback = SchemeAt(int4, LayerPrecision::kInt8);
  EXPECT_EQ(fallback.type, QuantType::kInt8);
  EXPECT_TRUE(fallback.symmetric);
  EXPECT_EQ(fallback.granularity, WeightGranularity::kPerChannel);
  EXPECT_EQ(fallback.group_size, 0);
  EXPECT_EQ(fallback.int8_max_magnitude, 100);

  // An int8 request at int8 is kept as asked, per tensor and asymmetric.
  WeightScheme int8;
  int8.granularity = WeightGranularity::kPerTensor;
  int8.symmetric = false;
  const WeightScheme kept = SchemeAt(int8, LayerPrecision::kInt8);
  EXPECT_EQ(kept.granularity, WeightGranularity::kPerTensor);
  EXPECT_FALSE(kept.symmetric);
}

TEST_F(WeightRoundingTest, RoundCachesPerSlotAndPrecision) {
  // The rounder reads the graph it was given, so a weight changed after the
  // first rounding shows whether a later call recomputed or used the cache.
  Graph g = BiasedGraph();
  LayerRounder rounder(g, slots_, Config(), nullptr);
  EXPECT_EQ(rounder.InputOf(Slot("q")), "h");
  EXPECT_EQ(rounder.InputOf(Slot("out")), "r");
  absl::StatusOr<const RoundedLayer*> a =
      rounder.Round(Slot("q"), LayerPrecision::kInt4);
  ASSERT_TRUE(a.ok()) << a.status();
  const std::vector<float> int4_scales = (*a)->params.scales;
  for (float& v : g.initializers.at("wq").mutable_span<float>()) v *= 2;

  absl::StatusOr<const RoundedLayer*> again =
      rounder.Round(Slot("q"), LayerPrecision::kInt4);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *a);
  EXPECT_EQ((*again)->params.scales, int4_scales);  // not recomputed

  // Another precision or another slot is rounded afresh.
  absl::StatusOr<const RoundedLayer*> b =
      rounder.Round(Slot("q"), LayerPrecision::kInt8);
  ASSERT_TRUE(b.ok()) << b.status();
  EXPECT_NE(*b, *a);
  absl::StatusOr<QuantParams> fresh =
      ComputeWeightParams(*g.FindInitializer("wq"), Slot("q"),
                          SchemeAt(Int4Scheme(), LayerPrecision::kInt8));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_EQ((*b)->params.scales, fresh->scales);
  absl::StatusOr<const RoundedLayer*> c =
      rounder.Round(Slot("k"), LayerPrecision::kInt4);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_NE(*c, *a);

  EXPECT_EQ((*a)->params.type, QuantType::kInt4);
  EXPECT_EQ((*a)->params.group_size, 2);
  EXPECT_EQ((*a)->params.axis, Slot("q").input_axis);
  EXPECT_FALSE((*a)->codes.has_value());  // round-to-nearest: no codes
  EXPECT_FALSE((*a)->bias.has_value());
  EXPECT_THAT((*a)->notes, IsEmpty());
}

TEST_F(WeightRoundingTest, RefusesToRoundAFloatLayer) {
  LayerRounder rounder(graph_, slots_, Config(), nullptr);
  absl::StatusOr<const RoundedLayer*> r =
      rounder.Round(Slot("q"), LayerPrecision::kFloat);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("a float layer is not rounded"));
}

TEST_F(WeightRoundingTest, Int4FallbackIsPerChannelSymmetricInt8) {
  LayerRounder rounder(graph_, slots_, Config(), nullptr);
  const WeightSlot& q = Slot("q");
  absl::StatusOr<const RoundedLayer*> r =
      rounder.Round(q, LayerPrecision::kInt8);
  ASSERT_TRUE(r.ok()) << r.status();
  const QuantParams& p = (*r)->params;
  EXPECT_EQ(p.type, QuantType::kInt8);
  EXPECT_EQ(p.axis, q.channel_axis);
  EXPECT_EQ(p.group_size, 0);
  EXPECT_EQ(p.scales.size(), 6u);  // wq is [8, 6]: 6 output channels
  for (int32_t zp : p.zero_points) EXPECT_EQ(zp, 0);
  EXPECT_EQ(p.qmin, -100);
  EXPECT_EQ(p.qmax, 100);
  // Symmetric: each channel's largest |w| lands on the end of the range.
  const Tensor& w = *graph_.FindInitializer("wq");
  for (int64_t c = 0; c < 6; ++c) {
    float amax = 0;
    for (int64_t k = 0; k < 8; ++k) {
      amax = std::max(amax, std::fabs(w.data<float>()[k * 6 + c]));
    }
    EXPECT_FLOAT_EQ(p.scales[c], amax / 100) << c;
  }
}

TEST_F(WeightRoundingTest, BuildPlanPutsFloatLayersAsideAndFillsActivations) {
  LayerRounder rounder(graph_, slots_, Config(), nullptr);
  // q float, k int8 (fallback), out as requested (int4).
  absl::StatusOr<QuantizationPlan> plan = rounder.BuildPlan(
      {{"q", LayerPrecision::kFloat}, {"k", LayerPrecision::kInt8}}, Ranges());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->float_nodes, ElementsAre("q"));
  EXPECT_FALSE(plan->weights.contains("wq"));
  ASSERT_TRUE(plan->weights.contains("wk"));
  EXPECT_EQ(plan->weights.at("wk").type, QuantType::kInt8);
  ASSERT_TRUE(plan->weights.contains("wo"));
  EXPECT_EQ(plan->weights.at("wo").type, QuantType::kInt4);
  // "h" is read by k (quantized) as well as q (float).
  ASSERT_EQ(plan->activations.size(), 2u);
  EXPECT_FLOAT_EQ(plan->activations.at("h").scales[0], 0.05f);
  EXPECT_FLOAT_EQ(plan->activations.at("r").scales[0], 0.02f);
  EXPECT_THAT(plan->dynamic_activations, IsEmpty());
  EXPECT_THAT(plan->updated_initializers, IsEmpty());
  EXPECT_THAT(plan->weight_codes, IsEmpty());

  // Every layer float: nothing quantized, no activation needed.
  plan = rounder.BuildPlan({{"q", LayerPrecision::kFloat},
                            {"k", LayerPrecision::kFloat},
                            {"out", LayerPrecision::kFloat}},
                           {});
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->float_nodes, UnorderedElementsAre("q", "k", "out"));
  EXPECT_THAT(plan->weights, IsEmpty());
  EXPECT_THAT(plan->activations, IsEmpty());
}

TEST_F(WeightRoundingTest, ActivationsOnlyInStaticMode) {
  LayerRounder dynamic(graph_, slots_,
                       Config(RoundingConfig::Activations::kDynamic), nullptr);
  absl::StatusOr<QuantizationPlan> plan = dynamic.BuildPlan({}, Ranges());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->activations, IsEmpty());
  EXPECT_THAT(plan->dynamic_activations, UnorderedElementsAre("h", "r"));
  EXPECT_EQ(plan->weights.size(), 3u);

  LayerRounder weight_only(graph_, slots_,
                           Config(RoundingConfig::Activations::kNone), nullptr);
  plan = weight_only.BuildPlan({}, Ranges());
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_THAT(plan->activations, IsEmpty());
  EXPECT_THAT(plan->dynamic_activations, IsEmpty());
  EXPECT_EQ(plan->weights.size(), 3u);

  // Static mode without a calibrated range for a layer's input.
  LayerRounder rounder(graph_, slots_, Config(), nullptr);
  plan = rounder.BuildPlan({}, {{"h", U8(0.05f)}});
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(std::string(plan.status().message()),
              HasSubstr("no calibrated range for 'r', input of 'out'"));
}

// Statistics of "r" (input of out) and "h" (input of q and k) with
// nonzero means, fed to the collector as the calibration pass would.
std::unique_ptr<InputStatisticsCollector> Statistics(
    bool hessian, int64_t max_live_hessian_floats = kMaxLiveHessianFloats) {
  InputStatisticsOptions o;
  o.hessian = hessian;
  o.max_live_hessian_floats = max_live_hessian_floats;
  auto c = InputStatisticsCollector::Create(
      {{"h", ChannelLayout::kLastDim}, {"r", ChannelLayout::kLastDim}}, o);
  EXPECT_TRUE(c.ok()) << c.status();
  std::mt19937 rng(11);
  std::normal_distribution<float> n(0.7f, 1.f);
  TensorHook hook = (*c)->Hook();
  for (const auto& [name, channels] :
       std::vector<std::pair<std::string, int64_t>>{{"h", 8}, {"r", 6}}) {
    Tensor x(DataType::kFloat32, {32, channels});
    for (float& v : x.mutable_span<float>()) v = std::fabs(n(rng));
    EXPECT_TRUE(hook(nullptr, name, x).ok());
  }
  return std::move(*c);
}

TEST_F(WeightRoundingTest, BiasCorrectionProducesABiasFromStatistics) {
  const std::unique_ptr<InputStatisticsCollector> stats = Statistics(false);
  RoundingConfig config = Config();
  config.bias_correction = true;
  LayerRounder rounder(graph_, slots_, config, stats.get());
  const WeightSlot& out = Slot("out");
  absl::StatusOr<const RoundedLayer*> r =
      rounder.Round(out, LayerPrecision::kInt4);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ((*r)->bias_name, "bo");
  ASSERT_TRUE((*r)->bias.has_value());

  // Exactly the correction for the round-to-nearest weights and the means.
  const Tensor& w = *graph_.FindInitializer("wo");
  absl::StatusOr<Tensor> fq = FakeQuantizeWeights(w, (*r)->params);
  ASSERT_TRUE(fq.ok()) << fq.status();
  const LayerInputStatistics* s = stats->Find("r");
  std::vector<double> mean;
  for (int64_t c = 0; c < s->channels; ++c) mean.push_back(s->Mean(c));
  absl::StatusOr<Tensor> want = CorrectedBias(graph_, out, *fq, mean);
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ((*r)->bias->ToVector<float>(), want->ToVector<float>());
  EXPECT_NE((*r)->bias->ToVector<float>(),
            graph_.FindInitializer("bo")->ToVector<float>());

  // A layer without a bias says so; the plan carries the corrected bias.
  absl::StatusOr<const RoundedLayer*> q =
      rounder.Round(Slot("q"), LayerPrecision::kInt4);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_FALSE((*q)->bias.has_value());
  EXPECT_THAT((*q)->notes,
              ElementsAre("bias correction: the layer has no bias"));
  absl::StatusOr<QuantizationPlan> plan = rounder.BuildPlan({}, Ranges());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->updated_initializers.contains("bo"));
  EXPECT_EQ(plan->updated_initializers.at("bo").ToVector<float>(),
            (*r)->bias->ToVector<float>());
}

TEST_F(WeightRoundingTest, GptqWeightsGoIntoThePlan) {
  const std::unique_ptr<InputStatisticsCollector> stats = Statistics(true);
  RoundingConfig config = Config();
  config.gptq = true;
  LayerRounder rounder(graph_, slots_, config, stats.get());
  absl::StatusOr<const RoundedLayer*> r =
      rounder.Round(Slot("out"), LayerPrecision::kInt4);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_TRUE((*r)->codes.has_value());
  ASSERT_EQ((*r)->notes.size(), 1u);
  EXPECT_THAT((*r)->notes[0], HasSubstr("gptq: proxy loss"));
  // GPTQ's integers, int4 two per byte in the weight's shape, round-trip
  // through their floats, and differ from round-to-nearest's somewhere.
  const WeightCodes& codes = *(*r)->codes;
  EXPECT_EQ(codes.dtype(), DataType::kInt8);
  EXPECT_EQ(codes.bits(), 4);
  EXPECT_EQ(codes.shape(), graph_.FindInitializer("wo")->shape());
  absl::StatusOr<Tensor> floats = DequantizeWeightCodes(codes, (*r)->params);
  ASSERT_TRUE(floats.ok()) << floats.status();
  absl::StatusOr<WeightCodes> again =
      QuantizeWeightCodes(*floats, (*r)->params);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->Values().ToVector<int8_t>(),
            codes.Values().ToVector<int8_t>());
  absl::StatusOr<WeightCodes> rtn =
      QuantizeWeightCodes(*graph_.FindInitializer("wo"), (*r)->params);
  ASSERT_TRUE(rtn.ok()) << rtn.status();
  EXPECT_NE(rtn->Values().ToVector<int8_t>(),
            codes.Values().ToVector<int8_t>());
  absl::StatusOr<QuantizationPlan> plan = rounder.BuildPlan({}, Ranges());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->weight_codes.contains("wo"));
  EXPECT_EQ(plan->weight_codes.at("wo").storage().raw_data(),
            codes.storage().raw_data());  // shared, not copied
  EXPECT_FALSE(plan->updated_initializers.contains("wo"));

  // Without statistics GPTQ cannot run and the note says so.
  LayerRounder blind(graph_, slots_, config, nullptr);
  r = blind.Round(Slot("out"), LayerPrecision::kInt4);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE((*r)->codes.has_value());
  ASSERT_EQ((*r)->notes.size(), 1u);
  EXPECT_THAT((*r)->notes[0], HasSubstr("gptq: not applied"));
}

// A layer whose Hessian did not fit the budget keeps round-to-nearest, and
// its note says which bound it hit.
TEST_F(WeightRoundingTest, GptqSaysWhichHessianBoundALayerHit) {
  // "h" (8 channels, 64 floats) fits; "r" (36 more) does not.
  const std::unique_ptr<InputStatisticsCollector> stats =
      Statistics(true, /*max_live_hessian_floats=*/64);
  RoundingConfig config = Config();
  config.gptq = true;
  LayerRounder rounder(graph_, slots_, config, stats.get());
  absl::StatusOr<const RoundedLayer*> q =
      rounder.Round(Slot("q"), LayerPrecision::kInt4);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_THAT((*q)->notes, ElementsAre(HasSubstr("gptq: proxy loss")));
  absl::StatusOr<const RoundedLayer*> out =
      rounder.Round(Slot("out"), LayerPrecision::kInt4);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_FALSE((*out)->codes.has_value());
  EXPECT_THAT((*out)->notes,
              ElementsAre(AllOf(HasSubstr("gptq: not applied (input of 6 "
                                          "channels"),
                                HasSubstr("held at once"))));
}

// The quantize stage frees the statistics once every layer is rounded:
// cached layers stay usable, and a layer that would need them afterwards is
// an error, never a silent round-to-nearest.
TEST_F(WeightRoundingTest, DroppedStatisticsKeepCachedLayersAndRefuseNewOnes) {
  std::unique_ptr<InputStatisticsCollector> stats = Statistics(true);
  RoundingConfig config = Config();
  config.gptq = true;
  LayerRounder rounder(graph_, slots_, config, stats.get());
  absl::StatusOr<const RoundedLayer*> before =
      rounder.Round(Slot("out"), LayerPrecision::kInt4);
  ASSERT_TRUE(before.ok()) << before.status();
  stats->Release("r");
  EXPECT_EQ(stats->Find("r"), nullptr);
  EXPECT_NE(stats->Find("h"), nullptr);
  rounder.DropStatistics();
  stats.reset();

  absl::StatusOr<const RoundedLayer*> again =
      rounder.Round(Slot("out"), LayerPrecision::kInt4);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, *before);
  absl::StatusOr<const RoundedLayer*> other =
      rounder.Round(Slot("out"), LayerPrecision::kInt8);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(std::string(other.status().message()),
              HasSubstr("statistics, which were already freed"));
}

// Two layers reading one weight (tied or shared layers) with different
// inputs: the weight is rounded once, but each quantized layer's input
// still needs its activation parameters in static mode.
TEST(WeightRoundingSharedWeightTest, EveryQuantizedLayerInputGetsARange) {
  Graph g = LinearLayersGraph();
  g.nodes[2].inputs[1] = "wq";  // k = MatMul(h2, wq) with h2 = Relu(h)
  g.nodes[2].inputs[0] = "h2";
  g.nodes.insert(g.nodes.begin() + 2, MakeNode("relu_h", "Relu", {"h"}, "h2"));
  g.initializers.erase("wk");
  absl::StatusOr<std::vector<WeightSlot>> slots = FindQuantizableWeights(g, {});
  ASSERT_TRUE(slots.ok()) << slots.status();
  RoundingConfig config;
  config.scheme.int8_max_magnitude = 100;
  LayerRounder rounder(g, *slots, config, nullptr);
  std::map<std::string, QuantParams> ranges = Ranges();
  ranges["h2"] = U8(0.03f);
  absl::StatusOr<QuantizationPlan> plan = rounder.BuildPlan({}, ranges);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->weights.size(), 2u);  // wq (shared) and wo
  EXPECT_TRUE(plan->activations.contains("h"));
  EXPECT_TRUE(plan->activations.contains("h2"))
      << "k is quantized (its weight wq is) but its input has no range";
}

}  // namespace
}  // namespace quantd
