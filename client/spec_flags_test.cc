#include "client/spec_flags.h"

#include "gtest/gtest.h"

namespace quantd::client {
namespace {

TEST(SpecFlags, NoFlagsLeaveTheSpecAlone) {
  v1::JobSpec spec;
  spec.set_mode(v1::QUANT_MODE_DYNAMIC);
  spec.set_display_name("from --spec");
  ASSERT_TRUE(ApplyQuantizeFlags(QuantizeFlags{}, &spec).ok());
  EXPECT_EQ(spec.mode(), v1::QUANT_MODE_DYNAMIC);
  EXPECT_EQ(spec.display_name(), "from --spec");
  EXPECT_FALSE(spec.has_algorithms());
  EXPECT_FALSE(spec.has_weights());
}

TEST(SpecFlags, EveryFlagFillsItsField) {
  QuantizeFlags f;
  f.method = "qat";
  f.mode = "weight-only";
  f.weights = "int4";
  f.granularity = "per-group";
  f.group_size = 64;
  f.calibration = "entropy";
  f.smoothquant_alpha = 0.75;
  f.gptq = true;
  f.awq = true;
  f.bias_correction = true;
  f.cross_layer_equalization = true;
  f.rotate_heads = true;
  f.rotate_online = true;
  f.max_accuracy_drop = 1.5;
  f.max_perplexity_increase = 3;
  f.labels = {"model=resnet", "team=vision=x"};
  f.task = "segmentation";
  v1::JobSpec spec;
  ASSERT_TRUE(ApplyQuantizeFlags(f, &spec).ok());
  EXPECT_EQ(spec.method(), v1::METHOD_QAT);
  EXPECT_EQ(spec.mode(), v1::QUANT_MODE_WEIGHT_ONLY);
  EXPECT_EQ(spec.weights().type(), v1::QUANT_DATA_TYPE_INT4);
  EXPECT_EQ(spec.weights().granularity(), v1::GRANULARITY_PER_GROUP);
  EXPECT_EQ(spec.weights().group_size(), 64);
  EXPECT_EQ(spec.calibration().method(), v1::CALIBRATION_METHOD_ENTROPY);
  EXPECT_TRUE(spec.algorithms().smooth_quant().enabled());
  EXPECT_DOUBLE_EQ(spec.algorithms().smooth_quant().alpha(), 0.75);
  EXPECT_TRUE(spec.algorithms().gptq().enabled());
  EXPECT_TRUE(spec.algorithms().awq().enabled());
  EXPECT_TRUE(spec.algorithms().cross_layer_equalization());
  EXPECT_TRUE(spec.algorithms().rotation().enabled());
  EXPECT_TRUE(spec.algorithms().rotation().value_output_heads());
  EXPECT_TRUE(spec.algorithms().rotation().online_down_projections());
  EXPECT_TRUE(spec.algorithms().bias_correction());
  EXPECT_DOUBLE_EQ(spec.accuracy_target().max_accuracy_drop_points(), 1.5);
  EXPECT_DOUBLE_EQ(spec.accuracy_target().max_perplexity_increase_percent(), 3);
  EXPECT_EQ(spec.labels().at("model"), "resnet");
  EXPECT_EQ(spec.labels().at("team"), "vision=x");
  EXPECT_EQ(spec.evaluation().task(), v1::EVALUATION_TASK_SEGMENTATION);
}

TEST(SpecFlags, FlagsOverrideTheSpecFile) {
  v1::JobSpec spec;
  spec.set_mode(v1::QUANT_MODE_DYNAMIC);
  spec.mutable_weights()->set_type(v1::QUANT_DATA_TYPE_INT4);
  QuantizeFlags f;
  f.mode = "static";
  f.calibration = "minmax";
  f.method = "ptq";
  f.granularity = "per-tensor";
  ASSERT_TRUE(ApplyQuantizeFlags(f, &spec).ok());
  EXPECT_EQ(spec.mode(), v1::QUANT_MODE_STATIC);
  EXPECT_EQ(spec.method(), v1::METHOD_PTQ);
  EXPECT_EQ(spec.calibration().method(), v1::CALIBRATION_METHOD_MIN_MAX);
  EXPECT_EQ(spec.weights().granularity(), v1::GRANULARITY_PER_TENSOR);
  EXPECT_EQ(spec.weights().type(), v1::QUANT_DATA_TYPE_INT4);  // kept
}

TEST(SpecFlags, Int3AndInt2AreNarrowInt4) {
  for (auto [name, bits] : {std::pair{"int3", 3}, std::pair{"int2", 2}}) {
    QuantizeFlags f;
    f.weights = name;
    v1::JobSpec spec;
    ASSERT_TRUE(ApplyQuantizeFlags(f, &spec).ok());
    EXPECT_EQ(spec.weights().type(), v1::QUANT_DATA_TYPE_INT4);
    EXPECT_EQ(spec.weights().bits(), bits);
  }
  QuantizeFlags f;
  f.weights = "int4";
  v1::JobSpec spec;
  ASSERT_TRUE(ApplyQuantizeFlags(f, &spec).ok());
  EXPECT_EQ(spec.weights().bits(), 0);
}

TEST(SpecFlags, LearnedRoundingTakesOptionalSteps) {
  QuantizeFlags f;
  f.learned_rounding_steps = -1;  // the flag alone
  v1::JobSpec spec;
  ASSERT_TRUE(ApplyQuantizeFlags(f, &spec).ok());
  EXPECT_TRUE(spec.algorithms().learned_rounding().enabled());
  EXPECT_EQ(spec.algorithms().learned_rounding().iterations(), 0);  // default
  f.learned_rounding_steps = 500;
  ASSERT_TRUE(ApplyQuantizeFlags(f, &spec).ok());
  EXPECT_EQ(spec.algorithms().learned_rounding().iterations(), 500);
  f.learned_rounding_steps = -7;
  EXPECT_FALSE(ApplyQuantizeFlags(f, &spec).ok());
}

TEST(SpecFlags, GroupSizeAloneMeansPerGroup) {
  QuantizeFlags f;
  f.group_size = 128;
  v1::JobSpec spec;
  ASSERT_TRUE(ApplyQuantizeFlags(f, &spec).ok());
  EXPECT_EQ(spec.weights().granularity(), v1::GRANULARITY_PER_GROUP);
}

TEST(SpecFlags, BadValuesNameTheFlagAndTheChoices) {
  auto error = [](QuantizeFlags f) {
    v1::JobSpec spec;
    absl::Status s = ApplyQuantizeFlags(f, &spec);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
    return std::string(s.message());
  };
  QuantizeFlags f;
  f.mode = "fast";
  EXPECT_EQ(error(f), "--mode takes static, dynamic, weight-only; got 'fast'");
  f = {};
  f.weights = "int1";
  EXPECT_NE(error(f).find("--weights takes int8, int4, int3, int2"),
            std::string::npos);
  f = {};
  f.task = "detection";
  EXPECT_NE(error(f).find("--task takes classification, language-model"),
            std::string::npos);
  f = {};
  f.smoothquant_alpha = 1.5;
  EXPECT_NE(error(f).find("--smoothquant"), std::string::npos);
  f = {};
  f.group_size = 0;
  EXPECT_NE(error(f).find("--group-size"), std::string::npos);
  f = {};
  f.labels = {"novalue"};
  EXPECT_NE(error(f).find("--label takes key=value"), std::string::npos);
  f = {};
  f.max_accuracy_drop = -1;
  EXPECT_NE(error(f).find("--max-accuracy-drop"), std::string::npos);
}

}  // namespace
}  // namespace quantd::client
