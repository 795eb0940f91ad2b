// GPTQ for Conv layers: each group's weights, flattened to [M/g, C/g * k...],
// are rounded by GptqQuantize against that group's patch Hessian
// (engine/calibration/conv_patch_hessian.h), the same column-by-column error
// feedback as for a MatMul, with input patches for rows. Per-group scales
// (input channels at one kernel tap) are rounded with the columns ordered
// tap-major, where each scale group is contiguous, and returned in the
// Conv's own per-group layout.
//
//   if (ConvGptqUnsupportedReason(scheme, h.groups, w.dim(1)).empty()) {
//     absl::StatusOr<GptqResult> r =
//         GptqQuantizeConv(w, slot, scheme, h, GptqOptions{});
//   }
#ifndef QUANTD_ENGINE_QUANTIZATION_CONV_GPTQ_H_
#define QUANTD_ENGINE_QUANTIZATION_CONV_GPTQ_H_

#include <string>

#include "absl/status/statusor.h"
#include "engine/calibration/conv_patch_hessian.h"
#include "engine/quantization/gptq.h"

namespace quantd {

// Why GPTQ cannot round a Conv with this scheme, or "" if it can: per-group
// scales need a group size dividing the input channels per conv group (a
// shorter last group would straddle kernel taps in GPTQ's column order);
// one per-tensor scale across several conv groups would need the groups
// rounded together.
std::string ConvGptqUnsupportedReason(const WeightScheme& scheme,
                                      int64_t conv_groups,
                                      int64_t channels_per_group);

// `weight` [M, C/g, k...] of a Conv slot (channel_axis 0, input_axis 1);
// `hessian` gathered from its input. The result has the weight's shape;
// losses are summed over groups. InvalidArgument when shapes disagree or
// the scheme is unsupported.
absl::StatusOr<GptqResult> GptqQuantizeConv(const Tensor& weight,
                                            const WeightSlot& slot,
                                            const WeightScheme& scheme,
                                            const ConvPatchHessian& hessian,
                                            const GptqOptions& options);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_CONV_GPTQ_H_
