// Bias correction (Nagel et al. 2019, "Data-Free Quantization", sec. 4.2):
// rounding the weights shifts every output channel's mean by
// E[x] . (Q(W) - W). Subtracting that shift from the layer's bias removes
// the systematic part of the weight error; E[x] comes from calibration.
//
//   std::string bias = FindBiasInitializer(graph, slot);   // "" if none
//   absl::StatusOr<Tensor> b = CorrectedBias(graph, slot, fake_quantized_w,
//                                            input_mean);
//   plan.updated_initializers[bias] = *b;
#ifndef QUANTD_ENGINE_QUANTIZATION_BIAS_CORRECTION_H_
#define QUANTD_ENGINE_QUANTIZATION_BIAS_CORRECTION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/quantization/weight_quantization.h"

namespace quantd {

// The float bias added to the layer's output per output channel: input 2 of
// Conv and Gemm (beta != 0, one value per channel), or for MatMul the
// constant [N] operand of an Add that alone reads the MatMul's output.
// Returns "" when the layer has none.
std::string FindBiasInitializer(const Graph& graph, const WeightSlot& slot);

// The bias minus E[x] . (quantized - float weights) per output channel.
// `input_mean` has one entry per input channel of the layer (Conv: channels
// of the input, across groups). Conv padding is ignored: the correction is
// exact for positions away from the border.
absl::StatusOr<Tensor> CorrectedBias(const Graph& graph, const WeightSlot& slot,
                                     const Tensor& quantized_weight,
                                     const std::vector<double>& input_mean);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_BIAS_CORRECTION_H_
