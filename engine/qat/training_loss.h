// The losses of quantization-aware training and their gradients with
// respect to the quantized (student) model's output:
//
//   logits (the last dim are classes or vocabulary):
//     loss = w * T^2 * KL(softmax(t / T) || softmax(s / T))     distillation
//          + (1 - w) * cross_entropy(softmax(s), label)          with labels
//     averaged over rows (samples, or tokens for language models)
//   other outputs:
//     loss = mean((s - t)^2)
//
//   LossOptions o{.distillation_weight = 0.5};
//   absl::StatusOr<LossResult> r = TrainingLoss(student, teacher, labels, o);
//   // r->loss, r->grad (same shape as student)
#ifndef QUANTD_ENGINE_QAT_TRAINING_LOSS_H_
#define QUANTD_ENGINE_QAT_TRAINING_LOSS_H_

#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace quantd {

enum class OutputKind { kLogits, kRegression };

struct LossOptions {
  OutputKind kind = OutputKind::kLogits;
  // Weight of distillation against cross-entropy, in [0, 1]; without labels
  // only distillation is used.
  double distillation_weight = 1.0;
  double temperature = 1.0;
};

struct LossResult {
  double loss = 0;
  double distillation = 0;
  double cross_entropy = 0;  // 0 without labels
  Tensor grad;               // d loss / d student
};

// `labels`: undefined, or int64 with one class id per row (the student's
// shape without its last dim, e.g. [N] or [N, T]); ids out of range are an
// error.
absl::StatusOr<LossResult> TrainingLoss(const Tensor& student,
                                        const Tensor& teacher,
                                        const Tensor& labels,
                                        const LossOptions& options);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QAT_TRAINING_LOSS_H_
