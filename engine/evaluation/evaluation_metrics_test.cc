#include "engine/evaluation/evaluation_metrics.h"

#include <cmath>
#include <cstring>

#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(EvaluationMetricsTest, ClassifierAccuracyAgreementAndDelta) {
  // 4 samples, 3 classes; the candidate flips sample 3's prediction.
  Tensor ref =
      Tensor::FromVector<float>({4, 3}, {5, 1, 0, 0, 5, 1, 0, 1, 5, 5, 0, 0});
  Tensor cand =
      Tensor::FromVector<float>({4, 3}, {5, 1, 0, 0, 5, 1, 0, 1, 5, 0, 6, 0});
  Tensor labels = Tensor::FromVector<int64_t>({4}, {0, 1, 2, 0});
  EvaluationAccumulator acc;
  // Split in two batches: results must not depend on batching.
  ASSERT_TRUE(
      acc.Add(*ref.Reshaped({4, 3}), *cand.Reshaped({4, 3}), labels, Tensor())
          .ok());
  v1::EvaluationMetrics m = acc.Finish();
  EXPECT_EQ(m.samples(), 4);
  EXPECT_DOUBLE_EQ(m.top1_agreement(), 0.75);
  EXPECT_DOUBLE_EQ(m.float_accuracy(), 1.0);
  EXPECT_DOUBLE_EQ(m.quantized_accuracy(), 0.75);
  EXPECT_DOUBLE_EQ(m.accuracy_delta_points(), -25.0);
  EXPECT_TRUE(m.has_labels());
  EXPECT_LT(m.output_sqnr_db(), 100);
}

TEST(EvaluationMetricsTest, PerplexityOfUniformLogitsIsTheVocabularySize) {
  Tensor logits = Tensor::Zeros(DataType::kFloat32, {2, 3, 8});
  Tensor targets = Tensor::FromVector<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  EvaluationAccumulator acc;
  ASSERT_TRUE(acc.Add(logits, logits, Tensor(), targets).ok());
  v1::EvaluationMetrics m = acc.Finish();
  EXPECT_TRUE(m.is_language_model());
  EXPECT_NEAR(m.float_perplexity(), 8.0, 1e-9);
  EXPECT_NEAR(m.perplexity_delta_percent(), 0.0, 1e-9);
  EXPECT_DOUBLE_EQ(m.top1_agreement(), 1.0);
  EXPECT_EQ(m.output_sqnr_db(), 1000.0);  // identical outputs, capped
}

TEST(EvaluationMetricsTest, SqnrOfKnownNoise) {
  Tensor ref = Tensor::FromVector<float>({4}, {1, -1, 1, -1});
  Tensor cand = Tensor::FromVector<float>({4}, {1.1f, -0.9f, 1.1f, -0.9f});
  SqnrAccumulator s;
  ASSERT_TRUE(s.Add(ref, cand).ok());
  // signal 4, noise 4 * 0.01 -> 20 dB.
  EXPECT_NEAR(s.sqnr_db(), 20.0, 1e-4);
  EXPECT_NEAR(s.mse(), 0.01, 1e-6);
}

// A 1-channel probability map [N, 1, H, W]: the mask IoU of the
// thresholded maps, no top-1 (which over W meant nothing: "50%" on a
// detector).
TEST(EvaluationMetricsTest, SegmentationMasksIoU) {
  Tensor ref = Tensor::FromVector<float>({1, 1, 2, 3},
                                         {0.9f, 0.8f, 0.1f, 0.6f, 0.2f, 0.4f});
  Tensor cand = Tensor::FromVector<float>({1, 1, 2, 3},
                                          {0.9f, 0.4f, 0.1f, 0.7f, 0.6f, 0.3f});
  EvaluationAccumulator acc(OutputTask::kSegmentation, 0.5f);
  ASSERT_TRUE(acc.Add(ref, cand, Tensor(), Tensor()).ok());
  v1::EvaluationMetrics m = acc.Finish();
  // Masks {0, 1, 3} and {0, 3, 4}: intersection 2, union 4.
  EXPECT_DOUBLE_EQ(m.mask_iou(), 0.5);
  EXPECT_EQ(m.task(), "segmentation");
  EXPECT_EQ(m.top1_agreement(), 0);
  EXPECT_EQ(m.samples(), 1);

  EvaluationAccumulator fidelity(OutputTask::kOutputFidelity);
  ASSERT_TRUE(fidelity.Add(ref, ref, Tensor(), Tensor()).ok());
  m = fidelity.Finish();
  EXPECT_EQ(m.task(), "output_fidelity");
  EXPECT_EQ(m.output_sqnr_db(), 1000);  // identical outputs
  EXPECT_EQ(m.mask_iou(), 0);
}

TEST(EvaluationMetricsTest, RejectsBadLabelsAndTargets) {
  Tensor out = Tensor::Zeros(DataType::kFloat32, {2, 3});
  EvaluationAccumulator acc;
  EXPECT_FALSE(
      acc.Add(out, out, Tensor::FromVector<int64_t>({2}, {0, 7}), Tensor())
          .ok());
  EXPECT_FALSE(
      acc.Add(out, out, Tensor::FromVector<int64_t>({3}, {0, 1, 2}), Tensor())
          .ok());
  EXPECT_FALSE(acc.Add(out, Tensor::Zeros(DataType::kFloat32, {2, 4}), Tensor(),
                       Tensor())
                   .ok());
}

}  // namespace
}  // namespace quantd
