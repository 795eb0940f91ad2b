// evaluate_fake_quant and evaluate_int8: the quantized model against the
// float one, as ONNX Runtime will run the QDQ graph, and as quantd's
// quantized kernels run it: oneDNN's int8 kernels for static and dynamic
// plans, the weight-only MatMul kernel for WEIGHT_ONLY plans.
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/passes/int8_lowering.h"
#include "engine/pipeline/stages.h"
#include "engine/quantization/weight_only_lowering.h"
#include "engine/quantization/weight_quantization.h"
#include "kernels/weight_only_matmul.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// oneDNN 2.6 runs int8 per-channel symmetric weights with uint8 (static or
// dynamic) activations; int4, grouped or asymmetric weights it cannot.
bool Int8Runnable(const JobContext& ctx) {
  if (ctx.spec().activations().type() != v1::QUANT_DATA_TYPE_UINT8) {
    return false;
  }
  for (const auto& [name, p] : ctx.quantization->weights) {
    if (p.type != QuantType::kInt8 || p.group_size > 0 || p.axis < 0 ||
        !p.zero_points.empty()) {
      return false;
    }
  }
  return true;
}

absl::StatusOr<Graph> LowerPlanToInt8(const JobContext& ctx) {
  const QuantizationPlan& plan = *ctx.quantization;
  const RangeMap ranges = PlanRanges(plan.activations);
  Graph int8_graph = ctx.graph;
  for (const auto& [name, t] : plan.updated_initializers) {
    int8_graph.initializers[name] = t;
  }
  // The int8 lowering rounds float weights; codes dequantized round back to
  // themselves. These floats live only until the lowering replaces them
  // with its int8 weights.
  for (const auto& [name, codes] : plan.weight_codes) {
    QUANTD_ASSIGN_OR_RETURN(int8_graph.initializers[name],
                            PlanFloatWeight(ctx.graph, plan, name));
  }
  Int8LoweringOptions lowering;
  lowering.dynamic_activations = ctx.spec().mode() == v1::QUANT_MODE_DYNAMIC;
  std::set<std::string> quantized;
  for (const WeightSlot& s : ctx.slots) {
    if (!plan.float_nodes.contains(s.node)) quantized.insert(s.node);
  }
  for (const Node& n : ctx.graph.nodes) {
    if (!quantized.contains(n.name)) lowering.excluded_nodes.insert(n.name);
  }
  QUANTD_RETURN_IF_ERROR(LowerToInt8(int8_graph, ranges, lowering));
  return int8_graph;
}

// The quantized layers' weight parameters, by initializer.
std::map<std::string, QuantParams> QuantizedWeights(const JobContext& ctx) {
  std::map<std::string, QuantParams> weights;
  for (const WeightSlot& s : ctx.slots) {
    if (ctx.quantization->float_nodes.contains(s.node)) continue;
    auto p = ctx.quantization->weights.find(s.initializer);
    if (p != ctx.quantization->weights.end()) weights.insert(*p);
  }
  return weights;
}

const char* WeightBits(const std::map<std::string, QuantParams>& weights) {
  bool four = false, eight = false;
  for (const auto& [name, p] : weights) {
    const bool is_four =
        p.type == QuantType::kInt4 || p.type == QuantType::kUInt4;
    four |= is_four;
    eight |= !is_four;
  }
  return four && eight ? "int4/int8" : (four ? "int4" : "int8");
}

// WEIGHT_ONLY: MatMul/Gemm layers on the weight-only kernel, every other
// quantized weight fake-quantized in f32 (weight_only_lowering.h).
absl::Status EvaluateWeightOnly(JobContext& ctx) {
  Graph graph = ctx.graph;
  for (const auto& [name, t] : ctx.quantization->updated_initializers) {
    graph.initializers[name] = t;
  }
  const std::map<std::string, QuantParams> weights = QuantizedWeights(ctx);
  WeightOnlyLoweringStats stats;
  QUANTD_RETURN_IF_ERROR(LowerWeightOnly(graph, weights,
                                         ctx.quantization->float_nodes, &stats,
                                         &ctx.quantization->weight_codes));
  if (stats.matmuls == 0) {
    ctx.report().add_warnings(
        "no quantized layer is a MatMul or Gemm the weight-only kernel runs "
        "(Conv weights, or groups along the output axis): the quantized "
        "model was evaluated with fake-quantized f32 weights, and its "
        "latency is the float model's");
  }
  ctx.int8_kernels = absl::StrCat(
      "weight-only ", WeightBits(weights), " MatMul (", WeightOnlyIsa(),
      "): ", stats.matmuls, " layers; ", stats.fake_quantized,
      " layers with fake-quantized f32 weights");
  QUANTD_ASSIGN_OR_RETURN(ctx.int8_executor, Executor::Create(graph));
  QUANTD_ASSIGN_OR_RETURN(
      Evaluated result,
      Evaluate(*ctx.float_executor, *ctx.int8_executor, *ctx.data->evaluation,
               {}, "evaluate_int8", ctx.progress, ctx.cancelled));
  *ctx.report().mutable_int8() = result.metrics;
  return absl::OkStatus();
}

}  // namespace

absl::Status EvaluateFakeQuantStage(JobContext& ctx) {
  std::set<std::string> layers;
  for (const WeightSlot& s : ctx.slots) layers.insert(s.node);
  for (const Node& n : ctx.graph.nodes) {
    if (layers.contains(n.name)) ctx.layer_values[n.outputs[0]] = n.name;
  }
  QUANTD_ASSIGN_OR_RETURN(
      ctx.fake_quant,
      EvaluatePlan(ctx.graph, *ctx.quantization, *ctx.float_executor,
                   *ctx.data->evaluation, ctx.layer_values,
                   "evaluate_fake_quant", ctx.progress, ctx.cancelled));
  ctx.report().set_sensitivity_metric(
      TargetMetricName(ctx.fake_quant->metrics));
  return absl::OkStatus();
}

absl::Status EvaluateInt8Stage(JobContext& ctx) {
  if (ctx.spec().mode() == v1::QUANT_MODE_WEIGHT_ONLY) {
    return EvaluateWeightOnly(ctx);
  }
  if (!Int8Runnable(ctx)) {
    ctx.report().add_warnings(
        "true int8 evaluation runs where every quantized layer has int8 "
        "per-channel symmetric weights and uint8 activations (oneDNN 2.6 has "
        "no int4 or grouped kernels; WEIGHT_ONLY plans run on quantd's own); "
        "this model was evaluated with fake quantization only");
    return absl::OkStatus();
  }
  QUANTD_ASSIGN_OR_RETURN(Graph int8_graph, LowerPlanToInt8(ctx));
  ctx.int8_kernels = "oneDNN int8";
  QUANTD_ASSIGN_OR_RETURN(ctx.int8_executor, Executor::Create(int8_graph));
  QUANTD_ASSIGN_OR_RETURN(
      Evaluated int8,
      Evaluate(*ctx.float_executor, *ctx.int8_executor, *ctx.data->evaluation,
               {}, "evaluate_int8", ctx.progress, ctx.cancelled));
  *ctx.report().mutable_int8() = int8.metrics;
  return absl::OkStatus();
}

}  // namespace quantd
