#include "engine/quantization/conv_gptq.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {

std::string ConvGptqUnsupportedReason(const WeightScheme& scheme,
                                      int64_t conv_groups) {
  if (scheme.granularity == WeightGranularity::kPerGroup) {
    return "per-group scales on a Conv run along input channels at each "
           "kernel tap, not along GPTQ's column order";
  }
  if (scheme.granularity == WeightGranularity::kPerTensor && conv_groups > 1) {
    return "one per-tensor scale across several conv groups";
  }
  return "";
}

absl::StatusOr<GptqResult> GptqQuantizeConv(const Tensor& weight,
                                            const WeightSlot& slot,
                                            const WeightScheme& scheme,
                                            const ConvPatchHessian& hessian,
                                            const GptqOptions& options) {
  const std::string unsupported =
      ConvGptqUnsupportedReason(scheme, hessian.groups);
  if (!unsupported.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("GPTQ on Conv '", slot.node, "': ", unsupported));
  }
  const int64_t k = hessian.patch_size, groups = hessian.groups;
  if (weight.dtype() != DataType::kFloat32 || weight.rank() < 3 ||
      slot.channel_axis != 0 || slot.input_axis != 1 || groups < 1 ||
      weight.dim(0) % groups != 0 ||
      weight.num_elements() != weight.dim(0) * k || hessian.patches < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "GPTQ on Conv '", slot.node, "': weight ", weight.DebugString(),
        " does not match a patch Hessian of ", groups, " groups of ", k));
  }
  const int64_t per_group = weight.dim(0) / groups;
  const WeightSlot flat{slot.node, "Gemm", slot.initializer, 0, 1};
  GptqResult out;
  out.weights = Tensor(DataType::kFloat32, weight.shape());
  float* dst = out.weights.mutable_data<float>();
  for (int64_t g = 0; g < groups; ++g) {
    Tensor wg(DataType::kFloat32, {per_group, k});
    std::copy_n(weight.data<float>() + g * per_group * k, per_group * k,
                wg.mutable_data<float>());
    const float* hg = hessian.Group(g);
    QUANTD_ASSIGN_OR_RETURN(
        GptqResult r,
        GptqQuantize(wg, flat, scheme, std::vector<double>(hg, hg + k * k),
                     hessian.patches, options));
    std::copy_n(r.weights.data<float>(), per_group * k,
                dst + g * per_group * k);
    out.rtn_loss += r.rtn_loss;
    out.gptq_loss += r.gptq_loss;
    if (g == 0) {
      out.params = std::move(r.params);
      continue;
    }
    // Per channel (per tensor has one group): channels follow group order.
    out.params.scales.insert(out.params.scales.end(), r.params.scales.begin(),
                             r.params.scales.end());
    out.params.zero_points.insert(out.params.zero_points.end(),
                                  r.params.zero_points.begin(),
                                  r.params.zero_points.end());
  }
  return out;
}

}  // namespace quantd
