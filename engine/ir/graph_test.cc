#include "engine/ir/graph.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Node N(const std::string& name, std::vector<std::string> inputs,
       const std::string& output) {
  Node n;
  n.name = name;
  n.op_type = "Identity";
  n.inputs = std::move(inputs);
  n.outputs = {output};
  return n;
}

std::vector<std::string> Order(const Graph& g) {
  std::vector<std::string> names;
  for (const Node& n : g.nodes) names.push_back(n.name);
  return names;
}

// Two layers, each with a node reading only an initializer (a weight's
// DequantizeLinear) placed right before it, as the QDQ export places them.
Graph TwoLayers() {
  Graph g;
  ValueInfo x;
  x.name = "x";
  g.inputs = {x};
  g.initializers["w1"] = Tensor(DataType::kFloat32, {1});
  g.initializers["w2"] = Tensor(DataType::kFloat32, {1});
  g.nodes = {N("dq1", {"w1"}, "w1f"), N("mm1", {"x", "w1f"}, "h"),
             N("dq2", {"w2"}, "w2f"), N("mm2", {"h", "w2f"}, "y")};
  ValueInfo y;
  y.name = "y";
  g.outputs = {y};
  return g;
}

// A valid order stays as it is: the weight nodes are not hoisted to the
// front, where an executor would hold every one of their outputs at once.
TEST(TopologicalSortTest, KeepsAValidOrder) {
  Graph g = TwoLayers();
  ASSERT_TRUE(TopologicalSort(g).ok());
  EXPECT_THAT(Order(g), ElementsAre("dq1", "mm1", "dq2", "mm2"));
}

// A node listed before its producer moves just after it; the others keep
// their relative order.
TEST(TopologicalSortTest, MovesANodeOnlyPastItsProducers) {
  Graph g = TwoLayers();
  std::swap(g.nodes[0], g.nodes[1]);  // mm1 before dq1
  ASSERT_TRUE(TopologicalSort(g).ok());
  EXPECT_THAT(Order(g), ElementsAre("dq1", "mm1", "dq2", "mm2"));

  // mm2, mm1, dq2, dq1: each node runs as soon as its producers have, the
  // earliest listed first.
  g = TwoLayers();
  g.nodes = {g.nodes[3], g.nodes[1], g.nodes[2], g.nodes[0]};
  ASSERT_TRUE(TopologicalSort(g).ok());
  EXPECT_THAT(Order(g), ElementsAre("dq2", "dq1", "mm1", "mm2"));
}

TEST(TopologicalSortTest, NamesACycleAndAMissingInput) {
  Graph g = TwoLayers();
  g.nodes[0].inputs = {"y"};  // dq1 reads mm2's output
  absl::Status s = TopologicalSort(g);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(s.message()), HasSubstr("cycle"));

  g = TwoLayers();
  g.nodes[2].inputs = {"nowhere"};
  s = TopologicalSort(g);
  EXPECT_THAT(std::string(s.message()), HasSubstr("'nowhere'"));
}

}  // namespace
}  // namespace quantd
