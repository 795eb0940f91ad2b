// The size-budget mode end to end on the Fashion-MNIST CNN at int4: the
// delivered model fits the budget, the report holds the size/loss frontier,
// and the plan delivered is the better of the knapsack's and the accuracy
// target's fallback order cut at the same budget.
#include "engine/pipeline/size_budget.h"

#include "absl/strings/str_cat.h"
#include "engine/pipeline/pipeline.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

std::string Data(const std::string& rel) {
  return absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel);
}

v1::JobSpec CnnInt4(int64_t budget) {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Data("fmnist_cnn/model.onnx"));
  spec.mutable_calibration_data()->set_path(Data("fmnist/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("fmnist/eval.npz"));
  spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  spec.mutable_sensitivity()->set_max_samples(128);
  spec.mutable_benchmark()->set_disabled(true);
  spec.mutable_size_budget()->set_max_weight_bytes(budget);
  return spec;
}

TEST(SizeBudgetTest, FitsTheBudgetAndReportsTheFrontier) {
  // A budget nothing reaches: every layer may stay float.
  absl::StatusOr<PipelineResult> all = RunBatchJob(CnnInt4(int64_t{1} << 40));
  ASSERT_TRUE(all.ok()) << all.status();
  const v1::SizeBudgetReport& wide = all->report.size_budget();
  ASSERT_GE(wide.frontier_size(), 2);
  for (int i = 1; i < wide.frontier_size(); ++i) {
    EXPECT_GT(wide.frontier(i).weight_bytes(),
              wide.frontier(i - 1).weight_bytes());
    EXPECT_LT(wide.frontier(i).estimated_loss(),
              wide.frontier(i - 1).estimated_loss());
  }
  EXPECT_THAT(wide.frontier(0).precisions(), HasSubstr("int4 5"));

  // Between the smallest model and the float one.
  const int64_t smallest = wide.frontier(0).weight_bytes();
  const int64_t budget =
      smallest +
      (wide.frontier(wide.frontier_size() - 1).weight_bytes() - smallest) / 4;
  absl::StatusOr<PipelineResult> r = RunBatchJob(CnnInt4(budget));
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::SizeBudgetReport& b = r->report.size_budget();
  EXPECT_EQ(b.budget_bytes(), budget);
  EXPECT_LE(b.planned_bytes(), budget);
  EXPECT_GT(b.planned_bytes(), smallest);  // it spent the budget
  // The delivered model is the better of the two candidates.
  const double delivered = TargetMetric(r->report.fake_quant());
  EXPECT_DOUBLE_EQ(delivered,
                   std::min(b.knapsack_metric(), b.sensitivity_order_metric()));
  int raised = 0;
  for (const v1::LayerReport& l : r->report.layers()) {
    if (l.reason().find("size budget") != std::string::npos) ++raised;
  }
  EXPECT_GT(raised, 0);

  // Below the smallest model: the job fails and says how small it can be.
  absl::StatusOr<PipelineResult> tiny = RunBatchJob(CnnInt4(1000));
  ASSERT_FALSE(tiny.ok());
  EXPECT_EQ(tiny.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(tiny.status().message(), HasSubstr(absl::StrCat(smallest)));
}

}  // namespace
}  // namespace quantd
