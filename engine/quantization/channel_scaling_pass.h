// SmoothQuant and AWQ over a whole graph: for every group of linear layers
// that read the same input (engine/quantization/input_channel_scaling.h),
// choose per-input-channel scales from calibration statistics and apply them.
// Both keep the float model's function; they change what quantization
// loses.
//
//   InputStatisticsCollector stats = ...;   // abs max, sampled rows
//   absl::StatusOr<ScalingNotes> notes =
//       ApplySmoothQuant(graph, slots, *stats, /*alpha=*/0.5);
//
// The returned notes (by node name) go into LayerReport.algorithms. The
// caller re-finds the weight slots afterwards: scaled weights get new
// initializer names.
#ifndef QUANTD_ENGINE_QUANTIZATION_CHANNEL_SCALING_PASS_H_
#define QUANTD_ENGINE_QUANTIZATION_CHANNEL_SCALING_PASS_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/calibration/layer_input_statistics.h"
#include "engine/ir/graph.h"
#include "engine/quantization/awq.h"
#include "engine/quantization/weight_quantization.h"

namespace quantd {

using ScalingNotes = std::map<std::string, std::string>;  // node -> note

// The inputs whose statistics the passes need (groups' inputs, channels in
// the last dim).
std::map<std::string, ChannelLayout> ScalingPassInputs(
    const Graph& graph, const std::vector<WeightSlot>& slots);

// SmoothQuant (Xiao et al. 2023): s = max|x|^alpha / max|W|^(1 - alpha).
absl::StatusOr<ScalingNotes> ApplySmoothQuant(
    Graph& graph, const std::vector<WeightSlot>& slots,
    const InputStatisticsCollector& stats, double alpha);

// AWQ (Lin et al. 2023): per group, the scales that minimise the output
// error of the group's weights quantized with `scheme` on sampled input
// rows (needs InputStatisticsOptions::max_sample_rows > 0).
absl::StatusOr<ScalingNotes> ApplyAwq(Graph& graph,
                                      const std::vector<WeightSlot>& slots,
                                      const InputStatisticsCollector& stats,
                                      const WeightScheme& scheme,
                                      const AwqOptions& options);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_CHANNEL_SCALING_PASS_H_
