// Per-layer sensitivity and accuracy-aware fallback.
//
// Sensitivity of a layer: TargetMetric
// (engine/evaluation/pipeline_evaluation.h) when only that layer is quantized
// at its requested precision and every other layer stays float, measured on a
// bounded subset of the evaluation set.
//
// Fallback: while the quantized model misses the target, the most
// sensitive layer still at the requested precision moves one step up
// (int4 -> int8, else int8 -> float); when every layer has had its first
// step, the next round moves the most sensitive remaining ones to float.
// Every step is re-evaluated on the whole evaluation set and recorded.
//
//   absl::StatusOr<std::map<std::string, double>> s = MeasureSensitivity(
//       ctx, sensitivity_data);
//   absl::StatusOr<FallbackOutcome> f = RunAccuracyFallback(
//       ctx, evaluation_data, *s, first_model, bound);
#ifndef QUANTD_ENGINE_PIPELINE_ACCURACY_FALLBACK_H_
#define QUANTD_ENGINE_PIPELINE_ACCURACY_FALLBACK_H_

#include <atomic>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/data/dataset.h"
#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/quantization/weight_rounding.h"
#include "engine/runtime/executor.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

struct FallbackContext {
  const Graph* graph = nullptr;  // the graph plans are built on
  LayerRounder* rounder = nullptr;
  Executor* reference = nullptr;  // the float model
  const std::map<std::string, QuantParams>* activation_params = nullptr;
  // Local output SQNR by node (layer_local_error.h), or null: sensitivity is
  // measured worst-first by it, and fallback orders the layers sensitivity
  // did not reach by it; without it, both follow the graph's order.
  const std::map<std::string, double>* local_sqnr = nullptr;
  ProgressCallback progress;
  const std::atomic<bool>* cancelled = nullptr;
};

// TargetMetric per node name, for the layers measured before `deadline`
// (at least one; the rest are absent from the map), lowest local SQNR
// first when ctx.local_sqnr is set. Each layer at `precision` (default:
// the requested one).
absl::StatusOr<std::map<std::string, double>> MeasureSensitivity(
    const FallbackContext& ctx, Dataset& data,
    absl::Time deadline = absl::InfiniteFuture(),
    std::optional<LayerPrecision> precision = std::nullopt);

// The steps an accuracy target takes, in order: most sensitive first,
// int4 layers to int8 first, then layers to float.
std::vector<std::pair<std::string, LayerPrecision>> FallbackOrder(
    const FallbackContext& ctx,
    const std::map<std::string, double>& sensitivity);

struct FallbackOutcome {
  std::map<std::string, LayerPrecision> precisions;  // by node
  std::map<std::string, std::string> reasons;        // by node
  QuantizationPlan plan;
  Evaluated evaluated;  // of `plan`, on the whole evaluation set
  std::vector<v1::FallbackStep> steps;
  bool met = false;
  std::string message;
};

// Starts from every layer at its requested precision, already evaluated as
// `first`. `bound` is the largest acceptable TargetMetric. If only an
// all-float model meets it, the outcome is the best model that keeps at
// least one layer quantized, with met = false.
absl::StatusOr<FallbackOutcome> RunAccuracyFallback(
    const FallbackContext& ctx, Dataset& data,
    const std::map<std::string, double>& sensitivity,
    const QuantizationPlan& first_plan, const Evaluated& first, double bound,
    const std::map<std::string, std::string>& layers);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_ACCURACY_FALLBACK_H_
