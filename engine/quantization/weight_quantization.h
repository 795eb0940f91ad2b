// Which initializers are quantizable weights, and their quantization
// parameters by round-to-nearest (RTN): per tensor, per output channel or
// per group along the input dimension, symmetric or asymmetric, int8 or int4.
// GPTQ and AWQ start from these parameters and change how values round.
//
//   std::vector<WeightSlot> slots = FindQuantizableWeights(graph, {});
//   WeightScheme scheme{.type = QuantType::kInt4,
//                       .granularity = WeightGranularity::kPerGroup,
//                       .group_size = 32};
//   absl::StatusOr<QuantParams> p =
//       ComputeWeightParams(*graph.FindInitializer(slots[0].initializer),
//                           slots[0], scheme);
#ifndef QUANTD_ENGINE_QUANTIZATION_WEIGHT_QUANTIZATION_H_
#define QUANTD_ENGINE_QUANTIZATION_WEIGHT_QUANTIZATION_H_

#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"

namespace quantd {

// A constant weight read by a Conv, Gemm or MatMul node.
struct WeightSlot {
  std::string node;
  std::string op_type;
  std::string initializer;
  int64_t channel_axis = 0;  // output channels
  int64_t input_axis = 1;    // reduction dim; groups run along it
};

struct WeightSelection {
  std::set<std::string> excluded_nodes;
  std::set<std::string> excluded_op_types;
};

// Conv (weights [OC, C/g, k...]), Gemm (B [K, N], or [N, K] with transB) and
// MatMul with a 2-D constant B [K, N]. Excluded nodes and op types are
// skipped; every name in `selection` must exist (or InvalidArgument).
absl::StatusOr<std::vector<WeightSlot>> FindQuantizableWeights(
    const Graph& graph, const WeightSelection& selection);

enum class WeightGranularity { kPerTensor, kPerChannel, kPerGroup };

struct WeightScheme {
  QuantType type = QuantType::kInt8;
  bool symmetric = true;
  WeightGranularity granularity = WeightGranularity::kPerChannel;
  int64_t group_size = 0;
  // Per group: a dimension that is not a multiple of group_size gets a
  // shorter last group instead of an error.
  bool allow_partial_groups = false;
  // Largest |q| for symmetric int8; 0 = MaxExactInt8WeightMagnitude(), the
  // range this CPU's int8 kernels compute exactly (64 without VNNI).
  int32_t int8_max_magnitude = 0;
  // int4 only: 2 or 3 narrows the integer range to that many bits
  // (symmetric [-1, 1] / [-3, 3], asymmetric [-2, 1] / [-4, 3]); the
  // containers stay int4. 0 means all four.
  int32_t bits = 0;
};

// How many bits a layer's integers use: 8, 4, or scheme.bits below 4.
int SchemeBits(const WeightScheme& scheme);

// RTN parameters from the weights' min/max per tensor, channel or group.
// Symmetric: scale = max|w| / qmax, zero point 0 (int8 range [-qmax, qmax]).
// Asymmetric: [min(w, 0), max(w, 0)] spread over [qmin, qmax].
absl::StatusOr<QuantParams> ComputeWeightParams(const Tensor& weights,
                                                const WeightSlot& slot,
                                                const WeightScheme& scheme);

// The integers q = clamp(round(w / scale) + zero_point, qmin, qmax), one
// per element of `weights` (what the QDQ export and the weight-only kernels
// store).
absl::StatusOr<std::vector<int32_t>> QuantizeWeightValues(
    const Tensor& weights, const QuantParams& params);

// The same integers at their bit width (engine/ir/weight_codes.h): the
// compact form of weights an algorithm rounded
// (QuantizationPlan::weight_codes), an eighth (int4) or a quarter (int8) of
// their f32 size.
absl::StatusOr<WeightCodes> QuantizeWeightCodes(const Tensor& weights,
                                                const QuantParams& params);

// (q - zero_point) * scale per element of `codes`: the float weights the
// codes stand for, bit for bit what FakeQuantizeWeights gives for weights
// with those integers.
absl::StatusOr<Tensor> DequantizeWeightCodes(const WeightCodes& codes,
                                             const QuantParams& params);

// The float weights initializer `name` holds under `plan`: its codes
// dequantized, its updated tensor, or the graph's own (shared, no copy).
// Rounding the result with plan.weights[name] gives the plan's integers.
absl::StatusOr<Tensor> PlanFloatWeight(const Graph& graph,
                                       const QuantizationPlan& plan,
                                       const std::string& name);

// ||w - w_q|| / ||w|| for initializer `name` under `plan`: w the graph's
// float weights, w_q what the plan runs with (its codes dequantized, or
// its float value fake-quantized with `params`). Element by element, no
// float copy (an LM head's two copies were 356 MB at a job's peak).
absl::StatusOr<double> RelativeWeightError(const Graph& graph,
                                           const QuantizationPlan& plan,
                                           const std::string& name,
                                           const QuantParams& params);

// Quantizes then dequantizes `weights` with `params` (what a runtime will
// compute with); the basis of weight error and of fake-quant simulation.
absl::StatusOr<Tensor> FakeQuantizeWeights(const Tensor& weights,
                                           const QuantParams& params);

// Index into params.scales / zero_points for flat element `i` of a tensor
// of `shape` (per tensor, per axis or blocked).
int64_t ParamIndex(const QuantParams& params, const Shape& shape, int64_t i);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_WEIGHT_QUANTIZATION_H_
