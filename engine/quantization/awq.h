// AWQ (Lin et al. 2023, "AWQ: Activation-aware Weight Quantization"): a
// per-input-channel scale search that protects the weights multiplying large
// activations. The layer computes (x / s) . (s * W); scaling a salient input
// channel's weights up by s before rounding shrinks their relative rounding
// error, and dividing the activation by s undoes the scale exactly in float.
// The search tries s = mean|x|^alpha for a grid of alpha and keeps the one
// whose fake-quantized layer output is closest to the float output on a
// sample of real inputs (alpha = 0 is plain RTN, so AWQ never does worse on
// that sample).
//
//   // inputs: f32 [M, K], rows the layer saw during calibration.
//   absl::StatusOr<AwqResult> r =
//       SearchAwqScales(weight, slot, scheme, inputs, AwqOptions{});
//   if (!r.ok()) return r.status();
//   absl::StatusOr<Tensor> scaled =
//       ScaleWeightInputChannels(weight, slot, r->scales);
//   // Store *scaled as the updated initializer, quantize it with
//   // ComputeWeightParams(*scaled, slot, scheme), and divide the layer's
//   // input by r->scales (e.g. fold 1 / s into the producer).
#ifndef QUANTD_ENGINE_QUANTIZATION_AWQ_H_
#define QUANTD_ENGINE_QUANTIZATION_AWQ_H_

#include <vector>

#include "absl/status/statusor.h"
#include "engine/quantization/weight_quantization.h"
#include "kernels/tensor.h"

namespace quantd {

struct AwqOptions {
  // Ratios alpha = i / grid_size for i in [0, grid_size); the reference
  // implementation uses 20.
  int grid_size = 20;
};

struct AwqResult {
  // One scale per input channel (size K). The layer computes
  // (x / s) . (s * W): the weight's rows along the input dim are multiplied
  // by s, the input divided by s.
  std::vector<float> scales;
  double alpha = 0;     // the chosen ratio (0: all scales 1, plain RTN)
  double loss = 0;      // mean squared output error with `scales`
  double rtn_loss = 0;  // the same with alpha = 0 (all-ones scales)
};

// Searches AWQ scales for a 2-D weight (MatMul [K, N] with input_axis 0, or
// Gemm transB [N, K] with input_axis 1) given `inputs`, a sample of the
// layer's input rows, f32 [M, K] with M >= 1 and K = weight's input dim.
//
// For each alpha: s_j = max(mean_m |x_mj|, 1e-8) ^ alpha, normalised by
// sqrt(max(s) * min(s)) as the AWQ reference does (so the scales straddle 1
// and the weight's range stays comparable); W' = s * W along the input axis;
// Q = FakeQuantizeWeights(W', ComputeWeightParams(W', slot, scheme)); the
// loss is || X W - (X / s) Q ||^2 / (M * N). The smallest loss wins (ties:
// the smaller alpha). Errors of ComputeWeightParams (e.g. a group size that
// does not divide K) are returned as they are.
absl::StatusOr<AwqResult> SearchAwqScales(const Tensor& weight,
                                          const WeightSlot& slot,
                                          const WeightScheme& scheme,
                                          const Tensor& inputs,
                                          const AwqOptions& options);

// W' = s * W along slot.input_axis: rows of a MatMul [K, N] weight, columns
// of a Gemm transB [N, K] weight. This is the transform the pipeline stores;
// it is exposed so that callers and tests apply exactly what the search
// evaluated. Scales must be finite and positive, one per input channel.
absl::StatusOr<Tensor> ScaleWeightInputChannels(
    const Tensor& weight, const WeightSlot& slot,
    const std::vector<float>& scales);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_AWQ_H_
