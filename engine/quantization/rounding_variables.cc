#include "engine/quantization/rounding_variables.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/quantize.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// A scale and zero point from a range [lo, hi] (0 inside) clipped by
// factors a (top) and b (bottom): exactly SetScalesFromRanges' arithmetic
// when a = b = 1, so the first step from RTN is round-to-nearest.
struct ScaleAndZero {
  float scale;
  int32_t zero;
};
ScaleAndZero ScaleOf(float lo, float hi, float a, float b, bool symmetric,
                     int32_t qmin, int32_t qmax) {
  float scale;
  if (symmetric) {
    scale = std::max(-lo, hi) * a / qmax;
  } else {
    lo *= b;
    hi *= a;
    scale = (hi - lo) / (qmax - qmin);
  }
  if (!(scale > 0) || !std::isfinite(scale)) scale = 1.f;
  scale = std::max(scale, kMinQuantScale);
  int32_t zero = 0;
  if (!symmetric) {
    zero = static_cast<int32_t>(
        std::clamp<float>(std::nearbyint(qmin - lo / scale), qmin, qmax));
  }
  return {scale, zero};
}

// Takes the start's scales as the ranges ScaleOf turns back into them
// (symmetric: +-s qmax; asymmetric: [(qmin - zp) s, (qmax - zp) s]) and its
// levels as whole-step offsets from round(w / s).
absl::Status StartFrom(const Tensor& weight, const RoundingStart& start,
                       RoundingProblem& p) {
  const QuantParams& sp = start.params;
  if (start.weights.shape() != weight.shape() ||
      sp.scales.size() != p.start.scales.size() || sp.axis != p.start.axis ||
      sp.group_size != p.start.group_size || sp.qmin != p.start.qmin ||
      sp.qmax != p.start.qmax ||
      sp.zero_points.size() != p.start.zero_points.size()) {
    return absl::InvalidArgumentError(
        "the start's parameters or weights do not match the scheme");
  }
  p.start = sp;
  const size_t num_scales = sp.scales.size();
  p.lo.resize(num_scales);
  p.hi.resize(num_scales);
  for (size_t pi = 0; pi < num_scales; ++pi) {
    const float s = sp.scales[pi];
    const int32_t zp = p.symmetric ? 0 : sp.zero_points[pi];
    p.lo[pi] = p.symmetric ? -s * sp.qmax : (sp.qmin - zp) * s;
    p.hi[pi] = p.symmetric ? s * sp.qmax : (sp.qmax - zp) * s;
  }
  p.offset.resize(weight.num_elements());
  const float* levels = start.weights.data<float>();
  for (int64_t e = 0; e < weight.num_elements(); ++e) {
    const int64_t pi = ParamIndex(sp, weight.shape(), e);
    const ScaleAndZero sz =
        ScaleOf(p.lo[pi], p.hi[pi], 1.f, 1.f, p.symmetric, sp.qmin, sp.qmax);
    // An integer: w / s keeps its own fraction, so an offset v of up to
    // half a step still moves the level (an offset to the level's center
    // would leave v nothing to move).
    p.offset[e] = std::nearbyint(levels[e] / sz.scale) -
                  std::nearbyint(p.w[e] / sz.scale);
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RoundingProblem> MakeRoundingProblem(const Tensor& weight,
                                                    const WeightSlot& slot,
                                                    const WeightScheme& scheme,
                                                    const RoundingStart* start,
                                                    bool learn_clipping) {
  const bool matrix = weight.rank() == 2 &&
                      std::min(slot.input_axis, slot.channel_axis) == 0 &&
                      std::max(slot.input_axis, slot.channel_axis) == 1;
  const bool conv =
      weight.rank() >= 3 && slot.channel_axis == 0 && slot.input_axis == 1;
  if (weight.dtype() != DataType::kFloat32 || weight.num_elements() == 0 ||
      !(matrix || conv)) {
    return absl::InvalidArgumentError(
        absl::StrCat("needs a non-empty float MatMul/Gemm or Conv weight, got ",
                     weight.DebugString()));
  }
  RoundingProblem p;
  QUANTD_ASSIGN_OR_RETURN(p.start, ComputeWeightParams(weight, slot, scheme));
  p.symmetric = p.start.zero_points.empty();
  p.learn_clipping = learn_clipping && p.start.axis >= 0;
  p.layout.inputs_first = weight.rank() == 2 && slot.input_axis == 0;
  p.layout.n = weight.dim(static_cast<int>(slot.channel_axis));
  p.layout.kin = weight.num_elements() / p.layout.n;
  p.shape = weight.shape();
  p.w = weight.data<float>();
  if (start != nullptr) {
    QUANTD_RETURN_IF_ERROR(StartFrom(weight, *start, p));
    return p;
  }
  p.lo.assign(p.start.scales.size(), 0.f);
  p.hi.assign(p.start.scales.size(), 0.f);
  for (int64_t e = 0; e < weight.num_elements(); ++e) {
    const int64_t pi = ParamIndex(p.start, weight.shape(), e);
    p.lo[pi] = std::min(p.lo[pi], p.w[e]);
    p.hi[pi] = std::max(p.hi[pi], p.w[e]);
  }
  return p;
}

QuantParams BestParams(const RoundingProblem& p, const RoundingClipping& clip) {
  QuantParams out = p.start;
  for (size_t pi = 0; pi < out.scales.size(); ++pi) {
    const ScaleAndZero sz =
        ScaleOf(p.lo[pi], p.hi[pi], clip.best_a[pi], clip.best_b[pi],
                p.symmetric, p.start.qmin, p.start.qmax);
    out.scales[pi] = sz.scale;
    if (!p.symmetric) out.zero_points[pi] = sz.zero;
  }
  return out;
}

RoundingVariables::RoundingVariables(const RoundingProblem& p,
                                     RoundingClipping& clip, int64_t c0,
                                     int64_t m)
    : p_(p), clip_(clip), c0_(c0), m_(m), k_(p.layout.kin) {
  param_.resize(m * k_);
  for (int64_t e = 0; e < m * k_; ++e) {
    param_[e] = ParamIndex(p.start, p.shape, Flat(e));
  }
  v_.assign(m * k_, 0.f);
  best_v_ = v_;
  wq_.resize(m * k_);
  clamped_.resize(m * k_);
}

void RoundingVariables::Quantize(bool best) {
  const std::vector<float>& a = best ? clip_.best_a : clip_.a;
  const std::vector<float>& b = best ? clip_.best_b : clip_.b;
  const std::vector<float>& v = best ? best_v_ : v_;
  const int32_t qmin = p_.start.qmin, qmax = p_.start.qmax;
  for (int64_t e = 0; e < m_ * k_; ++e) {
    const int64_t pi = param_[e];
    const ScaleAndZero sz =
        ScaleOf(p_.lo[pi], p_.hi[pi], a[pi], b[pi], p_.symmetric, qmin, qmax);
    const float o = p_.offset.empty() ? 0.f : p_.offset[Flat(e)];
    const float unclamped =
        std::nearbyint(W(e) / sz.scale + o + v[e]) + sz.zero;
    const float q = std::clamp<float>(unclamped, qmin, qmax);
    clamped_[e] = q != unclamped;
    wq_[e] = (q - sz.zero) * sz.scale;
  }
}

// dw_q/dv = s where not clamped (0 where clamped); dw_q/ds = (q - zp) - w/s
// (clamped: (q - zp) minus the zero point's own dependence on the bottom
// of the range, b lo / s); s depends on a and b through ScaleOf.
void RoundingVariables::Step(const std::vector<double>& dloss_dwq, double lr) {
  const int32_t qmin = p_.start.qmin, qmax = p_.start.qmax;
  const float range = static_cast<float>(qmax - qmin);
  grad_a_.assign(p_.lo.size(), 0);
  grad_b_.assign(p_.lo.size(), 0);
  for (int64_t e = 0; e < m_ * k_; ++e) {
    const double g = dloss_dwq[e];
    if (!clamped_[e] && g != 0) {
      v_[e] = std::clamp<float>(v_[e] - (g > 0 ? lr : -lr), -0.5f, 0.5f);
    }
    if (!p_.learn_clipping || g == 0) continue;
    const int64_t pi = param_[e];
    const ScaleAndZero sz = ScaleOf(p_.lo[pi], p_.hi[pi], clip_.a[pi],
                                    clip_.b[pi], p_.symmetric, qmin, qmax);
    const float q_minus_z = wq_[e] / sz.scale;
    if (p_.symmetric) {
      const float ds_da = std::max(-p_.lo[pi], p_.hi[pi]) / qmax;
      const float dwq_ds =
          clamped_[e] ? q_minus_z : q_minus_z - W(e) / sz.scale;
      grad_a_[pi] += g * dwq_ds * ds_da;
    } else {
      const float ds_da = p_.hi[pi] / range, ds_db = -p_.lo[pi] / range;
      const float bottom = clip_.b[pi] * p_.lo[pi];
      const float dwq_ds = clamped_[e] ? q_minus_z - bottom / sz.scale
                                       : q_minus_z - W(e) / sz.scale;
      grad_a_[pi] += g * dwq_ds * ds_da;
      grad_b_[pi] += g * (dwq_ds * ds_db + (clamped_[e] ? p_.lo[pi] : 0.f));
    }
  }
  if (!p_.learn_clipping) return;
  auto move = [lr](float& f, double grad) {
    if (grad != 0) f = std::clamp<float>(f - (grad > 0 ? lr : -lr), 0.5f, 1.f);
  };
  for (size_t pi = 0; pi < grad_a_.size(); ++pi) {
    move(clip_.a[pi], grad_a_[pi]);
    move(clip_.b[pi], grad_b_[pi]);
  }
}

void RoundingVariables::KeepRow(int64_t r) {
  std::copy(v_.begin() + r * k_, v_.begin() + (r + 1) * k_,
            best_v_.begin() + r * k_);
  for (int64_t i = 0; i < k_; ++i) {
    const int64_t pi = param_[r * k_ + i];
    clip_.best_a[pi] = clip_.a[pi];
    clip_.best_b[pi] = clip_.b[pi];
  }
}

void RoundingVariables::KeepAll() {
  for (int64_t r = 0; r < m_; ++r) KeepRow(r);
}

void RoundingVariables::WriteBest(float* out) {
  Quantize(true);
  for (int64_t e = 0; e < m_ * k_; ++e) out[Flat(e)] = wq_[e];
}

}  // namespace quantd
