// sensitivity and fallback: which layers hurt the end metric most, and
// moving them to higher precision (int4 -> int8 -> float) while an accuracy
// target is missed.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/accuracy_fallback.h"
#include "engine/pipeline/layer_local_error.h"
#include "engine/pipeline/size_budget.h"
#include "engine/pipeline/stages.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

FallbackContext FallbackContextOf(JobContext& ctx) {
  FallbackContext f;
  f.graph = &ctx.graph;
  f.rounder = ctx.rounder.get();
  f.reference = ctx.float_executor.get();
  f.activation_params = &ctx.activation_params;
  f.local_sqnr = &ctx.facts.local_sqnr_db;
  f.progress = ctx.progress;
  f.cancelled = ctx.cancelled;
  return f;
}

// The bounded evaluation subset per-layer sensitivity is measured on.
absl::StatusOr<std::unique_ptr<Dataset>> OpenSensitivitySubset(
    JobContext& ctx) {
  return ctx.data->OpenEvaluationSubset(ctx.spec().sensitivity().max_samples(),
                                        ctx.spec().calibration().batch_size());
}

// JobSpec.size_budget: the better of the knapsack's and the fallback
// order's plans within the budget (size_budget.h).
absl::Status ApplySizeBudget(JobContext& ctx, int64_t budget) {
  if (ctx.facts.sensitivity.empty()) {
    return absl::InvalidArgumentError(
        "a size_budget needs per-layer sensitivity to choose precisions; do "
        "not set sensitivity.disabled");
  }
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> subset,
                          OpenSensitivitySubset(ctx));
  ctx.Progress("fallback", 0, "", "size budget: int8 sensitivity, solve");
  QUANTD_ASSIGN_OR_RETURN(
      BudgetOutcome b,
      RunSizeBudget(FallbackContextOf(ctx), *ctx.data->evaluation, *subset,
                    ctx.facts.sensitivity, ctx.layer_values, budget));
  ctx.quantization = std::move(b.plan);
  ctx.fake_quant = std::move(b.evaluated);
  for (auto& [node, reason] : b.reasons) ctx.facts.reasons[node] = reason;
  *ctx.report().mutable_size_budget() = std::move(b.report);
  return absl::OkStatus();
}

}  // namespace

absl::Status SensitivityStage(JobContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(ctx.float_executor,
                          Executor::Create(ctx.float_graph));
  // QAT has trained every layer together; one-layer-at-a-time figures of
  // the untrained rounding would say nothing about the delivered model.
  if (ctx.spec().sensitivity().disabled() || ctx.plan.is_qat()) {
    return absl::OkStatus();
  }
  const double budget = ctx.spec().sensitivity().time_budget_seconds();
  const absl::Time deadline = absl::Now() + absl::Seconds(budget);
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> subset,
                          OpenSensitivitySubset(ctx));
  // Every layer's own error first (about three forward passes), so the
  // end-to-end measurements, one pass per layer, start with the worst.
  ctx.Progress("sensitivity", 0, "", "local error of every layer");
  QUANTD_ASSIGN_OR_RETURN(
      ctx.facts.local_sqnr_db,
      LocalLayerSqnr(ctx.graph, *ctx.rounder,
                     RequestedPrecision(ctx.rounder->config().scheme),
                     ctx.activation_params, *subset, ctx.cancelled));
  QUANTD_ASSIGN_OR_RETURN(
      ctx.facts.sensitivity,
      MeasureSensitivity(FallbackContextOf(ctx), *subset, deadline));
  const size_t layers = ctx.rounder->slots().size();
  if (ctx.facts.sensitivity.size() < layers) {
    ctx.report().add_warnings(absl::StrCat(
        "sensitivity measured for ", ctx.facts.sensitivity.size(), " of ",
        layers, " layers within sensitivity.time_budget_seconds (", budget,
        " s): layers with no layer downstream first, then those with the "
        "lowest local SQNR first; the rest have no sensitivity figure and "
        "fall back last, in the same order"));
  }
  return absl::OkStatus();
}

absl::Status FallbackStage(JobContext& ctx) {
  v1::QuantizationReport& report = ctx.report();
  const std::optional<double> bound =
      TargetBound(ctx.spec().accuracy_target(), ctx.fake_quant->metrics);
  report.set_accuracy_target_met(true);
  const int64_t budget = ctx.spec().size_budget().max_weight_bytes();
  if (budget > 0) {
    QUANTD_RETURN_IF_ERROR(ApplySizeBudget(ctx, budget));
  } else if (bound.has_value() && ctx.plan.is_qat()) {
    report.add_warnings(
        "accuracy_target is not applied to QAT jobs (no layer fallback after "
        "training); the report says whether the trained model meets it");
    report.set_accuracy_target_met(TargetMetric(ctx.fake_quant->metrics) <=
                                   *bound);
  } else if (bound.has_value()) {
    if (ctx.facts.sensitivity.empty()) {
      return absl::InvalidArgumentError(
          "an accuracy_target needs per-layer sensitivity to choose which "
          "layers fall back; do not set sensitivity.disabled");
    }
    QUANTD_ASSIGN_OR_RETURN(
        FallbackOutcome f,
        RunAccuracyFallback(FallbackContextOf(ctx), *ctx.data->evaluation,
                            ctx.facts.sensitivity, *ctx.quantization,
                            *ctx.fake_quant, *bound, ctx.layer_values));
    ctx.quantization = std::move(f.plan);
    ctx.fake_quant = std::move(f.evaluated);
    for (auto& [node, reason] : f.reasons) ctx.facts.reasons[node] = reason;
    for (const v1::FallbackStep& s : f.steps) *report.add_fallback_steps() = s;
    report.set_accuracy_target_met(f.met);
    report.set_accuracy_target_message(f.message);
    if (!f.met) report.add_warnings(f.message);
  }
  *report.mutable_fake_quant() = ctx.fake_quant->metrics;
  ctx.facts.output_sqnr_db = ctx.fake_quant->layer_sqnr;
  ctx.DropStatistics();  // no layer is rounded after the fallback
  return absl::OkStatus();
}

}  // namespace quantd
