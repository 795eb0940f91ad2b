// The PTQ issue's bars on the tiny transformer LM (testdata/tiny_gpt):
// SmoothQuant W8A8 keeps perplexity within 3% of float, GPTQ int4
// per-channel closes at least half of round-to-nearest's perplexity gap,
// AWQ does better than round-to-nearest at int4 per group. Deterministic:
// fixed data and seed.
#include <cstdio>

#include "absl/algorithm/container.h"
#include "absl/strings/match.h"
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

v1::JobSpec GptSpec() {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Data("tiny_gpt/model.onnx"));
  spec.mutable_calibration_data()->set_path(Data("tiny_gpt/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("tiny_gpt/eval.npz"));
  spec.mutable_sensitivity()->set_disabled(true);  // not under test here
  return spec;
}

v1::JobSpec Int4WeightOnly(v1::Granularity granularity) {
  v1::JobSpec spec = GptSpec();
  spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  spec.mutable_weights()->set_granularity(granularity);
  if (granularity == v1::GRANULARITY_PER_GROUP) {
    spec.mutable_weights()->set_group_size(32);
  }
  return spec;
}

v1::QuantizationReport RunJob(const v1::JobSpec& spec) {
  absl::StatusOr<PipelineResult> r = RunBatchJob(spec);
  EXPECT_TRUE(r.ok()) << r.status();
  return r.ok() ? r->report : v1::QuantizationReport();
}

bool AnyLayerNote(const v1::QuantizationReport& r, const std::string& text) {
  for (const v1::LayerReport& l : r.layers()) {
    for (const std::string& a : l.algorithms()) {
      if (a.find(text) != std::string::npos) return true;
    }
  }
  return false;
}

TEST(PtqAlgorithmsTest, SmoothQuantW8A8KeepsPerplexityWithinThreePercent) {
  v1::JobSpec spec = GptSpec();
  spec.mutable_calibration()->set_method(v1::CALIBRATION_METHOD_PERCENTILE);
  spec.mutable_algorithms()->mutable_smooth_quant()->set_enabled(true);
  const v1::QuantizationReport r = RunJob(spec);
  ASSERT_TRUE(r.fake_quant().is_language_model());
  EXPECT_LE(r.fake_quant().perplexity_delta_percent(), 3.0);
  EXPECT_LE(r.int8().perplexity_delta_percent(), 3.0);
  EXPECT_GT(r.int8().samples(), 0);
  // Scales were folded into LayerNorms where possible, Muls elsewhere; the
  // float reference is the untouched model.
  EXPECT_TRUE(AnyLayerNote(r, "folded into LayerNormalization"));
  EXPECT_TRUE(AnyLayerNote(r, "Mul node"));
  EXPECT_NEAR(r.fake_quant().float_perplexity(), 7.425, 0.01);
}

TEST(PtqAlgorithmsTest, GptqClosesAtLeastHalfOfTheInt4PerChannelGap) {
  const v1::QuantizationReport rtn =
      RunJob(Int4WeightOnly(v1::GRANULARITY_PER_CHANNEL));
  v1::JobSpec spec = Int4WeightOnly(v1::GRANULARITY_PER_CHANNEL);
  spec.mutable_algorithms()->mutable_gptq()->set_enabled(true);
  const v1::QuantizationReport gptq = RunJob(spec);
  const double rtn_gap = rtn.fake_quant().perplexity_delta_percent();
  const double gptq_gap = gptq.fake_quant().perplexity_delta_percent();
  EXPECT_GT(rtn_gap, 0.5);  // there is a gap to close
  EXPECT_LE(gptq_gap, 0.5 * rtn_gap)
      << "RTN +" << rtn_gap << "%, GPTQ +" << gptq_gap << "%";
  EXPECT_TRUE(AnyLayerNote(gptq, "gptq: proxy loss"));
}

// Block-by-block GPTQ (the default) sees the error of the blocks before
// each layer and compensates for it; one-pass GPTQ rounds every layer
// against the float model's inputs.
TEST(PtqAlgorithmsTest, SequentialGptqBeatsOnePassGptq) {
  v1::JobSpec spec = Int4WeightOnly(v1::GRANULARITY_PER_CHANNEL);
  spec.mutable_algorithms()->mutable_gptq()->set_enabled(true);
  const v1::QuantizationReport sequential = RunJob(spec);
  spec.mutable_algorithms()->mutable_gptq()->set_one_pass(true);
  const v1::QuantizationReport one_pass = RunJob(spec);
  const double seq_gap = sequential.fake_quant().perplexity_delta_percent();
  const double one_gap = one_pass.fake_quant().perplexity_delta_percent();
  std::printf("int4 per-channel GPTQ: sequential +%.3f%%, one pass +%.3f%%\n",
              seq_gap, one_gap);
  EXPECT_LT(seq_gap, one_gap);
  EXPECT_TRUE(AnyLayerNote(sequential, "gptq: sequential, block"));
  EXPECT_FALSE(AnyLayerNote(one_pass, "gptq: sequential"));
}

// WEIGHT_ONLY jobs run the quantized model on the weight-only kernel: its
// evaluation is the QDQ artifact's (fake quant) up to f32 rounding, and the
// report says what ran and the weight bytes each model held.
TEST(PtqAlgorithmsTest, WeightOnlyJobsRunOnTheWeightOnlyKernel) {
  const v1::QuantizationReport r =
      RunJob(Int4WeightOnly(v1::GRANULARITY_PER_GROUP));
  ASSERT_GT(r.int8().samples(), 0);
  EXPECT_NEAR(r.int8().quantized_perplexity(),
              r.fake_quant().quantized_perplexity(), 1e-3);
  EXPECT_GE(r.int8().top1_agreement(), r.fake_quant().top1_agreement() - 0.01);
  EXPECT_THAT(r.performance().quantized_kernels(),
              HasSubstr("weight-only int4 MatMul"));
  EXPECT_GT(r.performance().speedup(), 0);
  // The tiny GPT's weights are all MatMuls (no Conv): int4 codes and
  // per-group scales are under a third of the f32 bytes.
  EXPECT_GT(r.performance().float_weight_bytes(), 0);
  EXPECT_LT(3 * r.performance().quantized_weight_bytes(),
            r.performance().float_weight_bytes());
  for (const std::string& w : r.warnings()) {
    EXPECT_THAT(w, ::testing::Not(HasSubstr("fake quantization only")));
  }
}

TEST(PtqAlgorithmsTest, AwqBeatsRoundToNearestAtInt4Group32) {
  const v1::QuantizationReport rtn =
      RunJob(Int4WeightOnly(v1::GRANULARITY_PER_GROUP));
  v1::JobSpec spec = Int4WeightOnly(v1::GRANULARITY_PER_GROUP);
  spec.mutable_algorithms()->mutable_awq()->set_enabled(true);
  const v1::QuantizationReport awq = RunJob(spec);
  EXPECT_LT(awq.fake_quant().perplexity_delta_percent(),
            rtn.fake_quant().perplexity_delta_percent());
  EXPECT_TRUE(AnyLayerNote(awq, "awq alpha"));
  // AWQ composes with GPTQ (scales first, then error-compensated rounding).
  spec.mutable_algorithms()->mutable_gptq()->set_enabled(true);
  const v1::QuantizationReport both = RunJob(spec);
  EXPECT_LT(both.fake_quant().perplexity_delta_percent(),
            rtn.fake_quant().perplexity_delta_percent());
  EXPECT_TRUE(AnyLayerNote(both, "gptq"));
}

v1::JobSpec CnnInt4PerChannel() {
  v1::JobSpec spec;
  spec.mutable_model()->set_path(Data("fmnist_cnn/model.onnx"));
  spec.mutable_calibration_data()->set_path(Data("fmnist/calib.npz"));
  spec.mutable_evaluation_data()->set_path(Data("fmnist/eval.npz"));
  spec.mutable_sensitivity()->set_disabled(true);
  spec.set_mode(v1::QUANT_MODE_WEIGHT_ONLY);
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  return spec;
}

// GPTQ rounds each Conv against its input-patch Hessian, and block
// reconstruction tunes what GPTQ left: measured 88.0% top-1 agreement for
// RTN, 96.6% GPTQ (86.4% when Convs got round-to-nearest), 96.2% learned
// rounding alone, 97.1% both (bench/frontier, MODELS=cnn). The bars leave
// room for other CPUs' rounding: one sample is 0.1 point here.
TEST(PtqAlgorithmsTest, GptqAndLearnedRoundingCloseTheCnnInt4PerChannelGap) {
  const v1::QuantizationReport rtn = RunJob(CnnInt4PerChannel());
  v1::JobSpec spec = CnnInt4PerChannel();
  spec.mutable_algorithms()->mutable_gptq()->set_enabled(true);
  const v1::QuantizationReport gptq = RunJob(spec);
  spec.mutable_algorithms()->mutable_learned_rounding()->set_enabled(true);
  const v1::QuantizationReport both = RunJob(spec);
  spec = CnnInt4PerChannel();
  spec.mutable_algorithms()->mutable_learned_rounding()->set_enabled(true);
  const v1::QuantizationReport learned = RunJob(spec);
  std::printf(
      "CNN int4 per-channel top-1 agreement: RTN %.3f, GPTQ %.3f, "
      "learned %.3f, GPTQ + learned %.3f\n",
      rtn.fake_quant().top1_agreement(), gptq.fake_quant().top1_agreement(),
      learned.fake_quant().top1_agreement(),
      both.fake_quant().top1_agreement());
  const double rtn_top1 = rtn.fake_quant().top1_agreement();
  EXPECT_GT(gptq.fake_quant().top1_agreement(), rtn_top1 + 0.04);
  EXPECT_GT(learned.fake_quant().top1_agreement(), rtn_top1 + 0.04);
  EXPECT_GT(both.fake_quant().top1_agreement(),
            gptq.fake_quant().top1_agreement() - 0.01);
  EXPECT_TRUE(AnyLayerNote(gptq, "input patches"));  // the convs
  EXPECT_TRUE(AnyLayerNote(learned, "block reconstruction: block 1 of"));
  EXPECT_TRUE(AnyLayerNote(learned, "input patches"));  // per Conv, too
  EXPECT_TRUE(AnyLayerNote(both, "of gptq's"));
}

// Per-group Conv scales (input channels at one kernel tap): GPTQ rounds
// them with the columns reordered tap-major; a Conv whose input channels
// per group the group size does not divide keeps round-to-nearest and the
// report says why, once per layer. The CNN's Convs have 1, 16, 1
// (depthwise) and 32 input channels per group: groups of 32 fit the last.
TEST(PtqAlgorithmsTest, GptqRoundsPerGroupConvsOrSaysWhyNot) {
  v1::JobSpec spec = CnnInt4PerChannel();
  spec.mutable_weights()->set_granularity(v1::GRANULARITY_PER_GROUP);
  spec.mutable_weights()->set_group_size(32);
  spec.mutable_weights()->set_allow_partial_groups(true);
  const v1::QuantizationReport rtn = RunJob(spec);
  spec.mutable_algorithms()->mutable_gptq()->set_enabled(true);
  const v1::QuantizationReport gptq = RunJob(spec);
  std::printf("CNN int4 g32 top-1 agreement: RTN %.3f, GPTQ %.3f\n",
              rtn.fake_quant().top1_agreement(),
              gptq.fake_quant().top1_agreement());
  // Measured 95.0% both: 4-bit groups of at most 32 weights lose little.
  EXPECT_GE(gptq.fake_quant().top1_agreement(),
            rtn.fake_quant().top1_agreement() - 0.01);
  int rounded_convs = 0, explained_convs = 0;
  for (const v1::LayerReport& l : gptq.layers()) {
    int gptq_notes = 0;
    for (const std::string& a : l.algorithms()) {
      if (absl::StartsWith(a, "gptq: not applied") ||
          absl::StartsWith(a, "gptq: proxy loss")) {
        ++gptq_notes;
      }
      if (l.op_type() != "Conv") continue;
      if (absl::StrContains(a, "input patches")) ++rounded_convs;
      if (absl::StrContains(a, "does not divide the Conv's")) {
        ++explained_convs;
      }
    }
    EXPECT_EQ(gptq_notes, 1) << l.node();
  }
  EXPECT_EQ(rounded_convs, 1);
  EXPECT_EQ(explained_convs, 3);
}

// 2-bit weights in int4 containers: round-to-nearest loses +25% perplexity
// on the tiny GPT; learned rounding closes most of it (measured +4.97% at
// 200 steps, GPTQ +5.04%).
TEST(PtqAlgorithmsTest, LearnedRoundingClosesMostOfTheInt2Gap) {
  v1::JobSpec spec = Int4WeightOnly(v1::GRANULARITY_PER_GROUP);
  spec.mutable_weights()->set_bits(2);
  spec.mutable_weights()->set_asymmetric(true);
  const v1::QuantizationReport rtn = RunJob(spec);
  spec.mutable_algorithms()->mutable_learned_rounding()->set_enabled(true);
  spec.mutable_algorithms()->mutable_learned_rounding()->set_iterations(100);
  const v1::QuantizationReport learned = RunJob(spec);
  const double rtn_gap = rtn.fake_quant().perplexity_delta_percent();
  const double learned_gap = learned.fake_quant().perplexity_delta_percent();
  std::printf("int2 g32: RTN +%.2f%%, learned rounding +%.2f%%\n", rtn_gap,
              learned_gap);
  EXPECT_LT(learned_gap, 0.35 * rtn_gap);
  EXPECT_TRUE(AnyLayerNote(learned, "learned rounding: output error"));
  for (const v1::LayerReport& l : learned.layers()) {
    EXPECT_THAT(l.weight_precision(), HasSubstr("[-2,1]")) << l.node();
  }
}

// With GPTQ too: the int8 fallback layers are rounded by GPTQ after the
// quantize stage, so the Hessians must outlive it when a target is set.
// (Sequential GPTQ alone reaches +0.35% here, so the target is below it.)
class PerplexityTargetTest : public ::testing::TestWithParam<bool> {};

TEST_P(PerplexityTargetTest, FallsBackLayers) {
  v1::JobSpec spec = Int4WeightOnly(v1::GRANULARITY_PER_CHANNEL);
  spec.mutable_algorithms()->mutable_gptq()->set_enabled(GetParam());
  spec.mutable_sensitivity()->set_disabled(false);
  spec.mutable_sensitivity()->set_max_samples(32);
  spec.mutable_accuracy_target()->set_max_perplexity_increase_percent(0.2);
  const v1::QuantizationReport r = RunJob(spec);
  EXPECT_TRUE(r.accuracy_target_met()) << r.accuracy_target_message();
  EXPECT_LE(r.fake_quant().perplexity_delta_percent(), 0.2);
  ASSERT_GT(r.fallback_steps_size(), 0);
  EXPECT_EQ(r.fallback_steps(0).from_precision(), "int4");
  EXPECT_EQ(r.fallback_steps(0).to_precision(), "int8");
  EXPECT_EQ(r.sensitivity_metric(), "perplexity increase, percent");
  int int8_layers = 0;
  for (const v1::LayerReport& l : r.layers()) {
    if (l.weight_precision().rfind("int8", 0) == 0) {
      ++int8_layers;
      EXPECT_THAT(l.reason(), HasSubstr("fallback step"));
    }
  }
  EXPECT_EQ(int8_layers, r.fallback_steps_size());
  if (GetParam()) {
    EXPECT_TRUE(AnyLayerNote(r, "gptq: proxy loss"));
  }
}

INSTANTIATE_TEST_SUITE_P(Gptq, PerplexityTargetTest, ::testing::Bool());

}  // namespace
}  // namespace quantd
