#include "engine/pipeline/job_plan.h"

#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Pair;

std::string Digest(char c) { return std::string(64, c); }

// Resolves digests from a table, as the service's resolver resolves the
// tenant's own uploads, and records every field it was asked about.
class TableResolver : public DataRefResolver {
 public:
  explicit TableResolver(std::map<std::string, std::string> files)
      : files_(std::move(files)) {}
  absl::StatusOr<std::string> Resolve(const v1::DataRef& ref,
                                      absl::string_view field) const override {
    asked_.insert(std::string(field));
    auto it = files_.find(ref.blob_sha256());
    if (it == files_.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".blob_sha256: not found"));
    }
    return it->second;
  }
  mutable std::set<std::string> asked_;

 private:
  std::map<std::string, std::string> files_;
};

v1::JobSpec QatSpec() {
  v1::JobSpec spec;
  spec.set_method(v1::METHOD_QAT);
  spec.mutable_model()->set_blob_sha256(Digest('a'));
  spec.mutable_calibration_data()->set_blob_sha256(Digest('b'));
  spec.mutable_evaluation_data()->set_blob_sha256(Digest('c'));
  spec.mutable_qat()->mutable_train_data()->set_blob_sha256(Digest('d'));
  return spec;
}

TEST(JobPlanTest, FindsEveryDataRefByReflection) {
  const v1::JobSpec spec = QatSpec();
  std::vector<std::string> fields;
  for (const auto& [field, ref] : SetDataRefs(spec)) fields.push_back(field);
  EXPECT_THAT(fields, ElementsAre("model", "calibration_data",
                                  "evaluation_data", "qat.train_data"));
}

TEST(JobPlanTest, ResolvesEveryDataRefThroughTheResolver) {
  TableResolver resolver({{Digest('a'), "/m.onnx"},
                          {Digest('b'), "/calib.npz"},
                          {Digest('c'), "/eval.npz"},
                          {Digest('d'), "/train.npz"}});
  absl::StatusOr<JobPlan> plan =
      PlanJob(QatSpec(), SpecOrigin::kService, resolver);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_EQ(plan->paths.model, "/m.onnx");
  EXPECT_EQ(plan->paths.calibration, "/calib.npz");
  EXPECT_EQ(plan->paths.evaluation, "/eval.npz");
  EXPECT_EQ(plan->paths.train, "/train.npz");
  EXPECT_EQ(resolver.asked_.size(), 4u);
}

// The hole the hardening issue found: qat.train_data was never checked.
TEST(JobPlanTest, AnUnresolvableTrainDataRefFailsThePlan) {
  TableResolver resolver({{Digest('a'), "/m.onnx"},
                          {Digest('b'), "/calib.npz"},
                          {Digest('c'), "/eval.npz"}});
  absl::StatusOr<JobPlan> plan =
      PlanJob(QatSpec(), SpecOrigin::kService, resolver);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("qat.train_data"));
}

TEST(JobPlanTest, AppliesDefaultsOnceIncludingQat) {
  TableResolver resolver({{Digest('a'), "/m.onnx"},
                          {Digest('b'), "/calib.npz"},
                          {Digest('c'), "/eval.npz"},
                          {Digest('d'), "/train.npz"}});
  absl::StatusOr<JobPlan> plan =
      PlanJob(QatSpec(), SpecOrigin::kService, resolver);
  ASSERT_TRUE(plan.ok()) << plan.status();
  const v1::QatConfig& q = plan->spec.qat();
  EXPECT_EQ(q.max_steps(), 300);
  EXPECT_EQ(q.time_budget_seconds(), 300);
  EXPECT_EQ(q.batch_size(), 32);
  EXPECT_EQ(q.optimizer(), v1::QatConfig::OPTIMIZER_ADAM);
  EXPECT_DOUBLE_EQ(q.learning_rate(), 1e-4);
  EXPECT_EQ(plan->qat.max_steps, 300);
  EXPECT_DOUBLE_EQ(plan->qat.optimizer.learning_rate, 1e-4);
  EXPECT_EQ(plan->spec.weights().type(), v1::QUANT_DATA_TYPE_INT8);
  EXPECT_EQ(plan->spec.calibration().batch_size(), 32);
}

TEST(JobPlanTest, SgdGetsItsOwnLearningRateDefault) {
  v1::JobSpec spec = QatSpec();
  spec.mutable_qat()->set_optimizer(v1::QatConfig::OPTIMIZER_SGD);
  TableResolver resolver({{Digest('a'), "/m"},
                          {Digest('b'), "/c"},
                          {Digest('c'), "/e"},
                          {Digest('d'), "/t"}});
  absl::StatusOr<JobPlan> plan = PlanJob(spec, SpecOrigin::kService, resolver);
  ASSERT_TRUE(plan.ok()) << plan.status();
  EXPECT_DOUBLE_EQ(plan->spec.qat().learning_rate(), 1e-3);
  EXPECT_EQ(plan->qat.optimizer.kind, OptimizerKind::kSgd);
}

TEST(JobPlanTest, RefusesOutOfRangeEnumsNamingTheField) {
  TableResolver resolver({});
  v1::JobSpec spec = QatSpec();
  spec.set_mode(static_cast<v1::QuantMode>(99));
  absl::StatusOr<JobPlan> plan = PlanJob(spec, SpecOrigin::kService, resolver);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("mode is 99"));
  EXPECT_THAT(plan.status().message(), HasSubstr("QUANT_MODE_WEIGHT_ONLY"));

  spec = QatSpec();
  spec.mutable_weights()->set_granularity(static_cast<v1::Granularity>(17));
  plan = PlanJob(spec, SpecOrigin::kService, resolver);
  ASSERT_FALSE(plan.ok());
  EXPECT_THAT(plan.status().message(), HasSubstr("weights.granularity is 17"));
  EXPECT_TRUE(resolver.asked_.empty()) << "nothing resolved for a bad spec";
}

TEST(JobPlanTest, LocalPathResolverReadsPathsAndRefusesDigests) {
  LocalPathResolver files;
  v1::DataRef ref;
  ref.set_path("/data/calib.npz");
  EXPECT_EQ(*files.Resolve(ref, "calibration_data"), "/data/calib.npz");
  ref.set_blob_sha256(Digest('e'));
  absl::StatusOr<std::string> r = files.Resolve(ref, "model");
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model: quantd run-job"));
}

TEST(JobPlanTest, ServiceOriginRefusesLocalPaths) {
  v1::JobSpec spec = QatSpec();
  spec.mutable_model()->set_path("/etc/passwd");
  TableResolver resolver({});
  absl::StatusOr<JobPlan> plan = PlanJob(spec, SpecOrigin::kService, resolver);
  ASSERT_FALSE(plan.ok());
  EXPECT_EQ(plan.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(plan.status().message(), HasSubstr("model.path"));
}

}  // namespace
}  // namespace quantd
