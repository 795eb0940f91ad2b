// evaluate_fake_quant and evaluate_int8: the quantized model against the
// float one, as ONNX Runtime will run the QDQ graph and as oneDNN's int8
// kernels run it.
#include <set>

#include "engine/passes/int8_lowering.h"
#include "engine/pipeline/stages.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// The range an activation's parameters represent, for LowerToInt8.
TensorRange RangeOf(const QuantParams& p) {
  const float s = p.scales.empty() ? 1.f : p.scales[0];
  const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[0];
  return TensorRange{(p.qmin - zp) * s, (p.qmax - zp) * s};
}

// oneDNN 2.6 runs int8 per-channel symmetric weights with uint8 (static or
// dynamic) activations; int4, grouped or asymmetric weights it cannot.
bool Int8Runnable(const JobContext& ctx) {
  if (ctx.spec().mode() == v1::QUANT_MODE_WEIGHT_ONLY ||
      ctx.spec().activations().type() != v1::QUANT_DATA_TYPE_UINT8) {
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
  RangeMap ranges;
  for (const auto& [name, p] : plan.activations) ranges[name] = RangeOf(p);
  Graph int8_graph = ctx.graph;
  for (const auto& [name, t] : plan.updated_initializers) {
    int8_graph.initializers[name] = t;
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
  if (!Int8Runnable(ctx)) {
    ctx.report().add_warnings(
        "true int8 evaluation runs where every quantized layer has int8 "
        "per-channel symmetric weights and uint8 activations (oneDNN 2.6 has "
        "no int4 or grouped kernels); this model was evaluated with fake "
        "quantization only");
    return absl::OkStatus();
  }
  QUANTD_ASSIGN_OR_RETURN(Graph int8_graph, LowerPlanToInt8(ctx));
  QUANTD_ASSIGN_OR_RETURN(ctx.int8_executor, Executor::Create(int8_graph));
  QUANTD_ASSIGN_OR_RETURN(
      Evaluated int8,
      Evaluate(*ctx.float_executor, *ctx.int8_executor, *ctx.data->evaluation,
               {}, "evaluate_int8", ctx.progress, ctx.cancelled));
  *ctx.report().mutable_int8() = int8.metrics;
  return absl::OkStatus();
}

}  // namespace quantd
