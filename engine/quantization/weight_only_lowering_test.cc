#include "engine/quantization/weight_only_lowering.h"

#include <cmath>
#include <random>

#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor Random(Shape shape, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = dist(rng);
  return t;
}

ValueInfo Info(const std::string& name, Shape shape) {
  ValueInfo v;
  v.name = name;
  v.dtype = DataType::kFloat32;
  v.has_shape = true;
  v.shape = std::move(shape);
  v.dim_names.assign(v.shape.size(), "");
  return v;
}

// x3[N,5,40] -> MatMul(mw [40,7])             -> y1   node "matmul"
// x2[N,40]   -> Gemm(gw [7,40] transB, gb [7]) -> y2   node "gemm"
// x2         -> MatMul(mw2 [40,20])            -> y3   node "matmul2"
// x[N,3,6,6] -> Conv(cw [4,3,3,3])             -> y4   node "conv"
Graph TestGraph() {
  Graph g;
  g.name = "weight_only";
  g.opset = 17;
  g.inputs = {Info("x3", {-1, 5, 40}), Info("x2", {-1, 40}),
              Info("x", {-1, 3, 6, 6})};
  g.initializers["mw"] = Random({40, 7}, 1);
  g.initializers["gw"] = Random({7, 40}, 2);
  g.initializers["gb"] = Random({7}, 3);
  g.initializers["mw2"] = Random({40, 20}, 4);
  g.initializers["cw"] = Random({4, 3, 3, 3}, 5);
  Node gemm = MakeNode("gemm", "Gemm", {"x2", "gw", "gb"}, "y2");
  gemm.attributes.Set("transB", Int(1));
  Node conv = MakeNode("conv", "Conv", {"x", "cw"}, "y4");
  conv.attributes.Set("kernel_shape", Ints({3, 3}));
  g.nodes = {MakeNode("matmul", "MatMul", {"x3", "mw"}, "y1"), gemm,
             MakeNode("matmul2", "MatMul", {"x2", "mw2"}, "y3"), conv};
  g.outputs = {Info("y1", {-1, 5, 7}), Info("y2", {-1, 7}),
               Info("y3", {-1, 20}), Info("y4", {-1, 4, 4, 4})};
  return g;
}

QuantParams Params(const Graph& g, const std::string& node,
                   const WeightScheme& scheme) {
  absl::StatusOr<std::vector<WeightSlot>> slots = FindQuantizableWeights(g, {});
  EXPECT_TRUE(slots.ok());
  for (const WeightSlot& s : *slots) {
    if (s.node != node) continue;
    absl::StatusOr<QuantParams> p =
        ComputeWeightParams(*g.FindInitializer(s.initializer), s, scheme);
    EXPECT_TRUE(p.ok()) << p.status();
    return *p;
  }
  ADD_FAILURE() << "no slot for " << node;
  return {};
}

std::map<std::string, QuantParams> Plan(const Graph& g) {
  std::map<std::string, QuantParams> plan;
  // int4 groups of 16 along K (40 = 16 + 16 + 8: a partial group).
  plan["mw"] = Params(g, "matmul",
                      {.type = QuantType::kInt4,
                       .granularity = WeightGranularity::kPerGroup,
                       .group_size = 16,
                       .allow_partial_groups = true});
  // Asymmetric int4 groups along K of a transB Gemm with a bias.
  plan["gw"] = Params(g, "gemm",
                      {.type = QuantType::kInt4,
                       .symmetric = false,
                       .granularity = WeightGranularity::kPerGroup,
                       .group_size = 8});
  // int8 per output column.
  plan["mw2"] = Params(g, "matmul2",
                       {.type = QuantType::kInt8,
                        .granularity = WeightGranularity::kPerChannel,
                        .int8_max_magnitude = 127});
  plan["cw"] =
      Params(g, "conv", {.type = QuantType::kInt8, .int8_max_magnitude = 127});
  return plan;
}

// The float graph computing with fake-quantized weights: what the exported
// QDQ model computes.
Graph FakeQuantGraph(Graph g, const std::map<std::string, QuantParams>& plan) {
  for (const auto& [name, p] : plan) {
    absl::StatusOr<Tensor> fq = FakeQuantizeWeights(g.initializers[name], p);
    EXPECT_TRUE(fq.ok());
    g.initializers[name] = *fq;
  }
  return g;
}

std::vector<Tensor> RunGraph(const Graph& g, const TensorMap& feeds) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  absl::StatusOr<std::vector<Tensor>> out = (*ex)->RunOutputs(feeds);
  EXPECT_TRUE(out.ok()) << out.status();
  return *out;
}

TEST(WeightOnlyLoweringTest, ComputesWhatTheFakeQuantGraphComputes) {
  const Graph g = TestGraph();
  const auto plan = Plan(g);
  Graph lowered = g;
  WeightOnlyLoweringStats stats;
  ASSERT_TRUE(LowerWeightOnly(lowered, plan, {}, &stats).ok());
  EXPECT_EQ(stats.matmuls, 3);
  EXPECT_EQ(stats.fake_quantized, 1);  // the Conv
  int kernels = 0;
  for (const Node& n : lowered.nodes) {
    kernels += n.op_type == "WeightOnlyMatMul" && n.domain == "quantd";
  }
  EXPECT_EQ(kernels, 3);
  for (const char* gone : {"mw", "gw", "mw2"}) {
    EXPECT_EQ(lowered.FindInitializer(gone), nullptr) << gone;
  }
  EXPECT_LT(stats.lowered_weight_bytes, stats.float_weight_bytes);
  EXPECT_EQ(stats.lowered_weight_bytes, InitializerBytes(lowered));

  const TensorMap feeds = {{"x3", Random({3, 5, 40}, 10)},
                           {"x2", Random({3, 40}, 11)},
                           {"x", Random({3, 3, 6, 6}, 12)}};
  const std::vector<Tensor> want = RunGraph(FakeQuantGraph(g, plan), feeds);
  const std::vector<Tensor> got = RunGraph(lowered, feeds);
  ASSERT_EQ(got.size(), want.size());
  for (size_t o = 0; o < got.size(); ++o) {
    ASSERT_EQ(got[o].shape(), want[o].shape()) << o;
    for (int64_t i = 0; i < got[o].num_elements(); ++i) {
      EXPECT_NEAR(got[o].data<float>()[i], want[o].data<float>()[i], 1e-4)
          << "output " << o << " at " << i;
    }
  }
}

// Codes an algorithm chose (GPTQ's, here round-to-nearest's moved one step
// towards zero where they can) are what the kernel and the fake-quantized
// fallback compute with, not a rounding of the graph's floats.
TEST(WeightOnlyLoweringTest, UsesThePlansCodes) {
  const Graph g = TestGraph();
  const auto plan = Plan(g);
  std::map<std::string, WeightCodes> codes;
  Graph want_graph = g;
  for (const char* name : {"mw", "cw"}) {
    const QuantParams& p = plan.at(name);
    absl::StatusOr<WeightCodes> rtn =
        QuantizeWeightCodes(*g.FindInitializer(name), p);
    ASSERT_TRUE(rtn.ok()) << rtn.status();
    Tensor v = rtn->Values();
    for (int8_t& q : v.mutable_span<int8_t>()) q -= (q > 0) - (q < 0);
    absl::StatusOr<WeightCodes> c = WeightCodes::FromValues(v, rtn->bits());
    ASSERT_TRUE(c.ok()) << c.status();
    absl::StatusOr<Tensor> floats = DequantizeWeightCodes(*c, p);
    ASSERT_TRUE(floats.ok()) << floats.status();
    want_graph.initializers[name] = *floats;
    codes[name] = *c;
  }
  Graph lowered = g;
  ASSERT_TRUE(LowerWeightOnly(lowered, plan, {}, nullptr, &codes).ok());
  const TensorMap feeds = {{"x3", Random({3, 5, 40}, 10)},
                           {"x2", Random({3, 40}, 11)},
                           {"x", Random({3, 3, 6, 6}, 12)}};
  const std::vector<Tensor> want =
      RunGraph(FakeQuantGraph(want_graph, plan), feeds);
  const std::vector<Tensor> got = RunGraph(lowered, feeds);
  ASSERT_EQ(got.size(), want.size());
  for (int o : {0, 3}) {  // matmul (kernel) and conv (fake-quantized)
    for (int64_t i = 0; i < got[o].num_elements(); ++i) {
      ASSERT_NEAR(got[o].data<float>()[i], want[o].data<float>()[i], 1e-4)
          << "output " << o << " at " << i;
    }
  }
}

TEST(WeightOnlyLoweringTest, GroupsAlongTheOutputAxisStayFakeQuantized) {
  Graph g = TestGraph();
  // Per channel along K (axis 0 of a MatMul weight): one scale per input
  // row, which the kernel (scales per column and group of rows) cannot hold.
  QuantParams p = Params(g, "matmul2",
                         {.type = QuantType::kInt8, .int8_max_magnitude = 127});
  p.axis = 0;
  p.scales.assign(40, 0.01f);
  std::map<std::string, QuantParams> plan = {{"mw2", p}};
  Graph lowered = g;
  WeightOnlyLoweringStats stats;
  ASSERT_TRUE(LowerWeightOnly(lowered, plan, {}, &stats).ok());
  EXPECT_EQ(stats.matmuls, 0);
  EXPECT_EQ(stats.fake_quantized, 1);
  absl::StatusOr<Tensor> fq = FakeQuantizeWeights(g.initializers["mw2"], p);
  ASSERT_TRUE(fq.ok());
  for (const Node& n : lowered.nodes) {
    if (n.name != "matmul2") continue;
    EXPECT_EQ(lowered.FindInitializer(n.input(1))->ToVector<float>(),
              fq->ToVector<float>());
  }
  EXPECT_EQ(lowered.FindInitializer("mw2"), nullptr);  // nothing reads it
}

// A weight shared by a quantized node and a node the plan keeps float (an
// accuracy-fallback step): only the quantized one is lowered; the float one
// keeps reading the original values, as in the QDQ export.
TEST(WeightOnlyLoweringTest, AFloatNodeSharingTheWeightKeepsItsFloatValues) {
  Graph g = TestGraph();
  g.nodes.push_back(MakeNode("matmul3", "MatMul", {"x2", "mw2"}, "y5"));
  g.outputs.push_back(Info("y5", {-1, 20}));
  const auto plan = Plan(g);
  Graph lowered = g;
  WeightOnlyLoweringStats stats;
  ASSERT_TRUE(LowerWeightOnly(lowered, plan, {"matmul3"}, &stats).ok());
  EXPECT_EQ(stats.matmuls, 3);
  for (const Node& n : lowered.nodes) {
    if (n.name == "matmul3") {
      EXPECT_EQ(n.op_type, "MatMul");
      EXPECT_EQ(n.input(1), "mw2");
    }
  }
  ASSERT_NE(lowered.FindInitializer("mw2"), nullptr);
  EXPECT_EQ(lowered.FindInitializer("mw2")->ToVector<float>(),
            g.initializers["mw2"].ToVector<float>());
}

// ONNX Gemm also takes C of shape [1]; the kernel's bias is one per column,
// so such a Gemm stays on the float path instead of failing at run time.
TEST(WeightOnlyLoweringTest, AGemmWithAScalarBiasIsNotLowered) {
  Graph g = TestGraph();
  g.initializers["gb"] = Random({1}, 3);
  std::map<std::string, QuantParams> plan = {
      {"gw", Params(g, "gemm",
                    {.type = QuantType::kInt8, .int8_max_magnitude = 127})}};
  WeightOnlyLoweringStats stats;
  ASSERT_TRUE(LowerWeightOnly(g, plan, {}, &stats).ok());
  EXPECT_EQ(stats.matmuls, 0);
  EXPECT_EQ(stats.fake_quantized, 1);
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  ASSERT_TRUE(ex.ok());
  EXPECT_TRUE((*ex)
                  ->RunOutputs({{"x3", Random({1, 5, 40}, 1)},
                                {"x2", Random({1, 40}, 2)},
                                {"x", Random({1, 3, 6, 6}, 3)}})
                  .ok());
}

TEST(WeightOnlyLoweringTest, ABiasFromAnotherNodeKeepsTheGemmFloat) {
  Graph g = TestGraph();
  // C computed at run time (not an initializer): the kernel takes only a
  // constant 1-D bias, so the Gemm keeps fake-quantized f32 weights.
  g.nodes.insert(g.nodes.begin(), MakeNode("neg", "Neg", {"gb"}, "gb_neg"));
  g.nodes[2].inputs[2] = "gb_neg";
  std::map<std::string, QuantParams> plan = {
      {"gw", Params(g, "gemm",
                    {.type = QuantType::kInt8, .int8_max_magnitude = 127})}};
  WeightOnlyLoweringStats stats;
  ASSERT_TRUE(LowerWeightOnly(g, plan, {}, &stats).ok());
  EXPECT_EQ(stats.matmuls, 0);
  EXPECT_EQ(stats.fake_quantized, 1);
}

TEST(WeightOnlyLoweringTest, InconsistentPackedTensorsAreAnErrorNotACrash) {
  Graph g = TestGraph();
  const auto plan = Plan(g);
  ASSERT_TRUE(LowerWeightOnly(g, plan).ok());
  for (Node& n : g.nodes) {
    if (n.name == "matmul") n.attributes.Set("n", Int(70));  // not 7
  }
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  ASSERT_TRUE(ex.ok());
  absl::StatusOr<std::vector<Tensor>> out =
      (*ex)->RunOutputs({{"x3", Random({1, 5, 40}, 1)},
                         {"x2", Random({1, 40}, 2)},
                         {"x", Random({1, 3, 6, 6}, 3)}});
  ASSERT_FALSE(out.ok());
  EXPECT_NE(out.status().message().find("packed blocks"), std::string::npos)
      << out.status();
}

}  // namespace
}  // namespace quantd
