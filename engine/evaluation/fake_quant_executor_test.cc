// FakeQuantExecutor folds the weights' DequantizeLinear once; weights the
// plan already holds on their grid (GPTQ's) are shared with the plan rather
// than folded into a second copy, and the integer initializers are dropped.
#include <algorithm>
#include <cmath>

#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// The weight-only plan of LinearLayersGraph: int4 per channel on wq, wk,
// wo; `on_grid` puts the fake-quantized wq into updated_initializers, as
// GPTQ does, else the raw (off-grid) weights.
QuantizationPlan Plan(const Graph& g, bool on_grid) {
  QuantizationPlan plan;
  absl::StatusOr<std::vector<WeightSlot>> slots = FindQuantizableWeights(g, {});
  EXPECT_TRUE(slots.ok()) << slots.status();
  WeightScheme scheme;
  scheme.type = QuantType::kInt4;
  scheme.granularity = WeightGranularity::kPerChannel;
  for (const WeightSlot& s : *slots) {
    const Tensor& w = *g.FindInitializer(s.initializer);
    absl::StatusOr<QuantParams> p = ComputeWeightParams(w, s, scheme);
    EXPECT_TRUE(p.ok()) << p.status();
    plan.weights[s.initializer] = *p;
    if (s.initializer == "wq") {
      absl::StatusOr<Tensor> fq = FakeQuantizeWeights(w, *p);
      EXPECT_TRUE(fq.ok()) << fq.status();
      plan.updated_initializers["wq"] = on_grid ? *fq : w.Clone();
    }
  }
  return plan;
}

bool Shares(const Graph& g, const Tensor& t) {
  return std::any_of(
      g.initializers.begin(), g.initializers.end(),
      [&](const auto& kv) { return kv.second.raw_data() == t.raw_data(); });
}

TEST(FakeQuantExecutorTest, SharesOnGridWeightsAndDropsIntegerCopies) {
  const Graph g = LinearLayersGraph();
  const QuantizationPlan plan = Plan(g, /*on_grid=*/true);
  absl::StatusOr<std::unique_ptr<Executor>> ex = FakeQuantExecutor(g, plan);
  ASSERT_TRUE(ex.ok()) << ex.status();
  const Graph& run = (*ex)->graph();
  EXPECT_TRUE(Shares(run, plan.updated_initializers.at("wq")));
  for (const auto& [name, t] : run.initializers) {
    EXPECT_EQ(name.find("_quantized"), std::string::npos) << name;
  }

  // Same outputs as the float model run on the fake-quantized weights.
  Graph reference = g;
  for (const char* w : {"wq", "wk", "wo"}) {
    absl::StatusOr<Tensor> fq =
        FakeQuantizeWeights(*g.FindInitializer(w), plan.weights.at(w));
    ASSERT_TRUE(fq.ok()) << fq.status();
    reference.initializers[w] = *fq;
  }
  absl::StatusOr<std::unique_ptr<Executor>> ref =
      Executor::Create(std::move(reference));
  ASSERT_TRUE(ref.ok()) << ref.status();
  Tensor x(DataType::kFloat32, {3, 8});
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    x.mutable_data<float>()[i] = std::sin(0.7f * i);
  }
  absl::StatusOr<std::vector<Tensor>> got = (*ex)->RunOutputs({{"x", x}});
  absl::StatusOr<std::vector<Tensor>> want = (*ref)->RunOutputs({{"x", x}});
  ASSERT_TRUE(got.ok()) << got.status();
  ASSERT_TRUE(want.ok()) << want.status();
  EXPECT_EQ((*got)[0].ToVector<float>(), (*want)[0].ToVector<float>());
}

// Weights off their grid fold into a tensor of their own (sharing would
// change the results).
TEST(FakeQuantExecutorTest, OffGridWeightsAreFoldedNotShared) {
  const Graph g = LinearLayersGraph();
  const QuantizationPlan plan = Plan(g, /*on_grid=*/false);
  absl::StatusOr<std::unique_ptr<Executor>> ex = FakeQuantExecutor(g, plan);
  ASSERT_TRUE(ex.ok()) << ex.status();
  EXPECT_FALSE(Shares((*ex)->graph(), plan.updated_initializers.at("wq")));
}

}  // namespace
}  // namespace quantd
