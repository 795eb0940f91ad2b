#include "engine/pipeline/pipeline.h"

#include "engine/pipeline/stages.h"
#include "kernels/buffer_pool.h"
#include "util/status_macros.h"

namespace quantd {

absl::Status CheckJobInputs(const JobPlan& plan, JobInputFacts* facts) {
  JobContext ctx(plan, nullptr, nullptr, {});
  for (const Stage& stage : kCheckStages) {
    QUANTD_RETURN_IF_ERROR(stage.run(ctx));
  }
  if (facts != nullptr && !ctx.float_graph.outputs.empty()) {
    const ValueInfo& out = ctx.float_graph.outputs[0];
    if (out.has_shape && out.shape.size() == 2 && out.shape[1] > 0) {
      facts->output_classes = out.shape[1];
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PipelineResult> RunPipeline(const JobPlan& plan,
                                           const ProgressCallback& progress,
                                           const std::atomic<bool>* cancelled,
                                           const PipelineOptions& options) {
  JobContext ctx(plan, progress, cancelled, options);
  *ctx.report().mutable_spec() = plan.spec;
  StageClock clock(&ctx.report(), options.measure_stage_memory);
  for (const Stage& stage : kPipelineStages) {
    QUANTD_RETURN_IF_ERROR(CheckCancelled(cancelled));
    QUANTD_RETURN_IF_ERROR(stage.run(ctx));
    clock.Done(stage.name);
    // The pool keeps freed buffers up to its high-water mark; the next stage
    // allocates other sizes, and its own peak (export's protobuf, the next
    // executor's weights) would come on top of this one's idle activations.
    BufferPool::Default().Release();
  }
  ctx.Progress("done", 1);
  return std::move(ctx.result);
}

absl::StatusOr<PipelineResult> RunBatchJob(const v1::JobSpec& spec,
                                           const ProgressCallback& progress,
                                           const std::atomic<bool>* cancelled,
                                           const PipelineOptions& options) {
  QUANTD_ASSIGN_OR_RETURN(
      JobPlan plan, PlanJob(spec, SpecOrigin::kBatch, LocalPathResolver()));
  return RunPipeline(plan, progress, cancelled, options);
}

}  // namespace quantd
