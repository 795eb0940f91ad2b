#include "engine/quantization/awq.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Checks what both entry points need: a float 2-D weight whose slot names
// one axis as input and the other as output channels.
absl::Status CheckWeight(const Tensor& weight, const WeightSlot& slot) {
  if (weight.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("AWQ: weight '", slot.initializer, "' is ",
                     weight.DebugString(), "; only float weights are scaled"));
  }
  if (weight.rank() != 2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AWQ: weight '", slot.initializer, "' (node '", slot.node, "') is ",
        weight.DebugString(),
        "; only 2-D MatMul/Gemm weights are supported (exclude the node)"));
  }
  if ((slot.input_axis != 0 && slot.input_axis != 1) ||
      slot.channel_axis != 1 - slot.input_axis) {
    return absl::InvalidArgumentError(
        absl::StrCat("AWQ: weight '", slot.initializer, "' has input_axis ",
                     slot.input_axis, " and channel_axis ", slot.channel_axis,
                     "; a 2-D weight needs one of each (0 and 1)"));
  }
  return absl::OkStatus();
}

// A copy of `w` laid out [K, N] whatever its orientation, so that the error
// product below always walks contiguous rows.
std::vector<float> ToKN(const Tensor& w, int64_t input_axis) {
  const int64_t k_dim = w.dim(static_cast<int>(input_axis));
  const int64_t n_dim = w.dim(static_cast<int>(1 - input_axis));
  const float* src = w.data<float>();
  if (input_axis == 0) return std::vector<float>(src, src + k_dim * n_dim);
  std::vector<float> out(k_dim * n_dim);
  for (int64_t n = 0; n < n_dim; ++n) {
    for (int64_t k = 0; k < k_dim; ++k) out[k * n_dim + n] = src[n * k_dim + k];
  }
  return out;
}

// The AWQ reference's scales for one ratio: mean|x| ^ alpha, normalised so
// that max * min = 1 (the geometric middle of the scales is 1, keeping the
// scaled weight's range near the original's).
std::vector<float> ScalesForAlpha(const std::vector<double>& mean_abs,
                                  double alpha) {
  std::vector<double> s(mean_abs.size());
  for (size_t j = 0; j < s.size(); ++j) {
    s[j] = std::pow(std::max(mean_abs[j], 1e-8), alpha);
  }
  const auto [lo, hi] = std::minmax_element(s.begin(), s.end());
  const double norm = std::sqrt(*lo * *hi);
  std::vector<float> out(s.size());
  for (size_t j = 0; j < s.size(); ++j)
    out[j] = static_cast<float>(s[j] / norm);
  return out;
}

// || X E ||^2 / (M * N) for X [M, K] and E [K, N], row by row in i-k-j order
// (contiguous rows of E), float products with a double sum of squares.
double MeanSquaredProduct(const float* x, int64_t m_dim, int64_t k_dim,
                          const std::vector<float>& e, int64_t n_dim) {
  std::vector<float> row(n_dim);
  double sum = 0;
  for (int64_t i = 0; i < m_dim; ++i) {
    std::fill(row.begin(), row.end(), 0.f);
    const float* xi = x + i * k_dim;
    for (int64_t k = 0; k < k_dim; ++k) {
      const float a = xi[k];
      if (a == 0.f) continue;
      const float* __restrict ek = e.data() + k * n_dim;
      float* __restrict r = row.data();
      // Nearly all the search's time; -O2's cheap cost model leaves it
      // scalar, 3x slower at K = N = 1024.
#pragma omp simd
      for (int64_t n = 0; n < n_dim; ++n) r[n] += a * ek[n];
    }
    for (int64_t n = 0; n < n_dim; ++n) sum += double(row[n]) * row[n];
  }
  return sum / (double(m_dim) * double(n_dim));
}

}  // namespace

absl::StatusOr<Tensor> ScaleWeightInputChannels(
    const Tensor& weight, const WeightSlot& slot,
    const std::vector<float>& scales) {
  QUANTD_RETURN_IF_ERROR(CheckWeight(weight, slot));
  const int64_t k_dim = weight.dim(static_cast<int>(slot.input_axis));
  if (static_cast<int64_t>(scales.size()) != k_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("AWQ: ", scales.size(), " scales for weight '",
                     slot.initializer, "' with ", k_dim, " input channels"));
  }
  for (size_t j = 0; j < scales.size(); ++j) {
    if (!std::isfinite(scales[j]) || !(scales[j] > 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("AWQ: scale ", j, " is ", scales[j],
                       "; scales must be finite and positive"));
    }
  }
  Tensor out(DataType::kFloat32, weight.shape());
  const float* src = weight.data<float>();
  float* dst = out.mutable_data<float>();
  const int64_t cols = weight.dim(1);
  for (int64_t i = 0; i < weight.num_elements(); ++i) {
    const int64_t k = slot.input_axis == 0 ? i / cols : i % cols;
    dst[i] = src[i] * scales[k];
  }
  return out;
}

namespace {

// What the search needs beyond CheckWeight: a usable grid, input rows [M, K]
// matching the weight, and non-empty, finite weights.
absl::Status CheckSearchArguments(const Tensor& weight, const WeightSlot& slot,
                                  const Tensor& inputs,
                                  const AwqOptions& options) {
  QUANTD_RETURN_IF_ERROR(CheckWeight(weight, slot));
  if (options.grid_size < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "AWQ: grid_size is ", options.grid_size, "; it must be at least 1"));
  }
  const int64_t k_dim = weight.dim(static_cast<int>(slot.input_axis));
  const int64_t n_dim = weight.dim(static_cast<int>(1 - slot.input_axis));
  if (inputs.dtype() != DataType::kFloat32 || inputs.rank() != 2 ||
      inputs.dim(1) != k_dim) {
    return absl::InvalidArgumentError(
        absl::StrCat("AWQ: inputs for weight '", slot.initializer, "' are ",
                     inputs.DebugString(), "; expected f32 [M, ", k_dim,
                     "] (the layer's input rows)"));
  }
  if (k_dim == 0 || n_dim == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AWQ: weight '", slot.initializer, "' is empty (",
                     weight.DebugString(), ")"));
  }
  if (inputs.dim(0) == 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("AWQ: no input rows for weight '", slot.initializer,
                     "'; the search needs at least one calibration sample"));
  }
  for (float v : weight.span<float>()) {
    if (!std::isfinite(v)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "AWQ: weight '", slot.initializer, "' has non-finite values"));
    }
  }
  return absl::OkStatus();
}

// mean |x| per input channel over the rows of `inputs` [M, K].
absl::StatusOr<std::vector<double>> MeanAbsInputs(const Tensor& inputs,
                                                  const WeightSlot& slot) {
  const int64_t m_dim = inputs.dim(0), k_dim = inputs.dim(1);
  const float* x = inputs.data<float>();
  std::vector<double> mean_abs(k_dim, 0.0);
  for (int64_t i = 0; i < m_dim; ++i) {
    for (int64_t k = 0; k < k_dim; ++k) {
      const float v = x[i * k_dim + k];
      if (!std::isfinite(v)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "AWQ: input row ", i, " channel ", k, " for weight '",
            slot.initializer, "' is ", v, "; inputs must be finite"));
      }
      mean_abs[k] += std::fabs(v);
    }
  }
  for (double& v : mean_abs) v /= double(m_dim);
  return mean_abs;
}

// The layer's output error when its weight is quantized with input channels
// scaled by `scales`. X W - (X / s) Q = X (W - Q / s): one product, on the
// error matrix rather than on two nearly equal outputs, so nothing cancels.
// `e` is scratch space of K * N floats.
absl::StatusOr<double> ScaledQuantizationLoss(
    const Tensor& weight, const WeightSlot& slot, const WeightScheme& scheme,
    const Tensor& inputs, const std::vector<float>& w_kn,
    const std::vector<float>& scales, std::vector<float>& e) {
  const int64_t k_dim = weight.dim(static_cast<int>(slot.input_axis));
  const int64_t n_dim = weight.dim(static_cast<int>(1 - slot.input_axis));
  QUANTD_ASSIGN_OR_RETURN(const Tensor scaled,
                          ScaleWeightInputChannels(weight, slot, scales));
  QUANTD_ASSIGN_OR_RETURN(const QuantParams params,
                          ComputeWeightParams(scaled, slot, scheme));
  QUANTD_ASSIGN_OR_RETURN(const Tensor q, FakeQuantizeWeights(scaled, params));
  const std::vector<float> q_kn = ToKN(q, slot.input_axis);
  for (int64_t k = 0; k < k_dim; ++k) {
    for (int64_t n = 0; n < n_dim; ++n) {
      e[k * n_dim + n] = w_kn[k * n_dim + n] - q_kn[k * n_dim + n] / scales[k];
    }
  }
  return MeanSquaredProduct(inputs.data<float>(), inputs.dim(0), k_dim, e,
                            n_dim);
}

}  // namespace

absl::StatusOr<AwqResult> SearchAwqScales(const Tensor& weight,
                                          const WeightSlot& slot,
                                          const WeightScheme& scheme,
                                          const Tensor& inputs,
                                          const AwqOptions& options) {
  QUANTD_RETURN_IF_ERROR(CheckSearchArguments(weight, slot, inputs, options));
  QUANTD_ASSIGN_OR_RETURN(const std::vector<double> mean_abs,
                          MeanAbsInputs(inputs, slot));
  const std::vector<float> w_kn = ToKN(weight, slot.input_axis);
  std::vector<float> e(w_kn.size());
  AwqResult best;
  for (int g = 0; g < options.grid_size; ++g) {
    const double alpha = double(g) / options.grid_size;
    std::vector<float> scales = ScalesForAlpha(mean_abs, alpha);
    QUANTD_ASSIGN_OR_RETURN(
        const double loss,
        ScaledQuantizationLoss(weight, slot, scheme, inputs, w_kn, scales, e));
    if (g == 0) {
      best = {std::move(scales), alpha, loss, loss};
    } else if (std::isfinite(loss) && loss < best.loss) {
      // Strictly smaller: ties keep the smaller alpha; a non-finite loss
      // (overflow with extreme scales) never wins.
      best.scales = std::move(scales);
      best.alpha = alpha;
      best.loss = loss;
    }
  }
  return best;
}

}  // namespace quantd
