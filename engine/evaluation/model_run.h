// Runs a model on a data file in fp32 and quantized (int8, or weight-only
// int4/int8) and reports both: the outputs, how they compare with reference
// outputs stored beside the inputs, and the latency of each. This is
// `quantd run-model`, a diagnostic that answers "does quantd run my model,
// and how fast is it quantized here?".
//
//   ModelRunOptions opts{.model_path = "model.onnx", .data_path = "io.npz"};
//   absl::StatusOr<ModelRunReport> r = RunModel(opts);
#ifndef QUANTD_ENGINE_EVALUATION_MODEL_RUN_H_
#define QUANTD_ENGINE_EVALUATION_MODEL_RUN_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/evaluation/op_profile.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/passes/int8_lowering.h"
#include "engine/quantization/weight_only_lowering.h"
#include "engine/runtime/executor.h"

namespace quantd {

struct ModelRunOptions {
  std::string model_path;
  // .npz with one array per model input (leading axis = samples); arrays
  // named like the model's outputs are taken as reference outputs.
  std::string data_path;
  int64_t max_samples = 1024;
  int repeats = 10;  // timed runs per precision; the median is reported
  // 4 or 8: instead of int8 lowering, quantize every Gemm/MatMul weight
  // round-to-nearest, symmetric, to this many bits in groups of
  // weight_only_group_size along K (0: per column), and run it on the
  // weight-only kernel (activations stay f32). 0: int8 lowering.
  int weight_only_bits = 0;
  int64_t weight_only_group_size = 128;
  // Also time every op type (op_profile.h) over `repeats` hooked runs.
  bool profile = false;
};

struct OutputComparison {
  std::string name;
  Shape shape;
  bool has_reference = false;
  float fp32_max_abs_diff = 0;  // fp32 vs reference
  float int8_max_abs_diff = 0;  // int8 vs fp32
  // For [N, classes] outputs: fraction of samples where argmax agrees.
  float top1_fp32_vs_reference = -1;
  float top1_int8_vs_fp32 = -1;
};

struct LatencyStats {
  double median_ms = 0;
  double min_ms = 0;
  double max_ms = 0;
  int runs = 0;
};

// What run-model ran as "quantized".
struct WeightOnlyRun {
  WeightOnlyLoweringStats lowering;
  std::string kernel_isa;  // WeightOnlyIsa()
};

struct ModelRunReport {
  int64_t source_opset = 0;
  int64_t opset = 0;
  std::string producer;
  std::string conversion_note;
  int nodes_loaded = 0;
  int nodes_prepared = 0;
  PrepareStats prepare;
  Int8LoweringStats lowering;                // int8 runs
  std::optional<WeightOnlyRun> weight_only;  // weight-only runs
  std::string quantized_label;               // "int8", or "w4g128" and the like
  int32_t weight_qmax = 0;
  std::string cpu_isa;
  int64_t samples = 0;
  std::vector<OutputComparison> outputs;
  std::vector<Tensor> fp32_outputs;
  LatencyStats fp32;
  LatencyStats int8;
  std::vector<OpTime> fp32_profile;  // with options.profile
  std::vector<OpTime> int8_profile;
};

absl::StatusOr<ModelRunReport> RunModel(const ModelRunOptions& options);

// Median/min/max of a list of durations in milliseconds.
LatencyStats SummarizeLatencies(std::vector<double> ms);

// Runs `executor` once untimed (primitive creation, weight packing), then
// `repeats` timed runs on the same feeds; with `max_seconds` > 0, stops
// early once the timed runs took that long (but not before 3 runs), so a
// large model's benchmark stays bounded. `runs` in the result says how
// many were timed.
absl::StatusOr<LatencyStats> MeasureLatency(Executor& executor,
                                            const TensorMap& feeds, int repeats,
                                            double max_seconds = 0);

}  // namespace quantd

#endif  // QUANTD_ENGINE_EVALUATION_MODEL_RUN_H_
