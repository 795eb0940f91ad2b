#include "engine/quantization/input_channel_scaling.h"

#include <random>

#include "engine/runtime/executor.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

Tensor RunGraph(const Graph& g, const Tensor& x) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<RunResult> r = (*ex)->Run({{"x", x}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r->outputs[0];
}

Tensor Input() {
  Tensor x(DataType::kFloat32, {5, 8});
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.f, 2.f);
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    x.mutable_data<float>()[i] = n(rng);
  }
  return x;
}

std::vector<WeightSlot> Slots(const Graph& g) {
  absl::StatusOr<std::vector<WeightSlot>> s = FindQuantizableWeights(g, {});
  EXPECT_TRUE(s.ok());
  return *s;
}

TEST(InputChannelScalingTest, GroupsLayersReadingTheSameInput) {
  Graph g = LinearLayersGraph();
  std::vector<ScalingGroup> groups = GroupLinearLayersByInput(g, Slots(g));
  ASSERT_EQ(groups.size(), 2u);
  EXPECT_EQ(groups[0].input, "h");
  ASSERT_EQ(groups[0].slots.size(), 2u);
  EXPECT_EQ(groups[0].slots[1].node, "k");
  EXPECT_EQ(groups[1].input, "r");
}

// Both ways of dividing the input (LayerNorm folding for q/k, an inserted
// Mul for out) leave the float model's output unchanged.
TEST(InputChannelScalingTest, KeepsTheFloatModelsOutput) {
  Graph g = LinearLayersGraph();
  const Tensor x = Input();
  const Tensor before = RunGraph(g, x);
  const Graph copy = g;  // shares initializer buffers with g
  std::vector<ScalingGroup> groups = GroupLinearLayersByInput(g, Slots(g));
  absl::StatusOr<std::string> how = ApplyInputChannelScaling(
      g, groups[0], {0.5f, 2.f, 3.f, 8.f, 1.f, 0.25f, 1.5f, 4.f});
  ASSERT_TRUE(how.ok()) << how.status();
  EXPECT_THAT(*how, HasSubstr("LayerNormalization 'ln'"));
  how =
      ApplyInputChannelScaling(g, groups[1], {2.f, 0.5f, 1.f, 3.f, 0.1f, 7.f});
  ASSERT_TRUE(how.ok()) << how.status();
  EXPECT_THAT(*how, HasSubstr("Mul node"));
  const Tensor after = RunGraph(g, x);
  ASSERT_EQ(after.shape(), before.shape());
  for (int64_t i = 0; i < after.num_elements(); ++i) {
    EXPECT_NEAR(after.data<float>()[i], before.data<float>()[i], 1e-4);
  }
  // A copy made before the transform still computes the same (the
  // transform never writes into shared tensors).
  const Tensor from_copy = RunGraph(copy, x);
  for (int64_t i = 0; i < after.num_elements(); ++i) {
    EXPECT_EQ(from_copy.data<float>()[i], before.data<float>()[i]);
  }
  // The layers' weights changed; the originals are gone.
  EXPECT_EQ(g.FindInitializer("wq"), nullptr);
  EXPECT_EQ(g.FindInitializer("wo"), nullptr);
}

// Exporters read an attention input's shape for its Reshape: a Shape node
// sees no values, so the LayerNorm still takes the division (no Mul).
TEST(InputChannelScalingTest, ShapeReadersDoNotStopTheLayerNormFold) {
  Graph g = LinearLayersGraph();
  g.nodes.push_back(MakeNode("shape_of_h", "Shape", {"h"}, "h_shape"));
  g.outputs.push_back(ValueInfo{"h_shape", DataType::kInt64, false, {}, {}});
  const Tensor x = Input();
  const Tensor before = RunGraph(g, x);
  std::vector<ScalingGroup> groups = GroupLinearLayersByInput(g, Slots(g));
  absl::StatusOr<std::string> how = ApplyInputChannelScaling(
      g, groups[0], {0.5f, 2.f, 3.f, 8.f, 1.f, 0.25f, 1.5f, 4.f});
  ASSERT_TRUE(how.ok()) << how.status();
  EXPECT_THAT(*how, HasSubstr("LayerNormalization 'ln'"));
  const Tensor after = RunGraph(g, x);
  for (int64_t i = 0; i < after.num_elements(); ++i) {
    EXPECT_NEAR(after.data<float>()[i], before.data<float>()[i], 1e-4);
  }
}

TEST(InputChannelScalingTest, SmoothQuantScalesBalanceTheMaxima) {
  Graph g = LinearLayersGraph();
  std::vector<ScalingGroup> groups = GroupLinearLayersByInput(g, Slots(g));
  std::vector<float> act(8, 1.f);
  act[3] = 100.f;
  absl::StatusOr<std::vector<float>> s =
      SmoothQuantScales(g, groups[0], act, 0.5);
  ASSERT_TRUE(s.ok());
  // alpha 0.5: s = sqrt(max|x| / max|w|); after scaling both maxima are
  // sqrt(max|x| max|w|).
  float w3 = 0;
  for (const char* name : {"wq", "wk"}) {
    const Tensor& w = *g.FindInitializer(name);
    for (int64_t n = 0; n < 6; ++n) {
      w3 = std::max(w3, std::fabs(w.data<float>()[3 * 6 + n]));
    }
  }
  EXPECT_NEAR((*s)[3], std::sqrt(100.f / w3), 1e-3);
  EXPECT_NEAR(100.f / (*s)[3], w3 * (*s)[3], 1e-3);
  EXPECT_FALSE(SmoothQuantScales(g, groups[0], act, 1.5).ok());
}

TEST(InputChannelScalingTest, RejectsBadScales) {
  Graph g = LinearLayersGraph();
  std::vector<ScalingGroup> groups = GroupLinearLayersByInput(g, Slots(g));
  EXPECT_FALSE(ApplyInputChannelScaling(g, groups[0], {1.f, 2.f}).ok());
  std::vector<float> zero(8, 1.f);
  zero[2] = 0.f;
  EXPECT_FALSE(ApplyInputChannelScaling(g, groups[0], zero).ok());
  // Nothing changed on failure.
  EXPECT_NE(g.FindInitializer("wq"), nullptr);
}

}  // namespace
}  // namespace quantd
