#include "engine/pipeline/job_spec.h"

#include <cmath>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

constexpr char kGoodSpec[] = R"({
  "model": {"path": "testdata/fmnist_cnn/model.onnx"},
  "calibrationData": {"path": "testdata/fmnist/calib.npz"},
  "evaluationData": {"path": "testdata/fmnist/eval.npz"},
  "method": "METHOD_PTQ",
  "weights": {"type": "QUANT_DATA_TYPE_INT8", "granularity": "GRANULARITY_PER_CHANNEL"},
  "calibration": {"method": "CALIBRATION_METHOD_PERCENTILE", "percentile": 99.9},
  "labels": {"model": "fmnist-cnn"}
})";

v1::JobSpec Parse(const std::string& json) {
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(json);
  EXPECT_TRUE(spec.ok()) << spec.status();
  return spec.ok() ? *spec : v1::JobSpec();
}

std::string Error(const v1::JobSpec& spec,
                  SpecOrigin origin = SpecOrigin::kBatch) {
  absl::Status s = ValidateJobSpec(spec, origin);
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  return std::string(s.message());
}

TEST(JobSpecTest, ParsesAndValidatesAGoodSpec) {
  v1::JobSpec spec = Parse(kGoodSpec);
  EXPECT_EQ(spec.model().path(), "testdata/fmnist_cnn/model.onnx");
  EXPECT_EQ(spec.calibration().percentile(), 99.9);
  EXPECT_TRUE(ValidateJobSpec(spec, SpecOrigin::kBatch).ok());
}

TEST(JobSpecTest, RejectsUnknownFieldsAndGarbage) {
  absl::StatusOr<v1::JobSpec> s = ParseJobSpecJson(R"({"modle": {}})");
  ASSERT_FALSE(s.ok());
  EXPECT_THAT(s.status().message(), HasSubstr("modle"));
  EXPECT_FALSE(ParseJobSpecJson("not json").ok());
  EXPECT_FALSE(ParseJobSpecJson(std::string(kMaxJobSpecBytes + 1, ' ')).ok());
}

TEST(JobSpecTest, ServiceSpecsMayNotNameLocalPaths) {
  v1::JobSpec spec = Parse(kGoodSpec);
  EXPECT_THAT(Error(spec, SpecOrigin::kService), HasSubstr("blob_sha256"));
  spec.mutable_model()->set_blob_sha256("abc");
  EXPECT_THAT(Error(spec, SpecOrigin::kService), HasSubstr("64 hex digits"));
}

// s3:// inputs and outputs are the service's (it copies inputs to blobs
// before planning); run-job says what to give instead.
TEST(JobSpecTest, S3UrisAreForTheServiceOnly) {
  v1::JobSpec spec = Parse(kGoodSpec);
  spec.mutable_model()->set_uri("s3://models/m.onnx");
  EXPECT_THAT(Error(spec), HasSubstr("give path"));
  EXPECT_THAT(Error(spec, SpecOrigin::kService), HasSubstr("model.uri"));
  spec = Parse(kGoodSpec);
  spec.set_output_uri("s3://out/run");
  EXPECT_THAT(Error(spec), HasSubstr("--out"));
  spec.mutable_model()->set_blob_sha256(std::string(64, 'a'));
  spec.mutable_calibration_data()->set_blob_sha256(std::string(64, 'b'));
  spec.mutable_evaluation_data()->set_blob_sha256(std::string(64, 'c'));
  EXPECT_TRUE(ValidateJobSpec(spec, SpecOrigin::kService).ok());
  spec.set_output_uri("/tmp/out");
  EXPECT_THAT(Error(spec, SpecOrigin::kService), HasSubstr("s3://BUCKET"));
}

TEST(JobSpecTest, ExplainsEachBadField) {
  v1::JobSpec base = Parse(kGoodSpec);
  {
    v1::JobSpec s = base;
    s.clear_model();
    EXPECT_THAT(Error(s), HasSubstr("model is required"));
  }
  {
    v1::JobSpec s = base;
    s.clear_calibration_data();
    EXPECT_THAT(Error(s), HasSubstr("calibration_data is required"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_calibration()->set_percentile(120);
    EXPECT_THAT(Error(s), HasSubstr("percentile must be in (0, 100], got 120"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_weights()->set_granularity(v1::GRANULARITY_PER_GROUP);
    s.mutable_weights()->set_group_size(48);
    EXPECT_THAT(Error(s), HasSubstr("must be 32, 64 or 128"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_algorithms()->mutable_smooth_quant()->set_enabled(true);
    s.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
    EXPECT_THAT(Error(s), HasSubstr("for weight-only use awq"));
  }
  {
    v1::JobSpec s = base;
    s.set_mode(v1::QUANT_MODE_DYNAMIC);
    s.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
    EXPECT_THAT(Error(s), HasSubstr("int4 weights are for WEIGHT_ONLY"));
  }
  {
    v1::JobSpec s = base;
    s.set_mode(v1::QUANT_MODE_DYNAMIC);
    s.mutable_activations()->set_symmetric(true);
    EXPECT_THAT(Error(s), HasSubstr("leave activations unset"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_weights()->set_bits(3);  // base: int8
    EXPECT_THAT(Error(s), HasSubstr("bits must be 2, 3 or 4 with type INT4"));
    s.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
    s.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
    s.mutable_weights()->set_bits(1);
    EXPECT_THAT(Error(s), HasSubstr("got 1"));
    s.mutable_weights()->set_bits(2);
    EXPECT_TRUE(ValidateJobSpec(s, SpecOrigin::kBatch).ok());
  }
  {
    v1::JobSpec s = base;
    s.mutable_algorithms()->mutable_learned_rounding()->set_iterations(6000);
    EXPECT_THAT(Error(s), HasSubstr("iterations must be in [1, 5000]"));
    s.mutable_algorithms()->mutable_learned_rounding()->set_iterations(100);
    s.mutable_algorithms()->mutable_learned_rounding()->set_learning_rate(
        std::nan(""));
    EXPECT_THAT(Error(s), HasSubstr("learning_rate must be in (0, 0.5]"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_size_budget()->set_max_weight_bytes(-1);
    EXPECT_THAT(Error(s), HasSubstr("must not be negative"));
    s.mutable_size_budget()->set_max_weight_bytes(100000);
    s.mutable_accuracy_target()->set_max_accuracy_drop_points(1);
    EXPECT_THAT(Error(s), HasSubstr("set one or the other"));
    s.clear_accuracy_target();
    s.mutable_sensitivity()->set_disabled(true);
    EXPECT_THAT(Error(s), HasSubstr("do not set sensitivity.disabled"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_weights()->set_allow_partial_groups(true);
    EXPECT_THAT(Error(s), HasSubstr("only meaningful with granularity"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_algorithms()->mutable_smooth_quant()->set_alpha(1.5);
    EXPECT_THAT(Error(s), HasSubstr("alpha"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_algorithms()->mutable_rotation()->set_value_output_heads(true);
    EXPECT_THAT(Error(s), HasSubstr("also set algorithms.rotation.enabled"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_algorithms()->mutable_rotation()->set_online_down_projections(
        true);
    EXPECT_THAT(Error(s), HasSubstr("online_down_projections"));
  }
  {
    v1::JobSpec s = base;
    s.mutable_activations()->set_type(v1::QUANT_DATA_TYPE_INT4);
    EXPECT_THAT(Error(s), HasSubstr("int4 activations"));
  }
  {
    v1::JobSpec s = base;
    (*s.mutable_labels())[std::string(70, 'k')] = "v";
    EXPECT_THAT(Error(s), HasSubstr("1-63 characters"));
  }
}

// fuzz_job_spec: "dampPercent": -.00 parsed, but the JSON written back from
// it did not parse (protobuf prints -0 in a form its own parser refuses).
// Negative zero means nothing in a spec; parsing makes it 0.
TEST(JobSpecTest, NegativeZeroRoundTripsThroughJson) {
  absl::StatusOr<v1::JobSpec> spec = ParseJobSpecJson(
      R"({"algorithms": {"gptq": {"enabled": true, "dampPercent": -.00}},
          "calibration": {"percentile": -0.0}})");
  ASSERT_TRUE(spec.ok()) << spec.status();
  EXPECT_FALSE(std::signbit(spec->algorithms().gptq().damp_percent()));
  EXPECT_FALSE(std::signbit(spec->calibration().percentile()));
  absl::StatusOr<std::string> json = JobSpecToJson(*spec);
  ASSERT_TRUE(json.ok()) << json.status();
  absl::StatusOr<v1::JobSpec> again = ParseJobSpecJson(*json);
  ASSERT_TRUE(again.ok()) << again.status() << "\n" << *json;
  EXPECT_EQ(again->SerializeAsString(), spec->SerializeAsString());
}

TEST(JobSpecTest, WeightOnlyNeedsNoCalibrationData) {
  v1::JobSpec s = Parse(kGoodSpec);
  s.clear_calibration_data();
  s.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  EXPECT_TRUE(ValidateJobSpec(s, SpecOrigin::kBatch).ok());
}

TEST(JobSpecTest, FillsDefaults) {
  v1::JobSpec s = WithDefaults(v1::JobSpec());
  EXPECT_EQ(s.method(), v1::METHOD_PTQ);
  EXPECT_EQ(s.mode(), v1::QUANT_MODE_STATIC);
  EXPECT_EQ(s.weights().type(), v1::QUANT_DATA_TYPE_INT8);
  EXPECT_EQ(s.weights().granularity(), v1::GRANULARITY_PER_CHANNEL);
  EXPECT_EQ(s.activations().type(), v1::QUANT_DATA_TYPE_UINT8);
  EXPECT_EQ(s.calibration().percentile(), 99.99);
  EXPECT_EQ(s.calibration().batch_size(), 32);
  EXPECT_EQ(s.calibration().method(), v1::CALIBRATION_METHOD_PERCENTILE);
  EXPECT_EQ(s.algorithms().smooth_quant().alpha(), 0.5);
  EXPECT_EQ(s.calibration().momentum(), 0.9);
  EXPECT_EQ(s.benchmark().max_seconds(), 3);
  // Round trip through JSON.
  absl::StatusOr<v1::JobSpec> back = ParseJobSpecJson(*JobSpecToJson(s));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), s.SerializeAsString());
}

// Zero is a meaningful value for these fields; only absence means default
// (SmoothQuant alpha 0 used to become 0.5).
TEST(JobSpecTest, AnExplicitZeroIsNotTheDefault) {
  v1::JobSpec s = WithDefaults(Parse(R"({
    "algorithms": {"smoothQuant": {"enabled": true, "alpha": 0}},
    "calibration": {"momentum": 0},
    "qat": {"distillationWeight": 0}
  })"));
  EXPECT_TRUE(s.algorithms().smooth_quant().has_alpha());
  EXPECT_EQ(s.algorithms().smooth_quant().alpha(), 0);
  EXPECT_EQ(s.calibration().momentum(), 0);
  EXPECT_TRUE(s.qat().has_distillation_weight());
  EXPECT_THAT(*JobSpecToJson(s), HasSubstr("\"alpha\": 0"));
}

TEST(JobSpecTest, BoundsTheBenchmarkAndEvaluationFields) {
  v1::JobSpec s = Parse(kGoodSpec);
  s.mutable_benchmark()->set_max_seconds(601);
  EXPECT_THAT(Error(s), HasSubstr("benchmark.max_seconds"));
  s = Parse(kGoodSpec);
  s.mutable_accuracy_target()->set_min_mask_iou(1.5);
  EXPECT_THAT(Error(s), HasSubstr("min_mask_iou"));
  s = Parse(kGoodSpec);
  s.mutable_accuracy_target()->set_min_output_sqnr_db(NAN);
  EXPECT_THAT(Error(s), HasSubstr("min_output_sqnr_db"));
}

}  // namespace
}  // namespace quantd
