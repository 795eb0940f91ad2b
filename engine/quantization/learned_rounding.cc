#include "engine/quantization/learned_rounding.h"

#include <algorithm>
#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"
#include "engine/quantization/gptq_linear_algebra.h"
#include "engine/quantization/hessian_checks.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// One slice of output channels [c0, c0 + m) minimizing d^T H d per row.
class SliceOptimizer {
 public:
  SliceOptimizer(const RoundingProblem& p, RoundingClipping& clip,
                 const std::vector<double>& h, int64_t blocks, int64_t c0,
                 int64_t m)
      : p_(p),
        vars_(p, clip, c0, m),
        h_(h),
        blocks_(blocks),
        c0_(c0),
        m_(m),
        k_(p.layout.kin) {
    d_.resize(m * k_);
    grad_.resize(m * k_);
    best_loss_.assign(m, std::numeric_limits<double>::infinity());
  }

  // Runs the steps; afterwards the variables' best hold the result.
  void Optimize(const LearnedRoundingOptions& options) {
    const int iters = options.iterations;
    const double lr0 = options.learning_rate > 0 ? options.learning_rate
                                                 : 1.0 / std::max(iters, 1);
    for (int t = 0; t <= iters; ++t) {
      vars_.Quantize(false);
      Evaluate();
      if (t == 0) start_loss_ = loss_;
      for (int64_t r = 0; r < m_; ++r) {
        if (!(loss_[r] < best_loss_[r])) continue;
        best_loss_[r] = loss_[r];
        vars_.KeepRow(r);
      }
      if (t == iters) break;
      vars_.Step(grad_, lr0 * (1.0 - static_cast<double>(t) / iters));
    }
  }

  void WriteBest(float* out) { vars_.WriteBest(out); }
  double start_loss() const { return Sum(start_loss_); }
  double best_loss() const { return Sum(best_loss_); }
  int64_t changed() const {
    int64_t n = 0;
    for (int64_t r = 0; r < m_; ++r) n += best_loss_[r] < start_loss_[r];
    return n;
  }

 private:
  static double Sum(const std::vector<double>& v) {
    double s = 0;
    for (double x : v) s += x;
    return s;
  }

  // d = w - w_q, row losses d^T H d, and dloss/dw_q = -2 H d.
  void Evaluate() {
    const std::vector<float>& wq = vars_.wq();
    for (int64_t e = 0; e < m_ * k_; ++e) {
      d_[e] = static_cast<double>(vars_.W(e)) - wq[e];
    }
    // grad = -(d H), a run of rows with the same Hessian block at a time.
    std::fill(grad_.begin(), grad_.end(), 0.0);
    const int64_t per_block = p_.layout.n / blocks_;
    for (int64_t r = 0; r < m_;) {
      const int64_t block = (c0_ + r) / per_block;
      const int64_t end = std::min(m_, (block + 1) * per_block - c0_);
      gptq_la::SubtractProduct(grad_.data() + r * k_, k_, d_.data() + r * k_,
                               end - r, k_, h_.data() + block * k_ * k_, k_,
                               k_);
      r = end;
    }
    loss_.assign(m_, 0);
    for (int64_t e = 0; e < m_ * k_; ++e) {
      loss_[e / k_] -= d_[e] * grad_[e];
      grad_[e] *= 2;
    }
  }

  const RoundingProblem& p_;
  RoundingVariables vars_;
  const std::vector<double>& h_;
  const int64_t blocks_, c0_, m_, k_;
  std::vector<double> d_, grad_, loss_, best_loss_, start_loss_;
};

absl::Status CheckArguments(const std::string& where, const Tensor& weight,
                            const WeightSlot& slot,
                            const std::vector<float>& hessian, int64_t blocks,
                            int64_t num_rows,
                            const LearnedRoundingOptions& options) {
  const int64_t n =
      weight.rank() >= 2 ? weight.dim(static_cast<int>(slot.channel_axis)) : 0;
  const int64_t kin = n > 0 ? weight.num_elements() / n : 0;
  if (blocks <= 0 || n == 0 || n % blocks != 0 ||
      static_cast<int64_t>(hessian.size()) != blocks * kin * kin) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "expected ", blocks, " Hessian block(s) of ", kin, " x ", kin,
        " for ", n, " output channels, got ", hessian.size(), " entries"));
  }
  if (num_rows <= 0 || options.iterations < 0 || options.iterations > 100000 ||
      !(options.learning_rate >= 0) || !std::isfinite(options.learning_rate)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "need num_rows > 0 (got ", num_rows,
                     "), iterations in [0, 100000] (got ", options.iterations,
                     ") and a finite learning rate >= 0"));
  }
  return CheckFiniteHessianAndWeight(where, hessian, weight);
}

}  // namespace

absl::StatusOr<LearnedRoundingResult> LearnRounding(
    const Tensor& weight, const WeightSlot& slot, const WeightScheme& scheme,
    const std::vector<float>& hessian, int64_t hessian_blocks, int64_t num_rows,
    const LearnedRoundingOptions& options, const RoundingStart* start) {
  const std::string where =
      absl::StrCat("learned rounding of weight '", slot.initializer,
                   "' (node '", slot.node, "'): ");
  absl::StatusOr<RoundingProblem> problem =
      MakeRoundingProblem(weight, slot, scheme, start, options.learn_clipping);
  if (!problem.ok()) {
    return absl::Status(problem.status().code(),
                        absl::StrCat(where, problem.status().message()));
  }
  QUANTD_RETURN_IF_ERROR(CheckArguments(where, weight, slot, hessian,
                                        hessian_blocks, num_rows, options));
  const RoundingProblem& p = *problem;
  std::vector<double> h(hessian.size());
  for (size_t i = 0; i < hessian.size(); ++i) h[i] = hessian[i] / num_rows;
  RoundingClipping clip(p);

  LearnedRoundingResult result;
  result.weights = Tensor(DataType::kFloat32, weight.shape());
  // ~8M elements of working state per slice; rows are independent given
  // H, and per-tensor scales (shared by all rows) are never learned.
  const int64_t per_slice =
      std::clamp<int64_t>((int64_t{8} << 20) / p.layout.kin, 1, p.layout.n);
  for (int64_t c0 = 0; c0 < p.layout.n; c0 += per_slice) {
    const int64_t m = std::min(per_slice, p.layout.n - c0);
    SliceOptimizer slice(p, clip, h, hessian_blocks, c0, m);
    slice.Optimize(options);
    slice.WriteBest(result.weights.mutable_data<float>());
    result.rtn_loss += slice.start_loss();
    result.loss += slice.best_loss();
    result.channels_changed += slice.changed();
  }
  result.params = BestParams(p, clip);
  return result;
}

}  // namespace quantd
