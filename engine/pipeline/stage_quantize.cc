// calibrate and quantize: activation ranges and layer-input statistics in one
// pass over the calibration data, then every layer rounded into a plan.
#include <map>
#include <set>

#include "engine/calibration/calibration_session.h"
#include "engine/passes/int8_regions.h"
#include "engine/pipeline/sequential_rounding.h"
#include "engine/pipeline/stages.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// The input value of every layer, with where its channels are.
std::map<std::string, ChannelLayout> LayerInputs(
    const Graph& graph, const std::vector<WeightSlot>& slots) {
  std::map<std::string, std::string> op_of;
  for (const WeightSlot& s : slots) op_of[s.node] = s.op_type;
  std::map<std::string, ChannelLayout> out;
  for (const Node& n : graph.nodes) {
    auto it = op_of.find(n.name);
    if (it == op_of.end()) continue;
    out[n.input(0)] =
        it->second == "Conv" ? ChannelLayout::kDim1 : ChannelLayout::kLastDim;
  }
  return out;
}

// Conv layers, for GPTQ's and learned rounding's patch Hessians.
std::map<std::string, ConvPatchLayer> ConvLayers(
    const Graph& graph, const std::vector<WeightSlot>& slots) {
  std::map<std::string, const WeightSlot*> conv_slots;
  for (const WeightSlot& s : slots) {
    if (s.op_type == "Conv") conv_slots[s.node] = &s;
  }
  std::map<std::string, ConvPatchLayer> out;
  for (const Node& n : graph.nodes) {
    auto it = conv_slots.find(n.name);
    if (it == conv_slots.end()) continue;
    const Tensor* w = graph.FindInitializer(it->second->initializer);
    if (w == nullptr) continue;
    out[n.name] = {n.input(0), ReadConvAttributes(n), w->shape()};
  }
  return out;
}

}  // namespace

absl::Status CalibrateStage(JobContext& ctx) {
  const v1::Algorithms& alg = ctx.spec().algorithms();
  std::unique_ptr<CalibrationSession> session;
  std::vector<TensorHook> hooks;
  const std::map<std::string, ChannelLayout> inputs =
      LayerInputs(ctx.graph, ctx.slots);
  if (ctx.spec().mode() == v1::QUANT_MODE_STATIC) {
    std::set<std::string> watched;
    for (const auto& [value, layout] : inputs) watched.insert(value);
    // What may join the int8 regions (engine/passes/int8_regions.h).
    std::set<std::string> layers;
    for (const WeightSlot& s : ctx.slots) layers.insert(s.node);
    for (const std::string& v : Int8RegionCandidates(
             ctx.graph,
             [&](const Node& n) { return layers.contains(n.name); })) {
      watched.insert(v);
    }
    QUANTD_ASSIGN_OR_RETURN(
        session, CalibrationSession::Create(watched, ctx.plan.calibration));
    hooks.push_back(session->Hook());
  }
  ctx.segments = PlanSequentialRounding(ctx);
  const bool hessian = alg.gptq().enabled() || alg.learned_rounding().enabled();
  if (hessian || alg.bias_correction()) {
    InputStatisticsOptions o;
    o.hessian = hessian;
    o.seed = ctx.spec().seed();
    QUANTD_ASSIGN_OR_RETURN(
        ctx.statistics, InputStatisticsCollector::Create(
                            inputs, o,
                            hessian ? ConvLayers(ctx.graph, ctx.slots)
                                    : std::map<std::string, ConvPatchLayer>{}));
    // Sequential GPTQ fills them block by block in the quantize stage.
    if (ctx.segments.empty()) hooks.push_back(ctx.statistics->Hook());
  }
  if (ctx.data->calibration == nullptr &&
      (!hooks.empty() || ctx.statistics != nullptr)) {
    return absl::InvalidArgumentError(
        "this job needs calibration_data (static activations, GPTQ, learned "
        "rounding or bias correction)");
  }
  if (hooks.empty()) return absl::OkStatus();
  TensorHook all = [&hooks](const Node* n, const std::string& name,
                            Tensor& v) -> absl::Status {
    for (TensorHook& h : hooks) QUANTD_RETURN_IF_ERROR(h(n, name, v));
    return absl::OkStatus();
  };
  QUANTD_ASSIGN_OR_RETURN(
      ctx.calibration_samples,
      RunHookedPass(ctx, ctx.graph, *ctx.data->calibration, all, "calibrate"));
  if (session != nullptr) {
    QUANTD_ASSIGN_OR_RETURN(ctx.activation_params, session->Finish());
  }
  return absl::OkStatus();
}

absl::Status QuantizeStage(JobContext& ctx) {
  ctx.rounder = std::make_unique<LayerRounder>(
      ctx.graph, ctx.slots, ctx.plan.rounding, ctx.statistics.get());
  const LayerPrecision requested = RequestedPrecision(ctx.plan.weights);
  // Without an accuracy target or size budget no layer is rounded again, so
  // each input's statistics (a K x K Hessian for GPTQ) go as soon as the last
  // layer reading that input is rounded: GPT-2-small's Hessians are 1.08 GB.
  const bool release_early = !AnyTargetSet(ctx.spec().accuracy_target()) &&
                             ctx.spec().size_budget().max_weight_bytes() == 0;
  std::map<std::string, int> readers_left;  // input value -> slots
  for (const WeightSlot& slot : ctx.slots) {
    ++readers_left[ctx.rounder->InputOf(slot)];
  }
  size_t rounded_layers = 0;
  auto round_layer =
      [&](const WeightSlot& slot) -> absl::StatusOr<const RoundedLayer*> {
    QUANTD_RETURN_IF_ERROR(CheckCancelled(ctx.cancelled));
    QUANTD_ASSIGN_OR_RETURN(const RoundedLayer* rounded,
                            ctx.rounder->Round(slot, requested));
    for (const std::string& note : rounded->notes) {
      ctx.facts.algorithms[slot.node].push_back(note);
    }
    ctx.facts.bias_corrected[slot.node] = rounded->bias.has_value();
    const std::string& input = ctx.rounder->InputOf(slot);
    if (release_early && ctx.statistics != nullptr) {
      ctx.statistics->ReleaseConvPatches(slot.node);
      if (--readers_left[input] == 0) ctx.statistics->Release(input);
    }
    ctx.Progress("quantize", double(++rounded_layers) / ctx.slots.size(),
                 slot.node);
    return rounded;
  };
  if (!ctx.segments.empty()) {
    QUANTD_RETURN_IF_ERROR(RoundSequentially(ctx, round_layer));
  } else {
    for (const WeightSlot& slot : ctx.slots) {
      QUANTD_RETURN_IF_ERROR(round_layer(slot).status());
    }
  }
  ctx.segments.clear();  // their executors are gone; the graphs are not used
  QUANTD_ASSIGN_OR_RETURN(ctx.quantization,
                          ctx.rounder->BuildPlan({}, ctx.activation_params));
  // Sensitivity uses the layers rounded here: free the rest now.
  if (release_early) ctx.DropStatistics();
  return absl::OkStatus();
}

}  // namespace quantd
