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

struct PipelineResult {
  std::string model_bytes;  // the quantized QDQ ONNX model
  v1::QuantizationReport report;
};

absl::StatusOr<PipelineResult> RunPtqPipeline(
    const v1::JobSpec& spec, const JobPaths& paths,
    const ProgressCallback& progress = nullptr,
    const std::atomic<bool>* cancelled = nullptr);

// File names inside an output folder.
inline constexpr char kModelArtifact[] = "model.quant.onnx";
inline constexpr char kReportArtifact[] = "report.json";

// Writes model.quant.onnx and report.json into `dir` (created if missing)
// through a temporary folder and renames, so that a failure leaves neither
// file behind and readers never see a partial one.
absl::Status WriteArtifacts(const std::string& dir,
                            const PipelineResult& result);

// Creates `dir` and its missing parents, and checks it is writable; run-job
// calls it before the job so that a bad --out fails at once.
absl::Status CreateOutputFolder(const std::string& dir);

std::string ReportToJson(const v1::QuantizationReport& report);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PTQ_PIPELINE_H_
