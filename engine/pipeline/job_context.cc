#include "engine/pipeline/job_context.h"

#include <utility>

#include "util/status_macros.h"

namespace quantd {

JobContext::JobContext(const JobPlan& plan, ProgressCallback progress,
                       const std::atomic<bool>* cancelled,
                       PipelineOptions options)
    : plan(plan),
      progress(std::move(progress)),
      cancelled(cancelled),
      options(std::move(options)) {}

void JobContext::Progress(const std::string& stage, double fraction,
                          const std::string& current_layer,
                          const std::string& message) const {
  if (!progress) return;
  ProgressEvent e;
  e.stage = stage;
  e.fraction = fraction;
  e.current_layer = current_layer;
  e.message = message;
  progress(e);
}

absl::StatusOr<std::vector<WeightSlot>> FindLayers(const JobContext& ctx,
                                                   const Graph& graph) {
  WeightSelection selection = ctx.plan.selection;
  selection.excluded_nodes.insert(ctx.inserted_float_nodes.begin(),
                                  ctx.inserted_float_nodes.end());
  QUANTD_ASSIGN_OR_RETURN(std::vector<WeightSlot> slots,
                          FindQuantizableWeights(graph, selection));
  if (slots.empty()) {
    return absl::InvalidArgumentError(
        "the model has no Conv, Gemm or MatMul with constant weights left to "
        "quantize (after exclusions)");
  }
  return slots;
}

absl::StatusOr<int64_t> RunHookedPass(const JobContext& ctx, const Graph& graph,
                                      Dataset& data, TensorHook hook,
                                      const std::string& stage) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> executor,
                          Executor::Create(graph));
  RunOptions opts;
  opts.tensor_hook = std::move(hook);
  opts.cancelled = ctx.cancelled;
  return ForEachBatch(data, stage, ctx.progress, ctx.cancelled,
                      [&](const DataBatch& batch) -> absl::Status {
                        return executor->Run(batch.feeds, opts).status();
                      });
}

void JobContext::DropStatistics() {
  if (rounder != nullptr) rounder->DropStatistics();
  statistics.reset();
}

}  // namespace quantd
