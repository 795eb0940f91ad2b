// Per-layer precision under a size budget: "the most accurate model within
// N bytes". Each layer has options (int4, int8, float...) with their bytes
// and an estimated loss (the end-metric increase measured with only that
// layer at that precision); the losses are taken as additive, as HAWQ-style
// mixed-precision solvers do, and the choice is a multiple-choice knapsack,
// solved exactly by dynamic programming over the bytes.
//
// Bytes are counted in granules of at least one byte, with each option's
// bytes rounded up to whole granules, so a solution never exceeds the
// budget; with a granule of one byte (budgets up to max_buckets bytes) the
// solution is the exact optimum. SolvePrecisionBudgetExhaustive is the
// reference the tests compare against.
//
//   std::vector<LayerChoices> layers = {
//       {"fc1", {{LayerPrecision::kInt4, 600, 0.4},
//                {LayerPrecision::kInt8, 1100, 0.05},
//                {LayerPrecision::kFloat, 4200, 0.0}}}, ...};
//   absl::StatusOr<BudgetSolution> s =
//       SolvePrecisionBudget(layers, /*fixed_bytes=*/300, /*budget=*/5000);
#ifndef QUANTD_ENGINE_QUANTIZATION_PRECISION_BUDGET_H_
#define QUANTD_ENGINE_QUANTIZATION_PRECISION_BUDGET_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/quantization/weight_rounding.h"

namespace quantd {

struct LayerOption {
  LayerPrecision precision = LayerPrecision::kFloat;
  int64_t bytes = 0;  // this layer's weights (and scales) at `precision`
  double loss = 0;    // estimated end-metric increase; >= 0
};

struct LayerChoices {
  std::string node;
  std::vector<LayerOption> options;  // at least one
};

struct BudgetSolution {
  std::map<std::string, LayerPrecision> precisions;  // by node
  int64_t bytes = 0;  // fixed bytes + the chosen options' bytes (exact)
  double loss = 0;    // the chosen options' summed loss
};

// The least-loss choice with fixed_bytes + chosen bytes <= budget.
// ResourceExhausted, naming the smallest size reachable, when even the
// smallest option of every layer does not fit; InvalidArgument for a layer
// without options or with negative bytes or loss.
absl::StatusOr<BudgetSolution> SolvePrecisionBudget(
    const std::vector<LayerChoices>& layers, int64_t fixed_bytes,
    int64_t budget, int64_t max_buckets = int64_t{1} << 15);

// Tries every combination: for tests, on a few layers.
absl::StatusOr<BudgetSolution> SolvePrecisionBudgetExhaustive(
    const std::vector<LayerChoices>& layers, int64_t fixed_bytes,
    int64_t budget);

// Solutions for `points` budgets spread evenly from the smallest model to
// the largest, without those another one beats (no more bytes and no more
// loss, and fewer of one): the size/loss table a user picks from, bytes
// rising and loss falling.
absl::StatusOr<std::vector<BudgetSolution>> PrecisionParetoFrontier(
    const std::vector<LayerChoices>& layers, int64_t fixed_bytes, int points);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_PRECISION_BUDGET_H_
