#include "engine/passes/graph_segments.h"

#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// A residual stack as decoders have it: every block reads the stream and a
// "mask" computed once from the input (as attention masks and rotary
// tables are), and adds its layer's output back:
//   mask = Sigmoid(x)
//   r0 = x; r_{i+1} = r_i + MatMul(r_i * mask, w_i)   (blocks 0..n-1)
//   y = MatMul(r_n, w_out); the mask is also a graph output.
Graph ResidualStack(int blocks) {
  Graph g;
  g.name = "stack";
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  g.inputs = {x};
  g.nodes.push_back(MakeNode("mask", "Sigmoid", {"x"}, "mask"));
  std::string stream = "x";
  for (int i = 0; i < blocks; ++i) {
    const std::string b = "b" + std::to_string(i);
    g.initializers["w" + b] = RandomUniform({8, 8}, 10 + i);
    g.nodes.push_back(MakeNode(b + "_gate", "Mul", {stream, "mask"}, b + "m"));
    g.nodes.push_back(
        MakeNode(b + "_layer", "MatMul", {b + "m", "w" + b}, b + "h"));
    g.nodes.push_back(MakeNode(b + "_add", "Add", {stream, b + "h"}, b + "r"));
    stream = b + "r";
  }
  g.initializers["wout"] = RandomUniform({8, 3}, 99);
  g.nodes.push_back(MakeNode("out_layer", "MatMul", {stream, "wout"}, "y"));
  ValueInfo y = x, mask = x;
  y.name = "y";
  mask.name = "mask";
  g.outputs = {y, mask};
  return g;
}

bool IsMatMul(const Node& n) { return n.op_type == "MatMul"; }

// Runs the segments one after another as sequential calibration does.
std::vector<Tensor> RunSegments(const std::vector<GraphSegment>& segments,
                                const TensorMap& feeds) {
  TensorMap live = feeds;
  std::vector<Tensor> last;
  for (const GraphSegment& s : segments) {
    absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(s.graph);
    EXPECT_TRUE(ex.ok()) << ex.status();
    absl::StatusOr<std::vector<Tensor>> out =
        (*ex)->RunOutputs(SegmentFeeds(s, live));
    EXPECT_TRUE(out.ok()) << out.status();
    CarryLiveValues(s, *out, &live);
  }
  return {live.at("y"), live.at("mask")};
}

TEST(GraphSegmentsTest, CutsBetweenBlocksAndComputesTheSameOutputs) {
  const Graph g = ResidualStack(3);
  std::vector<GraphSegment> segments = SplitAtNarrowestCuts(g, IsMatMul);
  // Four layers, one per segment: the narrowest points are the block
  // boundaries, where the stream and the mask (a graph output, so live to
  // the end) cross.
  ASSERT_EQ(segments.size(), 4u);
  for (size_t i = 0; i < segments.size(); ++i) {
    int layers = 0;
    for (const Node& n : segments[i].graph.nodes) layers += IsMatMul(n);
    EXPECT_EQ(layers, 1) << i;
  }
  // Block 1's segment reads the stream and the mask, and hands on the new
  // stream; the mask is carried past it.
  std::vector<std::string> inputs;
  for (const ValueInfo& v : segments[1].graph.inputs) inputs.push_back(v.name);
  EXPECT_EQ(inputs, (std::vector<std::string>{"b0r", "mask"}));
  ASSERT_EQ(segments[1].graph.outputs.size(), 1u);
  EXPECT_EQ(segments[1].graph.outputs[0].name, "b1r");
  EXPECT_EQ(segments[1].live_after, (std::vector<std::string>{"b1r", "mask"}));
  EXPECT_EQ(segments[1].graph.initializers.size(), 1u);  // wb1 only

  const TensorMap feeds = {{"x", RandomUniform({5, 8}, 1)}};
  absl::StatusOr<std::unique_ptr<Executor>> whole = Executor::Create(g);
  ASSERT_TRUE(whole.ok());
  absl::StatusOr<std::vector<Tensor>> expected = (*whole)->RunOutputs(feeds);
  ASSERT_TRUE(expected.ok());
  const std::vector<Tensor> got = RunSegments(segments, feeds);
  for (size_t o = 0; o < 2; ++o) {
    ASSERT_EQ(got[o].shape(), (*expected)[o].shape());
    for (int64_t i = 0; i < got[o].num_elements(); ++i) {
      EXPECT_EQ(got[o].data<float>()[i], (*expected)[o].data<float>()[i]);
    }
  }
}

TEST(GraphSegmentsTest, OneLayerOrNoNarrowPointIsTheWholeGraph) {
  const Graph g = ResidualStack(1);
  // Only the output layer counts: one layer, no cut.
  std::vector<GraphSegment> one = SplitAtNarrowestCuts(
      g, [](const Node& n) { return n.name == "out_layer"; });
  ASSERT_EQ(one.size(), 1u);
  EXPECT_EQ(one[0].graph.nodes.size(), g.nodes.size());
  EXPECT_EQ(one[0].graph.initializers.size(), g.initializers.size());
}

TEST(GraphSegmentsTest, NeverCutsInsideAStretchWithoutALayer) {
  // Only the first and last blocks' layers are marked: one cut, after the
  // first layer's block, and never two cuts with no layer between them.
  const Graph g = ResidualStack(4);
  std::vector<GraphSegment> segments =
      SplitAtNarrowestCuts(g, [](const Node& n) {
        return n.name == "b0_layer" || n.name == "out_layer";
      });
  ASSERT_EQ(segments.size(), 2u);
  const TensorMap feeds = {{"x", RandomUniform({2, 8}, 3)}};
  absl::StatusOr<std::unique_ptr<Executor>> whole = Executor::Create(g);
  ASSERT_TRUE(whole.ok());
  absl::StatusOr<std::vector<Tensor>> expected = (*whole)->RunOutputs(feeds);
  ASSERT_TRUE(expected.ok());
  const std::vector<Tensor> got = RunSegments(segments, feeds);
  EXPECT_EQ(got[0].ToVector<float>(), (*expected)[0].ToVector<float>());
}

}  // namespace
}  // namespace quantd
