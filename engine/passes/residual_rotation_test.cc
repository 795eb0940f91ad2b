#include "engine/passes/residual_rotation.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/layer_norm_folding.h"
#include "engine/runtime/executor.h"
#include "engine/testing/rotation_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(ResidualRotationTest, TinyGptKeepsItsFunctionAndAddsNoRotationOp) {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(
      absl::StrCat(QUANTD_TESTDATA_DIR, "/tiny_gpt/model.onnx"));
  ASSERT_TRUE(m.ok()) << m.status();
  const Graph before = m->graph;
  Graph g = m->graph;
  absl::StatusOr<RotationOutcome> r = RotateResidualStreams(g, 1);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->skipped.empty()) << absl::StrJoin(r->skipped, "\n");
  ASSERT_EQ(r->notes.size(), 1u);
  EXPECT_NE(r->notes[0].find("d=128"), std::string::npos) << r->notes[0];
  // Tok and pos embeddings, 2 x (proj, fc_out) writers and their biases,
  // 2 x (q, k, v, fc) readers and the LM head.
  EXPECT_GE(r->changed_nodes.size(), 2u + 4u + 4u + 8u + 1u);
  // Only the LM head's bias (ln_f's bias folded into a layer without one)
  // is a new node; nothing multiplies by Q at run time.
  EXPECT_LE(g.nodes.size(), before.nodes.size() + 1);
  bool head_noted = false;
  for (const auto& [node, note] : r->changed_nodes) {
    head_noted |=
        node == "/lm_head/MatMul" && note.find("Q^T W") != std::string::npos;
  }
  EXPECT_TRUE(head_noted);
  auto count = [](const Graph& graph, const char* op) {
    return std::count_if(graph.nodes.begin(), graph.nodes.end(),
                         [&](const Node& n) { return n.op_type == op; });
  };
  EXPECT_EQ(count(g, "MatMul"), count(before, "MatMul"));
  const TensorMap feeds = {{"input_ids", TinyGptTokens(2, 64)}};
  const std::vector<float> want = RunGraph(before, feeds);
  const std::vector<float> got = RunGraph(g, feeds);
  ASSERT_EQ(want.size(), got.size());
  EXPECT_LT(RelativeError(want, got), 1e-4);
  for (const Node& n : g.nodes) {
    if (n.op_type != "LayerNormalization") continue;
    EXPECT_EQ(n.inputs.size(), 2u) << n.name << " keeps a bias";
    for (float v : g.FindInitializer(n.input(1))->span<float>()) {
      ASSERT_EQ(v, 1.f) << n.name;
    }
  }
}

// x = E[ids] (E with outlier channels 3 and 9) -> h = x + LN(x) W1 + b1 ->
// y = LN(h) W2: a two-layer residual stream with LayerNorm gains and biases.
Graph OutlierStreamGraph() {
  const int64_t d = 16;
  Graph g;
  g.opset = 17;
  ValueInfo ids{"ids", DataType::kInt64, true, {2, 5}, {}};
  g.inputs = {ids};
  g.outputs = {ValueInfo{"y", DataType::kFloat32, true, {2, 5, 8}, {}}};
  Tensor e = RandomUniform({32, d}, 1);
  for (int64_t r = 0; r < 32; ++r) {
    e.mutable_data<float>()[r * d + 3] *= 50.f;
    e.mutable_data<float>()[r * d + 9] *= 30.f;
  }
  g.initializers["E"] = e;
  g.initializers["W1"] = RandomUniform({d, d}, 2);
  g.initializers["b1"] = RandomUniform({d}, 3);
  g.initializers["W2"] = RandomUniform({d, 8}, 4);
  g.initializers["g1"] = RandomUniform({d}, 5, 0.5f, 2.f);
  g.initializers["c1"] = RandomUniform({d}, 6);
  g.initializers["g2"] = RandomUniform({d}, 7, 0.5f, 2.f);
  g.initializers["c2"] = RandomUniform({d}, 8);
  g.nodes.push_back(MakeNode("emb", "Gather", {"E", "ids"}, "x"));
  g.nodes.push_back(
      MakeNode("ln1", "LayerNormalization", {"x", "g1", "c1"}, "n1"));
  g.nodes.push_back(MakeNode("fc1", "MatMul", {"n1", "W1"}, "m1"));
  g.nodes.push_back(MakeNode("bias1", "Add", {"m1", "b1"}, "a1"));
  g.nodes.push_back(MakeNode("residual", "Add", {"x", "a1"}, "h"));
  g.nodes.push_back(
      MakeNode("ln2", "LayerNormalization", {"h", "g2", "c2"}, "n2"));
  g.nodes.push_back(MakeNode("head", "MatMul", {"n2", "W2"}, "y"));
  return g;
}

TEST(ResidualRotationTest, SpreadsOutlierChannelsWithTheSameFunction) {
  const Graph before = OutlierStreamGraph();
  Graph g = before;
  absl::StatusOr<RotationOutcome> r = RotateResidualStreams(g, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->skipped.empty()) << absl::StrJoin(r->skipped, "\n");
  Tensor ids(DataType::kInt64, {2, 5});
  for (int64_t i = 0; i < 10; ++i) ids.mutable_data<int64_t>()[i] = i * 3;
  const TensorMap feeds = {{"ids", ids}};
  EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)), 1e-5);
  // The stream itself, as the quantized layers downstream would see it.
  const double spread_before = ChannelSpread(RunGraph(before, feeds, "h"), 16);
  const double spread_after = ChannelSpread(RunGraph(g, feeds, "h"), 16);
  EXPECT_GT(spread_before, 5.0);
  EXPECT_LT(spread_after, 3.0) << "was " << spread_before;
  EXPECT_LT(spread_after, 0.4 * spread_before);
}

TEST(ResidualRotationTest, StreamThatIsAGraphOutputIsLeftAloneWithReason) {
  Graph g = OutlierStreamGraph();
  g.outputs.push_back(ValueInfo{"h", DataType::kFloat32, false, {}, {}});
  const Tensor e = *g.FindInitializer("E");
  absl::StatusOr<RotationOutcome> r = RotateResidualStreams(g, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->notes.empty());
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_NE(r->skipped[0].find("'h' is a graph output"), std::string::npos)
      << r->skipped[0];
  EXPECT_EQ(g.FindInitializer("E")->ToVector<float>(), e.ToVector<float>());
}

TEST(ResidualRotationTest, UnfoldableLayerNormBlocksItsStream) {
  Graph g = OutlierStreamGraph();
  // ln2's output now also goes through a Relu: its gain cannot move into
  // a weight, so the stream into it cannot be rotated either.
  g.nodes.back() = MakeNode("act", "Relu", {"n2"}, "r2");
  g.nodes.push_back(MakeNode("head", "MatMul", {"r2", "W2"}, "y"));
  const Graph before = g;
  absl::StatusOr<RotationOutcome> r = RotateResidualStreams(g, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  const std::string all = absl::StrJoin(r->skipped, "\n");
  EXPECT_NE(all.find("'act' (Relu) reads its output"), std::string::npos)
      << all;
  EXPECT_NE(all.find("LayerNorm 'ln2' reads it and could not be folded"),
            std::string::npos)
      << all;
  Tensor ids(DataType::kInt64, {2, 5});
  for (int64_t i = 0; i < 10; ++i) ids.mutable_data<int64_t>()[i] = i;
  const TensorMap feeds = {{"ids", ids}};
  EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)), 1e-5);
}

TEST(ResidualRotationTest, PostLayerNormBlockIsNamedAsSuch) {
  Graph g = OutlierStreamGraph();
  // h = LN(x) + fc1(LN(x)): the LayerNorm's output is the stream (BERT).
  for (Node& n : g.nodes) {
    if (n.name == "residual") n.inputs = {"n1", "a1"};
  }
  absl::StatusOr<RotationOutcome> r = RotateResidualStreams(g, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_TRUE(r->notes.empty());
  const std::string all = absl::StrJoin(r->skipped, "\n");
  EXPECT_NE(all.find("'residual' (Add) reads its output: a post-LayerNorm"),
            std::string::npos)
      << all;
}

TEST(ResidualRotationTest, GraphWithoutLayerNormSaysSo) {
  Graph g = OutlierStreamGraph();
  for (Node& n : g.nodes) {
    if (n.op_type == "LayerNormalization") {
      n = MakeNode(n.name, "Relu", {n.input(0)}, n.outputs[0]);
    }
  }
  absl::StatusOr<RotationOutcome> r = RotateResidualStreams(g, 3);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_EQ(r->skipped.size(), 1u);
  EXPECT_NE(r->skipped[0].find("no LayerNormalization node"),
            std::string::npos);
}

TEST(LayerNormFoldingTest, InsertsABiasWhereTheLayerHasNone) {
  Graph g = OutlierStreamGraph();
  const Graph before = g;
  absl::StatusOr<LayerNormFoldOutcome> r = FoldLayerNormAffine(g);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->folded, (std::vector<std::string>{"ln1", "ln2"}));
  EXPECT_EQ(r->layers, (std::vector<std::string>{"fc1", "head"}));
  EXPECT_EQ(g.nodes.size(), before.nodes.size() + 1);  // head's bias
  Tensor ids(DataType::kInt64, {2, 5});
  for (int64_t i = 0; i < 10; ++i) ids.mutable_data<int64_t>()[i] = 31 - i;
  const TensorMap feeds = {{"ids", ids}};
  EXPECT_LT(RelativeError(RunGraph(before, feeds), RunGraph(g, feeds)), 1e-5);
}

TEST(LayerNormFoldingTest, SharedWeightIsCopiedForTheFoldedLayerOnly) {
  Graph g = OutlierStreamGraph();
  // 'side' reads head's weight W2 from the stream itself, without a
  // LayerNorm: folding ln2's gain into W2 must not reach it.
  g.nodes.push_back(MakeNode("side", "MatMul", {"x", "W2"}, "z"));
  g.outputs.push_back(ValueInfo{"z", DataType::kFloat32, true, {2, 5, 8}, {}});
  const Graph before = g;
  absl::StatusOr<LayerNormFoldOutcome> r = FoldLayerNormAffine(g);
  ASSERT_TRUE(r.ok()) << r.status();
  for (const Node& n : g.nodes) {
    if (n.name == "side") {
      EXPECT_EQ(n.input(1), "W2");
    } else if (n.name == "head") {
      EXPECT_NE(n.input(1), "W2");
    }
  }
  EXPECT_EQ(g.FindInitializer("W2")->ToVector<float>(),
            before.FindInitializer("W2")->ToVector<float>());
  Tensor ids(DataType::kInt64, {2, 5});
  for (int64_t i = 0; i < 10; ++i) ids.mutable_data<int64_t>()[i] = i + 7;
  const TensorMap feeds = {{"ids", ids}};
  auto outputs = [&](const Graph& graph) {
    return *(*Executor::Create(graph))->RunOutputs(feeds);
  };
  const std::vector<Tensor> want = outputs(before), got = outputs(g);
  ASSERT_EQ(got.size(), 2u);
  for (int o = 0; o < 2; ++o) {
    EXPECT_LT(
        RelativeError(want[o].ToVector<float>(), got[o].ToVector<float>()),
        1e-5)
        << "output " << o;
  }
}

}  // namespace
}  // namespace quantd
