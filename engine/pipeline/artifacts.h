// The artifacts of a finished job in an output folder: the quantized model
// and the report, written so that readers never see half of them.
//
//   if (absl::Status s = CreateOutputFolder("out/job1"); !s.ok()) ...
//   ... run the job ...
//   absl::Status s = WriteArtifacts("out/job1", result);
#ifndef QUANTD_ENGINE_PIPELINE_ARTIFACTS_H_
#define QUANTD_ENGINE_PIPELINE_ARTIFACTS_H_

#include <optional>
#include <string>

#include "absl/status/status.h"
#include "engine/ir/graph.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

struct PipelineResult {
  std::string model_bytes;  // the quantized QDQ ONNX model
  // The model's external data file (kModelDataArtifact), which its large
  // initializers point into; empty when the model is self-contained.
  std::string model_external_data;
  v1::QuantizationReport report;
  // The exported model as quantd's executor runs it (4-bit values in 8-bit
  // holders), when PipelineOptions::keep_qdq_graph asked for it: tests
  // compare it with ONNX Runtime running model_bytes.
  std::optional<Graph> qdq_graph;
};

// File names inside an output folder.
inline constexpr char kModelArtifact[] = "model.quant.onnx";
inline constexpr char kReportArtifact[] = "report.json";
// Written only for models with external data; the model names it, so it must
// stay beside the model under this name.
inline constexpr char kModelDataArtifact[] = "model.quant.onnx.data";

// Writes model.quant.onnx (and model.quant.onnx.data when the model has
// external data) and report.json into `dir` (created if missing) through a
// temporary folder and renames, so that a failure leaves none of them behind
// and readers never see a partial one. A data file left by an earlier job in
// `dir` is removed when this model has none: it would not belong to it.
absl::Status WriteArtifacts(const std::string& dir,
                            const PipelineResult& result);

// Creates `dir` and its missing parents, and checks it is writable; run-job
// calls it before the job so that a bad --out fails at once.
absl::Status CreateOutputFolder(const std::string& dir);

// The report as the JSON clients read (protobuf JSON, every field printed).
absl::StatusOr<std::string> ReportToJson(const v1::QuantizationReport& report);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_ARTIFACTS_H_
