#include "engine/runtime/fusion_plan.h"

#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

const std::vector<std::string> kConvs = {"Conv"};

Graph WithNodes(std::vector<Node> nodes, std::vector<std::string> outputs) {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  g.inputs = {x};
  for (const std::string& name : outputs) {
    ValueInfo v;
    v.name = name;
    g.outputs.push_back(v);
  }
  g.nodes = std::move(nodes);
  return g;
}

TEST(FusionPlanTest, FoldsAResNetBlockTail) {
  Graph g = WithNodes({MakeNode("c1", "Conv", {"x", "w1"}, "a"),
                       MakeNode("c2", "Conv", {"a", "w2"}, "b"),
                       MakeNode("add", "Add", {"b", "x"}, "s"),
                       MakeNode("relu", "Relu", {"s"}, "y")},
                      {"y"});
  std::vector<std::optional<Fusion>> plan = PlanFusions(g, kConvs);
  ASSERT_EQ(plan.size(), 4u);
  EXPECT_FALSE(plan[0]);  // a is read by a Conv, not a Relu or an Add
  ASSERT_TRUE(plan[1]);
  EXPECT_EQ(plan[1]->addend, "x");
  EXPECT_TRUE(plan[1]->relu);
  EXPECT_EQ(plan[1]->folded, (std::vector<size_t>{2, 3}));
  EXPECT_EQ(plan[1]->hidden, (std::vector<std::string>{"b", "s"}));
  EXPECT_EQ(plan[1]->output, "y");
  // c1 reads x before c2 runs, so only the Add reads it afterwards.
  EXPECT_TRUE(plan[1]->steal_addend);
  EXPECT_FALSE(plan[2]);
  EXPECT_FALSE(plan[3]);
}

TEST(FusionPlanTest, FoldsARelu) {
  Graph g = WithNodes({MakeNode("c", "Conv", {"x", "w"}, "a"),
                       MakeNode("relu", "Relu", {"a"}, "y")},
                      {"y"});
  std::vector<std::optional<Fusion>> plan = PlanFusions(g, kConvs);
  ASSERT_TRUE(plan[0]);
  EXPECT_TRUE(plan[0]->addend.empty());
  EXPECT_TRUE(plan[0]->relu);
  EXPECT_EQ(plan[0]->output, "y");
}

TEST(FusionPlanTest, KeepsValuesOthersNeed) {
  // The conv's output is a graph output: it must be written.
  Graph g = WithNodes({MakeNode("c", "Conv", {"x", "w"}, "a"),
                       MakeNode("relu", "Relu", {"a"}, "y")},
                      {"y", "a"});
  EXPECT_FALSE(PlanFusions(g, kConvs)[0]);
  // Two readers.
  g = WithNodes({MakeNode("c", "Conv", {"x", "w"}, "a"),
                 MakeNode("relu", "Relu", {"a"}, "y"),
                 MakeNode("neg", "Neg", {"a"}, "z")},
                {"y", "z"});
  EXPECT_FALSE(PlanFusions(g, kConvs)[0]);
  // The Add's output is a graph output: the Add folds, the Relu does not.
  g = WithNodes({MakeNode("c", "Conv", {"x", "w"}, "a"),
                 MakeNode("add", "Add", {"a", "x"}, "s"),
                 MakeNode("relu", "Relu", {"s"}, "y")},
                {"y", "s"});
  std::vector<std::optional<Fusion>> plan = PlanFusions(g, kConvs);
  ASSERT_TRUE(plan[0]);
  EXPECT_FALSE(plan[0]->relu);
  EXPECT_EQ(plan[0]->output, "s");
}

TEST(FusionPlanTest, TheAddendMustExistFirst) {
  // b is computed after c1: c1 cannot add it, but c2 can add a.
  Graph g = WithNodes({MakeNode("c1", "Conv", {"x", "w1"}, "a"),
                       MakeNode("c2", "Conv", {"x", "w2"}, "b"),
                       MakeNode("add", "Add", {"a", "b"}, "y")},
                      {"y"});
  std::vector<std::optional<Fusion>> plan = PlanFusions(g, kConvs);
  EXPECT_FALSE(plan[0]);
  ASSERT_TRUE(plan[1]);
  EXPECT_EQ(plan[1]->addend, "a");
  EXPECT_TRUE(plan[1]->steal_addend);
}

TEST(FusionPlanTest, DoesNotStealAnAddendReadLater) {
  Graph g = WithNodes({MakeNode("c", "Conv", {"x", "w"}, "a"),
                       MakeNode("add", "Add", {"a", "x"}, "s"),
                       MakeNode("mul", "Mul", {"s", "x"}, "y")},
                      {"y"});
  std::vector<std::optional<Fusion>> plan = PlanFusions(g, kConvs);
  ASSERT_TRUE(plan[0]);
  EXPECT_FALSE(plan[0]->steal_addend);
}

TEST(FusionPlanTest, AnAddWithAnOmittedOperandIsNotFolded) {
  Graph g = WithNodes({MakeNode("c", "Conv", {"x", "w"}, "a"),
                       MakeNode("add", "Add", {"a", ""}, "y")},
                      {"y"});
  EXPECT_FALSE(PlanFusions(g, kConvs)[0]);
}

TEST(FusionPlanTest, OnlyListedOps) {
  Graph g = WithNodes({MakeNode("m", "MatMul", {"x", "w"}, "a"),
                       MakeNode("relu", "Relu", {"a"}, "y")},
                      {"y"});
  EXPECT_FALSE(PlanFusions(g, kConvs)[0]);
}

}  // namespace
}  // namespace quantd
