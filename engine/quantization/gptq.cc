#include "engine/quantization/gptq.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Rows processed together by the triangular kernels below: each row of the
// already finished part is then read from memory once per block instead of
// once per row, which is what bounds these O(K^3) loops for large K.
constexpr int64_t kRowBlock = 16;

double Dot(const double* a, const double* b, int64_t n) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;  // independent chains pipeline
  int64_t i = 0;
  for (; i + 4 <= n; i += 4) {
    s0 += a[i] * b[i];
    s1 += a[i + 1] * b[i + 1];
    s2 += a[i + 2] * b[i + 2];
    s3 += a[i + 3] * b[i + 3];
  }
  for (; i < n; ++i) s0 += a[i] * b[i];
  return (s0 + s1) + (s2 + s3);
}

// In place: the lower triangle of row-major `a` (k x k) becomes L with
// A = L L^T; the strict upper triangle is zeroed. False if A is not
// (numerically) positive definite.
bool CholeskyLower(std::vector<double>& a, int64_t k) {
  for (int64_t b0 = 0; b0 < k; b0 += kRowBlock) {
    const int64_t b1 = std::min(b0 + kRowBlock, k);
    for (int64_t j = 0; j < b1; ++j) {  // column j of the block's rows
      const double* lj = &a[j * k];
      for (int64_t i = std::max(b0, j); i < b1; ++i) {
        double* li = &a[i * k];
        const double v = li[j] - Dot(li, lj, j);
        if (i == j) {
          if (!(v > 0) || !std::isfinite(v)) return false;
          li[j] = std::sqrt(v);
        } else {
          li[j] = v / lj[j];
        }
      }
    }
  }
  for (int64_t i = 0; i < k; ++i)
    std::fill(&a[i * k + i + 1], &a[(i + 1) * k], 0.0);
  return true;
}

// The upper Cholesky factor U of H^-1 (H^-1 = U^T U), computed as GPTQ's
// reference does: L = chol(H), H^-1 = L^-T L^-1 (cholesky_inverse), then
// chol(H^-1, upper). Row i of U holds how rounding column i moves the columns
// after it. `h` is overwritten; false if H is not positive definite.
bool InverseHessianFactor(std::vector<double>& h, int64_t k) {
  if (!CholeskyLower(h, k)) return false;
  // X = L^-1 (lower), row by row: X[i] = (e_i - sum_{c<i} L[i][c] X[c]) /
  // L[i][i].
  std::vector<double> x(k * k, 0.0);
  for (int64_t b0 = 0; b0 < k; b0 += kRowBlock) {
    const int64_t b1 = std::min(b0 + kRowBlock, k);
    for (int64_t c = 0; c < b1; ++c) {
      const double* xc = &x[c * k];
      for (int64_t i = std::max(b0, c); i < b1; ++i) {
        double* xi = &x[i * k];
        if (i == c) {
          const double inv = 1.0 / h[i * k + i];
          for (int64_t t = 0; t < i; ++t) xi[t] *= inv;
          xi[i] = inv;
          continue;
        }
        const double l = h[i * k + c];
        for (int64_t t = 0; t <= c; ++t) xi[t] -= l * xc[t];
      }
    }
  }
  // H^-1 = X^T X; lower triangle, row i = sum_{c>=i} X[c][i] X[c][0..i].
  std::fill(h.begin(), h.end(), 0.0);
  for (int64_t b0 = 0; b0 < k; b0 += kRowBlock) {
    const int64_t b1 = std::min(b0 + kRowBlock, k);
    for (int64_t c = b0; c < k; ++c) {
      const double* xc = &x[c * k];
      for (int64_t i = b0; i < b1 && i <= c; ++i) {
        double* hi = &h[i * k];
        const double f = xc[i];
        for (int64_t t = 0; t <= i; ++t) hi[t] += f * xc[t];
      }
    }
  }
  if (!CholeskyLower(h, k)) return false;  // H^-1 = M M^T, U = M^T
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = i + 1; j < k; ++j) std::swap(h[i * k + j], h[j * k + i]);
  }
  return true;
}

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

struct GptqWork {
  WeightLayout layout;
  // H / num_rows, undamped: the proxy loss is measured against it.
  std::vector<double> h0;
  // h0 with dead inputs made harmless, permuted with the columns.
  std::vector<double> h;
  // Working copy of W as [n, kin], so that every update runs along a row.
  std::vector<double> w;
  // Column i of w (and row/column i of h) is input perm[i] of the weight.
  std::vector<int64_t> perm;
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
  auto finite = [](auto v) { return std::isfinite(v); };
  if (!std::all_of(hessian.begin(), hessian.end(), finite) ||
      !std::all_of(weight.span<float>().begin(), weight.span<float>().end(),
                   finite)) {
    return absl::InvalidArgumentError(
        absl::StrCat(where, "the Hessian or the weight has non-finite values"));
  }
  return absl::OkStatus();
}

GptqWork StartWork(const Tensor& weight, const WeightSlot& slot,
                   const std::vector<double>& hessian, int64_t num_rows) {
  GptqWork work;
  WeightLayout& l = work.layout;
  l.input_axis = slot.input_axis;
  l.kin = weight.dim(static_cast<int>(slot.input_axis));
  l.n = weight.dim(static_cast<int>(slot.channel_axis));
  const int64_t kin = l.kin, n = l.n;
  work.h0 = hessian;
  for (double& v : work.h0) v /= static_cast<double>(num_rows);
  work.h = work.h0;
  work.w.resize(n * kin);
  const float* src = weight.data<float>();
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t k = 0; k < kin; ++k)
      work.w[c * kin + k] = src[l.Flat(k, c, kin)];
  }
  for (int64_t k = 0; k < kin; ++k) {  // inputs never active: nothing to fit
    if (work.h[k * kin + k] == 0) {
      work.h[k * kin + k] = 1;
      for (int64_t c = 0; c < n; ++c) work.w[c * kin + k] = 0;
    }
  }
  work.perm.resize(kin);
  std::iota(work.perm.begin(), work.perm.end(), 0);
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
absl::Status StartGroups(const Tensor& weight, const WeightSlot& slot,
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
    CopyParams(l, weight, rtn_params, 0, 0, groups);
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

// Orders the columns of w and the rows and columns of h by descending
// diag(H).
void PermuteByActivity(GptqWork& work) {
  const int64_t kin = work.layout.kin, n = work.layout.n;
  const std::vector<double>& h = work.h;
  std::vector<int64_t>& perm = work.perm;
  std::stable_sort(perm.begin(), perm.end(), [&](int64_t a, int64_t b) {
    return h[a * kin + a] > h[b * kin + b];
  });
  std::vector<double> pw(work.w.size()), ph(h.size());
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t k = 0; k < kin; ++k)
      pw[c * kin + k] = work.w[c * kin + perm[k]];
  }
  for (int64_t i = 0; i < kin; ++i) {
    for (int64_t j = 0; j < kin; ++j)
      ph[i * kin + j] = h[perm[i] * kin + perm[j]];
  }
  work.w.swap(pw);
  work.h.swap(ph);
}

// InverseHessianFactor of h plus damping on the diagonal, raising the
// damping up to 1000x until H is positive definite; empty if it never is.
std::vector<double> DampedInverseHessianFactor(const std::vector<double>& h,
                                               int64_t kin,
                                               double damp_percent) {
  double mean_diag = 0;
  for (int64_t k = 0; k < kin; ++k) mean_diag += h[k * kin + k] / kin;
  double damp = damp_percent * mean_diag;
  std::vector<double> u;
  for (int attempt = 0; attempt < 4 && u.empty(); ++attempt) {
    std::vector<double> a(h);
    for (int64_t k = 0; k < kin; ++k) a[k * kin + k] += damp;
    if (InverseHessianFactor(a, kin)) u.swap(a);
    damp = damp > 0 ? damp * 10 : 0.01 * mean_diag;
  }
  return u;
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
    const int64_t g = groups.grouped ? work.perm[i] / groups.gs : 0;
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
#pragma omp parallel for if (n * nb * (kin - i2) > 65536)
  for (int64_t c = 0; c < n; ++c) {
    double* wc = &w[c * kin];
    for (int64_t t = 0; t < nb; ++t) {
      const double e = err[c * nb + t];
      const double* ut = &u[(i1 + t) * kin];
      for (int64_t j = i2; j < kin; ++j) wc[j] -= e * ut[j];
    }
  }
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

// tr(D H D^T) with D = W - Q, one output channel (row of D) at a time.
double ProxyLoss(const WeightLayout& l, const float* src,
                 const std::vector<double>& h0, const Tensor& qt) {
  const int64_t kin = l.kin, n = l.n;
  double loss = 0;
#pragma omp parallel for reduction(+ : loss) if (n * kin * kin > 65536)
  for (int64_t c = 0; c < n; ++c) {
    std::vector<double> d(kin);
    for (int64_t k = 0; k < kin; ++k) {
      const int64_t e = l.Flat(k, c, kin);
      d[k] = static_cast<double>(src[e]) - qt.data<float>()[e];
    }
    for (int64_t k = 0; k < kin; ++k) {
      if (d[k] != 0) loss += d[k] * Dot(&h0[k * kin], d.data(), kin);
    }
  }
  return loss;
}

// The rounded weights back in the weight's orientation and column order,
// with the parameters used in ComputeWeightParams' layout.
GptqResult AssembleResult(const Tensor& weight, const QuantParams& rtn_params,
                          const GptqWork& work, const std::vector<float>& q) {
  const WeightLayout& l = work.layout;
  const GroupParams& groups = work.groups;
  const int64_t kin = l.kin, n = l.n;
  GptqResult result;
  result.weights = Tensor(DataType::kFloat32, weight.shape());
  float* out = result.weights.mutable_data<float>();
  for (int64_t c = 0; c < n; ++c) {
    for (int64_t i = 0; i < kin; ++i)
      out[l.Flat(work.perm[i], c, kin)] = q[c * kin + i];
  }
  result.params = rtn_params;  // ComputeWeightParams' layout
  if (groups.grouped) {
    for (int64_t g = 0; g < groups.num_groups; ++g) {
      for (int64_t c = 0; c < n; ++c) {
        const int64_t idx = ParamIndex(result.params, weight.shape(),
                                       l.Flat(g * groups.gs, c, kin));
        result.params.scales[idx] = groups.scale[g * n + c];
        if (!result.params.zero_points.empty()) {
          result.params.zero_points[idx] = groups.zero[g * n + c];
        }
      }
    }
  }
  return result;
}

}  // namespace

absl::StatusOr<GptqResult> GptqQuantize(const Tensor& weight,
                                        const WeightSlot& slot,
                                        const WeightScheme& scheme,
                                        const std::vector<double>& hessian,
                                        int64_t num_rows,
                                        const GptqOptions& options) {
  const std::string where = absl::StrCat("GPTQ of weight '", slot.initializer,
                                         "' (node '", slot.node, "'): ");
  QUANTD_RETURN_IF_ERROR(
      CheckGptqArguments(where, weight, slot, hessian, num_rows, options));
  QUANTD_ASSIGN_OR_RETURN(const QuantParams rtn_params,
                          ComputeWeightParams(weight, slot, scheme));
  QUANTD_ASSIGN_OR_RETURN(const Tensor rtn,
                          FakeQuantizeWeights(weight, rtn_params));

  GptqWork work = StartWork(weight, slot, hessian, num_rows);
  QUANTD_RETURN_IF_ERROR(
      StartGroups(weight, slot, scheme, options, rtn_params, work));
  if (options.act_order) PermuteByActivity(work);
  const std::vector<double> u =
      DampedInverseHessianFactor(work.h, work.layout.kin, options.damp_percent);
  if (u.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat(where,
                     "the Hessian is not positive definite even with 1000x the "
                     "damping; check the calibration inputs of this node"));
  }
  QUANTD_ASSIGN_OR_RETURN(const std::vector<float> q,
                          RoundAllColumns(slot, scheme, options, u, work));

  GptqResult result = AssembleResult(weight, rtn_params, work, q);
  const float* src = weight.data<float>();
  result.rtn_loss = ProxyLoss(work.layout, src, work.h0, rtn);
  result.gptq_loss = ProxyLoss(work.layout, src, work.h0, result.weights);
  return result;
}

}  // namespace quantd
