#include "engine/evaluation/evaluation_metrics.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/evaluation/evaluation_task.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::Status CheckPair(const Tensor& a, const Tensor& b) {
  if (a.dtype() != DataType::kFloat32 || b.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        "evaluation compares float outputs; the model's first output is not "
        "float");
  }
  if (a.shape() != b.shape()) {
    return absl::InternalError(absl::StrCat(
        "float and quantized outputs differ in shape: ", a.DebugString(),
        " vs ", b.DebugString()));
  }
  return absl::OkStatus();
}

int64_t ArgMax(const float* row, int64_t n) {
  return std::max_element(row, row + n) - row;
}

// -log softmax(row)[target], computed stably in double.
double NegLogLikelihood(const float* row, int64_t n, int64_t target) {
  const float m = *std::max_element(row, row + n);
  double sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += std::exp(double{row[i]} - m);
  return std::log(sum) + m - row[target];
}

}  // namespace

absl::Status SqnrAccumulator::Add(const Tensor& reference,
                                  const Tensor& candidate) {
  QUANTD_RETURN_IF_ERROR(CheckPair(reference, candidate));
  const float* r = reference.data<float>();
  const float* c = candidate.data<float>();
  double signal = 0, noise = 0, dot = 0, cand_sq = 0;
  for (int64_t i = 0; i < reference.num_elements(); ++i) {
    const double d = double{r[i]} - c[i];
    signal += double{r[i]} * r[i];
    noise += d * d;
    dot += double{r[i]} * c[i];
    cand_sq += double{c[i]} * c[i];
  }
  signal_ += signal;
  noise_ += noise;
  dot_ += dot;
  cand_sq_ += cand_sq;
  elements_ += reference.num_elements();
  return absl::OkStatus();
}

double SqnrAccumulator::sqnr_db() const {
  if (noise_ == 0) return std::numeric_limits<double>::infinity();
  if (signal_ == 0) return -std::numeric_limits<double>::infinity();
  return 10 * std::log10(signal_ / noise_);
}

double SqnrAccumulator::mse() const {
  return elements_ > 0 ? noise_ / elements_ : 0;
}

double SqnrAccumulator::cosine() const {
  const double denom = std::sqrt(signal_) * std::sqrt(cand_sq_);
  return denom > 0 ? dot_ / denom : 1.0;
}

absl::Status EvaluationAccumulator::Add(const Tensor& reference,
                                        const Tensor& candidate,
                                        const Tensor& labels,
                                        const Tensor& targets) {
  QUANTD_RETURN_IF_ERROR(sqnr_.Add(reference, candidate));
  if (reference.rank() < 1) return absl::OkStatus();
  const int64_t n = reference.dim(0);
  samples_ += n;
  if (task_ == OutputTask::kOutputFidelity) return absl::OkStatus();
  if (task_ == OutputTask::kSegmentation) {
    return AddMasks(reference, candidate);
  }
  const int64_t classes = reference.dim(-1);
  if (classes == 0) return absl::OkStatus();
  const int64_t rows = reference.num_elements() / classes;
  const float* r = reference.data<float>();
  const float* c = candidate.data<float>();
  int64_t agree = 0;
  // Rows are independent; a language model's 1024 rows of 50257 logits per
  // batch made these loops ~15% of a GPT-2 job (perf, issue 13).
#pragma omp parallel for reduction(+ : agree) if (rows * classes > (1 << 20))
  for (int64_t i = 0; i < rows; ++i) {
    agree +=
        ArgMax(r + i * classes, classes) == ArgMax(c + i * classes, classes);
  }
  agree_ += agree;
  positions_ += rows;
  if (labels.defined()) {
    if (reference.rank() != 2 || labels.num_elements() != n ||
        labels.dtype() != DataType::kInt64) {
      return absl::InvalidArgumentError(absl::StrCat(
          "labels need a [N, classes] output and N int64 labels; the output "
          "is ",
          reference.DebugString(), ", labels ", labels.DebugString(),
          " (for other outputs set evaluation.task and drop the labels)"));
    }
    for (int64_t i = 0; i < n; ++i) {
      const int64_t y = labels.data<int64_t>()[i];
      if (y < 0 || y >= classes) {
        return absl::InvalidArgumentError(
            absl::StrCat("label ", y, " of sample ", samples_ - n + i,
                         " is outside [0, ", classes, ")"));
      }
      ref_correct_ += ArgMax(r + i * classes, classes) == y;
      cand_correct_ += ArgMax(c + i * classes, classes) == y;
    }
    labelled_ += n;
  }
  if (targets.defined()) {
    if (targets.num_elements() != rows || targets.dtype() != DataType::kInt64) {
      return absl::InvalidArgumentError(
          absl::StrCat("next-token targets ", targets.DebugString(),
                       " do not match the language model's output ",
                       reference.DebugString()));
    }
    const int64_t* tokens = targets.data<int64_t>();
    for (int64_t i = 0; i < rows; ++i) {
      if (tokens[i] < 0 || tokens[i] >= classes) {
        return absl::InvalidArgumentError(absl::StrCat(
            "token id ", tokens[i], " is outside the vocabulary [0, ", classes,
            ") of the output; if the model is not a next-token language "
            "model, set evaluation.task"));
      }
    }
    double ref_nll = 0, cand_nll = 0;
#pragma omp parallel for reduction(+ : ref_nll, cand_nll) if (rows * classes > (1 << 20))
    for (int64_t i = 0; i < rows; ++i) {
      ref_nll += NegLogLikelihood(r + i * classes, classes, tokens[i]);
      cand_nll += NegLogLikelihood(c + i * classes, classes, tokens[i]);
    }
    ref_nll_ += ref_nll;
    cand_nll_ += cand_nll;
    tokens_ += rows;
  }
  return absl::OkStatus();
}

absl::Status EvaluationAccumulator::AddMasks(const Tensor& reference,
                                             const Tensor& candidate) {
  // sqnr_.Add checked that both are f32 of one shape.
  const float* r = reference.data<float>();
  const float* c = candidate.data<float>();
  for (int64_t i = 0; i < reference.num_elements(); ++i) {
    const bool in_r = r[i] > mask_threshold_, in_c = c[i] > mask_threshold_;
    mask_intersection_ += in_r && in_c;
    mask_union_ += in_r || in_c;
  }
  return absl::OkStatus();
}

v1::EvaluationMetrics EvaluationAccumulator::Finish() const {
  v1::EvaluationMetrics m;
  m.set_samples(samples_);
  m.set_task(OutputTaskName(task_));
  if (task_ == OutputTask::kSegmentation) {
    // Two empty masks agree completely.
    m.set_mask_iou(mask_union_ > 0 ? double(mask_intersection_) / mask_union_
                                   : 1.0);
  }
  m.set_top1_agreement(positions_ > 0 ? double(agree_) / positions_ : 0);
  m.set_output_mse(sqnr_.mse());
  m.set_output_cosine(sqnr_.cosine());
  // JSON cannot hold infinity; identical outputs report a large finite SQNR.
  m.set_output_sqnr_db(std::min(sqnr_.sqnr_db(), 1000.0));
  if (labelled_ > 0) {
    m.set_has_labels(true);
    m.set_float_accuracy(double(ref_correct_) / labelled_);
    m.set_quantized_accuracy(double(cand_correct_) / labelled_);
    m.set_accuracy_delta_points(100.0 *
                                (m.quantized_accuracy() - m.float_accuracy()));
  }
  if (tokens_ > 0) {
    m.set_is_language_model(true);
    m.set_float_perplexity(std::exp(ref_nll_ / tokens_));
    m.set_quantized_perplexity(std::exp(cand_nll_ / tokens_));
    m.set_perplexity_delta_percent(
        100.0 * (m.quantized_perplexity() / m.float_perplexity() - 1.0));
  }
  return m;
}

}  // namespace quantd
