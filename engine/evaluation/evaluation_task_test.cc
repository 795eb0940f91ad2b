#include "engine/evaluation/evaluation_task.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

ValueInfo Info(const std::string& name, DataType type, Shape shape) {
  ValueInfo v;
  v.name = name;
  v.dtype = type;
  v.has_shape = true;
  v.shape = std::move(shape);
  return v;
}

DataFacts Rows(const std::string& input, Shape shape, bool labels = false) {
  DataFacts facts;
  facts.shapes[input] = std::move(shape);
  facts.has_labels = labels;
  return facts;
}

// Only the interface matters to the inference: inputs and outputs.
Graph Model(std::vector<ValueInfo> inputs, std::vector<ValueInfo> outputs) {
  Graph g;
  g.inputs = std::move(inputs);
  g.outputs = std::move(outputs);
  return g;
}

TEST(EvaluationTaskTest, ABertClassifierIsNotALanguageModel) {
  // The outside run's failure: a classifier whose input is called
  // input_ids was evaluated as a next-token model.
  const Graph bert = Model({Info("input_ids", DataType::kInt64, {-1, -1}),
                            Info("attention_mask", DataType::kInt64, {-1, -1})},
                           {Info("logits", DataType::kFloat32, {-1, 2})});
  absl::StatusOr<ResolvedTask> t =
      ResolveEvaluationTask({}, bert, Rows("input_ids", {64, 128}));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->task, OutputTask::kClassification);
  EXPECT_EQ(t->note, "");
}

TEST(EvaluationTaskTest, InfersALanguageModelFromStructureNotNames) {
  const Graph gpt = Model({Info("tokens", DataType::kInt64, {-1, -1})},
                          {Info("out", DataType::kFloat32, {-1, -1, 256})});
  absl::StatusOr<ResolvedTask> t =
      ResolveEvaluationTask({}, gpt, Rows("tokens", {32, 65}));
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->task, OutputTask::kLanguageModel);
  EXPECT_EQ(t->token_input, "tokens");
  EXPECT_THAT(t->note, HasSubstr("evaluation.task to override"));
  // With labels it is a token classifier (per-position classes).
  t = ResolveEvaluationTask({}, gpt, Rows("tokens", {32, 65}, true));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->task, OutputTask::kClassification);
  // A decoder step fed one token per row ([N, 1] for a static T of 1, as
  // bench/models/make_gpt2.py exports it) has no next token to score.
  const Graph step = Model({Info("token", DataType::kInt64, {-1, 1})},
                           {Info("logits", DataType::kFloat32, {-1, 1, 256})});
  t = ResolveEvaluationTask({}, step, Rows("token", {8, 1}));
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->task, OutputTask::kClassification);
}

TEST(EvaluationTaskTest, MapsAndScoresGetOutputFidelity) {
  for (const Shape& out : {Shape{-1, 1, 64, 64}, Shape{-1, 1}}) {
    const Graph g = Model({Info("image", DataType::kFloat32, {-1, 3, 64, 64})},
                          {Info("map", DataType::kFloat32, out)});
    absl::StatusOr<ResolvedTask> t = ResolveEvaluationTask({}, g, {});
    ASSERT_TRUE(t.ok()) << t.status();
    EXPECT_EQ(t->task, OutputTask::kOutputFidelity);
    EXPECT_THAT(t->note, HasSubstr("EVALUATION_TASK_SEGMENTATION"));
  }
}

TEST(EvaluationTaskTest, TheSpecDecidesAndIsChecked) {
  const Graph bert =
      Model({Info("input_ids", DataType::kInt64, {-1, -1}),
             Info("attention_mask", DataType::kInt64, {-1, -1})},
            {Info("logits", DataType::kFloat32, {-1, -1, 30522})});
  v1::EvaluationConfig config;
  config.set_task(v1::EVALUATION_TASK_LANGUAGE_MODEL);
  absl::StatusOr<ResolvedTask> t = ResolveEvaluationTask(config, bert, {});
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("evaluation.token_input"));
  config.set_token_input("input_ids");
  t = ResolveEvaluationTask(config, bert, {});
  ASSERT_TRUE(t.ok()) << t.status();
  EXPECT_EQ(t->token_input, "input_ids");
  config.set_token_input("pixel_values");
  EXPECT_FALSE(ResolveEvaluationTask(config, bert, {}).ok());

  config.Clear();
  config.set_task(v1::EVALUATION_TASK_SEGMENTATION);
  config.set_mask_threshold(0);  // logits: present, so not the default 0.5
  t = ResolveEvaluationTask(config, bert, {});
  ASSERT_TRUE(t.ok());
  EXPECT_EQ(t->task, OutputTask::kSegmentation);
  EXPECT_EQ(t->mask_threshold, 0.f);
}

}  // namespace
}  // namespace quantd
