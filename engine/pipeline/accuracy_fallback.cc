#include "engine/pipeline/accuracy_fallback.h"

#include <algorithm>
#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/export/qdq_export.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

constexpr int64_t kMaxCachedReferenceBytes = int64_t{256} << 20;

std::string Format(double v) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "%.3g", v);
  return buf;
}

// Layers with no quantized layer downstream (an LM's head, a classifier's
// last Gemm): their error reaches the outputs undamped, which their local
// SQNR understates (tiny GPT: the head has the best local SQNR, 32.6 dB, and
// the largest end-to-end sensitivity, +0.56% perplexity).
std::set<std::string> LastLayers(const Graph& graph,
                                 const std::vector<WeightSlot>& slots) {
  std::set<std::string> layers;
  for (const WeightSlot& s : slots) layers.insert(s.node);
  std::map<std::string, std::vector<size_t>> readers;  // value -> nodes
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& in : graph.nodes[i].inputs) {
      if (!in.empty()) readers[in].push_back(i);
    }
  }
  // Reverse topological order: readers come after their producers.
  std::vector<char> layer_downstream(graph.nodes.size(), 0);
  std::set<std::string> last;
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    const Node& node = graph.nodes[i];
    bool below = false;
    for (const std::string& out : node.outputs) {
      auto it = readers.find(out);
      if (it == readers.end()) continue;
      for (size_t r : it->second) {
        below |= layer_downstream[r] || layers.contains(graph.nodes[r].name);
      }
    }
    layer_downstream[i] = below;
    if (!below && layers.contains(node.name)) last.insert(node.name);
  }
  return last;
}

// The order sensitivity measures layers in, and fallback takes the ones it
// did not reach in: with local SQNR, the last layers first, then lower
// local SQNR first (layers without a figure after those with one); ties,
// and everything without local SQNR, in the graph's order.
class MeasureOrder {
 public:
  explicit MeasureOrder(const FallbackContext& ctx) : local_(ctx.local_sqnr) {
    if (local_ != nullptr) last_ = LastLayers(*ctx.graph, ctx.rounder->slots());
  }
  bool operator()(const std::string& a, const std::string& b) const {
    if (local_ == nullptr) return false;
    const bool last_a = last_.contains(a), last_b = last_.contains(b);
    if (last_a != last_b) return last_a;
    auto ia = local_->find(a), ib = local_->find(b);
    if (ib == local_->end()) return ia != local_->end();
    return ia != local_->end() && ia->second < ib->second;
  }

 private:
  const std::map<std::string, double>* local_;
  std::set<std::string> last_;
};

// Slot indices in the order sensitivity measures them.
std::vector<size_t> LocalErrorOrder(const FallbackContext& ctx) {
  const std::vector<WeightSlot>& slots = ctx.rounder->slots();
  std::vector<size_t> order(slots.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  const MeasureOrder first(ctx);
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return first(slots[a].node, slots[b].node);
  });
  return order;
}

}  // namespace

absl::StatusOr<std::map<std::string, double>> MeasureSensitivity(
    const FallbackContext& ctx, Dataset& data, absl::Time deadline,
    std::optional<LayerPrecision> precision) {
  std::map<std::string, double> out;
  const std::vector<WeightSlot>& all = ctx.rounder->slots();
  const std::vector<size_t> order = LocalErrorOrder(ctx);
  // The float model runs once; each layer's evaluation runs only its
  // candidate (half the work) unless the outputs are too large to keep.
  QUANTD_ASSIGN_OR_RETURN(
      std::vector<Tensor> reference,
      ReferenceOutputs(*ctx.reference, data, kMaxCachedReferenceBytes,
                       ctx.cancelled));
  for (size_t i = 0; i < order.size(); ++i) {
    QUANTD_RETURN_IF_ERROR(CheckCancelled(ctx.cancelled));
    if (i > 0 && absl::Now() > deadline) break;
    const WeightSlot& slot = all[order[i]];
    std::map<std::string, LayerPrecision> only;
    for (const WeightSlot& other : all) {
      only[other.node] = LayerPrecision::kFloat;
    }
    only[slot.node] =
        precision.value_or(RequestedPrecision(ctx.rounder->config().scheme));
    QUANTD_ASSIGN_OR_RETURN(
        QuantizationPlan plan,
        ctx.rounder->BuildPlan(only, *ctx.activation_params));
    v1::EvaluationMetrics metrics;
    if (!reference.empty()) {
      QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> ex,
                              FakeQuantExecutor(*ctx.graph, plan));
      QUANTD_ASSIGN_OR_RETURN(
          v1::EvaluationMetrics m,
          EvaluateAgainstOutputs(reference, *ex, data, ctx.cancelled));
      metrics = std::move(m);
    } else {
      absl::StatusOr<Evaluated> e =
          EvaluatePlan(*ctx.graph, plan, *ctx.reference, data, {}, "", nullptr,
                       ctx.cancelled);
      if (!e.ok()) return e.status();
      metrics = std::move(e->metrics);
    }
    out[slot.node] = TargetMetric(metrics);
    if (ctx.progress) {
      ProgressEvent ev;
      ev.stage = "sensitivity";
      ev.fraction = double(i + 1) / all.size();
      ev.current_layer = slot.node;
      ev.metrics["sensitivity"] = out[slot.node];
      ctx.progress(ev);
    }
  }
  return out;
}

namespace {

// Most sensitive first; ties keep the graph's order. Layers the
// sensitivity stage did not reach (its time budget) come after the measured
// ones, in MeasureOrder.
std::vector<std::string> SensitivityOrder(
    const FallbackContext& ctx,
    const std::map<std::string, double>& sensitivity) {
  std::vector<std::string> order;
  for (const WeightSlot& s : ctx.rounder->slots()) order.push_back(s.node);
  const MeasureOrder unmeasured(ctx);
  std::stable_sort(order.begin(), order.end(),
                   [&](const std::string& a, const std::string& b) {
                     auto ia = sensitivity.find(a), ib = sensitivity.find(b);
                     if (ia == sensitivity.end() && ib == sensitivity.end()) {
                       return unmeasured(a, b);
                     }
                     if (ib == sensitivity.end()) return true;
                     return ia != sensitivity.end() && ia->second > ib->second;
                   });
  return order;
}

// The step sequence: int4 layers to int8 first, then layers to float.
std::vector<std::pair<std::string, LayerPrecision>> FallbackSteps(
    const std::vector<std::string>& order, LayerPrecision requested) {
  std::vector<std::pair<std::string, LayerPrecision>> steps;
  if (requested == LayerPrecision::kInt4) {
    for (const std::string& n : order) {
      steps.emplace_back(n, LayerPrecision::kInt8);
    }
  }
  for (const std::string& n : order) {
    steps.emplace_back(n, LayerPrecision::kFloat);
  }
  return steps;
}

// Evaluates `current` with its precisions as they now stand (layer `node`
// just moved from `from`) and records the step; returns the target metric.
absl::StatusOr<double> EvaluateStep(
    const FallbackContext& ctx, Dataset& data,
    const std::map<std::string, double>& sensitivity,
    const std::map<std::string, std::string>& layers,
    const std::vector<std::string>& order, const std::string& node,
    LayerPrecision from, FallbackOutcome& current) {
  const LayerPrecision to = current.precisions.at(node);
  QUANTD_ASSIGN_OR_RETURN(
      QuantizationPlan plan,
      ctx.rounder->BuildPlan(current.precisions, *ctx.activation_params));
  QUANTD_ASSIGN_OR_RETURN(
      Evaluated e, EvaluatePlan(*ctx.graph, plan, *ctx.reference, data, layers,
                                "", nullptr, ctx.cancelled));
  const double metric = TargetMetric(e.metrics);
  v1::FallbackStep step;
  step.set_node(node);
  step.set_from_precision(LayerPrecisionName(from));
  step.set_to_precision(LayerPrecisionName(to));
  step.set_metric_after(metric);
  current.steps.push_back(step);
  current.reasons[node] = absl::StrCat(
      "fallback step ", current.steps.size(), ": ", LayerPrecisionName(from),
      " -> ", LayerPrecisionName(to), " (sensitivity ",
      sensitivity.contains(node) ? Format(sensitivity.at(node))
                                 : std::string("not measured"),
      ", rank ",
      std::find(order.begin(), order.end(), node) - order.begin() + 1, " of ",
      order.size(), ")");
  current.plan = std::move(plan);
  current.evaluated = std::move(e);
  return metric;
}

}  // namespace

std::vector<std::pair<std::string, LayerPrecision>> FallbackOrder(
    const FallbackContext& ctx,
    const std::map<std::string, double>& sensitivity) {
  return FallbackSteps(SensitivityOrder(ctx, sensitivity),
                       RequestedPrecision(ctx.rounder->config().scheme));
}

absl::StatusOr<FallbackOutcome> RunAccuracyFallback(
    const FallbackContext& ctx, Dataset& data,
    const std::map<std::string, double>& sensitivity,
    const QuantizationPlan& first_plan, const Evaluated& first, double bound,
    const std::map<std::string, std::string>& layers) {
  const LayerPrecision requested =
      RequestedPrecision(ctx.rounder->config().scheme);
  FallbackOutcome current;
  for (const WeightSlot& s : ctx.rounder->slots()) {
    current.precisions[s.node] = requested;
  }
  current.plan = first_plan;
  current.evaluated = first;
  if (TargetMetric(first.metrics) <= bound) {
    current.met = true;
    current.message = absl::StrCat(
        "target met without fallback: ", Format(TargetMetric(first.metrics)),
        " <= ", Format(bound));
    return current;
  }
  const std::vector<std::string> order = SensitivityOrder(ctx, sensitivity);
  const std::vector<std::pair<std::string, LayerPrecision>> steps =
      FallbackSteps(order, requested);
  FallbackOutcome best = current;  // best model with a quantized layer
  for (size_t i = 0; i < steps.size(); ++i) {
    const auto& [node, to] = steps[i];
    const LayerPrecision from = current.precisions[node];
    current.precisions[node] = to;
    const bool all_float = std::all_of(
        current.precisions.begin(), current.precisions.end(),
        [](const auto& p) { return p.second == LayerPrecision::kFloat; });
    if (all_float) break;
    QUANTD_ASSIGN_OR_RETURN(const double metric,
                            EvaluateStep(ctx, data, sensitivity, layers, order,
                                         node, from, current));
    if (ctx.progress) {
      ProgressEvent ev;
      ev.stage = "fallback";
      ev.fraction = double(i + 1) / steps.size();
      ev.current_layer = node;
      ev.metrics["target_metric"] = metric;
      ctx.progress(ev);
    }
    if (metric < TargetMetric(best.evaluated.metrics)) best = current;
    if (metric <= bound) {
      current.met = true;
      current.message = absl::StrCat("target met after ", current.steps.size(),
                                     " fallback steps: ", Format(metric),
                                     " <= ", Format(bound));
      return current;
    }
    QUANTD_RETURN_IF_ERROR(CheckCancelled(ctx.cancelled));
  }
  best.steps = current.steps;
  best.met = false;
  best.message = absl::StrCat(
      "target not met: only the all-float model is within ", Format(bound),
      "; delivering the best model that keeps a layer quantized (",
      Format(TargetMetric(best.evaluated.metrics)), ")");
  return best;
}

}  // namespace quantd
