#include "engine/quantization/conv_gptq.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {

std::string ConvGptqUnsupportedReason(const WeightScheme& scheme,
                                      int64_t conv_groups,
                                      int64_t channels_per_group) {
  if (scheme.granularity == WeightGranularity::kPerGroup &&
      (scheme.group_size <= 0 || channels_per_group % scheme.group_size)) {
    return absl::StrCat("group size ", scheme.group_size,
                        " does not divide the Conv's ", channels_per_group,
                        " input channels per group");
  }
  if (scheme.granularity == WeightGranularity::kPerTensor && conv_groups > 1) {
    return "one per-tensor scale across several conv groups";
  }
  return "";
}

namespace {

// Per-group Conv scales cover `group_size` input channels at one kernel tap
// (weight_quantization.h), which are strided in the flattened [c][tap]
// column order. Ordering the columns tap-major makes each scale group a
// run of consecutive columns, as GPTQ's per-group rounding expects.
// column_of[j'] = the flattened column placed at j'.
std::vector<int64_t> TapMajorOrder(int64_t channels, int64_t taps) {
  std::vector<int64_t> column_of(channels * taps);
  for (int64_t t = 0; t < taps; ++t) {
    for (int64_t c = 0; c < channels; ++c) {
      column_of[t * channels + c] = c * taps + t;
    }
  }
  return column_of;
}

struct GroupProblem {
  Tensor weights;               // [M/g, K], columns in `column_of` order
  std::vector<double> hessian;  // K x K, same order
};

GroupProblem PermutedGroup(const float* w, const float* h, int64_t rows,
                           int64_t k, const std::vector<int64_t>& column_of) {
  GroupProblem p{Tensor(DataType::kFloat32, {rows, k}),
                 std::vector<double>(k * k)};
  float* dst = p.weights.mutable_data<float>();
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t j = 0; j < k; ++j) dst[m * k + j] = w[m * k + column_of[j]];
  }
  for (int64_t a = 0; a < k; ++a) {
    for (int64_t b = 0; b < k; ++b) {
      p.hessian[a * k + b] = h[column_of[a] * k + column_of[b]];
    }
  }
  return p;
}

// Moves one conv group's GPTQ result into `out`: weights back to the
// flattened column order, per-group parameters from [rows, taps * blocks]
// (tap-major) to the Conv's [rows, blocks, taps] layout.
void AppendGroup(const GptqResult& r, int64_t first_row, int64_t k,
                 int64_t taps, const std::vector<int64_t>& column_of,
                 bool per_group, GptqResult& out) {
  const int64_t rows = r.weights.dim(0);
  const float* src = r.weights.data<float>();
  float* dst = out.weights.mutable_data<float>() + first_row * k;
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t j = 0; j < k; ++j) dst[m * k + column_of[j]] = src[m * k + j];
  }
  out.rtn_loss += r.rtn_loss;
  out.gptq_loss += r.gptq_loss;
  auto& scales = out.params.scales;
  auto& zero_points = out.params.zero_points;
  if (!per_group) {
    scales.insert(scales.end(), r.params.scales.begin(), r.params.scales.end());
    zero_points.insert(zero_points.end(), r.params.zero_points.begin(),
                       r.params.zero_points.end());
    return;
  }
  const int64_t blocks = r.params.scales.size() / (rows * taps);
  for (int64_t m = 0; m < rows; ++m) {
    for (int64_t b = 0; b < blocks; ++b) {
      for (int64_t t = 0; t < taps; ++t) {
        const int64_t i = (m * taps + t) * blocks + b;
        scales.push_back(r.params.scales[i]);
        if (!r.params.zero_points.empty()) {
          zero_points.push_back(r.params.zero_points[i]);
        }
      }
    }
  }
}

}  // namespace

absl::StatusOr<GptqResult> GptqQuantizeConv(const Tensor& weight,
                                            const WeightSlot& slot,
                                            const WeightScheme& scheme,
                                            const ConvPatchHessian& hessian,
                                            const GptqOptions& options) {
  const int64_t k = hessian.patch_size, groups = hessian.groups;
  if (weight.dtype() != DataType::kFloat32 || weight.rank() < 3 ||
      slot.channel_axis != 0 || slot.input_axis != 1 || groups < 1 ||
      weight.dim(0) % groups != 0 ||
      weight.num_elements() != weight.dim(0) * k || hessian.patches < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GPTQ on Conv '", slot.node, "': weight ", weight.DebugString(),
        " does not match a patch Hessian of ", groups, " groups of ", k));
  }
  const int64_t channels = weight.dim(1), taps = k / channels;
  const std::string unsupported =
      ConvGptqUnsupportedReason(scheme, groups, channels);
  if (!unsupported.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GPTQ on Conv '", slot.node, "': ", unsupported));
  }
  const bool per_group = scheme.granularity == WeightGranularity::kPerGroup;
  // Without per-group scales the order does not matter: keep it (one "tap"
  // of k channels is the identity).
  const std::vector<int64_t> column_of =
      per_group ? TapMajorOrder(channels, taps) : TapMajorOrder(k, 1);
  const int64_t rows = weight.dim(0) / groups;
  const WeightSlot flat{slot.node, "Gemm", slot.initializer, 0, 1};
  GptqResult out;
  out.weights = Tensor(DataType::kFloat32, weight.shape());
  for (int64_t g = 0; g < groups; ++g) {
    GroupProblem p = PermutedGroup(weight.data<float>() + g * rows * k,
                                   hessian.Group(g), rows, k, column_of);
    QUANTD_ASSIGN_OR_RETURN(
        GptqResult r,
        GptqQuantize(p.weights, flat, scheme, std::move(p.hessian),
                     hessian.patches, options));
    if (g == 0) {
      out.params = r.params;  // type, range, axis; scales appended below
      out.params.scales.clear();
      out.params.zero_points.clear();
    }
    AppendGroup(r, g * rows, k, taps, column_of, per_group, out);
  }
  if (per_group) {  // the Conv's layout (weight_quantization.h)
    out.params.scales_shape = weight.shape();
    out.params.scales_shape[1] = channels / scheme.group_size;
  }
  return out;
}

}  // namespace quantd
