// FakeQuantExecutor folds round-to-nearest weights' DequantizeLinear once;
// weights the plan holds as codes (GPTQ's) stay integers, shared with the
// plan, and are dequantized layer by layer as the executor runs.
#include <algorithm>
#include <cmath>

#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/testing/test_graphs.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

// The weight-only plan of LinearLayersGraph: int4 per channel on wq, wk,
// wo; wq's integers held as codes, as GPTQ leaves them.
QuantizationPlan Plan(const Graph& g) {
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
      absl::StatusOr<WeightCodes> codes = QuantizeWeightCodes(w, *p);
      EXPECT_TRUE(codes.ok()) << codes.status();
      plan.weight_codes["wq"] = *codes;
    }
  }
  return plan;
}

bool Shares(const Graph& g, const Tensor& t) {
  return std::any_of(
      g.initializers.begin(), g.initializers.end(),
      [&](const auto& kv) { return kv.second.raw_data() == t.raw_data(); });
}

TEST(FakeQuantExecutorTest, KeepsCodesAndFoldsTheRest) {
  const Graph g = LinearLayersGraph();
  const QuantizationPlan plan = Plan(g);
  absl::StatusOr<std::unique_ptr<Executor>> ex = FakeQuantExecutor(g, plan);
  ASSERT_TRUE(ex.ok()) << ex.status();
  const Graph& run = (*ex)->graph();
  // wq: the plan's int4 codes, shared two per byte, and one
  // quantd.DequantizePackedCodes that reads them; no float or one-byte copy
  // of wq. wk, wo: folded into float initializers.
  const WeightCodes& codes = plan.weight_codes.at("wq");
  ASSERT_EQ(codes.bits(), 4);
  EXPECT_TRUE(Shares(run, codes.storage()));
  int dequantizers = 0;
  for (const Node& n : run.nodes) {
    EXPECT_NE(n.op_type, "DequantizeLinear");
    if (n.op_type == kDequantizePackedCodesOp) {
      ++dequantizers;
      EXPECT_EQ(n.domain, kPackedCodesDomain);
      EXPECT_EQ(run.FindInitializer(n.input(0))->raw_data(),
                codes.storage().raw_data());
    }
  }
  EXPECT_EQ(dequantizers, 1);
  EXPECT_EQ(run.FindInitializer("wq"), nullptr);
  int64_t float_weights = 0;
  for (const auto& [name, t] : run.initializers) {
    if (t.dtype() == DataType::kFloat32 && t.rank() == 2) ++float_weights;
  }
  EXPECT_EQ(float_weights, 2);  // wk's and wo's folded floats

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

}  // namespace
}  // namespace quantd
