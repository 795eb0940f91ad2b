// Constant folding, BatchNorm folding and clean-up: each pass must leave the
// graph computing exactly what it computed before.
#include <cmath>
#include <random>

#include "engine/passes/constant_folding.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/runtime/executor.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/testing/op_test_util.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

Node MakeNode(std::string op, std::vector<std::string> in,
              std::vector<std::string> out, AttributeMap attrs = {}) {
  Node n;
  n.name = out[0] + "_node";
  n.op_type = std::move(op);
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  n.attributes = std::move(attrs);
  return n;
}

ValueInfo Info(std::string name, Shape shape) {
  ValueInfo v;
  v.name = std::move(name);
  v.dtype = DataType::kFloat32;
  v.has_shape = true;
  v.shape = std::move(shape);
  return v;
}

Tensor Random(Shape shape, uint32_t seed, float lo = -1, float hi = 1) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = d(rng);
  return t;
}

Tensor RunGraph(const Graph& g, const TensorMap& feeds) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> out = (*ex)->RunOutputs(feeds);
  EXPECT_TRUE(out.ok()) << out.status();
  return (*out)[0];
}

void ExpectClose(const Tensor& a, const Tensor& b, float tol) {
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    ASSERT_NEAR(a.data<float>()[i], b.data<float>()[i], tol) << "at " << i;
  }
}

int Count(const Graph& g, const std::string& op) {
  int n = 0;
  for (const Node& node : g.nodes) n += node.op_type == op;
  return n;
}

// The torch flatten pattern with a dynamic batch:
// Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [12])).
Graph DynamicReshapeGraph() {
  Graph g;
  g.opset = 17;
  g.inputs = {Info("x", {-1, 3, 4})};
  g.outputs = {Info("y", {})};
  g.initializers["zero"] = Tensor::Scalar<int64_t>(0);
  g.initializers["axes0"] = Int64Vector({0});
  g.initializers["twelve"] = Int64Vector({12});
  g.nodes = {
      MakeNode("Shape", {"x"}, {"s"}),
      MakeNode("Gather", {"s", "zero"}, {"n"}),
      MakeNode("Unsqueeze", {"n", "axes0"}, {"n1"}),
      MakeNode("Concat", {"n1", "twelve"}, {"target"},
               Attrs({{"axis", IntAttr(0)}})),
      MakeNode("Reshape", {"x", "target"}, {"y"}),
  };
  return g;
}

TEST(ConstantFoldingTest, MakesDynamicBatchReshapesStatic) {
  Graph g = DynamicReshapeGraph();
  Tensor x = Random({5, 3, 4}, 1);
  Tensor before = RunGraph(g, {{"x", x}});
  FoldingStats stats;
  ASSERT_TRUE(FoldConstants(g, DefaultOpRegistry(), &stats).ok());
  RemoveDeadNodes(g);
  EXPECT_EQ(stats.reshapes_made_static, 1);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].op_type, "Reshape");
  EXPECT_EQ(g.FindInitializer(g.nodes[0].input(1))->ToVector<int64_t>(),
            (std::vector<int64_t>{-1, 12}));
  ExpectClose(RunGraph(g, {{"x", x}}), before, 0);
  EXPECT_EQ(RunGraph(g, {{"x", Random({2, 3, 4}, 2)}}).shape(), (Shape{2, 12}));
}

TEST(ConstantFoldingTest, FoldsStaticDimsOutOfShape) {
  Graph g = DynamicReshapeGraph();
  // Gather dim 1 (static 3) instead of the batch: the whole chain folds.
  g.initializers["zero"] = Tensor::Scalar<int64_t>(1);
  g.initializers["twelve"] = Int64Vector({-1});
  FoldingStats stats;
  ASSERT_TRUE(FoldConstants(g, DefaultOpRegistry(), &stats).ok());
  RemoveDeadNodes(g);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.FindInitializer(g.nodes[0].input(1))->ToVector<int64_t>(),
            (std::vector<int64_t>{3, -1}));
}

TEST(ConstantFoldingTest, TurnsConstantNodesIntoInitializers) {
  Graph g;
  g.opset = 17;
  g.inputs = {Info("x", {2, 2})};
  g.outputs = {Info("y", {2, 2})};
  Tensor w = Tensor::FromVector<float>({2, 2}, {1, 2, 3, 4});
  g.nodes = {
      MakeNode("Constant", {}, {"w"}, Attrs({{"value", TensorAttr(w)}})),
      MakeNode("Neg", {"w"}, {"neg_w"}),
      MakeNode("Add", {"x", "neg_w"}, {"y"}),
  };
  ASSERT_TRUE(FoldConstants(g, DefaultOpRegistry()).ok());
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.FindInitializer("neg_w")->ToVector<float>(),
            (std::vector<float>{-1, -2, -3, -4}));
}

TEST(ConstantFoldingTest, LeavesHugeOutputsAsNodes) {
  Graph g;
  g.opset = 17;
  g.outputs = {Info("big", {})};
  g.initializers["shape"] = Int64Vector({1 << 13, 1 << 13});
  g.nodes = {MakeNode("ConstantOfShape", {"shape"}, {"big"})};
  FoldingOptions options;
  options.max_folded_elements = 1 << 20;
  ASSERT_TRUE(FoldConstants(g, DefaultOpRegistry(), nullptr, options).ok());
  EXPECT_EQ(g.nodes.size(), 1u);
}

Graph ConvBatchNormGraph() {
  Graph g;
  g.opset = 17;
  g.inputs = {Info("x", {-1, 3, 8, 8})};
  g.outputs = {Info("y", {})};
  g.initializers["w"] = Random({4, 3, 3, 3}, 3);
  g.initializers["b"] = Random({4}, 4);
  g.initializers["gamma"] = Random({4}, 5, 0.5f, 2.f);
  g.initializers["beta"] = Random({4}, 6);
  g.initializers["mean"] = Random({4}, 7);
  g.initializers["var"] = Random({4}, 8, 0.1f, 3.f);
  g.nodes = {
      MakeNode("Conv", {"x", "w", "b"}, {"c"},
               Attrs({{"pads", IntsAttr({1, 1, 1, 1})}})),
      MakeNode("BatchNormalization", {"c", "gamma", "beta", "mean", "var"},
               {"bn"}, Attrs({{"epsilon", FloatAttr(1e-3f)}})),
      MakeNode("Relu", {"bn"}, {"y"}),
  };
  return g;
}

TEST(BatchNormFoldingTest, FoldsIntoConvAndKeepsTheResult) {
  Graph g = ConvBatchNormGraph();
  Tensor x = Random({2, 3, 8, 8}, 9);
  Tensor before = RunGraph(g, {{"x", x}});
  absl::StatusOr<int> folded = FoldBatchNormIntoConv(g);
  ASSERT_TRUE(folded.ok());
  EXPECT_EQ(*folded, 1);
  EXPECT_EQ(Count(g, "BatchNormalization"), 0);
  EXPECT_FALSE(g.initializers.contains("mean"));
  ExpectClose(RunGraph(g, {{"x", x}}), before, 1e-4f);
}

TEST(BatchNormFoldingTest, LeavesABatchNormWhoseConvOutputIsShared) {
  Graph g = ConvBatchNormGraph();
  g.nodes.push_back(MakeNode("Add", {"c", "y"}, {"z"}));
  g.outputs = {Info("z", {})};
  absl::StatusOr<int> folded = FoldBatchNormIntoConv(g);
  ASSERT_TRUE(folded.ok());
  EXPECT_EQ(*folded, 0);
}

TEST(GraphCleanupTest, RemovesIdentitiesAndDeadNodes) {
  Graph g;
  g.opset = 17;
  g.inputs = {Info("x", {2})};
  g.outputs = {Info("y", {2})};
  g.initializers["unused"] = Random({3}, 1);
  g.nodes = {
      MakeNode("Identity", {"x"}, {"i"}),
      MakeNode("Dropout", {"i"}, {"d"}),
      MakeNode("Relu", {"d"}, {"y"}),
      MakeNode("Neg", {"x"}, {"dead"}),
  };
  Tensor x = Tensor::FromVector<float>({2}, {-1, 2});
  Tensor before = RunGraph(g, {{"x", x}});
  EXPECT_EQ(RemoveIdentities(g), 2);
  EXPECT_EQ(RemoveDeadNodes(g), 1);
  ASSERT_EQ(g.nodes.size(), 1u);
  EXPECT_EQ(g.nodes[0].inputs[0], "x");
  EXPECT_TRUE(g.initializers.empty());
  ExpectClose(RunGraph(g, {{"x", x}}), before, 0);
}

TEST(GraphCleanupTest, KeepsAnIdentityThatProducesAGraphOutput) {
  Graph g;
  g.opset = 17;
  g.inputs = {Info("x", {2})};
  g.outputs = {Info("y", {2})};
  g.nodes = {MakeNode("Identity", {"x"}, {"y"})};
  EXPECT_EQ(RemoveIdentities(g), 0);
}

}  // namespace
}  // namespace quantd
