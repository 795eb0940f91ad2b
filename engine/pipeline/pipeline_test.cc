#include "engine/pipeline/pipeline.h"

#include <atomic>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <map>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/export/external_data.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "onnx/onnx_pb.h"
#include "util/process_memory.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

std::string Data(const std::string& rel) {
  return absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel);
}

v1::JobSpec W8A8Spec(const std::string& model) {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Data(model));
  spec.mutable_calibration_data()->set_path(Data("fmnist/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("fmnist/eval.npz"));
  spec.mutable_calibration()->set_method(v1::CALIBRATION_METHOD_PERCENTILE);
  return spec;
}

class PtqPipelineTest : public ::testing::TestWithParam<std::string> {};

// The PTQ issue's bar: static W8A8 loses at most 0.3 accuracy points on the
// Fashion-MNIST fixtures. Deterministic (fixed data, no sampling).
TEST_P(PtqPipelineTest, StaticW8A8KeepsAccuracyWithinAThirdOfAPoint) {
  v1::JobSpec spec = W8A8Spec(GetParam());
  std::vector<std::string> stages;
  absl::StatusOr<PipelineResult> r =
      RunBatchJob(spec, [&](const ProgressEvent& e) {
        if (stages.empty() || stages.back() != e.stage) {
          stages.push_back(e.stage);
        }
      });
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::QuantizationReport& rep = r->report;
  EXPECT_EQ(rep.fake_quant().samples(), 1000);
  // Deltas are multiples of 0.1 point (1000 samples); the epsilon absorbs
  // the floating-point representation of -0.3.
  EXPECT_GE(rep.fake_quant().accuracy_delta_points(), -0.3 - 1e-9);
  EXPECT_GE(rep.int8().accuracy_delta_points(), -0.3 - 1e-9);
  EXPECT_GT(rep.fake_quant().top1_agreement(), 0.95);
  EXPECT_GT(rep.size().compression_ratio(), 1.5);
  EXPECT_EQ(rep.reproducibility().model_sha256().size(), 64u);
  EXPECT_EQ(rep.reproducibility().calibration_samples(), 512);
  EXPECT_GE(rep.performance().threads(), 1);
  EXPECT_EQ(rep.performance().cpu_isa(), rep.reproducibility().cpu_isa());
  EXPECT_FALSE(rep.performance().cpu_isa().empty());
  EXPECT_FALSE(rep.layers().empty());
  EXPECT_THAT(stages, ::testing::Contains("calibrate"));
  EXPECT_EQ(stages.back(), "done");
  EXPECT_GT(r->model_bytes.size(), 1000u);
}

INSTANTIATE_TEST_SUITE_P(Fixtures, PtqPipelineTest,
                         ::testing::Values("fmnist_cnn/model.onnx",
                                           "fmnist_mlp/model.onnx"),
                         [](const auto& info) {
                           return info.param.substr(0, info.param.find('/'));
                         });

v1::JobSpec Int4Group32(const std::string& model) {
  v1::JobSpec spec = W8A8Spec(model);
  spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_calibration()->Clear();
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  spec.mutable_weights()->set_granularity(v1::GRANULARITY_PER_GROUP);
  spec.mutable_weights()->set_group_size(32);
  // MLP fc1 reads 784 = 24.5 x 32 inputs; the CNN's first conv 1 channel.
  spec.mutable_weights()->set_allow_partial_groups(true);
  spec.mutable_sensitivity()->set_disabled(true);
  return spec;
}

// The PTQ issue's bar: weight-only int4 per group of 32 loses at most one
// point. Asymmetric groups meet it by themselves; symmetric groups meet it
// with bias correction (on the CNN, symmetric round-to-nearest alone loses
// 1.4 points: see the closing note of the PTQ issue).
TEST_P(PtqPipelineTest, WeightOnlyInt4Group32LosesAtMostOnePoint) {
  v1::JobSpec spec = Int4Group32(GetParam());
  spec.mutable_weights()->set_asymmetric(true);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->report.fake_quant().accuracy_delta_points(), -1.0 - 1e-9);
  EXPECT_THAT(r->report.layers(0).weight_precision(), HasSubstr("group 32"));
  // Conv groups are input channels at one kernel position; the report says
  // so (the proto once promised one group per output channel).
  EXPECT_EQ(absl::StrContains(r->report.layers(0).weight_precision(),
                              "input channels per kernel position"),
            GetParam().find("cnn") != std::string::npos);

  spec = Int4Group32(GetParam());
  spec.mutable_algorithms()->set_bias_correction(true);
  r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->report.fake_quant().accuracy_delta_points(), -1.0 - 1e-9);
  int corrected = 0;
  for (const v1::LayerReport& l : r->report.layers()) {
    corrected += l.bias_corrected();
  }
  EXPECT_GT(corrected, 0);
}

// Dynamic mode: int8 weights, activations quantized per batch at run time,
// both as fake quantization (DynamicQuantizeLinear in the exported graph)
// and on oneDNN's int8 kernels.
TEST_P(PtqPipelineTest, DynamicW8A8KeepsAccuracy) {
  v1::JobSpec spec = W8A8Spec(GetParam());
  spec.set_mode(v1::QUANT_MODE_DYNAMIC);
  spec.mutable_activations()->Clear();
  spec.mutable_sensitivity()->set_disabled(true);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_GE(r->report.fake_quant().accuracy_delta_points(), -0.5 - 1e-9);
  EXPECT_GE(r->report.int8().accuracy_delta_points(), -0.5 - 1e-9);
  EXPECT_GT(r->report.int8().samples(), 0);
  EXPECT_THAT(r->model_bytes, HasSubstr("DynamicQuantizeLinear"));
}

// An accuracy target the first model misses: the most sensitive layers go
// back to higher precision until it holds, and the report says which.
// Per-tensor int4 on the CNN (tens of points lost) with a 0.5-point target:
// the fallback has work to do.
v1::JobSpec PerTensorInt4WithinHalfAPoint() {
  v1::JobSpec spec = W8A8Spec("fmnist_cnn/model.onnx");
  spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_calibration()->Clear();
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  spec.mutable_weights()->set_granularity(v1::GRANULARITY_PER_TENSOR);
  spec.mutable_accuracy_target()->set_max_accuracy_drop_points(0.5);
  return spec;
}

TEST(PtqPipelineFallbackTest, AccuracyTargetFallsBackTheMostSensitiveLayers) {
  v1::JobSpec spec = PerTensorInt4WithinHalfAPoint();
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::QuantizationReport& rep = r->report;
  EXPECT_TRUE(rep.accuracy_target_met()) << rep.accuracy_target_message();
  EXPECT_GE(rep.fake_quant().accuracy_delta_points(), -0.5 - 1e-9);
  ASSERT_GT(rep.fallback_steps_size(), 0);
  EXPECT_EQ(rep.sensitivity_metric(), "accuracy drop, points");
  // The first step moves the layer with the largest sensitivity.
  double top = -1e9;
  std::string top_node;
  for (const v1::LayerReport& l : rep.layers()) {
    if (l.sensitivity() > top) top = l.sensitivity(), top_node = l.node();
  }
  EXPECT_EQ(rep.fallback_steps(0).node(), top_node);
  // Per-tensor int4 alone costs tens of points on this CNN; some layers
  // still hold int4 or int8 weights afterwards.
  int quantized = 0;
  for (const v1::LayerReport& l : rep.layers()) {
    quantized += l.weight_precision() != "float";
  }
  EXPECT_GT(quantized, 0);
}

// A fixture model edited as another exporter might have written it, in a
// temp dir that lives as long as the object.
class EditedModel {
 public:
  EditedModel(const std::string& rel,
              const std::function<void(onnx::ModelProto&)>& edit) {
    char dir[] = "/tmp/quantd_edited_model_XXXXXX";
    EXPECT_NE(mkdtemp(dir), nullptr);
    dir_ = dir;
    onnx::ModelProto model;
    std::ifstream in(Data(rel), std::ios::binary);
    EXPECT_TRUE(model.ParseFromIstream(&in));
    edit(model);
    std::ofstream out(path(), std::ios::binary);
    EXPECT_TRUE(model.SerializeToOstream(&out));
  }
  ~EditedModel() { std::system(absl::StrCat("rm -rf '", dir_, "'").c_str()); }
  std::string path() const { return dir_ + "/model.onnx"; }

 private:
  std::string dir_;
};

// A model exported with batch fixed at 1 runs through every stage, the
// latency benchmark included (it used to feed 64 samples and fail the job
// after calibration and evaluation had passed).
TEST(PtqPipelineFixedBatchTest, AModelWithBatchOneRunsEveryStage) {
  EditedModel model("fmnist_mlp/model.onnx", [](onnx::ModelProto& m) {
    m.mutable_graph()
        ->mutable_input(0)
        ->mutable_type()
        ->mutable_tensor_type()
        ->mutable_shape()
        ->mutable_dim(0)
        ->set_dim_value(1);
  });
  v1::JobSpec spec = W8A8Spec("fmnist_mlp/model.onnx");
  spec.mutable_model()->set_path(model.path());
  spec.mutable_calibration()->set_max_samples(64);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->report.performance().batch_size(), 1);
  EXPECT_EQ(r->report.fake_quant().samples(), 1000);
  EXPECT_THAT(r->report.warnings(),
              ::testing::Contains(HasSubstr("fixes its batch (dim 0) at 1")));
}

// Trained CNNs often have dead output channels. One whose weights are
// ~1e-37 used to get a denormal weight scale: the fake-quant evaluation
// passed and the int8 evaluation then failed the whole job.
TEST(PtqPipelineDeadChannelTest, ADenormalConvChannelQuantizes) {
  EditedModel model("fmnist_cnn/model.onnx", [](onnx::ModelProto& m) {
    for (onnx::TensorProto& t : *m.mutable_graph()->mutable_initializer()) {
      if (t.dims_size() != 4) continue;
      const int64_t per_channel = t.dims(1) * t.dims(2) * t.dims(3);
      if (t.float_data_size() > 0) {
        for (int64_t i = 0; i < per_channel; ++i) {
          t.set_float_data(i, t.float_data(i) * 1e-36f);
        }
      } else {
        float* w = reinterpret_cast<float*>(t.mutable_raw_data()->data());
        for (int64_t i = 0; i < per_channel; ++i) w[i] *= 1e-36f;
      }
      return;  // the first conv
    }
  });
  v1::JobSpec spec = W8A8Spec("fmnist_cnn/model.onnx");
  spec.mutable_model()->set_path(model.path());
  spec.mutable_calibration()->set_max_samples(64);
  spec.mutable_sensitivity()->set_disabled(true);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->report.int8().samples(), 1000);
  EXPECT_GT(r->report.int8().top1_agreement(), 0.9);
}

// The sensitivity stage is bounded by its time budget: past it, the layers
// not reached are listed and fall back after the measured one (the last
// layer), lowest local SQNR first, and the job still meets its target.
TEST(PtqPipelineFallbackTest, ASensitivityBudgetLeavesLayersUnmeasured) {
  v1::JobSpec spec = PerTensorInt4WithinHalfAPoint();
  spec.mutable_sensitivity()->set_time_budget_seconds(1e-9);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  const v1::QuantizationReport& rep = r->report;
  EXPECT_THAT(rep.warnings(),
              ::testing::Contains(HasSubstr("sensitivity measured for 1 of")));
  EXPECT_TRUE(rep.accuracy_target_met()) << rep.accuracy_target_message();
  ASSERT_GT(rep.fallback_steps_size(), 0);
  std::map<std::string, double> local;
  for (const v1::LayerReport& l : rep.layers()) {
    if (l.has_local_sqnr_db()) local[l.node()] = l.local_sqnr_db();
  }
  // The measured layer moves first: the classifier's last layer (nothing
  // downstream), measured before the others; then the unmeasured ones in
  // ascending local SQNR.
  EXPECT_EQ(rep.fallback_steps(0).node(),
            rep.layers(rep.layers_size() - 1).node());
  for (int i = 2; i < rep.fallback_steps_size(); ++i) {
    const v1::FallbackStep& a = rep.fallback_steps(i - 1);
    const v1::FallbackStep& b = rep.fallback_steps(i);
    if (a.to_precision() != b.to_precision()) break;
    EXPECT_LE(local[a.node()], local[b.node()]) << i;
  }
}

TEST(PtqPipelineCancelTest, StopsWhenCancelled) {
  v1::JobSpec spec = W8A8Spec("fmnist_cnn/model.onnx");
  std::atomic<bool> cancelled{false};
  absl::StatusOr<PipelineResult> r = RunBatchJob(
      spec,
      [&](const ProgressEvent& e) {
        if (e.stage == "calibrate") cancelled = true;
      },
      &cancelled);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
}

TEST(PtqPipelineInputTest, ExplainsBadJobs) {
  v1::JobSpec spec = W8A8Spec("fmnist_cnn/model.onnx");
  spec.add_exclude_nodes("no_such_conv");
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  EXPECT_THAT(r.status().message(), HasSubstr("'no_such_conv'"));

  spec = W8A8Spec("fmnist_mlp/model.onnx");
  spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  spec.mutable_weights()->set_granularity(v1::GRANULARITY_PER_GROUP);
  spec.mutable_weights()->set_group_size(128);  // 784 is not a multiple
  r = RunBatchJob(spec);
  EXPECT_THAT(r.status().message(), HasSubstr("does not divide"));
  EXPECT_THAT(r.status().message(), HasSubstr("allow_partial_groups"));

  spec = W8A8Spec("fmnist_mlp/model.onnx");
  spec.mutable_algorithms()->mutable_awq()->set_enabled(true);
  r = RunBatchJob(spec);
  EXPECT_THAT(r.status().message(), HasSubstr("WEIGHT_ONLY"));

  spec = W8A8Spec("fmnist_cnn/model.onnx");
  spec.mutable_calibration_data()->set_path(Data("tiny_gpt/calib.npz"));
  r = RunBatchJob(spec);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.status().message(), HasSubstr("model input 'input'"));
}

// A model that came with its weights in an external data file is written
// back the same way, however small: the user's tooling expects that layout.
TEST(ExternalDataPipelineTest, ModelLoadedWithExternalDataIsWrittenWithIt) {
  std::ifstream in(Data("fmnist_cnn/model.onnx"), std::ios::binary);
  onnx::ModelProto model;
  ASSERT_TRUE(model.ParseFromIstream(&in));
  std::string data;
  ASSERT_TRUE(MoveToExternalData(&model, "weights.bin", {}, &data).ok());
  ASSERT_FALSE(data.empty());
  const std::string dir = ::testing::TempDir() + "/external_model";
  std::system(absl::StrCat("mkdir -p '", dir, "'").c_str());
  std::ofstream(dir + "/model.onnx", std::ios::binary)
      << model.SerializeAsString();
  std::ofstream(dir + "/weights.bin", std::ios::binary) << data;

  v1::JobSpec spec = W8A8Spec("fmnist_cnn/model.onnx");
  spec.mutable_model()->set_path(dir + "/model.onnx");
  spec.mutable_sensitivity()->set_disabled(true);
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_FALSE(r->model_external_data.empty());
  onnx::ModelProto out;
  ASSERT_TRUE(out.ParseFromString(r->model_bytes));
  int external = 0;
  for (const onnx::TensorProto& t : out.graph().initializer()) {
    external += t.data_location() == onnx::TensorProto::EXTERNAL;
  }
  EXPECT_GT(external, 0);
  // The float size counts the data file, not only the 1-KB .onnx file.
  EXPECT_GT(r->report.size().float_bytes(),
            static_cast<int64_t>(model.ByteSizeLong() + data.size() / 2));
}

// run-job's report says how much memory each stage peaked at; the server's
// (whose jobs share a process) leaves it 0.
TEST(StageMemoryTest, MeasuredOnlyWhenAsked) {
  if (!CurrentRssBytes().has_value()) GTEST_SKIP() << "no /proc/self/status";
  v1::JobSpec spec = W8A8Spec("fmnist_cnn/model.onnx");
  spec.mutable_sensitivity()->set_disabled(true);
  PipelineOptions options;
  options.measure_stage_memory = true;
  absl::StatusOr<PipelineResult> r =
      RunBatchJob(spec, nullptr, nullptr, options);
  ASSERT_TRUE(r.ok()) << r.status();
  ASSERT_FALSE(r->report.stages().empty());
  for (const v1::StageTiming& st : r->report.stages()) {
    // At least the executable and its libraries are resident.
    EXPECT_GT(st.peak_rss_bytes(), 1 << 20) << st.stage();
  }
  absl::StatusOr<PipelineResult> server_like = RunBatchJob(spec);
  ASSERT_TRUE(server_like.ok());
  for (const v1::StageTiming& st : server_like->report.stages()) {
    EXPECT_EQ(st.peak_rss_bytes(), 0) << st.stage();
  }
}

}  // namespace
}  // namespace quantd
