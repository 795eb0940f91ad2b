// Stages run alone, each on what the previous ones left in the context.
#include "engine/pipeline/stages.h"

#include "absl/strings/str_cat.h"
#include "engine/passes/int8_regions.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

std::string Data(const std::string& rel) {
  return absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel);
}

JobPlan CnnPlan(v1::QuantMode mode) {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Data("fmnist_cnn/model.onnx"));
  spec.mutable_calibration_data()->set_path(Data("fmnist/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("fmnist/eval.npz"));
  spec.set_mode(mode);
  absl::StatusOr<JobPlan> plan =
      PlanJob(spec, SpecOrigin::kBatch, LocalPathResolver());
  EXPECT_TRUE(plan.ok()) << plan.status();
  return *plan;
}

TEST(StagesTest, LoadAndPrepareFindTheLayersAndBindTheData) {
  const JobPlan plan = CnnPlan(v1::QUANT_MODE_STATIC);
  JobContext ctx(plan, nullptr, nullptr, {});
  ASSERT_TRUE(LoadStage(ctx).ok());
  EXPECT_FALSE(ctx.float_graph.nodes.empty());
  ASSERT_TRUE(PrepareStage(ctx).ok());
  EXPECT_EQ(ctx.slots.size(), 5u);  // 3 conv + 2 fc
  ASSERT_TRUE(ctx.data.has_value());
  EXPECT_NE(ctx.data->calibration, nullptr);
  EXPECT_EQ(ctx.graph.nodes.size(), ctx.float_graph.nodes.size());
}

TEST(StagesTest, SmoothWithoutSmoothQuantOrAwqLeavesTheGraph) {
  const JobPlan plan = CnnPlan(v1::QUANT_MODE_STATIC);
  JobContext ctx(plan, nullptr, nullptr, {});
  ASSERT_TRUE(LoadStage(ctx).ok());
  ASSERT_TRUE(PrepareStage(ctx).ok());
  const size_t nodes = ctx.graph.nodes.size();
  ASSERT_TRUE(SmoothStage(ctx).ok());
  EXPECT_EQ(ctx.graph.nodes.size(), nodes);
  EXPECT_TRUE(ctx.facts.algorithms.empty());
}

TEST(StagesTest, CalibrateThenQuantizeGiveEveryLayerParameters) {
  const JobPlan plan = CnnPlan(v1::QUANT_MODE_STATIC);
  std::vector<std::string> stages;
  JobContext ctx(plan,
                 [&](const ProgressEvent& e) { stages.push_back(e.stage); },
                 nullptr, {});
  for (auto* stage : {LoadStage, PrepareStage, SmoothStage, CalibrateStage}) {
    ASSERT_TRUE(stage(ctx).ok());
  }
  EXPECT_GT(ctx.calibration_samples, 0);
  // Every layer's input, and what may extend the int8 regions.
  std::set<std::string> layers;
  for (const WeightSlot& s : ctx.slots) layers.insert(s.node);
  const size_t candidates = Int8RegionCandidates(ctx.graph, [&](const Node& n) {
                              return layers.contains(n.name);
                            }).size();
  EXPECT_GT(candidates, 0u);
  EXPECT_EQ(ctx.activation_params.size(), ctx.slots.size() + candidates);
  ASSERT_TRUE(QuantizeStage(ctx).ok());
  ASSERT_TRUE(ctx.quantization.has_value());
  EXPECT_EQ(ctx.quantization->weights.size(), ctx.slots.size());
  for (const WeightSlot& s : ctx.slots) {
    EXPECT_TRUE(ctx.quantization->activations.contains(ctx.rounder->InputOf(s)))
        << s.node;
  }
  EXPECT_THAT(stages, ::testing::Contains("calibrate"));
  EXPECT_EQ(stages.back(), "quantize");
}

TEST(StagesTest, WeightOnlyJobsSkipCalibration) {
  const JobPlan plan = CnnPlan(v1::QUANT_MODE_WEIGHT_ONLY);
  JobContext ctx(plan, nullptr, nullptr, {});
  for (auto* stage : {LoadStage, PrepareStage, CalibrateStage}) {
    ASSERT_TRUE(stage(ctx).ok());
  }
  EXPECT_EQ(ctx.calibration_samples, 0);
  EXPECT_TRUE(ctx.activation_params.empty());
}

TEST(StagesTest, PrepareNamesAnExcludedNodeThatDoesNotExist) {
  JobPlan plan = CnnPlan(v1::QUANT_MODE_STATIC);
  plan.selection.excluded_nodes.insert("no_such_conv");
  JobContext ctx(plan, nullptr, nullptr, {});
  ASSERT_TRUE(LoadStage(ctx).ok());
  absl::Status s = PrepareStage(ctx);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("'no_such_conv'"));
}

TEST(StagesTest, CancellationStopsCalibrationWithCancelled) {
  const JobPlan plan = CnnPlan(v1::QUANT_MODE_STATIC);
  std::atomic<bool> cancelled{false};
  JobContext ctx(plan, nullptr, &cancelled, {});
  ASSERT_TRUE(LoadStage(ctx).ok());
  ASSERT_TRUE(PrepareStage(ctx).ok());
  cancelled = true;
  EXPECT_EQ(CalibrateStage(ctx).code(), absl::StatusCode::kCancelled);
}

}  // namespace
}  // namespace quantd
