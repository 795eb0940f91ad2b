#include "engine/passes/online_rotation.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/testing/rotation_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

// y = Relu(x) W, x [2, 3, k] with channel 3 x50: the down projection's
// input has one outlier channel.
Graph MlpGraph(int64_t k) {
  Graph g;
  g.opset = 17;
  g.inputs = {ValueInfo{"x", DataType::kFloat32, true, {2, 3, k}, {}}};
  g.outputs = {ValueInfo{"y", DataType::kFloat32, true, {2, 3, 5}, {}}};
  g.initializers["W"] = RandomUniform({k, 5}, 1);
  g.nodes.push_back(MakeNode("act", "Relu", {"x"}, "h"));
  g.nodes.push_back(MakeNode("down", "MatMul", {"h", "W"}, "y"));
  return g;
}

TensorMap Feeds(int64_t k) {
  Tensor x = RandomUniform({2, 3, k}, 2, 0.1f, 1.f);
  for (int64_t r = 0; r < 6; ++r) x.mutable_data<float>()[r * k + 3] *= 50.f;
  return {{"x", x}};
}

TEST(OnlineRotationTest, SpreadsTheDownProjectionsInputWithTheSameFunction) {
  for (int64_t k : {8, 24, 64}) {
    const Graph before = MlpGraph(k);
    Graph g = before;
    absl::StatusOr<OnlineRotationOutcome> r = InsertOnlineRotations(g, 3);
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_TRUE(r->skipped.empty()) << absl::StrJoin(r->skipped, "\n");
    ASSERT_EQ(r->float_nodes.size(), 1u);
    EXPECT_EQ(g.nodes.size(), before.nodes.size() + 5);
    const TensorMap feeds = Feeds(k);
    EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)), 1e-5)
        << k;
    const std::string& rotated = g.nodes[g.nodes.size() - 1].input(0);
    const double spread_before = ChannelSpread(RunGraph(before, feeds, "h"), k);
    const double spread_after = ChannelSpread(RunGraph(g, feeds, rotated), k);
    EXPECT_GT(spread_before, 20.0) << k;
    EXPECT_LT(spread_after, 0.25 * spread_before) << k;
  }
}

TEST(OnlineRotationTest, SaysWhatItCosts) {
  Graph g = MlpGraph(64);  // 8 x 8: 64 * 16 per row, the layer's 64 * 5
  absl::StatusOr<OnlineRotationOutcome> r = InsertOnlineRotations(g, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->added_macs_per_row, 64 * 16);
  EXPECT_THAT(r->notes, ElementsAre(HasSubstr(
                            "'down': online Hadamard 8 x 8 on its 64 inputs, "
                            "1024 float multiply-adds per row (320% of")));
}

TEST(OnlineRotationTest, OddWidthsAndLayersWithoutActivationsAreLeftAlone) {
  Graph odd = MlpGraph(9);
  absl::StatusOr<OnlineRotationOutcome> r = InsertOnlineRotations(odd, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->notes.empty());
  EXPECT_THAT(r->skipped, ElementsAre(HasSubstr("its 9 inputs")));
  Graph plain = MlpGraph(8);
  plain.nodes[0] = MakeNode("act", "Identity", {"x"}, "h");
  r = InsertOnlineRotations(plain, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_THAT(r->skipped, ElementsAre(HasSubstr("no MatMul layer reads")));
  EXPECT_EQ(plain.nodes.size(), 2u);
}

TEST(OnlineRotationTest, TinyGptKeepsItsFunction) {
  absl::StatusOr<Graph> before = PreparedTinyGpt();
  ASSERT_TRUE(before.ok()) << before.status();
  Graph g = *before;
  absl::StatusOr<OnlineRotationOutcome> r = InsertOnlineRotations(g, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->notes.size(), 2u) << absl::StrJoin(r->skipped, "\n");
  EXPECT_THAT(r->notes[0], HasSubstr("fc_out"));
  EXPECT_LT(TinyGptLogitsError(*before, g), 1e-4);
}

}  // namespace
}  // namespace quantd
