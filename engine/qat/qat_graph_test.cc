#include "engine/qat/qat_graph.h"

#include <random>

#include "engine/export/qdq_export.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor Input() {
  Tensor x(DataType::kFloat32, {6, 8});
  std::mt19937 rng(3);
  std::normal_distribution<float> n(0.f, 1.5f);
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    x.mutable_data<float>()[i] = n(rng);
  }
  return x;
}

Tensor RunGraph(const Graph& g, const Tensor& x) {
  auto ex = Executor::Create(g);
  EXPECT_TRUE(ex.ok()) << ex.status();
  auto r = (*ex)->Run({{"x", x}});
  EXPECT_TRUE(r.ok()) << r.status();
  return r->outputs[0];
}

// A plan over LinearLayersGraph: int4 per-group weights for q and k, int8
// per-channel for out, u8 activations on h and r.
QuantizationPlan Plan(const Graph& g) {
  QuantizationPlan plan;
  auto slots = FindQuantizableWeights(g, {});
  for (const WeightSlot& s : *slots) {
    WeightScheme scheme;
    if (s.node != "out") {
      scheme.type = QuantType::kInt4;
      scheme.granularity = WeightGranularity::kPerGroup;
      scheme.group_size = 4;
      scheme.symmetric = false;
    }
    plan.weights[s.initializer] =
        *ComputeWeightParams(*g.FindInitializer(s.initializer), s, scheme);
  }
  for (const char* a : {"h", "r"}) {
    QuantParams p;
    p.type = QuantType::kUInt8;
    p.qmin = 0;
    p.qmax = 255;
    p.scales = {0.05f};
    p.zero_points = {100};
    plan.activations[a] = p;
  }
  return plan;
}

// The training graph computes exactly what the exported QDQ graph does.
TEST(QatGraphTest, ForwardEqualsTheQdqSimulation) {
  const Graph g = LinearLayersGraph();
  const QuantizationPlan plan = Plan(g);
  absl::StatusOr<TrainingGraph> t = BuildTrainingGraph(g, plan);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<QdqGraph> qdq = BuildQdqGraph(g, plan);
  ASSERT_TRUE(qdq.ok()) << qdq.status();
  const Tensor x = Input();
  const Tensor a = RunGraph(t->graph, x), b = RunGraph(qdq->graph, x);
  ASSERT_EQ(a.shape(), b.shape());
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    EXPECT_NEAR(a.data<float>()[i], b.data<float>()[i], 1e-5) << i;
  }
  EXPECT_EQ(t->weights.size(), 3u);
  EXPECT_EQ(t->scales.size(), 5u);  // 3 weights + 2 activations
}

// Trained values come back as a plan: weights as updated initializers,
// scales in place.
TEST(QatGraphTest, ToPlanCarriesTrainedWeightsAndScales) {
  const Graph g = LinearLayersGraph();
  const QuantizationPlan plan = Plan(g);
  absl::StatusOr<TrainingGraph> t = BuildTrainingGraph(g, plan);
  ASSERT_TRUE(t.ok());
  Tensor w = t->graph.FindInitializer("wo")->Clone();
  w.mutable_data<float>()[0] += 1.f;
  t->graph.initializers["wo"] = w;
  for (auto& [scale, entry] : t->scales) {
    if (entry == "a:h") {
      t->graph.initializers[scale] = Tensor::FromVector<float>({1}, {0.07f});
    }
  }
  absl::StatusOr<QuantizationPlan> trained = t->ToPlan(plan);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->updated_initializers.at("wo").data<float>()[0],
            w.data<float>()[0]);
  EXPECT_FLOAT_EQ(trained->activations.at("h").scales[0], 0.07f);
  EXPECT_TRUE(ValidateQuantizationPlan(g, *trained).ok());
}

TEST(QatGraphTest, RefusesDynamicPlans) {
  const Graph g = LinearLayersGraph();
  QuantizationPlan plan;
  plan.dynamic_activations.insert("h");
  EXPECT_EQ(BuildTrainingGraph(g, plan).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd

namespace quantd {
namespace {

// A MaxPool's output quantized with its input's parameters (int8 regions)
// trains the input's step, not one of its own, so they stay equal.
TEST(QatGraphTest, MaxPoolOutputSharesItsInputsStep) {
  Graph g = ResidualCnnGraph();
  QuantizationPlan plan;
  QuantParams p;
  p.type = QuantType::kUInt8;
  p.qmin = 0;
  p.qmax = 255;
  p.scales = {0.03f};
  p.zero_points = {0};
  plan.activations["stem"] = p;
  plan.activations["pooled"] = p;
  absl::StatusOr<TrainingGraph> t = BuildTrainingGraph(g, plan);
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->tied, (std::map<std::string, std::string>{{"pooled", "stem"}}));
  ASSERT_EQ(t->scales.size(), 1u);  // one trainable step for the two
  const std::string step = t->scales.begin()->first;
  t->graph.initializers[step] = Tensor::FromVector<float>(
      t->graph.initializers[step].shape(), std::vector<float>{0.05f});
  absl::StatusOr<QuantizationPlan> trained = t->ToPlan(plan);
  ASSERT_TRUE(trained.ok()) << trained.status();
  EXPECT_EQ(trained->activations.at("stem").scales, std::vector<float>{0.05f});
  EXPECT_EQ(trained->activations.at("pooled").scales,
            std::vector<float>{0.05f});
}

}  // namespace
}  // namespace quantd
