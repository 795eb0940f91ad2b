// An int8 graph, not int8 ops (engine/passes/int8_regions.h): on a small
// ResNet the plan quantizes the residual Adds' operands and the MaxPool, the
// lowering keeps them u8 (quantd.QuantizedAdd, MaxPool on u8), and the
// result is what ONNX Runtime computes on the exported QDQ artifact and
// what the fake-quant simulation of the plan computes. Skipped, with the
// reason, without node and tests/ort/node_modules.
#include <cmath>
#include <cstdio>
#include <random>

#include "engine/export/qdq_export.h"
#include "engine/passes/int8_lowering.h"
#include "engine/testing/ort_test_util.h"
#include "engine/testing/qdq_test_util.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"
#include "kernels/post_ops.h"

namespace quantd {
namespace {

Tensor Images(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, 1.f);
  Tensor t(DataType::kFloat32, {n, 3, 16, 16});
  for (float& v : t.mutable_span<float>()) v = dist(rng);
  return t;
}

float MeanAbsDiff(const Tensor& a, const Tensor& b) {
  double sum = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    sum += std::fabs(a.data<float>()[i] - b.data<float>()[i]);
  }
  return static_cast<float>(sum / std::max<int64_t>(1, a.num_elements()));
}

float MaxAbs(const Tensor& t) {
  float m = 0;
  for (float v : t.span<float>()) m = std::max(m, std::fabs(v));
  return m;
}

TEST(Int8RegionsOrtTest, ResidualCnnRunsInt8AsOrtRunsTheArtifact) {
  const Graph g = ResidualCnnGraph();
  absl::StatusOr<QuantizationPlan> plan = qdq_test::Int8FixturePlan(
      g, Images(32, 1), "x", MaxExactInt8WeightMagnitude());
  ASSERT_TRUE(plan.ok()) << plan.status();
  for (const char* v : {"stem", "pooled", "b1c2_out", "b2c2_out", "down_out"}) {
    EXPECT_TRUE(plan->activations.contains(v)) << v;
  }
  EXPECT_EQ(plan->activations.at("pooled").scales,
            plan->activations.at("stem").scales);

  Graph lowered = g;
  Int8LoweringStats stats;
  ASSERT_TRUE(
      LowerToInt8(lowered, PlanRanges(plan->activations), {}, &stats).ok());
  EXPECT_EQ(stats.adds_quantized, 2);
  EXPECT_EQ(stats.pools_u8, 1);
  EXPECT_EQ(stats.dequantized, 0);  // add2 writes f32 for the pooling
  absl::StatusOr<std::unique_ptr<Executor>> int8 = Executor::Create(lowered);
  ASSERT_TRUE(int8.ok()) << int8.status();

  const TensorMap feeds = {{"x", Images(64, 2)}};
  absl::StatusOr<std::vector<Tensor>> got = (*int8)->RunOutputs(feeds);
  ASSERT_TRUE(got.ok()) << got.status();
  absl::StatusOr<std::vector<Tensor>> fake =
      qdq_test::RunFakeQuant(g, *plan, feeds);
  ASSERT_TRUE(fake.ok()) << fake.status();
  absl::StatusOr<std::unique_ptr<Executor>> fp = Executor::Create(g);
  ASSERT_TRUE(fp.ok());
  absl::StatusOr<std::vector<Tensor>> ref = (*fp)->RunOutputs(feeds);
  ASSERT_TRUE(ref.ok());
  const float scale = MaxAbs((*ref)[0]);
  const float quant_error = qdq_test::MaxAbsDiff((*fake)[0], (*ref)[0]);
  const float d_fake = qdq_test::MaxAbsDiff((*got)[0], (*fake)[0]);
  std::printf(
      "max |logits| %.3g; fake quant vs float %.3g; int8 vs fake quant %.3g\n",
      scale, quant_error, d_fake);
  // The int8 kernels requantize in their output stage (oneDNN rounds after
  // adding the zero point); ties can move a value by one step.
  EXPECT_LT(d_fake, 0.25f * quant_error);
  EXPECT_GE(qdq_test::Top1Agreement((*got)[0], (*fake)[0]), 0.95);

  SKIP_WITHOUT_ORT();
  absl::StatusOr<std::string> bytes = ExportQdqModelBytes(g, *plan);
  ASSERT_TRUE(bytes.ok()) << bytes.status();
  absl::StatusOr<std::vector<Tensor>> ort =
      ort_test::RunOrt(*bytes, feeds, {"logits"}, ort_test::kOrtOptimized);
  ASSERT_TRUE(ort.ok()) << ort.status();
  absl::StatusOr<std::vector<Tensor>> ort_plain =
      ort_test::RunOrt(*bytes, feeds, {"logits"}, ort_test::kOrtUnoptimized);
  ASSERT_TRUE(ort_plain.ok()) << ort_plain.status();
  const float d_ort = qdq_test::MaxAbsDiff((*got)[0], (*ort)[0]);
  const float m_ort = MeanAbsDiff((*got)[0], (*ort)[0]);
  const float m_quant = MeanAbsDiff((*fake)[0], (*ref)[0]);
  std::printf(
      "ORT optimized vs quantd int8: max %.3g mean %.3g (mean quantization "
      "error %.3g); ORT optimized vs fake quant max %.3g; ORT unoptimized vs "
      "fake quant max %.3g\n",
      d_ort, m_ort, m_quant, qdq_test::MaxAbsDiff((*ort)[0], (*fake)[0]),
      qdq_test::MaxAbsDiff((*ort_plain)[0], (*fake)[0]));
  // ORT's integer kernels (QLinearConv, QLinearAdd) requantize in fixed
  // point: boundary flips propagate as in qdq_ort_test's fixture case, so
  // the mean is bounded tightly and the max loosely.
  EXPECT_LT(d_ort, 0.75f * quant_error);
  EXPECT_LT(m_ort, 0.35f * m_quant);
  EXPECT_GE(qdq_test::Top1Agreement((*got)[0], (*ort)[0]), 0.95);
  // Unoptimized, ORT runs the QDQ graph in float: the fake-quant math.
  EXPECT_LT(qdq_test::MaxAbsDiff((*ort_plain)[0], (*fake)[0]),
            0.05f * quant_error);
}

// x -> Conv -> Relu -> a; Add(a, x) -> Conv -> y: the Add reads the graph
// input, which no int8 op produces. The lowering starts the region with one
// QuantizeLinear on x (the QDQ graph's readers all read Q -> DQ of x), so
// the Add runs in u8 and the result is the fake-quant graph's.
TEST(Int8RegionsOrtTest, ARegionStartsAtAGraphInputTheAddReads) {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  g.inputs = {x};
  ValueInfo y;
  y.name = "y";
  y.dtype = DataType::kFloat32;
  g.outputs = {y};
  const Graph r = ResidualCnnGraph();  // borrow two 8->8 convs' weights
  for (const char* w : {"b1c1_w", "b1c1_w_b", "b1c2_w", "b1c2_w_b"}) {
    g.initializers[w] = *r.FindInitializer(w);
  }
  Node c1 = MakeNode("c1", "Conv", {"x", "b1c1_w", "b1c1_w_b"}, "c1_out");
  Node c2 = MakeNode("c2", "Conv", {"s", "b1c2_w", "b1c2_w_b"}, "y");
  c2.attributes.Set("pads", Ints({1, 1, 1, 1}));
  g.nodes = {c1, MakeNode("relu", "Relu", {"c1_out"}, "a"),
             MakeNode("add", "Add", {"a", "x"}, "s"), c2};
  std::mt19937 rng(4);
  std::normal_distribution<float> dist(0.f, 1.f);
  Tensor calib(DataType::kFloat32, {16, 8, 6, 6});
  for (float& v : calib.mutable_span<float>()) v = dist(rng);
  absl::StatusOr<QuantizationPlan> plan =
      qdq_test::Int8FixturePlan(g, calib, "x", MaxExactInt8WeightMagnitude());
  ASSERT_TRUE(plan.ok()) << plan.status();
  ASSERT_TRUE(plan->activations.contains("a"));
  Graph lowered = g;
  Int8LoweringStats stats;
  ASSERT_TRUE(
      LowerToInt8(lowered, PlanRanges(plan->activations), {}, &stats).ok());
  EXPECT_EQ(stats.regions_started, 1);
  EXPECT_EQ(stats.adds_quantized, 1);
  absl::StatusOr<std::unique_ptr<Executor>> int8 = Executor::Create(lowered);
  ASSERT_TRUE(int8.ok()) << int8.status();
  const TensorMap feeds = {{"x", calib}};
  absl::StatusOr<std::vector<Tensor>> got = (*int8)->RunOutputs(feeds);
  ASSERT_TRUE(got.ok()) << got.status();
  absl::StatusOr<std::vector<Tensor>> fake =
      qdq_test::RunFakeQuant(g, *plan, feeds);
  ASSERT_TRUE(fake.ok()) << fake.status();
  absl::StatusOr<std::unique_ptr<Executor>> fp = Executor::Create(g);
  ASSERT_TRUE(fp.ok());
  absl::StatusOr<std::vector<Tensor>> ref = (*fp)->RunOutputs(feeds);
  ASSERT_TRUE(ref.ok());
  const float quant_error = qdq_test::MaxAbsDiff((*fake)[0], (*ref)[0]);
  const float d_fake = qdq_test::MaxAbsDiff((*got)[0], (*fake)[0]);
  std::printf("fake quant vs float %.3g; int8 vs fake quant %.3g\n",
              quant_error, d_fake);
  EXPECT_LT(d_fake, 0.25f * quant_error);
}

}  // namespace
}  // namespace quantd
