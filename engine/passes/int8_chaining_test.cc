// LowerToInt8's chaining (int8_lowering.h): consecutive static int8 convs
// pass u8 between them, and the result equals the unchained lowering up to
// requantization ties.
#include <cmath>
#include <random>

#include "engine/passes/int8_lowering.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor Random(Shape shape, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = dist(rng);
  return t;
}

Node Conv(const std::string& name, const std::string& in, const std::string& w,
          const std::string& out) {
  Node n = MakeNode(name, "Conv", {in, w}, out);
  n.attributes.Set("pads", Ints({1, 1, 1, 1}));
  return n;
}

// x[N,4,8,8] -> c1 -> Relu -> a -> c2 -> Relu -> b -> c3 -> y
//                            a -> (with_side_reader) Sigmoid -> z
Graph Chain(bool with_side_reader) {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  g.inputs = {x};
  ValueInfo y;
  y.name = "y";
  g.outputs = {y};
  g.initializers["w1"] = Random({8, 4, 3, 3}, 1, -0.5f, 0.5f);
  g.initializers["w2"] = Random({8, 8, 3, 3}, 2, -0.3f, 0.3f);
  g.initializers["w3"] = Random({6, 8, 3, 3}, 3, -0.3f, 0.3f);
  g.nodes = {Conv("c1", "x", "w1", "c1v"), MakeNode("r1", "Relu", {"c1v"}, "a"),
             Conv("c2", "a", "w2", "c2v"), MakeNode("r2", "Relu", {"c2v"}, "b"),
             Conv("c3", "b", "w3", "y")};
  if (with_side_reader) {
    g.nodes.push_back(MakeNode("sig", "Sigmoid", {"a"}, "z"));
    ValueInfo z;
    z.name = "z";
    g.outputs.push_back(z);
  }
  return g;
}

struct Lowered {
  Graph graph;
  Int8LoweringStats stats;
};

Lowered Lower(const Graph& g, const TensorMap& feeds, bool chain) {
  ActivationRangeRecorder recorder(g);
  RunOptions options;
  options.tensor_hook = recorder.Hook();
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  EXPECT_TRUE((*ex)->Run(feeds, options).ok());
  Lowered l{g, {}};
  Int8LoweringOptions lowering;
  lowering.chain_quantized_outputs = chain;
  EXPECT_TRUE(LowerToInt8(l.graph, recorder.ranges(), lowering, &l.stats).ok());
  return l;
}

const Node* Find(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

TEST(Int8ChainingTest, ConsecutiveConvsPassU8AndMatchTheUnchainedGraph) {
  const Graph g = Chain(false);
  TensorMap feeds = {{"x", Random({3, 4, 8, 8}, 9, -1.f, 1.f)}};
  Lowered chained = Lower(g, feeds, true);
  Lowered plain = Lower(g, feeds, false);
  EXPECT_EQ(chained.stats.outputs_chained, 2);
  EXPECT_EQ(plain.stats.outputs_chained, 0);
  ASSERT_NE(Find(chained.graph, "c1"), nullptr);
  EXPECT_TRUE(Find(chained.graph, "c1")->attributes.Has("y_scale"));
  EXPECT_TRUE(Find(chained.graph, "c2")->attributes.Has("y_scale"));
  EXPECT_FALSE(Find(chained.graph, "c3")->attributes.Has("y_scale"));

  RunOptions keep;
  keep.extra_outputs = {"a"};
  absl::StatusOr<std::unique_ptr<Executor>> a = Executor::Create(chained.graph);
  absl::StatusOr<std::unique_ptr<Executor>> b = Executor::Create(plain.graph);
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  absl::StatusOr<RunResult> got = (*a)->Run(feeds, keep);
  absl::StatusOr<RunResult> want = (*b)->Run(feeds);
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ(got->values.at("a").dtype(), DataType::kUInt8);
  const Tensor& y = got->outputs[0];
  const Tensor& y_ref = want->outputs[0];
  ASSERT_EQ(y.dtype(), DataType::kFloat32);
  ASSERT_EQ(y.shape(), y_ref.shape());
  double max_diff = 0, max_ref = 0;
  for (int64_t i = 0; i < y.num_elements(); ++i) {
    max_diff = std::max<double>(
        max_diff, std::fabs(y.data<float>()[i] - y_ref.data<float>()[i]));
    max_ref = std::max<double>(max_ref, std::fabs(y_ref.data<float>()[i]));
  }
  // Requantizing in the conv (oneDNN adds the zero point before rounding)
  // and quantizing afterwards differ only on exact .5 ties.
  EXPECT_LE(max_diff, 0.01 * max_ref) << "max |y| " << max_ref;
}

// A float op reading a u8 value reads it through one DequantizeLinear, as
// the QDQ graph's readers read the DequantizeLinear output: z is exactly
// sigmoid of the dequantized u8 values.
TEST(Int8ChainingTest, AFloatReaderGetsTheDequantizedValue) {
  const Graph g = Chain(true);
  TensorMap feeds = {{"x", Random({2, 4, 8, 8}, 10, -1.f, 1.f)}};
  Lowered l = Lower(g, feeds, true);
  EXPECT_EQ(l.stats.outputs_chained, 2);
  EXPECT_EQ(l.stats.dequantized, 1);
  EXPECT_TRUE(Find(l.graph, "c1")->attributes.Has("y_scale"));
  const Node* sig = Find(l.graph, "sig");
  ASSERT_NE(sig, nullptr);
  EXPECT_NE(sig->input(0), "a");
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(l.graph);
  ASSERT_TRUE(ex.ok()) << ex.status();
  RunOptions keep;
  keep.extra_outputs = {"a"};
  absl::StatusOr<RunResult> out = (*ex)->Run(feeds, keep);
  ASSERT_TRUE(out.ok()) << out.status();
  const Tensor& a = out->values.at("a");
  ASSERT_EQ(a.dtype(), DataType::kUInt8);
  const Tensor& z = out->outputs[1];
  ASSERT_EQ(z.dtype(), DataType::kFloat32);
  const Node* c1 = Find(l.graph, "c1");
  const float scale = c1->attributes.GetFloat("y_scale", 0.f);
  const int64_t zp = c1->attributes.GetInt("y_zero_point", -1);
  for (int64_t i = 0; i < z.num_elements(); i += 7) {
    const float dq = static_cast<float>(a.data<uint8_t>()[i] - zp) * scale;
    EXPECT_FLOAT_EQ(z.data<float>()[i], 1.f / (1.f + std::exp(-dq))) << i;
  }
}

}  // namespace
}  // namespace quantd
