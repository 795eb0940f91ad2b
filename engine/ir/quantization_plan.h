// QuantizationPlan: what quantization decided for a float graph. A quantized
// model in quantd is the float Graph plus this plan; the evaluator runs it as
// fake-quant simulation or as true int8, and export writes it as QDQ ONNX.
//
//   QuantizationPlan plan;
//   plan.activations["conv1_out"] = PerTensor(QuantType::kUInt8, 0.02f, 128);
//   plan.weights["conv1.weight"] = ...;   // per channel along axis 0
//   plan.dynamic_activations.insert("fc1_in");   // u8, parameters per batch
//
// Layouts of QuantParams::scales (zero_points has the same layout, or is
// empty for symmetric parameters):
//   per tensor   axis == -1, one scale
//   per channel  axis >= 0, group_size == 0: one scale per index of `axis`
//   per group    axis >= 0, group_size > 0: scales has the tensor's rank and
//                shape except dim `axis`, which is ceil(dim / group_size)
//                (ONNX opset-21 blocked quantization; kernels/quantize.h)
// Groups run along the weights' input (reduction) dimension: axis 1 for Conv
// [OC, C, k...] and Gemm-transB [N, K] weights, axis 0 for MatMul [K, N].
#ifndef QUANTD_ENGINE_IR_QUANTIZATION_PLAN_H_
#define QUANTD_ENGINE_IR_QUANTIZATION_PLAN_H_

#include <cstdint>
#include <map>
#include <set>
#include <string>
#include <vector>

#include "engine/ir/weight_codes.h"
#include "kernels/tensor.h"

namespace quantd {

enum class QuantType { kInt8, kUInt8, kInt4, kUInt4 };

struct QuantParams {
  QuantType type = QuantType::kInt8;
  std::vector<float> scales;
  std::vector<int32_t> zero_points;  // empty: symmetric (all zero)
  int64_t axis = -1;                 // -1: per tensor
  int64_t group_size = 0;            // > 0: per group along `axis`
  // The integer range actually used, within the type's: e.g. [-64, 64] for
  // 7-bit weights on CPUs without VNNI, [-8, 7] for int4.
  int32_t qmin = -128;
  int32_t qmax = 127;
  // Scales shape for per-group parameters (empty otherwise).
  Shape scales_shape;
};

// The full range of a type: [-128, 127], [0, 255], [-8, 7], [0, 15].
int32_t QuantTypeMin(QuantType type);
int32_t QuantTypeMax(QuantType type);
const char* QuantTypeName(QuantType type);  // "int8", "uint8", "int4", "uint4"
// The tensor type that holds quantized values in quantd (4-bit values sit
// one per byte until the export packs them): int8 or uint8.
DataType QuantHolderType(QuantType type);
// Bits per value: 4 for int4/uint4, 8 for int8/uint8.
int CodeBits(QuantType type);

struct QuantizationPlan {
  // Per-tensor parameters of activations, by value name (graph inputs and
  // node outputs).
  std::map<std::string, QuantParams> activations;
  // Parameters of weights, by initializer name.
  std::map<std::string, QuantParams> weights;
  // Values quantized per batch at run time (DYNAMIC mode): uint8,
  // asymmetric, parameters from each batch's min/max as ONNX's
  // DynamicQuantizeLinear computes them. Disjoint from `activations`.
  std::set<std::string> dynamic_activations;
  // Float initializers that algorithms changed (bias correction's biases,
  // QAT's trained weights), by initializer name; they replace the graph's
  // initializers of the same name and shape.
  std::map<std::string, Tensor> updated_initializers;
  // Weights whose integers an algorithm chose (GPTQ), by initializer name:
  // the values QuantizeLinear stores for weights[name], in the weight's
  // shape, at their bit width (CodeBits(type): int4 two per byte, in
  // engine/ir/weight_codes.h). A 1.1B decoder's int4 codes are 0.55 GB
  // here, where float copies were 4.4 GB next to the model's. Export writes
  // them as they are; evaluation dequantizes them layer by layer as it
  // runs. Never also in updated_initializers.
  std::map<std::string, WeightCodes> weight_codes;
  // Nodes deliberately left in float (exclusion lists, accuracy fallback).
  std::set<std::string> float_nodes;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_IR_QUANTIZATION_PLAN_H_
