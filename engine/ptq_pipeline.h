// The post-training quantization pipeline: the one entry point that
// `quantd run-job` and the service's workers call.
//
//   load -> prepare (fold constants, BatchNorm) -> calibrate activations
//   -> quantize weights -> evaluate (fake-quant and true int8 against the
//   float model) -> export (QDQ ONNX + report)
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
#include <functional>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "engine/artifacts.h"
#include "engine/job_spec.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

// Local files for the spec's DataRefs (the caller resolves blob digests or
// batch-mode paths to files it controls).
struct JobPaths {
  std::string model;
  std::string calibration;  // may be empty for weight-only jobs
  std::string evaluation;   // empty: hold back part of the calibration set
};

struct ProgressEvent {
  std::string stage;    // "load", "prepare", "calibrate", ...
  double fraction = 0;  // of this stage, in [0, 1]
  int64_t samples_done = 0;
  std::string current_layer;
  std::string message;
  std::map<std::string, double> metrics;
};
using ProgressCallback = std::function<void(const ProgressEvent&)>;

absl::StatusOr<PipelineResult> RunPtqPipeline(
    const v1::JobSpec& spec, const JobPaths& paths,
    const ProgressCallback& progress = nullptr,
    const std::atomic<bool>* cancelled = nullptr);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PTQ_PIPELINE_H_
