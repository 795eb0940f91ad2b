// Learned rounding (AdaRound's layer objective, optimized as AutoRound's
// SignRound does): instead of rounding every weight to its nearest level,
// learn for each weight an offset v in [-0.5, 0.5] added before rounding
// (so each weight may round up or down), and for each scale a clipping
// factor, to minimize the layer's output error on calibration data:
//
//   q = clamp(round(w / s + v) + zp, qmin, qmax),  w_q = s (q - zp)
//   loss = sum over output channels n of (w_n - w_q,n)^T H (w_n - w_q,n)
//
// with H = sum_x x x^T / rows over the layer's calibration inputs (the
// matrix GPTQ uses; for a Conv, over its im2col patches). The gradient goes
// through round() straight-through; each step moves v and the clipping
// factors by a learning rate times the gradient's sign, the rate decaying
// linearly to 0, and every output channel keeps the step where its own
// loss was lowest (channels are independent given H). The first step is
// round-to-nearest, so the result is never worse than RTN on this loss.
//
// The output is plain scales, zero points and integers: the QDQ export and
// ONNX Runtime see an ordinary quantized weight.
//
//   LearnedRoundingOptions o{.iterations = 200};
//   absl::StatusOr<LearnedRoundingResult> r = LearnRounding(
//       w, slot, scheme, stats->hessian, /*hessian_blocks=*/1, stats->rows, o);
//   plan.weights[slot.initializer] = r->params;
//   plan.weight_codes[slot.initializer] =
//       *QuantizeWeightCodes(r->weights, r->params);
#ifndef QUANTD_ENGINE_QUANTIZATION_LEARNED_ROUNDING_H_
#define QUANTD_ENGINE_QUANTIZATION_LEARNED_ROUNDING_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/quantization_plan.h"
#include "engine/quantization/rounding_variables.h"
#include "engine/quantization/weight_quantization.h"
#include "kernels/tensor.h"

namespace quantd {

struct LearnedRoundingOptions {
  // Sign-gradient steps per layer; AutoRound's default is 200.
  int iterations = 200;
  // Step size; 0 means 1 / iterations (AutoRound's default), so v can
  // travel its whole range once.
  double learning_rate = 0;
  // Learn a factor in [0.5, 1] per scale that shrinks the weights' range
  // (both ends separately when asymmetric). Per-tensor scales are shared
  // by every channel and are never learned.
  bool learn_clipping = true;
};

struct LearnedRoundingResult {
  // Same shape and orientation as the input weight, every value on the
  // grid of `params` (FakeQuantizeWeights(weights, params) == weights).
  Tensor weights;
  QuantParams params;
  // The loss above (mean output error per calibration row) for the start
  // (round-to-nearest, or the RoundingStart) and for the learned rounding
  // (never larger).
  double rtn_loss = 0;
  double loss = 0;
  // Output channels whose rounding or clipping moved away from the start.
  int64_t channels_changed = 0;
};

// `weight`: a 2-D MatMul [K, N] / Gemm weight, or a Conv weight
// [OC, C/g, k...] (input_axis 1: each output channel's C/g * k... inputs in
// memory order). `hessian` holds `hessian_blocks` K x K matrices (K the
// inputs per output channel), sum x x^T over `num_rows` rows: one for
// MatMul/Gemm and ungrouped Conv, one per group for a grouped Conv (output
// channel c uses block c / (OC / blocks)). InvalidArgument on shapes that
// do not match or non-finite values.
absl::StatusOr<LearnedRoundingResult> LearnRounding(
    const Tensor& weight, const WeightSlot& slot, const WeightScheme& scheme,
    const std::vector<float>& hessian, int64_t hessian_blocks, int64_t num_rows,
    const LearnedRoundingOptions& options,
    const RoundingStart* start = nullptr);  // rounding_variables.h

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_LEARNED_ROUNDING_H_
