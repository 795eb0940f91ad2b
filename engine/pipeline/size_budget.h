// The size-budget mode (JobSpec.size_budget): per-layer precisions that
// minimize the estimated loss within a weight-byte budget.
//
// Options per layer: the requested precision, int8 (when int4 was
// requested) and float, each with its bytes (LayerWeightBytes) and its
// sensitivity (the target metric with only that layer at that precision;
// float: 0). The exact multiple-choice knapsack
// (engine/quantization/precision_budget.h) picks one plan; the accuracy
// target's fallback order cut at the budget (each step taken if it still
// fits) picks another; both are evaluated on the evaluation set and the
// better one is delivered.
//
//   absl::StatusOr<BudgetOutcome> b = RunSizeBudget(
//       fallback_ctx, *evaluation, *subset, sensitivity, layers, budget);
#ifndef QUANTD_ENGINE_PIPELINE_SIZE_BUDGET_H_
#define QUANTD_ENGINE_PIPELINE_SIZE_BUDGET_H_

#include <cstdint>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "engine/pipeline/accuracy_fallback.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

// A layer's weight at `precision`, as SizeBudget counts it: float 4 bytes
// per weight; quantized, the integers at their container width (int4 two
// per byte), 4 bytes per scale and 1 per zero point.
absl::StatusOr<int64_t> LayerWeightBytes(LayerRounder& rounder,
                                         const Graph& graph,
                                         const WeightSlot& slot,
                                         LayerPrecision precision);

struct BudgetOutcome {
  std::map<std::string, LayerPrecision> precisions;  // by node
  std::map<std::string, std::string> reasons;        // by node
  QuantizationPlan plan;
  Evaluated evaluated;  // of `plan`, on the evaluation set
  v1::SizeBudgetReport report;
};

// `sensitivity` holds the requested precision's figures (SensitivityStage);
// the int8 figures of an int4 job are measured here on `subset`.
// ResourceExhausted when the budget is below the smallest model.
absl::StatusOr<BudgetOutcome> RunSizeBudget(
    const FallbackContext& ctx, Dataset& evaluation, Dataset& subset,
    const std::map<std::string, double>& sensitivity,
    const std::map<std::string, std::string>& layers, int64_t budget);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_SIZE_BUDGET_H_
