#include "engine/quantization/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "engine/quantization/gptq_linear_algebra.h"
#include "engine/quantization/hessian_checks.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Exactly FakeQuantizeWeights' arithmetic (in float), so that the result is
// on the grid that the runtime will reproduce.
float QuantizeDequantize(double w, float s, int32_t zp, int32_t qmin,
                         int32_t qmax) {
  const float q = std::clamp<float>(
      std::nearbyint(static_cast<float>(w) / s) + zp, qmin, qmax);
  return (q - zp) * s;
}

// A 2-D weight seen as W[c][k] (output channel c, input k), whichever of its
// axes is the input one.
struct WeightLayout {
  int64_t input_axis = 0;
  int64_t kin = 0;  // inputs
  int64_t n = 0;    // output channels
  // Flat index of (input k, channel c) in a tensor of this orientation whose
  // input dimension is `kdim`.
  int64_t Flat(int64_t k, int64_t c, int64_t kdim) const {
    return input_axis == 0 ? k * n + c : c * kdim + k;
  }
};

// Parameters per (group, channel); one group unless per group.
struct GroupParams {
  bool grouped = false;
  int64_t gs = 0;  // group size; kin unless per group
  int64_t num_groups = 0;
  std::vector<float> scale;
  std::vector<int32_t> zero;
  int32_t qmin = 0, qmax = 0;
};

// What every channel slice of one weight shares: the Hessian and the
// inverse-Hessian factor in the order the columns are rounded.
struct GptqSystem {
  int64_t kin = 0;
  // H / num_rows, undamped: the proxy loss is measured against it.
  std::vector<double> h0;
  // Inputs never active (zero diagonal): nothing to fit, their weights are
  // zeroed and their diagonal taken as 1.
  std::vector<char> dead;
  // Column i of the working weights (row and column i of u) is input
  // perm[i].
  std::vector<int64_t> perm;
  // Upper Cholesky factor of the damped, permuted H^-1.
  std::vector<double> u;

  double Diagonal(int64_t k) const { return dead[k] ? 1.0 : h0[k * kin + k]; }
};

// One slice of output channels being rounded.
struct GptqWork {
  WeightLayout layout;  // of the slice
  // Working copy of the slice as [n, kin], so that every update runs along a
  // row; columns in the system's order once PermuteColumns ran.
  std::vector<double> w;
  const std::vector<int64_t>* perm = nullptr;
  GroupParams groups;
};

absl::Status CheckGptqArguments(const std::string& where, const Tensor& weight,
                                const WeightSlot& slot,
                                const std::vector<double>& hessian,
                                int64_t num_rows, const GptqOptions& options) {
  if (weight.dtype() != DataType::kFloat32 || weight.rank() != 2 ||
      weight.num_elements() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        where,
        "only non-empty 2-D float weights (MatMul, Gemm) are supported, got ",
        weight.DebugString()));
  }
  if (std::min(slot.input_axis, slot.channel_axis) != 0 ||
      std::max(slot.input_axis, slot.channel_axis) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "input_axis and channel_axis must be 0 and 1"));
  }
  const int64_t kin = weight.dim(static_cast<int>(slot.input_axis));
  if (static_cast<int64_t>(hessian.size()) != kin * kin) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "the Hessian has ", hessian.size(),
                     " entries, expected ", kin, " x ", kin));
  }
  if (num_rows <= 0 || options.block_size <= 0 ||
      !(options.damp_percent >= 0) || !std::isfinite(options.damp_percent)) {
    return absl::InvalidArgumentError(absl::StrCat(
        where, "need num_rows > 0 (got ", num_rows, "), block_size > 0 (got ",
        options.block_size, ") and finite damp_percent >= 0 (got ",
        options.damp_percent, ")"));
  }
  return CheckFiniteHessianAndWeight(where, hessian, weight);
}

// InverseHessianFactor of the permuted H (dead inputs' diagonal 1) plus
// damping on the diagonal, raising the damping up to 1000x until H is
// positive definite; empty if it never is. Rebuilt from h0 on each attempt,
// so that no second copy of H is kept for the retries.
std::vector<double> DampedInverseHessianFactor(const GptqSystem& sys,
                                               double damp_percent) {
  const int64_t kin = sys.kin;
  double mean_diag = 0;
  for (int64_t k = 0; k < kin; ++k) mean_diag += sys.Diagonal(k) / kin;
  double damp = damp_percent * mean_diag;
  std::vector<double> a(kin * kin);
  for (int attempt = 0; attempt < 4; ++attempt) {
    for (int64_t i = 0; i < kin; ++i) {
      const double* hi = &sys.h0[sys.perm[i] * kin];
      for (int64_t j = 0; j < kin; ++j) a[i * kin + j] = hi[sys.perm[j]];
      a[i * kin + i] = sys.Diagonal(sys.perm[i]) + damp;
    }
    if (gptq_la::InverseHessianFactor(a, kin)) return a;
    damp = damp > 0 ? damp * 10 : 0.01 * mean_diag;
  }
  return {};
}

// The normalized Hessian, the column order (by descending diag(H) with
// act_order) and the damped inverse-Hessian factor; FailedPrecondition if H
// stays not positive definite. Takes the caller's Hessian over as h0: the
// K x K doubles are the largest buffers of a wide layer (254 MB at K = 5632),
// so GPTQ holds two of them (h0 and u), not four.
absl::StatusOr<GptqSystem> PrepareSystem(const std::string& where,
                                         std::vector<double> hessian,
                                         int64_t kin, int64_t num_rows,
                                         const GptqOptions& options) {
  GptqSystem sys;
  sys.kin = kin;
  sys.h0 = std::move(hessian);
  for (double& v : sys.h0) v /= static_cast<double>(num_rows);
  sys.dead.resize(kin);
  for (int64_t k = 0; k < kin; ++k) sys.dead[k] = sys.h0[k * kin + k] == 0;
  sys.perm.resize(kin);
  std::iota(sys.perm.begin(), sys.perm.end(), 0);
  if (options.act_order) {
    std::stable_sort(sys.perm.begin(), sys.perm.end(),
                     [&](int64_t a, int64_t b) {
                       return sys.Diagonal(a) > sys.Diagonal(b);
                     });
  }
  sys.u = DampedInverseHessianFactor(sys, options.damp_percent);
  if (sys.u.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(where,
                     "the Hessian is not positive definite even with 1000x the "
                     "damping; check the calibration inputs of this node"));
  }
  return sys;
}

// Output channels [c0, c0 + m) of `weight`, in its orientation.
Tensor ChannelSlice(const Tensor& weight, const WeightLayout& full, int64_t c0,
                    int64_t m) {
  if (c0 == 0 && m == full.n) return weight;
  Tensor t(DataType::kFloat32,
           full.input_axis == 0 ? Shape{full.kin, m} : Shape{m, full.kin});
  const float* src = weight.data<float>();
  float* dst = t.mutable_data<float>();
  for (int64_t c = 0; c < m; ++c) {
    for (int64_t k = 0; k < full.kin; ++k)
      dst[full.input_axis == 0 ? k * m + c : c * full.kin + k] =
          src[full.Flat(k, c0 + c, full.kin)];
  }
  return t;
}

GptqWork StartWork(const Tensor& slice, const WeightSlot& slot,
                   const GptqSystem& sys) {
  GptqWork work;
  WeightLayout& l = work.layout;
  l.input_axis = slot.input_axis;
  l.kin = slice.dim(static_cast<int>(slot.input_axis));
  l.n = slice.dim(static_cast<int>(slot.channel_axis));
  const int64_t kin = l.kin, n = l.n;
  work.w.resize(n * kin);
  const float* src = slice.data<float>();
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t k = 0; k < kin; ++k)
      work.w[c * kin + k] = sys.dead[k] ? 0.0 : src[l.Flat(k, c, kin)];
  }
  work.perm = &sys.perm;
  return work;
}

// Columns [k0, k0 + len) of W in the weight's orientation, so that
// ComputeWeightParams defines the parameters (symmetry, ranges, zero points).
Tensor Columns(const WeightLayout& l, const std::vector<double>& w, int64_t k0,
               int64_t len) {
  Tensor t(DataType::kFloat32,
           l.input_axis == 0 ? Shape{len, l.n} : Shape{l.n, len});
  float* dst = t.mutable_data<float>();
  for (int64_t c = 0; c < l.n; ++c) {
    for (int64_t k = 0; k < len; ++k)
      dst[l.Flat(k, c, len)] = w[c * l.kin + k0 + k];
  }
  return t;
}

// Takes group g's parameters from `p`, computed for `t`, whose input k is
// the group's first.
void CopyParams(const WeightLayout& l, const Tensor& t, const QuantParams& p,
                int64_t k, int64_t g, GroupParams& groups) {
  for (int64_t c = 0; c < l.n; ++c) {
    const int64_t idx = ParamIndex(
        p, t.shape(), l.Flat(k, c, t.dim(static_cast<int>(l.input_axis))));
    groups.scale[g * l.n + c] = p.scales[idx];
    if (!p.zero_points.empty()) groups.zero[g * l.n + c] = p.zero_points[idx];
  }
}

// Fills the parameters known before rounding starts: RTN's without groups,
// static groups with act_order. Dynamic groups are filled as the sweep
// reaches them.
// `rtn_params` are the whole weight's (`full`, `full_shape`); the slice
// starts at channel c0.
absl::Status StartGroups(const WeightLayout& full, const Shape& full_shape,
                         int64_t c0, const WeightSlot& slot,
                         const WeightScheme& scheme, const GptqOptions& options,
                         const QuantParams& rtn_params, GptqWork& work) {
  const WeightLayout& l = work.layout;
  GroupParams& groups = work.groups;
  groups.grouped = scheme.granularity == WeightGranularity::kPerGroup;
  groups.gs = groups.grouped ? scheme.group_size : l.kin;
  // A shorter last group when allowed (scheme.allow_partial_groups).
  groups.num_groups = (l.kin + groups.gs - 1) / groups.gs;
  groups.scale.resize(groups.num_groups * l.n);
  groups.zero.assign(groups.scale.size(), 0);
  groups.qmin = rtn_params.qmin;
  groups.qmax = rtn_params.qmax;
  if (!groups.grouped) {
    for (int64_t c = 0; c < l.n; ++c) {
      const int64_t idx =
          ParamIndex(rtn_params, full_shape, full.Flat(0, c0 + c, full.kin));
      groups.scale[c] = rtn_params.scales[idx];
      if (!rtn_params.zero_points.empty())
        groups.zero[c] = rtn_params.zero_points[idx];
    }
  } else if (options.act_order) {
    // Static groups from the original weights (dead inputs zeroed, as in the
    // reference): permuted columns visit groups out of order.
    const Tensor t = Columns(l, work.w, 0, l.kin);
    QUANTD_ASSIGN_OR_RETURN(const QuantParams p,
                            ComputeWeightParams(t, slot, scheme));
    for (int64_t g = 0; g < groups.num_groups; ++g)
      CopyParams(l, t, p, g * groups.gs, g, groups);
  }
  return absl::OkStatus();
}

// Puts the slice's columns in the system's order (act_order).
void PermuteColumns(GptqWork& work) {
  const int64_t kin = work.layout.kin;
  const std::vector<int64_t>& perm = *work.perm;
  std::vector<double> row(kin);
  for (int64_t c = 0; c < work.layout.n; ++c) {
    double* wc = &work.w[c * kin];
    for (int64_t i = 0; i < kin; ++i) row[i] = wc[perm[i]];
    std::copy(row.begin(), row.end(), wc);
  }
}

// Rounds columns [i1, i2) of w into q, compensating within the block column
// by column, then applies the block's error to the columns after it in one
// pass (W -= Err U[block, i2:]).
void RoundBlock(GptqWork& work, const std::vector<double>& u, int64_t i1,
                int64_t i2, std::vector<double>& err, std::vector<float>& q) {
  const int64_t kin = work.layout.kin, n = work.layout.n;
  const GroupParams& groups = work.groups;
  std::vector<double>& w = work.w;
  const int64_t nb = i2 - i1;
  err.assign(n * nb, 0.0);
  for (int64_t i = i1; i < i2; ++i) {
    const int64_t g = groups.grouped ? (*work.perm)[i] / groups.gs : 0;
    const double* ui = &u[i * kin];
#pragma omp parallel for if (n * (i2 - i) > 65536)
    for (int64_t c = 0; c < n; ++c) {
      double* wc = &w[c * kin];
      const float qv =
          QuantizeDequantize(wc[i], groups.scale[g * n + c],
                             groups.zero[g * n + c], groups.qmin, groups.qmax);
      q[c * kin + i] = qv;
      const double e = (wc[i] - qv) / ui[i];
      err[c * nb + i - i1] = e;
      for (int64_t j = i + 1; j < i2; ++j) wc[j] -= e * ui[j];
    }
  }
  if (i2 == kin) return;
  gptq_la::SubtractProduct(&w[i2], kin, err.data(), n, nb, &u[i1 * kin + i2],
                           kin, kin - i2);
}

// The GPTQ sweep over all columns; returns the rounded weights as [n, kin]
// in permuted column order.
absl::StatusOr<std::vector<float>> RoundAllColumns(const WeightSlot& slot,
                                                   const WeightScheme& scheme,
                                                   const GptqOptions& options,
                                                   const std::vector<double>& u,
                                                   GptqWork& work) {
  const int64_t kin = work.layout.kin;
  const int64_t gs = work.groups.gs;
  std::vector<float> q(work.layout.n * kin);
  std::vector<double> err;
  for (int64_t i1 = 0, i2 = 0; i1 < kin; i1 = i2) {
    i2 = std::min(i1 + options.block_size, kin);
    // Dynamic groups: blocks end at group boundaries, so when a group starts
    // no update is pending and its parameters see the fully compensated
    // weights whatever the block size. (The reference code reads stale
    // in-block columns when groups are smaller than blocks.)
    if (work.groups.grouped && !options.act_order) {
      i2 = std::min(i2, (i1 / gs + 1) * gs);
      if (i1 % gs == 0) {
        const Tensor t =
            Columns(work.layout, work.w, i1, std::min(gs, kin - i1));
        QUANTD_ASSIGN_OR_RETURN(const QuantParams p,
                                ComputeWeightParams(t, slot, scheme));
        CopyParams(work.layout, t, p, 0, i1 / gs, work.groups);
      }
    }
    RoundBlock(work, u, i1, i2, err, q);
  }
  return q;
}

// tr(D H D^T) with D = W - Q, a bounded block of output channels (rows of
// D) at a time: lm_head's D alone would be 300 MB of doubles.
// `q(e)` is the rounded value of flat element e (computed on the fly for
// round-to-nearest: no second copy of the weight).
template <typename RoundedAt>
double ProxyLoss(const WeightLayout& l, const float* src,
                 const std::vector<double>& h0, const RoundedAt& q) {
  const int64_t kin = l.kin, n = l.n;
  const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 20) / kin);
  std::vector<double> d(std::min(n, chunk) * kin);
  double loss = 0;
  for (int64_t c0 = 0; c0 < n; c0 += chunk) {
    const int64_t m = std::min(chunk, n - c0);
    for (int64_t c = 0; c < m; ++c) {
      for (int64_t k = 0; k < kin; ++k) {
        const int64_t e = l.Flat(k, c0 + c, kin);
        d[c * kin + k] = static_cast<double>(src[e]) - q(e);
      }
    }
    loss += gptq_la::QuadraticFormSum(d.data(), m, h0, kin);
  }
  return loss;
}

// Writes a slice's rounded weights (channels [c0, c0 + n) of `result`)
// back in the weight's orientation and column order, and its group
// parameters into result.params (ComputeWeightParams' layout).
void WriteSlice(const WeightLayout& full, const Shape& full_shape, int64_t c0,
                const GptqWork& work, const std::vector<float>& q,
                GptqResult& result) {
  const GroupParams& groups = work.groups;
  const std::vector<int64_t>& perm = *work.perm;
  const int64_t kin = full.kin, n = work.layout.n;
  float* out = result.weights.mutable_data<float>();
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t i = 0; i < kin; ++i)
      out[full.Flat(perm[i], c0 + c, kin)] = q[c * kin + i];
  }
  if (!groups.grouped) return;  // RTN's parameters, already in result
  for (int64_t g = 0; g < groups.num_groups; ++g) {
    for (int64_t c = 0; c < n; ++c) {
      const int64_t idx = ParamIndex(result.params, full_shape,
                                     full.Flat(g * groups.gs, c0 + c, kin));
      result.params.scales[idx] = groups.scale[g * n + c];
      if (!result.params.zero_points.empty()) {
        result.params.zero_points[idx] = groups.zero[g * n + c];
      }
    }
  }
}

// Output channels per slice: one slice's working copy (doubles) stays near
// 64 MB, where a whole LM head's would be 524 MB at 32000 x 2048. Rows are
// rounded independently given U, so slicing does not change the result. A
// per-tensor scale is the whole weight's: one slice.
int64_t ChannelsPerSlice(const QuantParams& rtn_params, const WeightLayout& l,
                         const GptqOptions& options) {
  if (rtn_params.axis < 0) return l.n;
  if (options.channels_per_slice > 0) {
    return std::min(options.channels_per_slice, l.n);
  }
  return std::clamp<int64_t>((int64_t{8} << 20) / l.kin, 1, l.n);
}

}  // namespace

absl::StatusOr<GptqResult> GptqQuantize(
    const Tensor& weight, const WeightSlot& slot, const WeightScheme& scheme,
    std::vector<double> hessian, int64_t num_rows, const GptqOptions& options) {
  const std::string where = absl::StrCat("GPTQ of weight '", slot.initializer,
                                         "' (node '", slot.node, "'): ");
  QUANTD_RETURN_IF_ERROR(
      CheckGptqArguments(where, weight, slot, hessian, num_rows, options));
  QUANTD_ASSIGN_OR_RETURN(const QuantParams rtn_params,
                          ComputeWeightParams(weight, slot, scheme));
  WeightLayout full;
  full.input_axis = slot.input_axis;
  full.kin = weight.dim(static_cast<int>(slot.input_axis));
  full.n = weight.dim(static_cast<int>(slot.channel_axis));
  QUANTD_ASSIGN_OR_RETURN(
      const GptqSystem sys,
      PrepareSystem(where, std::move(hessian), full.kin, num_rows, options));

  GptqResult result;
  result.weights = Tensor(DataType::kFloat32, weight.shape());
  result.params = rtn_params;
  const int64_t per_slice = ChannelsPerSlice(rtn_params, full, options);
  for (int64_t c0 = 0; c0 < full.n; c0 += per_slice) {
    const int64_t m = std::min(per_slice, full.n - c0);
    GptqWork work = StartWork(ChannelSlice(weight, full, c0, m), slot, sys);
    QUANTD_RETURN_IF_ERROR(StartGroups(full, weight.shape(), c0, slot, scheme,
                                       options, rtn_params, work));
    if (options.act_order) PermuteColumns(work);
    std::vector<float> q;
    QUANTD_ASSIGN_OR_RETURN(
        q, RoundAllColumns(slot, scheme, options, sys.u, work));
    WriteSlice(full, weight.shape(), c0, work, q, result);
  }

  const float* src = weight.data<float>();
  const Shape& shape = weight.shape();
  result.rtn_loss = ProxyLoss(full, src, sys.h0, [&](int64_t e) {
    const int64_t k = ParamIndex(rtn_params, shape, e);
    return QuantizeDequantize(
        src[e], rtn_params.scales[k],
        rtn_params.zero_points.empty() ? 0 : rtn_params.zero_points[k],
        rtn_params.qmin, rtn_params.qmax);
  });
  const float* rounded = result.weights.data<float>();
  result.gptq_loss =
      ProxyLoss(full, src, sys.h0, [&](int64_t e) { return rounded[e]; });
  return result;
}

}  // namespace quantd
