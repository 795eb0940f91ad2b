#include "engine/calibration/calibration_session.h"

#include <cmath>
#include <random>

#include "absl/strings/str_cat.h"
#include "engine/passes/int8_lowering.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::vector<Tensor> Batches(int count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.f, 2.f);
  std::vector<Tensor> batches;
  for (int b = 0; b < count; ++b) {
    Tensor t(DataType::kFloat32, {16, 3});
    for (float& v : t.mutable_span<float>()) v = d(rng);
    batches.push_back(t);
  }
  return batches;
}

std::unique_ptr<Executor> MakeExecutor() {
  absl::StatusOr<std::unique_ptr<Executor>> ex =
      Executor::Create(ReluAddGraph());
  EXPECT_TRUE(ex.ok()) << ex.status();
  return ex.ok() ? *std::move(ex) : nullptr;
}

TEST(CalibrationSessionTest, CalibratesValuesThroughTheExecutor) {
  std::unique_ptr<Executor> ex = MakeExecutor();
  ASSERT_NE(ex, nullptr);
  absl::StatusOr<std::unique_ptr<CalibrationSession>> session =
      CalibrationSession::Create({"x", "r", "y"}, CalibrationOptions());
  ASSERT_TRUE(session.ok()) << session.status();
  RunOptions run;
  run.tensor_hook = (*session)->Hook();
  // The reference: int8 lowering's own min/max recorder, on the same runs.
  TensorRange x_range, r_range;
  for (const Tensor& batch : Batches(5, 1)) {
    x_range.Update(batch);
    Tensor relu = batch.Clone();
    for (float& v : relu.mutable_span<float>()) v = std::max(v, 0.f);
    r_range.Update(relu);
    absl::StatusOr<RunResult> r = ex->Run({{"x", batch}}, run);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  absl::StatusOr<std::map<std::string, QuantParams>> params =
      (*session)->Finish();
  ASSERT_TRUE(params.ok()) << params.status();
  ASSERT_EQ(params->size(), 3u);
  for (const auto& [name, range] :
       {std::pair{"x", x_range}, std::pair{"r", r_range}}) {
    float scale;
    int32_t zp;
    ChooseU8Params(range, &scale, &zp);
    const QuantParams& p = params->at(name);
    EXPECT_EQ(p.type, QuantType::kUInt8);
    EXPECT_FLOAT_EQ(p.scales[0], scale) << name;
    EXPECT_EQ(p.zero_points, std::vector<int32_t>{zp}) << name;
  }
  EXPECT_EQ(params->at("r").zero_points[0], 0);  // post-ReLU
  EXPECT_EQ((*session)->calibrator("y")->num_batches(), 5);
  EXPECT_EQ((*session)->calibrator("nope"), nullptr);
}

TEST(CalibrationSessionTest, MatchesACalibratorFedDirectly) {
  std::unique_ptr<Executor> ex = MakeExecutor();
  ASSERT_NE(ex, nullptr);
  CalibrationOptions options;
  options.method = CalibrationMethod::kEntropy;
  options.symmetric = true;
  options.type = QuantType::kInt8;
  absl::StatusOr<std::unique_ptr<CalibrationSession>> session =
      CalibrationSession::Create({"x"}, options);
  ASSERT_TRUE(session.ok());
  absl::StatusOr<TensorCalibrator> direct =
      TensorCalibrator::Create("x", options);
  ASSERT_TRUE(direct.ok());
  RunOptions run;
  run.tensor_hook = (*session)->Hook();
  for (const Tensor& batch : Batches(50, 2)) {
    ASSERT_TRUE(ex->Run({{"x", batch}}, run).ok());
    ASSERT_TRUE(direct->Observe(batch).ok());
  }
  absl::StatusOr<std::map<std::string, QuantParams>> params =
      (*session)->Finish();
  ASSERT_TRUE(params.ok());
  EXPECT_EQ(params->at("x").scales, direct->ComputeParams()->scales);
  EXPECT_TRUE(params->at("x").zero_points.empty());
}

TEST(CalibrationSessionTest, NanEndsTheRunWithTheCalibratorsError) {
  std::unique_ptr<Executor> ex = MakeExecutor();
  ASSERT_NE(ex, nullptr);
  for (const char* watched : {"x", "y"}) {
    absl::StatusOr<std::unique_ptr<CalibrationSession>> session =
        CalibrationSession::Create({watched}, CalibrationOptions());
    ASSERT_TRUE(session.ok());
    RunOptions run;
    run.tensor_hook = (*session)->Hook();
    Tensor batch = Batches(1, 3)[0];
    batch.mutable_data<float>()[4] = std::nanf("");
    absl::StatusOr<RunResult> r = ex->Run({{"x", batch}}, run);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(r.status().message(),
                HasSubstr(absl::StrCat("tensor '", watched, "'")));
    EXPECT_THAT(r.status().message(), HasSubstr("NaN"));
  }
}

TEST(CalibrationSessionTest, FinishNamesTensorsNeverSeen) {
  std::unique_ptr<Executor> ex = MakeExecutor();
  ASSERT_NE(ex, nullptr);
  absl::StatusOr<std::unique_ptr<CalibrationSession>> session =
      CalibrationSession::Create({"r", "typo1", "typo2"}, CalibrationOptions());
  ASSERT_TRUE(session.ok());
  RunOptions run;
  run.tensor_hook = (*session)->Hook();
  ASSERT_TRUE(ex->Run({{"x", Batches(1, 4)[0]}}, run).ok());
  absl::StatusOr<std::map<std::string, QuantParams>> params =
      (*session)->Finish();
  EXPECT_EQ(params.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(params.status().message(), HasSubstr("'typo1', 'typo2'"));
  EXPECT_THAT(params.status().message(), Not(HasSubstr("'r'")));
}

TEST(CalibrationSessionTest, CreateRejectsBadInput) {
  CalibrationOptions bad;
  bad.percentile = 0;
  EXPECT_THAT(CalibrationSession::Create({"x"}, bad).status().message(),
              HasSubstr("(0, 100]"));
  EXPECT_THAT(
      CalibrationSession::Create({}, CalibrationOptions()).status().message(),
      HasSubstr("at least one tensor"));
}

}  // namespace
}  // namespace quantd
