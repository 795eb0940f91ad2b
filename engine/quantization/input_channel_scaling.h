// Per-input-channel rescaling of linear layers, the equivalent transform
// behind SmoothQuant and AWQ: y = x W = (x / s)(diag(s) W). In float the
// model is unchanged; after quantization, s moves difficulty between the
// activations (SmoothQuant: outlier channels shrink) and the weights (AWQ:
// salient input channels get finer weight steps).
//
//   std::vector<ScalingGroup> groups = GroupLinearLayersByInput(graph, slots);
//   absl::StatusOr<std::string> how =
//       ApplyInputChannelScaling(graph, groups[0], scales);
//
// Layers reading the same input (a transformer's q, k and v projections)
// share one s, because the input can be divided only once. The division by
// s is folded into the LayerNormalization that produces the input when
// nothing else reads it (no runtime cost); otherwise a Mul by 1/s is
// inserted in front of the group.
#ifndef QUANTD_ENGINE_QUANTIZATION_INPUT_CHANNEL_SCALING_H_
#define QUANTD_ENGINE_QUANTIZATION_INPUT_CHANNEL_SCALING_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/quantization/weight_quantization.h"

namespace quantd {

struct ScalingGroup {
  std::string input;              // the value all slots read as input 0
  std::vector<WeightSlot> slots;  // MatMul / Gemm layers with 2-D weights
};

// Groups the MatMul and Gemm (transA = 0) slots by their input value; Conv
// slots are not rescaled (their input channel is not their last dim).
std::vector<ScalingGroup> GroupLinearLayersByInput(
    const Graph& graph, const std::vector<WeightSlot>& slots);

// Applies y = (x / s)(diag(s) W) to every slot of `group`; `scales` has one
// positive finite entry per input channel. Returns how the division was
// done ("folded into LayerNormalization 'ln1'" or "Mul node 'x_smooth'").
// Weights shared with layers outside the group are copied first.
absl::StatusOr<std::string> ApplyInputChannelScaling(
    Graph& graph, const ScalingGroup& group, const std::vector<float>& scales);

// SmoothQuant's scales: s_j = max|x_j|^alpha / max|W_j|^(1 - alpha), with
// max|W_j| over all of the group's weights; 1 where either maximum is 0.
absl::StatusOr<std::vector<float>> SmoothQuantScales(
    const Graph& graph, const ScalingGroup& group,
    const std::vector<float>& activation_abs_max, double alpha);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_INPUT_CHANNEL_SCALING_H_
