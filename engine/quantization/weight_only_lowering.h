// Lowering a weight-only quantization plan to quantd's weight-only kernel:
// every MatMul, and every Gemm without transA/alpha/beta and with a 1-D or
// absent C, whose weight the plan quantizes per tensor, per output column or
// per group along K becomes quantd.WeightOnlyMatMul over packed 4- or 8-bit
// codes (kernels/weight_only_matmul.h). A Gemm's C must be [N] (one bias per
// column). The f32 weight leaves the graph (unless a float node reads it), so
// the lowered model holds 1/8 (int4) or 1/4 (int8) of the weight bytes.
//
//   WeightOnlyLoweringStats stats;
//   absl::Status s = LowerWeightOnly(graph, plan.weights, &stats);
//
// Other quantized nodes (Conv, a Gemm the kernel cannot express, groups
// along the wrong axis) read a fake-quantized f32 copy of their weight: the
// same numbers the QDQ artifact computes with, without a speedup.
// Weights the plan leaves float stay as they are. The integers are
// QuantizeWeightValues' (weight_quantization.h), so the lowered model and
// the exported QDQ model compute with the same weights.
#ifndef QUANTD_ENGINE_QUANTIZATION_WEIGHT_ONLY_LOWERING_H_
#define QUANTD_ENGINE_QUANTIZATION_WEIGHT_ONLY_LOWERING_H_

#include <map>
#include <set>
#include <string>

#include "absl/status/status.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"

namespace quantd {

struct WeightOnlyLoweringStats {
  int matmuls = 0;                   // now quantd.WeightOnlyMatMul
  int fake_quantized = 0;            // quantized weights kept as f32 values
  int64_t float_weight_bytes = 0;    // all initializers before
  int64_t lowered_weight_bytes = 0;  // all initializers after
};

// `weights`: QuantizationPlan::weights (by initializer name);
// `float_nodes`: nodes that stay float even if they read a quantized weight
// (QuantizationPlan::float_nodes); `weight_codes`: the integers the plan
// already chose for some weights (QuantizationPlan::weight_codes, GPTQ's),
// used instead of rounding the graph's float weights.
absl::Status LowerWeightOnly(
    Graph& graph, const std::map<std::string, QuantParams>& weights,
    const std::set<std::string>& float_nodes = {},
    WeightOnlyLoweringStats* stats = nullptr,
    const std::map<std::string, WeightCodes>* weight_codes = nullptr);

// Bytes of every initializer of `graph` (what an executor holds).
int64_t InitializerBytes(const Graph& graph);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_WEIGHT_ONLY_LOWERING_H_
