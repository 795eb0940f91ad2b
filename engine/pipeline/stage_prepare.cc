// load and prepare: the model in, checked, and everything about the job that
// can be checked without a pass over the data.
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/pipeline/stages.h"
#include "engine/runtime/op_registry.h"
#include "util/status_macros.h"

namespace quantd {

absl::Status LoadStage(JobContext& ctx) {
  ctx.Progress("load", 0, "", ctx.plan.paths.model);
  QUANTD_ASSIGN_OR_RETURN(LoadedModel model,
                          LoadModelFromFile(ctx.plan.paths.model));
  if (!model.conversion_note.empty()) {
    ctx.report().add_warnings(model.conversion_note);
  }
  ctx.float_graph = std::move(model.graph);
  ctx.external_data_bytes = model.external_data_bytes;
  return absl::OkStatus();
}

absl::Status PrepareStage(JobContext& ctx) {
  QUANTD_RETURN_IF_ERROR(PrepareGraph(ctx.float_graph, DefaultOpRegistry()));
  QUANTD_RETURN_IF_ERROR(CheckCancelled(ctx.cancelled));
  const JobPaths& paths = ctx.plan.paths;
  QUANTD_ASSIGN_OR_RETURN(
      JobData data, OpenJobData(ctx.spec(), paths.calibration, paths.evaluation,
                                ctx.float_graph));
  for (const std::string& w : data.warnings) ctx.report().add_warnings(w);
  ctx.data = std::move(data);
  QUANTD_ASSIGN_OR_RETURN(ctx.slots, FindLayers(ctx, ctx.float_graph));
  // Parameters are checked before any pass over the data: a group size
  // that does not divide a layer fails here, at once.
  for (const WeightSlot& slot : ctx.slots) {
    QUANTD_RETURN_IF_ERROR(
        ComputeWeightParams(*ctx.float_graph.FindInitializer(slot.initializer),
                            slot, ctx.plan.weights)
            .status());
  }
  // What gets quantized starts as the float model; smooth may rescale it.
  ctx.graph = ctx.float_graph;
  return absl::OkStatus();
}

}  // namespace quantd
