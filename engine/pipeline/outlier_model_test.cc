// Evidence on a model with activation outliers (issue 15): the tiny GPT with
// outlier channels injected into its LayerNorm outputs (same float
// function, engine/testing/outlier_model.h). Per-tensor W8A8 must spend its
// 256 activation levels on the outlier range, so the other channels lose
// resolution; SmoothQuant moves the outliers' scale into the weights and
// should recover most of it; AWQ and learned rounding address the int4
// weights the outliers make hard; the residual-stream rotation (with its
// LayerNorm fold) removes them. Prints the tables the README quotes and
// holds the bars: the float function is unchanged, the outliers hurt plain
// W8A8, each method closes the gap it is for.
#include "engine/testing/outlier_model.h"

#include <stdlib.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/onnx/onnx_convert.h"
#include "engine/passes/layer_norm_folding.h"
#include "engine/pipeline/pipeline.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

std::string Data(const std::string& rel) {
  return absl::StrCat(QUANTD_TESTDATA_DIR, "/", rel);
}

v1::JobSpec W8A8(const std::string& model, bool smooth_quant,
                 v1::CalibrationMethod calibration) {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(model);
  spec.mutable_calibration_data()->set_path(Data("tiny_gpt/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("tiny_gpt/eval.npz"));
  spec.mutable_sensitivity()->set_disabled(true);
  spec.mutable_benchmark()->set_disabled(true);
  spec.mutable_calibration()->set_method(calibration);
  spec.mutable_algorithms()->mutable_smooth_quant()->set_enabled(smooth_quant);
  return spec;
}

v1::EvaluationMetrics RunFakeQuant(const v1::JobSpec& spec) {
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->report.fake_quant() : v1::EvaluationMetrics();
}

class OutlierModelTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    char tmpl[] = "/tmp/quantd_outliers_XXXXXX";
    dir_ = new std::string(mkdtemp(tmpl));
    outlier_model_ = new std::string(*dir_ + "/outlier_gpt.onnx");
    absl::StatusOr<int> groups = outliers::WriteModelWithOutliers(
        Data("tiny_gpt/model.onnx"), *outlier_model_, kFactor, 4);
    ASSERT_TRUE(groups.ok()) << groups.status();
    std::printf("outliers x%.0f in 4 channels of %d LayerNorm outputs\n",
                kFactor, *groups);
  }
  static void TearDownTestSuite() {
    std::system(absl::StrCat("rm -rf '", *dir_, "'").c_str());
    delete dir_;
    delete outlier_model_;
  }

  static constexpr float kFactor = 40.f;
  static std::string* dir_;
  static std::string* outlier_model_;
};

std::string* OutlierModelTest::dir_ = nullptr;
std::string* OutlierModelTest::outlier_model_ = nullptr;

TEST_F(OutlierModelTest, SmoothQuantRecoversWhatOutliersCostW8A8) {
  const std::string original = Data("tiny_gpt/model.onnx");
  struct Row {
    const char* name;
    bool smooth;
    v1::CalibrationMethod calibration;
  };
  const Row rows[] = {
      {"W8A8 min-max", false, v1::CALIBRATION_METHOD_MIN_MAX},
      {"W8A8 percentile", false, v1::CALIBRATION_METHOD_PERCENTILE},
      {"W8A8 SmoothQuant + percentile", true,
       v1::CALIBRATION_METHOD_PERCENTILE},
  };
  double delta[2][3] = {};
  double float_ppl[2] = {};
  std::printf("%-30s %22s %22s\n", "perplexity +%", "tiny GPT",
              "with outliers");
  for (int r = 0; r < 3; ++r) {
    for (int m = 0; m < 2; ++m) {
      const v1::EvaluationMetrics e =
          RunFakeQuant(W8A8(m == 0 ? original : *outlier_model_, rows[r].smooth,
                            rows[r].calibration));
      delta[m][r] = e.perplexity_delta_percent();
      float_ppl[m] = e.float_perplexity();
    }
    std::printf("%-30s %21.2f%% %21.2f%%\n", rows[r].name, delta[0][r],
                delta[1][r]);
  }
  std::printf("float perplexity: %.4f and %.4f\n", float_ppl[0], float_ppl[1]);
  // The same function in float.
  EXPECT_NEAR(float_ppl[1], float_ppl[0], 1e-3 * float_ppl[0]);
  // Outliers hurt per-tensor W8A8 ...
  EXPECT_GT(delta[1][1], 2 * delta[0][1] + 1.0);
  // ... and SmoothQuant takes most of that back.
  EXPECT_LT(delta[1][2], 0.5 * delta[1][1]);
}

enum class Method { kRtn, kGptq, kAwq, kSmoothQuant, kLearned };

const char* Name(Method m) {
  switch (m) {
    case Method::kRtn:
      return "RTN";
    case Method::kGptq:
      return "GPTQ";
    case Method::kAwq:
      return "AWQ";
    case Method::kSmoothQuant:
      return "SmoothQuant";
    case Method::kLearned:
      return "learned (100)";
  }
  return "";
}

// Int4 weights: weight-only, or with int8 activations (W4A8, static).
v1::JobSpec W4(const std::string& model, bool int8_activations,
               v1::Granularity granularity, Method method) {
  v1::JobSpec spec = W8A8(model, method == Method::kSmoothQuant,
                          v1::CALIBRATION_METHOD_PERCENTILE);
  if (!int8_activations) spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  spec.mutable_weights()->set_granularity(granularity);
  if (granularity == v1::GRANULARITY_PER_GROUP) {
    spec.mutable_weights()->set_group_size(32);
  }
  v1::Algorithms* a = spec.mutable_algorithms();
  a->mutable_gptq()->set_enabled(method == Method::kGptq);
  a->mutable_awq()->set_enabled(method == Method::kAwq);
  if (method == Method::kLearned) {
    a->mutable_learned_rounding()->set_enabled(true);
    a->mutable_learned_rounding()->set_iterations(100);
  }
  return spec;
}

// The weight rows an outlier channel reads are `kFactor` times smaller, so
// per-channel and per-group int4 steps (set by the other rows) round them
// away: RTN and GPTQ lose much more than on the original; AWQ, which scales
// salient input channels up before rounding, keeps most. With int8
// activations the outliers' range dominates again, and only SmoothQuant
// removes it.
TEST_F(OutlierModelTest, AwqAndSmoothQuantHoldInt4OnOutliers) {
  const std::string original = Data("tiny_gpt/model.onnx");
  struct Row {
    bool int8_activations;
    v1::Granularity granularity;
    Method method;
    double delta[2];
  };
  std::vector<Row> rows;
  for (v1::Granularity g :
       {v1::GRANULARITY_PER_CHANNEL, v1::GRANULARITY_PER_GROUP}) {
    for (Method m : {Method::kRtn, Method::kGptq, Method::kAwq}) {
      rows.push_back({false, g, m, {}});
    }
  }
  rows.push_back({false, v1::GRANULARITY_PER_CHANNEL, Method::kLearned, {}});
  for (Method m :
       {Method::kRtn, Method::kGptq, Method::kSmoothQuant, Method::kLearned}) {
    rows.push_back({true, v1::GRANULARITY_PER_CHANNEL, m, {}});
  }
  std::printf("%-26s %12s %14s\n", "perplexity +%", "tiny GPT",
              "with outliers");
  for (Row& r : rows) {
    for (int m = 0; m < 2; ++m) {
      r.delta[m] = RunFakeQuant(W4(m == 0 ? original : *outlier_model_,
                                   r.int8_activations, r.granularity, r.method))
                       .perplexity_delta_percent();
    }
    std::printf("%-4s %-4s %-16s %11.2f%% %13.2f%%\n",
                r.int8_activations ? "W4A8" : "W4",
                r.granularity == v1::GRANULARITY_PER_GROUP ? "g32" : "pc",
                Name(r.method), r.delta[0], r.delta[1]);
  }
  const auto outlier_delta = [&](bool act, v1::Granularity g, Method m) {
    for (const Row& r : rows) {
      if (r.int8_activations == act && r.granularity == g && r.method == m) {
        return r.delta[1];
      }
    }
    return -1.0;
  };
  for (v1::Granularity g :
       {v1::GRANULARITY_PER_CHANNEL, v1::GRANULARITY_PER_GROUP}) {
    EXPECT_LT(outlier_delta(false, g, Method::kAwq),
              0.5 * outlier_delta(false, g, Method::kRtn));
  }
  EXPECT_LT(
      outlier_delta(true, v1::GRANULARITY_PER_CHANNEL, Method::kSmoothQuant),
      0.25 * outlier_delta(true, v1::GRANULARITY_PER_CHANNEL, Method::kRtn));
  // Learned rounding sees the block's outputs, outliers included.
  for (bool act : {false, true}) {
    EXPECT_LT(outlier_delta(act, v1::GRANULARITY_PER_CHANNEL, Method::kLearned),
              outlier_delta(act, v1::GRANULARITY_PER_CHANNEL, Method::kRtn));
  }
}

// Writes `in` with its LayerNorm gains and biases folded into the layers
// that read them and nothing else: the rotation's first step alone, to
// tell how much of the rotation's effect is the fold's.
void WriteFoldedOnly(const std::string& in, const std::string& out) {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(in);
  ASSERT_TRUE(m.ok()) << m.status();
  absl::StatusOr<LayerNormFoldOutcome> folded = FoldLayerNormAffine(m->graph);
  ASSERT_TRUE(folded.ok()) << folded.status();
  ASSERT_EQ(folded->folded.size(), 5u) << absl::StrJoin(folded->skipped, "\n");
  std::ofstream f(out, std::ios::binary);
  ASSERT_TRUE(GraphToModelProto(m->graph, m->ir_version, "test")
                  .SerializeToOstream(&f));
}

// Rotation (issue 15's target): W4A8 of the outlier model within 2%
// perplexity of float, where RTN W4A8 is not. The injected outliers live
// in LayerNorm gains, which the rotation's fold moves into the weights, so
// the fold alone is a row of its own.
TEST_F(OutlierModelTest, RotationPutsW4A8OfTheOutlierModelWithinTwoPercent) {
  const std::string original = Data("tiny_gpt/model.onnx");
  const std::string folded[2] = {*dir_ + "/gpt_folded.onnx",
                                 *dir_ + "/outlier_gpt_folded.onnx"};
  WriteFoldedOnly(original, folded[0]);
  WriteFoldedOnly(*outlier_model_, folded[1]);
  struct Row {
    const char* name;
    bool act, rotate, folded;
    Method method;
    double delta[2];
  };
  std::vector<Row> rows = {
      {"W4A8 RTN", true, false, false, Method::kRtn, {}},
      {"W4A8 RTN, LN fold only", true, false, true, Method::kRtn, {}},
      {"W4A8 RTN + rotation", true, true, false, Method::kRtn, {}},
      {"W4A8 GPTQ + rotation", true, true, false, Method::kGptq, {}},
      {"W4 RTN", false, false, false, Method::kRtn, {}},
      {"W4 RTN + rotation", false, true, false, Method::kRtn, {}},
      {"W4 GPTQ + rotation", false, true, false, Method::kGptq, {}},
      {"W8A8 RTN + rotation", true, true, false, Method::kRtn, {}},
  };
  std::printf("%-26s %12s %14s\n", "perplexity +% (per-channel)", "tiny GPT",
              "with outliers");
  for (Row& r : rows) {
    for (int m = 0; m < 2; ++m) {
      const std::string model =
          r.folded ? folded[m] : (m == 0 ? original : *outlier_model_);
      v1::JobSpec spec =
          W4(model, r.act, v1::GRANULARITY_PER_CHANNEL, r.method);
      if (r.name[1] == '8') spec.clear_weights();  // W8A8: int8 defaults
      spec.mutable_algorithms()->mutable_rotation()->set_enabled(r.rotate);
      r.delta[m] = RunFakeQuant(spec).perplexity_delta_percent();
    }
    std::printf("%-26s %11.2f%% %13.2f%%\n", r.name, r.delta[0], r.delta[1]);
  }
  EXPECT_GT(rows[0].delta[1], 10.0);  // RTN W4A8 on outliers: far off
  // The target, with GPTQ; RTN lands near 2% (1.96% on the machine the
  // README's table comes from), so its bar leaves room for rounding.
  EXPECT_LT(rows[3].delta[1], 2.0);
  EXPECT_LT(rows[2].delta[1], 2.5);
  EXPECT_LT(rows[2].delta[1], 0.1 * rows[0].delta[1]);
  // Rotation never makes the weight-only model worse than plain RTN.
  EXPECT_LT(rows[5].delta[1], rows[4].delta[1]);
}

}  // namespace
}  // namespace quantd
