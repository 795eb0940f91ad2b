// Accumulates how a quantized model's outputs compare with the float
// model's over an evaluation set, batch by batch, in O(1) memory:
// top-1 agreement, accuracy against labels, next-token perplexity for
// language models, and MSE / cosine / SQNR of the raw outputs.
//
//   EvaluationAccumulator acc;
//   for (each batch) acc.Add(float_logits, quant_logits, batch.labels,
//                            batch.targets);
//   v1::EvaluationMetrics m = acc.Finish();
//
// What is computed depends on the task (engine/data/dataset.h, chosen by
// evaluation_task.h): classifiers [N, C] (top-1 over C; [N, T, C] per
// position); language models [N, T, V] with targets [N, T] (top-1 and
// cross-entropy per position); output fidelity: SQNR, cosine and MSE only
// (every task has them); segmentation: also the IoU of the masks
// (elements above the threshold).
#ifndef QUANTD_ENGINE_EVALUATION_EVALUATION_METRICS_H_
#define QUANTD_ENGINE_EVALUATION_EVALUATION_METRICS_H_

#include "absl/status/status.h"
#include "engine/data/dataset.h"
#include "kernels/tensor.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

// Signal-to-quantization-noise ratio accumulated over batches:
// 10 log10(sum ref^2 / sum (ref - cand)^2).
class SqnrAccumulator {
 public:
  absl::Status Add(const Tensor& reference, const Tensor& candidate);
  double sqnr_db() const;  // +inf when the outputs are identical
  double mse() const;
  double cosine() const;
  int64_t elements() const { return elements_; }

 private:
  double signal_ = 0, noise_ = 0, dot_ = 0, cand_sq_ = 0;
  int64_t elements_ = 0;
};

class EvaluationAccumulator {
 public:
  explicit EvaluationAccumulator(OutputTask task = OutputTask::kClassification,
                                 float mask_threshold = 0.5f)
      : task_(task), mask_threshold_(mask_threshold) {}

  // `labels` (int64 [N]) and `targets` (int64 [N, T]) may be undefined.
  absl::Status Add(const Tensor& reference, const Tensor& candidate,
                   const Tensor& labels, const Tensor& targets);
  ::quantd::v1::EvaluationMetrics Finish() const;

 private:
  absl::Status AddMasks(const Tensor& reference, const Tensor& candidate);

  OutputTask task_;
  float mask_threshold_;
  SqnrAccumulator sqnr_;
  int64_t mask_intersection_ = 0, mask_union_ = 0;
  int64_t samples_ = 0;
  int64_t positions_ = 0;  // rows scored for top-1 (samples or tokens)
  int64_t agree_ = 0;
  int64_t labelled_ = 0, ref_correct_ = 0, cand_correct_ = 0;
  int64_t tokens_ = 0;
  double ref_nll_ = 0, cand_nll_ = 0;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_EVALUATION_EVALUATION_METRICS_H_
