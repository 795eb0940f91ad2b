// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers"): rounds a 2-D weight one input column
// at a time and spreads each column's rounding error over the columns not yet
// rounded, weighted by the inverse Hessian of the layer's inputs. It
// minimizes the layer's output error on calibration data rather than the
// weights' own error, which is what round-to-nearest (RTN) minimizes.
//
// A pure function: the caller accumulates the Hessian from the layer's
// calibration inputs and stores the result in a QuantizationPlan.
//
//   // x: the MatMul's input rows [rows, K]; w: its weight [K, N].
//   std::vector<double> h(K * K, 0.0);
//   for (each row x) for (i, j) h[i * K + j] += x[i] * x[j];
//   WeightScheme scheme{.type = QuantType::kInt4,
//                       .granularity = WeightGranularity::kPerGroup,
//                       .group_size = 32};
//   absl::StatusOr<GptqResult> r =
//       GptqQuantize(w, slot, scheme, h, rows, GptqOptions{});
//   if (!r.ok()) return r.status();
//   plan.weights[slot.initializer] = r->params;
//   plan.weight_codes[slot.initializer] =
//       *QuantizeWeightCodes(r->weights, r->params);
#ifndef QUANTD_ENGINE_QUANTIZATION_GPTQ_H_
#define QUANTD_ENGINE_QUANTIZATION_GPTQ_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/quantization_plan.h"
#include "engine/quantization/weight_quantization.h"
#include "kernels/tensor.h"

namespace quantd {

struct GptqOptions {
  // Columns per lazy-update block: updates within a block are applied column
  // by column, the rest of the matrix is updated once per block (a
  // matrix-matrix product instead of K rank-1 updates). The result does not
  // depend on it beyond floating-point rounding.
  int64_t block_size = 128;
  // Added to the diagonal: damp_percent * mean(diag(H)), so that H is
  // invertible with few or collinear calibration rows.
  double damp_percent = 0.01;
  // Quantize columns by descending diag(H): the most active inputs are rounded
  // first, while many columns remain to absorb their error. Per-group
  // parameters then come from the original weights (static groups).
  bool act_order = false;
  // Output channels rounded together (0: as many as fit ~64 MB of doubles).
  // Rows are independent given the inverse Hessian, so this bounds memory
  // (an LM head's working copy would be 524 MB at 32000 x 2048) without
  // changing the result beyond floating-point rounding.
  int64_t channels_per_slice = 0;
};

struct GptqResult {
  // Same shape and orientation as the input weight; every value is on the
  // quantization grid of `params` (dequantized floats), so
  // FakeQuantizeWeights(weights, params) returns `weights` unchanged.
  Tensor weights;
  // The parameters used, in ComputeWeightParams' layout. Per group without
  // act_order they come from the error-compensated weights, so they can
  // differ from RTN's.
  QuantParams params;
  // Proxy loss tr((W - Q) H (W - Q)^T) with H = hessian / num_rows (undamped):
  // the mean squared output error per calibration row. rtn_loss is that of
  // plain round-to-nearest with ComputeWeightParams.
  double rtn_loss = 0;
  double gptq_loss = 0;
};

// `hessian` is the K x K matrix sum over calibration rows x of x x^T
// (row-major), where K = weight.dim(slot.input_axis) and the rows x are the
// layer's input vectors; `num_rows` (> 0) is how many rows were summed. It
// is taken by value and becomes GPTQ's own working copy: move it in.
// 2-D weights only: MatMul [K, N] (input_axis 0, channel_axis 1) and Gemm
// transB [N, K] (input_axis 1, channel_axis 0). InvalidArgument for other
// ranks and bad arguments; FailedPrecondition if H stays not positive
// definite even with 1000x the damping.
absl::StatusOr<GptqResult> GptqQuantize(
    const Tensor& weight, const WeightSlot& slot, const WeightScheme& scheme,
    std::vector<double> hessian, int64_t num_rows, const GptqOptions& options);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_GPTQ_H_
