#include "engine/passes/cross_layer_equalization.h"

#include <algorithm>
#include <cmath>

#include "engine/runtime/executor.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

// Channel c of a weight [OC, ...] scaled by 10^(4c/(OC-1) - 2): ranges from
// 0.01x to 100x, as BatchNorm folding leaves a MobileNet's depthwise convs.
Tensor Spread(Tensor w) {
  const int64_t oc = w.dim(0), per = w.num_elements() / oc;
  for (int64_t c = 0; c < oc; ++c) {
    const float k = std::pow(10.f, 4.f * c / (oc - 1) - 2.f);
    for (int64_t i = 0; i < per; ++i) w.mutable_data<float>()[c * per + i] *= k;
  }
  return w;
}

Node Conv(const std::string& name, std::vector<std::string> in,
          const std::string& out, int64_t kernel, int64_t group = 1) {
  Node n = MakeNode(name, "Conv", std::move(in), out);
  n.attributes.Set("kernel_shape", Ints({kernel, kernel}));
  const int64_t pad = kernel / 2;
  n.attributes.Set("pads", Ints({pad, pad, pad, pad}));
  n.attributes.Set("group", Int(group));
  return n;
}

// x [1, 3, 8, 8] -> conv1 (3 -> 8) -> Relu -> dw (8 depthwise) -> Relu ->
// pw (8 -> 6, 1x1) -> HardSwish -> head (6 -> 4, 1x1) -> y.
Graph MobileBlock() {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  x.has_shape = true;
  x.shape = {1, 3, 8, 8};
  g.inputs = {x};
  ValueInfo y;
  y.name = "y";
  g.outputs = {y};
  g.initializers["w1"] = Spread(RandomUniform({8, 3, 3, 3}, 1));
  g.initializers["b1"] = Spread(RandomUniform({8}, 2, 0.f, 0.5f));
  g.initializers["wd"] = Spread(RandomUniform({8, 1, 3, 3}, 3));
  g.initializers["bd"] = RandomUniform({8}, 4, 0.f, 0.5f);
  g.initializers["wp"] = RandomUniform({6, 8, 1, 1}, 5);
  g.initializers["wh"] = RandomUniform({4, 6, 1, 1}, 6);
  g.nodes = {Conv("conv1", {"x", "w1", "b1"}, "c1", 3),
             MakeNode("relu1", "Relu", {"c1"}, "r1"),
             Conv("dw", {"r1", "wd", "bd"}, "c2", 3, 8),
             MakeNode("relu2", "Relu", {"c2"}, "r2"),
             Conv("pw", {"r2", "wp"}, "c3", 1),
             MakeNode("hswish", "HardSwish", {"c3"}, "h"),
             Conv("head", {"h", "wh"}, "y", 1)};
  return g;
}

std::vector<float> Outputs(const Graph& g, const Tensor& x) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> out = (*ex)->RunOutputs({{"x", x}});
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? (*out)[0].ToVector<float>() : std::vector<float>();
}

// Both graphs give the same outputs on one input, up to float rounding.
void ExpectSameFunction(const Graph& a, const Graph& b) {
  const Tensor x = RandomUniform({1, 3, 8, 8}, 9);
  const std::vector<float> want = Outputs(a, x);
  const std::vector<float> got = Outputs(b, x);
  ASSERT_EQ(got.size(), want.size());
  float scale = 0.f;
  for (float v : want) scale = std::max(scale, std::fabs(v));
  for (size_t i = 0; i < want.size(); ++i) {
    ASSERT_NEAR(got[i], want[i], 1e-4f * scale) << i;
  }
}

// max / min of the output channels' max |w|.
float RangeRatio(const Tensor& w) {
  const int64_t oc = w.dim(0), per = w.num_elements() / oc;
  float lo = INFINITY, hi = 0.f;
  for (int64_t c = 0; c < oc; ++c) {
    float r = 0.f;
    for (int64_t i = 0; i < per; ++i) {
      r = std::max(r, std::fabs(w.data<float>()[c * per + i]));
    }
    lo = std::min(lo, r);
    hi = std::max(hi, r);
  }
  return hi / lo;
}

TEST(CrossLayerEqualizationTest, KeepsTheFunctionAndEvensTheChannels) {
  const Graph original = MobileBlock();
  const std::vector<float> wd =
      original.FindInitializer("wd")->ToVector<float>();
  Graph g = original;  // shares the tensors' storage with `original`
  absl::StatusOr<EqualizationOutcome> r = EqualizeCrossLayerRanges(g);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->equalized.size(), 2u);  // conv1 -> dw, dw -> pw
  EXPECT_EQ(r->equalized[0].first, "conv1");
  EXPECT_EQ(r->equalized[0].second, "dw");
  EXPECT_THAT(r->equalized[0].note, HasSubstr("equalized 'conv1' -> 'dw'"));
  EXPECT_EQ(r->equalized[1].first, "dw");
  EXPECT_EQ(r->equalized[1].second, "pw");
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_THAT(r->skipped[0], HasSubstr("skipped 'pw' -> 'head': HardSwish"));

  ExpectSameFunction(original, g);
  // A channel's gain through conv1 and dw (both spread 1e4 in the same
  // order) is the model's; equalization can only share it out over the
  // three layers of the chain: ~1e4^(2/3) each instead of 1e4 and 1e4.
  const Tensor& dw = *g.FindInitializer(g.nodes[2].input(1));
  const Tensor& pw = *g.FindInitializer(g.nodes[4].input(1));
  EXPECT_GT(RangeRatio(*original.FindInitializer("wd")), 9e3f);
  EXPECT_LT(RangeRatio(dw), 1e3f);
  EXPECT_LT(RangeRatio(*g.FindInitializer(g.nodes[0].input(1))), 1e3f);
  // The pair equalized last has matching ranges: dw's output channel c and
  // pw's input channel c.
  for (int64_t c = 0; c < 8; ++c) {
    float out = 0.f, in = 0.f;
    for (int64_t k = 0; k < 9; ++k) {
      out = std::max(out, std::fabs(dw.data<float>()[c * 9 + k]));
    }
    for (int64_t o = 0; o < 6; ++o) {
      in = std::max(in, std::fabs(pw.data<float>()[o * 8 + c]));
    }
    EXPECT_NEAR(out, in, 1e-4f * in) << c;
  }
  // New initializers: the graph sharing the old ones is untouched, and the
  // old ones, unread now, are gone from the equalized graph.
  EXPECT_EQ(original.FindInitializer("wd")->ToVector<float>(), wd);
  EXPECT_EQ(g.FindInitializer("wd"), nullptr);
  EXPECT_EQ(g.initializers.size(), original.initializers.size());
}

TEST(CrossLayerEqualizationTest, LeavesSharedOrForkedOutputsAlone) {
  Graph g = MobileBlock();
  // relu1's output also goes to the graph's outputs: dividing conv1's
  // channels would change it.
  ValueInfo extra;
  extra.name = "r1";
  g.outputs.push_back(extra);
  absl::StatusOr<EqualizationOutcome> r = EqualizeCrossLayerRanges(g);
  ASSERT_TRUE(r.ok());
  ASSERT_EQ(r->equalized.size(), 1u);  // dw -> pw only
  EXPECT_EQ(r->equalized[0].first, "dw");
  // ReLU6 (Clip 0..6) is not homogeneous either.
  Graph c = MobileBlock();
  c.nodes[1] = MakeNode("relu6", "Clip", {"c1"}, "r1");
  c.nodes[1].attributes.Set("min", Float(0.f));
  c.nodes[1].attributes.Set("max", Float(6.f));
  c.opset = 6;
  r = EqualizeCrossLayerRanges(c);
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->equalized.size(), 1u);
  ASSERT_EQ(r->skipped.size(), 2u);  // and pw -> head, as before
  EXPECT_THAT(r->skipped[0], HasSubstr("Clip between them"));
  EXPECT_THAT(r->skipped[1], HasSubstr("HardSwish between them"));
}

// Max pooling commutes with a positive per-channel scale: Relu then
// MaxPool between two convolutions still makes a pair.
TEST(CrossLayerEqualizationTest, SeesThroughPooling) {
  const Graph original = [] {
    Graph g = MobileBlock();
    g.nodes[1].outputs[0] = "r1a";
    Node pool = MakeNode("pool", "MaxPool", {"r1a"}, "r1");
    pool.attributes.Set("kernel_shape", Ints({2, 2}));
    g.nodes.insert(g.nodes.begin() + 2, pool);
    return g;
  }();
  Graph g = original;
  absl::StatusOr<EqualizationOutcome> r = EqualizeCrossLayerRanges(g);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->equalized.size(), 2u);
  ExpectSameFunction(original, g);
}

}  // namespace
}  // namespace quantd
