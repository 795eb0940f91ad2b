// smooth: SmoothQuant or AWQ input-channel scales from the float model's
// activations, folded into the graph that gets quantized (its function
// unchanged; the float graph stays the reference).
#include "engine/pipeline/stages.h"
#include "engine/quantization/channel_scaling_pass.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Rows of each layer input AWQ keeps to score candidate scales.
constexpr int64_t kAwqSampleRows = 1024;

}  // namespace

absl::Status SmoothStage(JobContext& ctx) {
  const v1::Algorithms& alg = ctx.spec().algorithms();
  if (!alg.smooth_quant().enabled() && !alg.awq().enabled()) {
    return absl::OkStatus();
  }
  InputStatisticsOptions o;
  o.max_sample_rows = alg.awq().enabled() ? kAwqSampleRows : 0;
  o.seed = ctx.spec().seed();
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<InputStatisticsCollector> stats,
                          InputStatisticsCollector::Create(
                              ScalingPassInputs(ctx.graph, ctx.slots), o));
  QUANTD_RETURN_IF_ERROR(RunHookedPass(ctx, ctx.float_graph,
                                       *ctx.data->calibration, stats->Hook(),
                                       "smooth")
                             .status());
  QUANTD_ASSIGN_OR_RETURN(
      ScalingNotes notes,
      alg.smooth_quant().enabled()
          ? ApplySmoothQuant(ctx.graph, ctx.slots, *stats,
                             alg.smooth_quant().alpha())
          : ApplyAwq(ctx.graph, ctx.slots, *stats, ctx.plan.weights,
                     AwqOptions{alg.awq().grid_size()}));
  for (const auto& [node, note] : notes) {
    ctx.facts.algorithms[node].push_back(note);
  }
  QUANTD_ASSIGN_OR_RETURN(ctx.slots, FindLayers(ctx, ctx.graph));
  return absl::OkStatus();
}

}  // namespace quantd
