#include "engine/passes/head_rotation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/runtime/executor.h"
#include "engine/testing/op_test_util.h"
#include "engine/testing/rotation_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Tensor Int64s(std::vector<int64_t> v) {
  return Tensor::FromVector<int64_t>({static_cast<int64_t>(v.size())}, v);
}

// One attention block on x [2, 4, 8] with 2 heads of 4, the weights given
// and the attention weights `att` [2, 2, 4, 4] a graph input:
//   v = x Wv + bv -> [2, 4, 2, 4] -> [2, 2, 4, 4] -> att v -> [2, 4, 2, 4]
//   -> [2, 4, 8] -> y = . Wo
// Wv has an outlier column (channel 5, head 1), so the output projection's
// input has one too.
Graph AttentionGraph() {
  Graph g;
  g.opset = 17;
  g.inputs = {ValueInfo{"x", DataType::kFloat32, true, {2, 4, 8}, {}},
              ValueInfo{"att", DataType::kFloat32, true, {2, 2, 4, 4}, {}}};
  g.outputs = {ValueInfo{"y", DataType::kFloat32, true, {2, 4, 6}, {}}};
  Tensor wv = RandomUniform({8, 8}, 1);
  for (int64_t r = 0; r < 8; ++r) wv.mutable_data<float>()[r * 8 + 5] *= 40.f;
  g.initializers["Wv"] = wv;
  g.initializers["bv"] = RandomUniform({8}, 2);
  g.initializers["Wo"] = RandomUniform({8, 6}, 3);
  g.initializers["split"] = Int64s({2, 4, 2, 4});
  g.initializers["merge"] = Int64s({2, 4, 8});
  g.nodes.push_back(MakeNode("v", "MatMul", {"x", "Wv"}, "v0"));
  g.nodes.push_back(MakeNode("v_bias", "Add", {"bv", "v0"}, "v1"));
  g.nodes.push_back(MakeNode("split_heads", "Reshape", {"v1", "split"}, "v2"));
  Node t1 = MakeNode("to_heads", "Transpose", {"v2"}, "v3");
  t1.attributes.Set("perm", IntsAttr({0, 2, 1, 3}));
  g.nodes.push_back(t1);
  g.nodes.push_back(MakeNode("attend", "MatMul", {"att", "v3"}, "o0"));
  Node t2 = MakeNode("from_heads", "Transpose", {"o0"}, "o1");
  t2.attributes.Set("perm", IntsAttr({0, 2, 1, 3}));
  g.nodes.push_back(t2);
  g.nodes.push_back(MakeNode("merge_heads", "Reshape", {"o1", "merge"}, "o2"));
  g.nodes.push_back(MakeNode("proj", "MatMul", {"o2", "Wo"}, "y"));
  return g;
}

TensorMap AttentionFeeds() {
  Tensor att = RandomUniform({2, 2, 4, 4}, 9, 0.f, 1.f);
  return {{"x", RandomUniform({2, 4, 8}, 8)}, {"att", att}};
}

TEST(HeadRotationTest, RotatesEachHeadWithTheSameFunction) {
  const Graph before = AttentionGraph();
  const TensorMap feeds = AttentionFeeds();
  // A few seeds: at dh = 4, one seed in eight draws equal signs, with which
  // R happens to be symmetric and R^T and R would be confused unnoticed.
  for (uint64_t seed : {1, 2, 3}) {
    Graph g = before;
    ASSERT_TRUE(RotateValueOutputHeads(g, seed).ok());
    EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)), 1e-5)
        << seed;
  }
  Graph g = before;
  absl::StatusOr<RotationOutcome> r = RotateValueOutputHeads(g, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->skipped.empty()) << absl::StrJoin(r->skipped, "\n");
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_THAT(r->notes[0], HasSubstr("'v' -> 'proj': 2 heads of 4"));
  EXPECT_EQ(r->changed_nodes.size(), 3u);  // v, its bias, proj
  EXPECT_EQ(g.nodes.size(), before.nodes.size());
  EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)), 1e-5);
  // The output projection's input: the outlier channel is spread over its
  // head. Head 0's channels are untouched in magnitude order.
  const double spread_before = ChannelSpread(RunGraph(before, feeds, "o2"), 8);
  const double spread_after = ChannelSpread(RunGraph(g, feeds, "o2"), 8);
  EXPECT_GT(spread_before, 10.0);
  EXPECT_LT(spread_after, 0.5 * spread_before) << "was " << spread_before;
  EXPECT_NE(g.FindInitializer("Wv")->ToVector<float>(),
            before.FindInitializer("Wv")->ToVector<float>());
}

// Splitting the last axis as [dh, H] instead of [H, dh] puts a head's
// channels 2 apart; the tracer must not take that for heads.
TEST(HeadRotationTest, InterleavedHeadsAreNotHeads) {
  Graph g = AttentionGraph();
  g.initializers["split"] = Int64s({2, 4, 4, 2});
  for (Node& n : g.nodes) {
    if (n.name == "to_heads") {
      n.attributes.Set("perm", IntsAttr({0, 3, 1, 2}));
    }
  }
  const std::vector<float> wv = g.FindInitializer("Wv")->ToVector<float>();
  absl::StatusOr<RotationOutcome> r = RotateValueOutputHeads(g, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->notes.empty());
  EXPECT_EQ(g.FindInitializer("Wv")->ToVector<float>(), wv);
}

TEST(HeadRotationTest, HeadValuesReadElsewhereAreLeftAloneWithReason) {
  Graph g = AttentionGraph();
  g.outputs.push_back(ValueInfo{"o0", DataType::kFloat32, false, {}, {}});
  const std::vector<float> wo = g.FindInitializer("Wo")->ToVector<float>();
  absl::StatusOr<RotationOutcome> r = RotateValueOutputHeads(g, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->notes.empty());
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_THAT(r->skipped[0], HasSubstr("'v': 'o0' is an output"));
  EXPECT_EQ(g.FindInitializer("Wo")->ToVector<float>(), wo);
}

TEST(HeadRotationTest, MergedHeadsReadByANonLayerAreNamed) {
  Graph g = AttentionGraph();
  g.nodes.back() = MakeNode("act", "Relu", {"o2"}, "r");
  g.nodes.push_back(MakeNode("proj", "MatMul", {"r", "Wo"}, "y"));
  absl::StatusOr<RotationOutcome> r = RotateValueOutputHeads(g, 5);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_THAT(r->skipped[0],
              HasSubstr("merged heads of 'v' are not read by one MatMul"));
}

// GPT-2's fused c_attn: one MatMul [8, 16], a Split into two 8-wide parts
// of which the second are the values (the first goes to a graph output, as
// a query/key part would go elsewhere). Only the value part's columns are
// rotated.
Graph FusedGraph(int64_t axis) {
  Graph g = AttentionGraph();
  g.outputs.push_back(ValueInfo{"other", DataType::kFloat32, false, {}, {}});
  g.initializers["Wv"] = RandomUniform({8, 16}, 4);
  g.initializers["bv"] = RandomUniform({16}, 5);
  g.initializers["parts"] = Int64s({8, 8});
  Node split = MakeNode("qkv_split", "Split", {"v1", "parts"}, "other");
  split.outputs.push_back("v1_values");
  Attribute a;
  a.type = Attribute::Type::kInt;
  a.i = axis;
  split.attributes.Set("axis", a);
  g.nodes.insert(g.nodes.begin() + 2, split);
  g.nodes[3].inputs[0] = "v1_values";  // the head split reads the values
  return g;
}

TEST(HeadRotationTest, RotatesTheValuePartOfAFusedProjection) {
  const Graph before = FusedGraph(-1);
  Graph g = before;
  absl::StatusOr<RotationOutcome> r = RotateValueOutputHeads(g, 2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->skipped.empty()) << absl::StrJoin(r->skipped, "\n");
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_THAT(r->notes[0], HasSubstr("columns 8-15 of a fused projection"));
  const TensorMap feeds = AttentionFeeds();
  EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)), 1e-5);
  // The other part (a graph output here) is untouched.
  EXPECT_EQ(RunGraph(before, feeds, "other"), RunGraph(g, feeds, "other"));
  // Axis 2 is the last of v1 [2, 4, 16] (its rank inferred through the
  // MatMul and Add); axis 1 is not.
  Graph last = FusedGraph(2);
  r = RotateValueOutputHeads(last, 2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->notes.size(), 1u);
  Graph middle = FusedGraph(1);
  r = RotateValueOutputHeads(middle, 2);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->notes.empty());
  EXPECT_THAT(r->skipped,
              ElementsAre(HasSubstr("not known to split the last axis")));
}

// As the pipeline sees it (PreparedTinyGpt: the heads' [H, dh] come from
// Constant nodes that preparation folds into initializers).
TEST(HeadRotationTest, TinyGptKeepsItsFunction) {
  absl::StatusOr<Graph> before = PreparedTinyGpt();
  ASSERT_TRUE(before.ok()) << before.status();
  Graph g = *before;
  absl::StatusOr<RotationOutcome> r = RotateResidualStreams(g, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  absl::StatusOr<RotationOutcome> heads = RotateValueOutputHeads(g, 1);
  ASSERT_TRUE(heads.ok()) << heads.status();
  EXPECT_TRUE(heads->skipped.empty()) << absl::StrJoin(heads->skipped, "\n");
  ASSERT_EQ(heads->notes.size(), 2u) << absl::StrJoin(heads->notes, "\n");
  EXPECT_THAT(heads->notes[0], HasSubstr("'/blocks.0/attn/v/MatMul' -> "
                                         "'/blocks.0/attn/proj/MatMul'"));
  EXPECT_LT(TinyGptLogitsError(*before, g), 1e-4);
}

}  // namespace
}  // namespace quantd
