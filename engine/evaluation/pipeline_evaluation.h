// Evaluation of a quantized candidate against the float model on a dataset,
// and the single number that accuracy targets, sensitivity and fallback
// compare: accuracy drop in points (labels), perplexity increase in percent
// (language models), minus the output SQNR in dB (output fidelity), mask
// IoU loss in points (segmentation), else top-1 disagreement with the float
// model in points.
//
//   absl::StatusOr<Evaluated> e = Evaluate(*float_ex, *candidate, data,
//       layer_outputs, "evaluate_fake_quant", progress, &cancelled);
//   double loss = TargetMetric(e->metrics);   // larger is worse
#ifndef QUANTD_ENGINE_EVALUATION_PIPELINE_EVALUATION_H_
#define QUANTD_ENGINE_EVALUATION_PIPELINE_EVALUATION_H_

#include <atomic>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/data/dataset.h"
#include "engine/ir/quantization_plan.h"
#include "engine/runtime/executor.h"
#include "quantd/v1/job_spec.pb.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

struct ProgressEvent {
  std::string stage;    // "load", "prepare", "calibrate", ...
  double fraction = 0;  // of this stage, in [0, 1]
  int64_t samples_done = 0;
  std::string current_layer;
  std::string message;
  std::map<std::string, double> metrics;
};
using ProgressCallback = std::function<void(const ProgressEvent&)>;

absl::Status CheckCancelled(const std::atomic<bool>* cancelled);

// Runs `fn` on every batch of `data` from its start, checking `cancelled`
// before each batch and reporting progress as `stage` after it. Returns the
// number of samples seen.
absl::StatusOr<int64_t> ForEachBatch(
    Dataset& data, const std::string& stage, const ProgressCallback& progress,
    const std::atomic<bool>* cancelled,
    const std::function<absl::Status(const DataBatch&)>& fn);

struct Evaluated {
  v1::EvaluationMetrics metrics;
  std::map<std::string, double> layer_sqnr;  // by node name
};

// Runs both executors over `data` (rewound first) and compares their first
// outputs; per-layer SQNR on the values in `layers` (value -> node name).
// Progress events carry `stage`; a null `progress` reports nothing.
absl::StatusOr<Evaluated> Evaluate(
    Executor& reference, Executor& candidate, Dataset& data,
    const std::map<std::string, std::string>& layers, const std::string& stage,
    const ProgressCallback& progress, const std::atomic<bool>* cancelled);

// The fake-quant (QDQ) graph of `plan` on `graph`, weights' dequantization
// folded into float initializers, ready to run.
absl::StatusOr<std::unique_ptr<Executor>> FakeQuantExecutor(
    const Graph& graph, const QuantizationPlan& plan);

// Builds the fake-quant (QDQ) graph of `plan` on `graph` and evaluates it
// against `reference`.
absl::StatusOr<Evaluated> EvaluatePlan(
    const Graph& graph, const QuantizationPlan& plan, Executor& reference,
    Dataset& data, const std::map<std::string, std::string>& layers,
    const std::string& stage, const ProgressCallback& progress,
    const std::atomic<bool>* cancelled);

// The reference's first output per batch of `data`, so that repeated
// evaluations (sensitivity: one per layer) run only the candidate. Returns
// an empty vector when the outputs would exceed `max_bytes`.
absl::StatusOr<std::vector<Tensor>> ReferenceOutputs(
    Executor& reference, Dataset& data, int64_t max_bytes,
    const std::atomic<bool>* cancelled);

// Evaluate() against outputs from ReferenceOutputs on the same `data`.
absl::StatusOr<v1::EvaluationMetrics> EvaluateAgainstOutputs(
    const std::vector<Tensor>& reference_outputs, Executor& candidate,
    Dataset& data, const std::atomic<bool>* cancelled);

// Larger is worse; 0 means no loss against float.
double TargetMetric(const v1::EvaluationMetrics& m);
// "accuracy delta, points" ... for QuantizationReport.sensitivity_metric.
std::string TargetMetricName(const v1::EvaluationMetrics& m);

// Whether the target sets any bound at all (before the metrics, and so the
// task's bound, are known).
bool AnyTargetSet(const v1::AccuracyTarget& target);

// The target's bound on TargetMetric (the largest acceptable value), or
// nullopt when the spec sets none that applies to these metrics' task.
std::optional<double> TargetBound(const v1::AccuracyTarget& target,
                                  const v1::EvaluationMetrics& m);

}  // namespace quantd

#endif  // QUANTD_ENGINE_EVALUATION_PIPELINE_EVALUATION_H_
