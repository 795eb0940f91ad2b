// The post-training quantization pipeline: the one entry point that
// `quantd run-job` and the service's workers call.
//
//   load -> prepare (fold constants, BatchNorm)
//   -> smooth (SmoothQuant or AWQ scales; optional)
//   -> calibrate (activation ranges; Hessians and input means for GPTQ and
//      bias correction)
//   -> quantize (round-to-nearest or GPTQ, bias correction, per layer)
//   -> sensitivity (end-metric change per single quantized layer)
//   -> evaluate_fake_quant -> fallback (while an accuracy target is missed)
//   -> evaluate_int8 (true int8 on oneDNN where the scheme maps onto it)
//   -> export (QDQ ONNX) -> benchmark (fp32 vs int8 latency)
//
//   JobPaths paths{.model = "m.onnx", .calibration = "calib.npz"};
//   absl::StatusOr<PipelineResult> r = RunPtqPipeline(spec, paths,
//       [](const ProgressEvent& e) { ... }, &cancelled);
//   WriteArtifacts("out/", *r);
//
// Progress is reported per stage, per calibration/evaluation batch and per
// layer; the cancellation flag is checked between batches and between
// layers, so a cancel takes effect within one batch's run time.
#ifndef QUANTD_ENGINE_PTQ_PIPELINE_H_
#define QUANTD_ENGINE_PTQ_PIPELINE_H_

#include <atomic>
#include <string>

#include "absl/status/statusor.h"
#include "engine/artifacts.h"
#include "engine/job_spec.h"
#include "engine/pipeline_evaluation.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

// Local files for the spec's DataRefs (the caller resolves blob digests or
// batch-mode paths to files it controls).
struct JobPaths {
  std::string model;
  std::string calibration;  // may be empty for weight-only jobs
  std::string evaluation;   // empty: hold back part of the calibration set
  std::string train;        // QAT: qat.train_data; empty: calibration data
};

// Everything about a job that can be checked without running it: the spec,
// that the model loads and its ops are supported, that the datasets match
// the model's inputs, that exclusions name real nodes and the weight scheme
// fits every layer. The service calls it in CreateJob so that a bad job is
// refused at once (InvalidArgument with the reason) instead of failing
// later.
absl::Status CheckJobInputs(const v1::JobSpec& spec, const JobPaths& paths);

struct PipelineOptions {
  bool keep_qdq_graph = false;  // fill PipelineResult::qdq_graph
  // QAT: where training checkpoints go (and are resumed from); empty: none.
  std::string checkpoint_path;
};

absl::StatusOr<PipelineResult> RunPtqPipeline(
    const v1::JobSpec& spec, const JobPaths& paths,
    const ProgressCallback& progress = nullptr,
    const std::atomic<bool>* cancelled = nullptr,
    const PipelineOptions& options = {});

}  // namespace quantd

#endif  // QUANTD_ENGINE_PTQ_PIPELINE_H_
