#include "engine/pipeline/size_budget.h"

#include <algorithm>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/quantization/precision_budget.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<int64_t> LayerWeightBytes(LayerRounder& rounder,
                                         const Graph& graph,
                                         const WeightSlot& slot,
                                         LayerPrecision precision) {
  const Tensor* w = graph.FindInitializer(slot.initializer);
  if (w == nullptr) {
    return absl::InternalError(
        absl::StrCat("layer '", slot.node, "' has no weight"));
  }
  if (precision == LayerPrecision::kFloat) {
    return static_cast<int64_t>(w->byte_size());
  }
  QUANTD_ASSIGN_OR_RETURN(const RoundedLayer* r,
                          rounder.Round(slot, precision));
  const int64_t scales = static_cast<int64_t>(r->params.scales.size());
  return (w->num_elements() * CodeBits(r->params.type) + 7) / 8 + 4 * scales +
         (r->params.zero_points.empty() ? 0 : scales);
}

namespace {

// "int4 3, int8 1, float 1"
std::string Summary(const std::map<std::string, LayerPrecision>& precisions) {
  std::map<std::string, int> counts;
  for (const auto& [node, p] : precisions) ++counts[LayerPrecisionName(p)];
  std::string out;
  for (const char* name : {"int4", "int8", "float"}) {
    if (counts[name] == 0) continue;
    absl::StrAppend(&out, out.empty() ? "" : ", ", name, " ", counts[name]);
  }
  return out;
}

// Every initializer that is no layer's weight, at its own size.
int64_t FixedBytes(const Graph& graph, const std::vector<WeightSlot>& slots) {
  std::set<std::string> weights;
  for (const WeightSlot& s : slots) weights.insert(s.initializer);
  int64_t bytes = 0;
  for (const auto& [name, t] : graph.initializers) {
    if (!weights.contains(name)) bytes += static_cast<int64_t>(t.byte_size());
  }
  return bytes;
}

// The options of every layer; a layer without a measured sensitivity (the
// sensitivity time budget) gets the largest measured one, so the solver
// does not take it for free.
absl::StatusOr<std::vector<LayerChoices>> Choices(
    const FallbackContext& ctx,
    const std::map<LayerPrecision, std::map<std::string, double>>& loss) {
  std::vector<LayerChoices> out;
  for (const WeightSlot& slot : ctx.rounder->slots()) {
    LayerChoices c;
    c.node = slot.node;
    for (const auto& [precision, by_node] : loss) {
      double worst = 0;
      for (const auto& [n, v] : by_node) worst = std::max(worst, v);
      auto it = by_node.find(slot.node);
      LayerOption o;
      o.precision = precision;
      o.loss = std::max(0.0, it != by_node.end() ? it->second : worst);
      QUANTD_ASSIGN_OR_RETURN(
          o.bytes, LayerWeightBytes(*ctx.rounder, *ctx.graph, slot, precision));
      c.options.push_back(o);
    }
    LayerOption f;
    f.precision = LayerPrecision::kFloat;
    QUANTD_ASSIGN_OR_RETURN(
        f.bytes, LayerWeightBytes(*ctx.rounder, *ctx.graph, slot, f.precision));
    c.options.push_back(f);
    out.push_back(std::move(c));
  }
  return out;
}

int64_t BytesOf(const std::vector<LayerChoices>& choices, int64_t fixed,
                const std::map<std::string, LayerPrecision>& precisions) {
  int64_t bytes = fixed;
  for (const LayerChoices& c : choices) {
    for (const LayerOption& o : c.options) {
      if (o.precision == precisions.at(c.node)) bytes += o.bytes;
    }
  }
  return bytes;
}

// The solver is indifferent between options of equal loss (int8 and float
// often both measure 0): each layer takes its smallest option whose loss
// is no larger than the chosen one's, which never adds loss or bytes.
void ShrinkTies(const std::vector<LayerChoices>& choices,
                std::map<std::string, LayerPrecision>& precisions) {
  for (const LayerChoices& c : choices) {
    const LayerOption* chosen = nullptr;
    for (const LayerOption& o : c.options) {
      if (o.precision == precisions.at(c.node)) chosen = &o;
    }
    if (chosen == nullptr) continue;
    const LayerOption* smallest = chosen;
    for (const LayerOption& o : c.options) {
      if (o.loss <= chosen->loss && o.bytes < smallest->bytes) smallest = &o;
    }
    precisions[c.node] = smallest->precision;
  }
}

// The accuracy target's steps, each taken while the model still fits.
std::map<std::string, LayerPrecision> SensitivityOrderWithin(
    const FallbackContext& ctx, const std::map<std::string, double>& sens,
    const std::vector<LayerChoices>& choices, int64_t fixed, int64_t budget) {
  std::map<std::string, LayerPrecision> p;
  const LayerPrecision requested =
      RequestedPrecision(ctx.rounder->config().scheme);
  for (const WeightSlot& s : ctx.rounder->slots()) p[s.node] = requested;
  for (const auto& [node, to] : FallbackOrder(ctx, sens)) {
    const LayerPrecision from = p[node];
    p[node] = to;
    if (BytesOf(choices, fixed, p) > budget) p[node] = from;
  }
  return p;
}

}  // namespace

absl::StatusOr<BudgetOutcome> RunSizeBudget(
    const FallbackContext& ctx, Dataset& evaluation, Dataset& subset,
    const std::map<std::string, double>& sensitivity,
    const std::map<std::string, std::string>& layers, int64_t budget) {
  const LayerPrecision requested =
      RequestedPrecision(ctx.rounder->config().scheme);
  std::map<LayerPrecision, std::map<std::string, double>> loss;
  loss[requested] = sensitivity;
  if (requested == LayerPrecision::kInt4) {
    QUANTD_ASSIGN_OR_RETURN(
        loss[LayerPrecision::kInt8],
        MeasureSensitivity(ctx, subset, absl::InfiniteFuture(),
                           LayerPrecision::kInt8));
  }
  QUANTD_ASSIGN_OR_RETURN(const std::vector<LayerChoices> choices,
                          Choices(ctx, loss));
  const int64_t fixed = FixedBytes(*ctx.graph, ctx.rounder->slots());
  absl::StatusOr<BudgetSolution> solved =
      SolvePrecisionBudget(choices, fixed, budget);
  if (!solved.ok()) {
    return absl::Status(
        solved.status().code(),
        absl::StrCat(
            "size_budget.max_weight_bytes: ", solved.status().message(),
            " (every layer at the requested precision)"));
  }
  BudgetSolution knapsack = *std::move(solved);
  ShrinkTies(choices, knapsack.precisions);
  const std::map<std::string, LayerPrecision> ordered =
      SensitivityOrderWithin(ctx, sensitivity, choices, fixed, budget);

  BudgetOutcome best;
  double best_metric = 0;
  const std::map<std::string, LayerPrecision>* candidates[] = {
      &knapsack.precisions, &ordered};
  for (const auto* candidate : candidates) {
    QUANTD_ASSIGN_OR_RETURN(
        QuantizationPlan plan,
        ctx.rounder->BuildPlan(*candidate, *ctx.activation_params));
    QUANTD_ASSIGN_OR_RETURN(
        Evaluated e, EvaluatePlan(*ctx.graph, plan, *ctx.reference, evaluation,
                                  layers, "", nullptr, ctx.cancelled));
    const double metric = TargetMetric(e.metrics);
    const bool first = candidate == &knapsack.precisions;
    if (first) {
      best.report.set_knapsack_metric(metric);
    } else {
      best.report.set_sensitivity_order_metric(metric);
    }
    if (first || metric < best_metric) {
      best_metric = metric;
      best.precisions = *candidate;
      best.plan = std::move(plan);
      best.evaluated = std::move(e);
      best.report.set_chosen(first ? "knapsack" : "sensitivity order");
    }
  }
  best.report.set_budget_bytes(budget);
  best.report.set_planned_bytes(BytesOf(choices, fixed, best.precisions));
  for (const auto& [node, p] : best.precisions) {
    if (p == requested) continue;
    best.reasons[node] = absl::StrCat("size budget (", best.report.chosen(),
                                      "): ", LayerPrecisionName(p));
  }
  QUANTD_ASSIGN_OR_RETURN(std::vector<BudgetSolution> frontier,
                          PrecisionParetoFrontier(choices, fixed, 8));
  for (const BudgetSolution& s : frontier) {
    v1::BudgetPoint* point = best.report.add_frontier();
    point->set_weight_bytes(s.bytes);
    point->set_estimated_loss(s.loss);
    point->set_precisions(Summary(s.precisions));
  }
  return best;
}

}  // namespace quantd
