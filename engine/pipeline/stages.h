// The stages of a job, in the order RunPipeline runs them. Each reads what
// the stages before it left in the JobContext and adds its own part; each
// is skipped (returns OK, leaving the context as it was) where the plan
// does not call for it, so the report's stage timings always list all of
// them.
//
//   load        parse the model (bounded), check it, convert its opset
//   prepare     fold constants and BatchNorm; bind the datasets; find the
//               layers to quantize and check the weight scheme fits each
//   smooth      SmoothQuant or AWQ input-channel scales (optional)
//   calibrate   activation ranges; Hessians and input means for GPTQ and
//               bias correction, in one pass over the calibration data
//               (sequential GPTQ gathers its Hessians in quantize instead,
//               block by block: sequential_rounding.h)
//   quantize    round every layer (round-to-nearest or GPTQ, bias
//               correction) into a quantization plan
//   train       QAT: fine-tune the plan's fake-quantized model
//   sensitivity end-metric change with one layer quantized at a time
//   evaluate_fake_quant   the QDQ model ONNX Runtime will run, vs float
//   fallback    layers to higher precision while an accuracy target is missed
//   evaluate_int8         true int8 on oneDNN where the plan maps onto it;
//                         WEIGHT_ONLY plans on the weight-only MatMul kernel
//   export      the QDQ ONNX model and the per-layer report
//   benchmark   size, fp32 vs quantized latency and weight bytes,
//               reproducibility facts
#ifndef QUANTD_ENGINE_PIPELINE_STAGES_H_
#define QUANTD_ENGINE_PIPELINE_STAGES_H_

#include "absl/status/status.h"
#include "engine/pipeline/job_context.h"

namespace quantd {

absl::Status LoadStage(JobContext& ctx);
absl::Status PrepareStage(JobContext& ctx);
absl::Status SmoothStage(JobContext& ctx);
absl::Status CalibrateStage(JobContext& ctx);
absl::Status QuantizeStage(JobContext& ctx);
absl::Status TrainStage(JobContext& ctx);
absl::Status SensitivityStage(JobContext& ctx);
absl::Status EvaluateFakeQuantStage(JobContext& ctx);
absl::Status FallbackStage(JobContext& ctx);
absl::Status EvaluateInt8Stage(JobContext& ctx);
absl::Status ExportStage(JobContext& ctx);
absl::Status BenchmarkStage(JobContext& ctx);

struct Stage {
  const char* name;  // as in the report's stage timings and progress events
  absl::Status (*run)(JobContext&);
};

inline constexpr Stage kPipelineStages[] = {
    {"load", LoadStage},
    {"prepare", PrepareStage},
    {"smooth", SmoothStage},
    {"calibrate", CalibrateStage},
    {"quantize", QuantizeStage},
    {"train", TrainStage},
    {"sensitivity", SensitivityStage},
    {"evaluate_fake_quant", EvaluateFakeQuantStage},
    {"fallback", FallbackStage},
    {"evaluate_int8", EvaluateInt8Stage},
    // Before export, so the executors are gone when the export makes its
    // protobuf (a 1.1B decoder's packed weights and activations would sit
    // under the export's peak).
    {"benchmark", BenchmarkStage},
    {"export", ExportStage},
};

// The stages CreateJob runs to refuse a job that cannot run: load and
// prepare (model, data, layers, weight scheme), nothing that reads data
// beyond its headers.
inline constexpr Stage kCheckStages[] = {
    {"load", LoadStage},
    {"prepare", PrepareStage},
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_STAGES_H_
