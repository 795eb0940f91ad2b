#include "engine/qat/training_loss.h"

#include <cmath>
#include <vector>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

// Softmax of row / temperature in double, numerically stable.
void Softmax(const float* row, int64_t c, double temperature,
             std::vector<double>& out) {
  double mx = -INFINITY;
  for (int64_t j = 0; j < c; ++j) mx = std::max(mx, row[j] / temperature);
  double sum = 0;
  for (int64_t j = 0; j < c; ++j) {
    out[j] = std::exp(row[j] / temperature - mx);
    sum += out[j];
  }
  for (int64_t j = 0; j < c; ++j) out[j] /= sum;
}

}  // namespace

absl::StatusOr<LossResult> TrainingLoss(const Tensor& student,
                                        const Tensor& teacher,
                                        const Tensor& labels,
                                        const LossOptions& options) {
  if (student.dtype() != DataType::kFloat32 ||
      teacher.dtype() != DataType::kFloat32 ||
      student.shape() != teacher.shape() || student.rank() < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("the quantized model's output ", student.DebugString(),
                     " and the float model's ", teacher.DebugString(),
                     " must be f32 of the same shape"));
  }
  if (!(options.distillation_weight >= 0 && options.distillation_weight <= 1) ||
      !(options.temperature > 0)) {
    return absl::InvalidArgumentError(
        "distillation weight must be in [0, 1] and temperature > 0");
  }
  LossResult r;
  r.grad = Tensor(DataType::kFloat32, student.shape());
  float* g = r.grad.mutable_data<float>();
  const float* s = student.data<float>();
  const float* t = teacher.data<float>();
  const int64_t n = student.num_elements();
  if (options.kind == OutputKind::kRegression) {
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
      const double d = double{s[i]} - t[i];
      sum += d * d;
      g[i] = static_cast<float>(2 * d / n);
    }
    r.loss = r.distillation = n > 0 ? sum / n : 0;
    return r;
  }
  const int64_t c = student.dim(-1);
  const int64_t rows = c > 0 ? n / c : 0;
  const bool has_labels = labels.defined();
  if (has_labels &&
      (labels.dtype() != DataType::kInt64 || labels.num_elements() != rows)) {
    return absl::InvalidArgumentError(
        absl::StrCat("labels ", labels.DebugString(),
                     " must be int64 with one class per "
                     "output row (",
                     rows, ")"));
  }
  const double w = has_labels ? options.distillation_weight : 1.0;
  const double T = options.temperature;
  std::vector<double> ps(c), pt(c), p1(c);
  for (int64_t row = 0; row < rows; ++row) {
    const float* sr = s + row * c;
    const float* tr = t + row * c;
    float* gr = g + row * c;
    Softmax(sr, c, T, ps);
    Softmax(tr, c, T, pt);
    double kl = 0;
    for (int64_t j = 0; j < c; ++j) {
      if (pt[j] > 0) kl += pt[j] * (std::log(pt[j]) - std::log(ps[j] + 1e-300));
    }
    r.distillation += kl * T * T / rows;
    for (int64_t j = 0; j < c; ++j) {
      // d(T^2 KL)/ds = T (softmax(s/T) - softmax(t/T)).
      gr[j] = static_cast<float>(w * T * (ps[j] - pt[j]) / rows);
    }
    if (has_labels) {
      const int64_t y = labels.data<int64_t>()[row];
      if (y < 0 || y >= c) {
        return absl::InvalidArgumentError(absl::StrCat(
            "label ", y, " is outside the ", c, " classes of the output"));
      }
      Softmax(sr, c, 1.0, p1);
      r.cross_entropy += -std::log(p1[y] + 1e-300) / rows;
      for (int64_t j = 0; j < c; ++j) {
        gr[j] +=
            static_cast<float>((1 - w) * (p1[j] - (j == y ? 1 : 0)) / rows);
      }
    }
  }
  r.loss = w * r.distillation + (has_labels ? (1 - w) * r.cross_entropy : 0);
  return r;
}

}  // namespace quantd
