// A job from its plan to its artifacts: the one entry point that `quantd
// run-job` and the service's workers call. RunPipeline runs the stages of
// stages.h in order over one JobContext:
//
//   load -> prepare -> smooth -> calibrate -> quantize -> train (QAT)
//   -> sensitivity -> evaluate_fake_quant -> fallback -> evaluate_int8
//   -> export -> benchmark
//
//   absl::StatusOr<JobPlan> plan = PlanJob(spec, SpecOrigin::kBatch,
//                                          LocalPathResolver());
//   absl::StatusOr<PipelineResult> r = RunPipeline(*plan,
//       [](const ProgressEvent& e) { ... }, &cancelled);
//   WriteArtifacts("out/", *r);
//
// Progress is reported per stage, per calibration/evaluation batch and per
// layer; the cancellation flag is checked between stages, batches and
// layers, so a cancel takes effect within one batch's run time.
#ifndef QUANTD_ENGINE_PIPELINE_PIPELINE_H_
#define QUANTD_ENGINE_PIPELINE_PIPELINE_H_

#include <atomic>

#include "absl/status/statusor.h"
#include "engine/pipeline/artifacts.h"
#include "engine/pipeline/job_context.h"
#include "engine/pipeline/job_plan.h"

namespace quantd {

// Everything about a job that can be checked without running it: that the
// model loads and its ops are supported, that the datasets match the
// model's inputs, that exclusions name real nodes and the weight scheme
// fits every layer. The service calls it in CreateJob so that a bad job is
// refused at once (InvalidArgument with the reason) instead of failing
// later.
//
// `facts`, when given, receives what the check learned about the model that
// a caller can hold its own knowledge of the data against (the service's
// upload scans record label ranges).
struct JobInputFacts {
  // Classes of the model's first output when it is [N, classes] with a
  // static class dim, as evaluation and QAT check labels against
  // ([0, classes)); 0 when not known before running.
  int64_t output_classes = 0;
};
absl::Status CheckJobInputs(const JobPlan& plan,
                            JobInputFacts* facts = nullptr);

absl::StatusOr<PipelineResult> RunPipeline(
    const JobPlan& plan, const ProgressCallback& progress = nullptr,
    const std::atomic<bool>* cancelled = nullptr,
    const PipelineOptions& options = {});

// Batch mode in one call: PlanJob with local paths, then RunPipeline.
absl::StatusOr<PipelineResult> RunBatchJob(
    const v1::JobSpec& spec, const ProgressCallback& progress = nullptr,
    const std::atomic<bool>* cancelled = nullptr,
    const PipelineOptions& options = {});

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_PIPELINE_H_
