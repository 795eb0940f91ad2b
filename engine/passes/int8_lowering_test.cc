// LowerToInt8 with dynamic activations: no ranges needed, every eligible
// node gets dynamic_x = 1, and the int8 graph computes what the float graph
// computes (within quantization error) and what the QDQ fake-quant graph
// with DynamicQuantizeLinear computes (within float rounding: both quantize
// activations with the same parameters and rounding).
#include "engine/passes/int8_lowering.h"

#include <cmath>
#include <cstdio>
#include <random>

#include "engine/export/qdq_export.h"
#include "engine/testing/qdq_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"
#include "kernels/post_ops.h"

namespace quantd {
namespace {

using qdq_test::MaxAbsDiff;

Tensor Random(Shape shape, uint32_t seed, float lo, float hi) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
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

// x[N,3,6,6] -> Conv(cw[4,3,3,3], cb[4], pads 1) -> Relu -> r
//   chained: r -> Flatten -> Gemm(gw[10,144] transB, gb[10]) -> y
//   else:    r is a graph output
// x3[N,5,16] -> MatMul(mw[16,7]) -> y2
// x2[N,16] -> Gemm(g2w[7,16] transB, g2b[7]) -> y3
// x, x2 and x3 straddle zero, so their zero points are not 0 and the Conv's
// padding matters; the first Gemm's input (after Relu) has zero point 0.
Graph TestGraph(bool chained) {
  Graph g;
  g.name = "dynamic_int8";
  g.opset = 17;
  g.inputs = {Info("x", {-1, 3, 6, 6}), Info("x3", {-1, 5, 16}),
              Info("x2", {-1, 16})};
  g.initializers["cw"] = Random({4, 3, 3, 3}, 1, -1.f, 1.f);
  g.initializers["cb"] = Random({4}, 2, -1.f, 1.f);
  g.initializers["gw"] = Random({10, 144}, 3, -0.2f, 0.2f);
  g.initializers["gb"] = Random({10}, 4, -1.f, 1.f);
  g.initializers["mw"] = Random({16, 7}, 5, -1.f, 1.f);
  g.initializers["g2w"] = Random({7, 16}, 6, -1.f, 1.f);
  g.initializers["g2b"] = Random({7}, 7, -1.f, 1.f);
  Node conv = MakeNode("conv", "Conv", {"x", "cw", "cb"}, "c");
  conv.attributes.Set("pads", Ints({1, 1, 1, 1}));
  conv.attributes.Set("kernel_shape", Ints({3, 3}));
  g.nodes = {conv, MakeNode("relu", "Relu", {"c"}, "r")};
  if (chained) {
    g.nodes.push_back(MakeNode("flatten", "Flatten", {"r"}, "f"));
    Node gemm = MakeNode("gemm", "Gemm", {"f", "gw", "gb"}, "y");
    gemm.attributes.Set("transB", Int(1));
    g.nodes.push_back(gemm);
    g.outputs = {Info("y", {-1, 10})};
  } else {
    g.outputs = {Info("r", {-1, 4, 6, 6})};
  }
  g.nodes.push_back(MakeNode("matmul", "MatMul", {"x3", "mw"}, "y2"));
  g.outputs.push_back(Info("y2", {-1, 5, 7}));
  Node gemm2 = MakeNode("gemm2", "Gemm", {"x2", "g2w", "g2b"}, "y3");
  gemm2.attributes.Set("transB", Int(1));
  g.nodes.push_back(gemm2);
  g.outputs.push_back(Info("y3", {-1, 7}));
  return g;
}

TensorMap Feeds(int64_t n, uint32_t seed) {
  return {{"x", Random({n, 3, 6, 6}, seed, -1.f, 1.f)},
          {"x3", Random({n, 5, 16}, seed + 1, -0.5f, 1.5f)},
          {"x2", Random({n, 16}, seed + 2, -1.f, 0.3f)}};
}

absl::StatusOr<std::vector<Tensor>> RunGraph(const Graph& g,
                                             const TensorMap& feeds) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  if (!ex.ok()) return ex.status();
  return (*ex)->RunOutputs(feeds);
}

float MaxAbs(const Tensor& t) {
  float m = 0;
  for (float v : t.ToVector<float>()) m = std::max(m, std::fabs(v));
  return m;
}

// The QDQ graph of the same quantization: dynamic u8 activations on every
// int8 input, 7-bit (or 8-bit with VNNI) per-channel weights as the
// lowering chooses them.
absl::StatusOr<QdqGraph> DynamicQdq(const Graph& g) {
  const int32_t qmax = MaxExactInt8WeightMagnitude();
  QuantizationPlan plan;
  for (const Node& n : g.nodes) {
    if (!IsInt8Quantizable(g, n)) continue;
    plan.dynamic_activations.insert(n.input(0));
    const bool rows =
        n.op_type == "Conv" ||
        (n.op_type == "Gemm" && n.attributes.GetInt("transB", 0) != 0);
    plan.weights[n.input(1)] = qdq_test::S8PerChannel(
        *g.FindInitializer(n.input(1)), rows ? 0 : 1, qmax);
  }
  return BuildQdqGraph(g, plan);
}

TEST(Int8LoweringTest, DynamicActivationsNeedNoRanges) {
  Graph g = TestGraph(/*chained=*/true);
  Int8LoweringOptions options;
  options.dynamic_activations = true;
  Int8LoweringStats stats;
  ASSERT_TRUE(LowerToInt8(g, /*ranges=*/{}, options, &stats).ok());
  EXPECT_EQ(stats.convs, 1);
  EXPECT_EQ(stats.matmuls, 3);
  EXPECT_EQ(stats.relus_fused, 1);
  EXPECT_EQ(stats.skipped_without_range, 0);
  int lowered = 0;
  for (const Node& n : g.nodes) {
    if (n.domain != kQuantdDomain) continue;
    ++lowered;
    EXPECT_EQ(n.attributes.GetInt("dynamic_x", 0), 1) << n.name;
    EXPECT_FALSE(n.attributes.Has("x_scale")) << n.name;
    EXPECT_FALSE(n.attributes.Has("x_zero_point")) << n.name;
  }
  EXPECT_EQ(lowered, 4);
}

TEST(Int8LoweringTest, DynamicRespectsExcludedNodes) {
  Graph g = TestGraph(/*chained=*/true);
  Int8LoweringOptions options;
  options.dynamic_activations = true;
  options.excluded_nodes = {"gemm"};
  Int8LoweringStats stats;
  ASSERT_TRUE(LowerToInt8(g, {}, options, &stats).ok());
  EXPECT_EQ(stats.convs, 1);
  EXPECT_EQ(stats.matmuls, 2);
  for (const Node& n : g.nodes) {
    if (n.name == "gemm") {
      EXPECT_EQ(n.op_type, "Gemm");
    }
  }
}

// Over batches of different sizes and ranges (the parameters are per run,
// the kernels per shape), and an all-zero batch (scale 1, zero point 0:
// the outputs are exactly the biases).
TEST(Int8LoweringTest, DynamicInt8MatchesFloatAndDynamicFakeQuant) {
  const Graph float_graph = TestGraph(/*chained=*/true);
  Graph int8_graph = float_graph;
  Int8LoweringOptions options;
  options.dynamic_activations = true;
  ASSERT_TRUE(LowerToInt8(int8_graph, {}, options).ok());
  absl::StatusOr<QdqGraph> qdq = DynamicQdq(float_graph);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  absl::StatusOr<std::unique_ptr<Executor>> int8_ex =
      Executor::Create(int8_graph);
  ASSERT_TRUE(int8_ex.ok()) << int8_ex.status();
  absl::StatusOr<std::unique_ptr<Executor>> fq_ex =
      Executor::Create(qdq->graph);
  ASSERT_TRUE(fq_ex.ok()) << fq_ex.status();
  absl::StatusOr<std::unique_ptr<Executor>> float_ex =
      Executor::Create(float_graph);
  ASSERT_TRUE(float_ex.ok()) << float_ex.status();

  struct Batch {
    int64_t n;
    float x_scale;  // multiplies the random inputs: a different range
  };
  for (const Batch& b : {Batch{2, 1.f}, Batch{1, 3.f}, Batch{5, 0.2f}}) {
    SCOPED_TRACE(absl::StrCat("batch ", b.n, " x", b.x_scale));
    TensorMap feeds = Feeds(b.n, 20 + b.n);
    for (auto& [name, t] : feeds) {
      for (float& v : t.mutable_span<float>()) v *= b.x_scale;
    }
    absl::StatusOr<std::vector<Tensor>> i8 = (*int8_ex)->RunOutputs(feeds);
    ASSERT_TRUE(i8.ok()) << i8.status();
    absl::StatusOr<std::vector<Tensor>> fq = (*fq_ex)->RunOutputs(feeds);
    ASSERT_TRUE(fq.ok()) << fq.status();
    absl::StatusOr<std::vector<Tensor>> fl = (*float_ex)->RunOutputs(feeds);
    ASSERT_TRUE(fl.ok()) << fl.status();
    for (size_t o = 0; o < 3; ++o) {
      const float scale = MaxAbs((*fl)[o]);
      const float d_fq = MaxAbsDiff((*i8)[o], (*fq)[o]);
      const float d_fl = MaxAbsDiff((*i8)[o], (*fl)[o]);
      std::printf(
          "dynamic int8 output %zu, batch %lld x%.1f: max |int8 - "
          "fake-quant| %.3g, max |int8 - float| %.3g (max |float| %.3g)\n",
          o, static_cast<long long>(b.n), b.x_scale, d_fq, d_fl, scale);
      // Quantization error: 7-bit weights and 8-bit activations.
      EXPECT_LT(d_fl, 0.03f * scale) << "output " << o;
      // Same quantized values on both sides: the inputs of the Conv, the
      // MatMul and the second Gemm are graph inputs; the Gemm's input comes
      // from the int8 Conv, within float rounding of the fake-quant Conv, so a
      // value on a rounding boundary may land one step (~max/255) away.
      EXPECT_LT(d_fq, (o == 0 ? 2e-3f : 1e-5f) * scale) << "output " << o;
    }
  }

  TensorMap zeros = {{"x", Tensor::Zeros(DataType::kFloat32, {2, 3, 6, 6})},
                     {"x3", Tensor::Zeros(DataType::kFloat32, {2, 5, 16})},
                     {"x2", Tensor::Zeros(DataType::kFloat32, {2, 16})}};
  absl::StatusOr<std::vector<Tensor>> i8 = (*int8_ex)->RunOutputs(zeros);
  ASSERT_TRUE(i8.ok()) << i8.status();
  absl::StatusOr<std::vector<Tensor>> fl = (*float_ex)->RunOutputs(zeros);
  ASSERT_TRUE(fl.ok()) << fl.status();
  absl::StatusOr<std::vector<Tensor>> fq = (*fq_ex)->RunOutputs(zeros);
  ASSERT_TRUE(fq.ok()) << fq.status();
  EXPECT_EQ(MaxAbsDiff((*i8)[1], (*fl)[1]), 0.f);  // MatMul: all 0
  EXPECT_EQ(MaxAbsDiff((*i8)[2], (*fl)[2]), 0.f);  // Gemm: the bias
  // The Conv gives relu(bias) per channel, which the Gemm then quantizes.
  EXPECT_LT(MaxAbsDiff((*i8)[0], (*fq)[0]), 1e-5f);
}

// With a calibrated range equal to the batch's own, static and dynamic
// parameters are the same numbers: the two int8 paths (zero point in the
// oneDNN primitive vs subtracted afterwards through the all-ones
// accumulation, padding included) agree to float rounding.
TEST(Int8LoweringTest, DynamicEqualsStaticWithTheBatchRange) {
  const Graph float_graph = TestGraph(/*chained=*/false);
  const TensorMap feeds = Feeds(3, 40);
  ActivationRangeRecorder recorder(float_graph);
  absl::StatusOr<std::unique_ptr<Executor>> float_ex =
      Executor::Create(float_graph);
  ASSERT_TRUE(float_ex.ok());
  RunOptions run;
  run.tensor_hook = recorder.Hook();
  ASSERT_TRUE((*float_ex)->Run(feeds, run).ok());
  ASSERT_EQ(recorder.ranges().size(), 3u);

  Graph static_graph = float_graph;
  ASSERT_TRUE(LowerToInt8(static_graph, recorder.ranges()).ok());
  Graph dynamic_graph = float_graph;
  Int8LoweringOptions options;
  options.dynamic_activations = true;
  ASSERT_TRUE(LowerToInt8(dynamic_graph, {}, options).ok());
  absl::StatusOr<std::vector<Tensor>> s = RunGraph(static_graph, feeds);
  ASSERT_TRUE(s.ok()) << s.status();
  absl::StatusOr<std::vector<Tensor>> d = RunGraph(dynamic_graph, feeds);
  ASSERT_TRUE(d.ok()) << d.status();
  for (size_t o = 0; o < 3; ++o) {
    const float diff = MaxAbsDiff((*s)[o], (*d)[o]);
    std::printf("static vs dynamic int8, output %zu: max |diff| %.3g\n", o,
                diff);
    EXPECT_LT(diff, 1e-5f * std::max(1.f, MaxAbs((*s)[o])));
  }
}

}  // namespace
}  // namespace quantd
