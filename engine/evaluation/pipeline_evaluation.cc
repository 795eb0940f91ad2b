#include "engine/evaluation/pipeline_evaluation.h"

#include <algorithm>
#include <cstring>

#include "engine/evaluation/evaluation_metrics.h"
#include "engine/export/qdq_export.h"
#include "engine/passes/constant_folding.h"
#include "engine/passes/graph_cleanup.h"
#include "util/status_macros.h"

namespace quantd {

absl::Status CheckCancelled(const std::atomic<bool>* cancelled) {
  if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) {
    return absl::CancelledError("the job was cancelled");
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> ForEachBatch(
    Dataset& data, const std::string& stage, const ProgressCallback& progress,
    const std::atomic<bool>* cancelled,
    const std::function<absl::Status(const DataBatch&)>& fn) {
  QUANTD_RETURN_IF_ERROR(data.Rewind());
  int64_t done = 0;
  while (true) {
    QUANTD_RETURN_IF_ERROR(CheckCancelled(cancelled));
    QUANTD_ASSIGN_OR_RETURN(std::optional<DataBatch> batch, data.Next());
    if (!batch.has_value()) break;
    QUANTD_RETURN_IF_ERROR(fn(*batch));
    done += (batch)->size;
    if (progress) {
      ProgressEvent e;
      e.stage = stage;
      e.fraction = double(done) / data.num_samples();
      e.samples_done = done;
      progress(e);
    }
  }
  return done;
}

namespace {

// Per-layer SQNR keeps every layer's output of a run, in both executors, until
// the run ends: at ResNet-50's batch 32 that was 2 x 1.17 GB, the job's peak.
// Batches are split so that each run keeps at most this much per executor.
constexpr int64_t kLayerValueBudgetBytes = int64_t{256} << 20;

// Rows [first, first + count) of a tensor whose dim 0 is samples (an
// undefined tensor stays undefined).
Tensor SampleRows(const Tensor& t, int64_t first, int64_t count) {
  if (!t.defined() || t.rank() < 1) return t;
  Shape shape = t.shape();
  const size_t row = t.byte_size() / std::max<int64_t>(shape[0], 1);
  shape[0] = count;
  Tensor out(t.dtype(), shape);
  std::memcpy(out.mutable_raw_data(),
              static_cast<const char*>(t.raw_data()) + first * row,
              count * row);
  return out;
}

DataBatch SliceBatch(const DataBatch& b, int64_t first, int64_t count) {
  DataBatch part;
  for (const auto& [name, t] : b.feeds) {
    part.feeds[name] = SampleRows(t, first, count);
  }
  part.labels = SampleRows(b.labels, first, count);
  part.targets = SampleRows(b.targets, first, count);
  part.size = count;
  part.first = b.first + first;
  return part;
}

}  // namespace

absl::StatusOr<Evaluated> Evaluate(
    Executor& reference, Executor& candidate, Dataset& data,
    const std::map<std::string, std::string>& layers, const std::string& stage,
    const ProgressCallback& progress, const std::atomic<bool>* cancelled) {
  EvaluationAccumulator acc(data.task(), data.mask_threshold());
  std::map<std::string, SqnrAccumulator> per_layer;
  RunOptions ref_opts, cand_opts;
  ref_opts.cancelled = cand_opts.cancelled = cancelled;
  for (const auto& [value, node] : layers) {
    ref_opts.extra_outputs.push_back(value);
    cand_opts.extra_outputs.push_back(value);
  }
  // Samples per run: all of a batch without layers; with them, one sample
  // first to measure the layer outputs' size, then what fits the budget.
  // (The accumulators do not depend on how samples are batched.) A model
  // with a fixed batch runs whole batches.
  int64_t per_run = layers.empty() || data.fixed_batch() > 0 ? 0 : -1;
  auto run = [&](const DataBatch& batch) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(RunResult r, reference.Run(batch.feeds, ref_opts));
    QUANTD_ASSIGN_OR_RETURN(RunResult c, candidate.Run(batch.feeds, cand_opts));
    QUANTD_RETURN_IF_ERROR(
        acc.Add(r.outputs[0], c.outputs[0], batch.labels, batch.targets));
    int64_t layer_bytes = 0;
    for (const auto& [value, node] : layers) {
      auto rv = r.values.find(value), cv = c.values.find(value);
      if (rv != r.values.end() && cv != c.values.end() &&
          rv->second.shape() == cv->second.shape()) {
        QUANTD_RETURN_IF_ERROR(per_layer[node].Add(rv->second, cv->second));
        layer_bytes += static_cast<int64_t>(rv->second.byte_size());
      }
    }
    if (per_run < 0) {
      per_run = std::max<int64_t>(
          1, kLayerValueBudgetBytes /
                 std::max<int64_t>(1, layer_bytes / batch.size));
    }
    return absl::OkStatus();
  };
  absl::StatusOr<int64_t> n = ForEachBatch(
      data, stage, progress, cancelled,
      [&](const DataBatch& batch) -> absl::Status {
        for (int64_t first = 0; first < batch.size;) {
          const int64_t count =
              per_run == 0 ? batch.size
                           : std::min(batch.size - first,
                                      per_run < 0 ? int64_t{1} : per_run);
          QUANTD_RETURN_IF_ERROR(count == batch.size
                                     ? run(batch)
                                     : run(SliceBatch(batch, first, count)));
          first += count;
        }
        return absl::OkStatus();
      });
  if (!n.ok()) return n.status();
  Evaluated out;
  out.metrics = acc.Finish();
  for (const auto& [node, s] : per_layer) {
    out.layer_sqnr[node] = std::min(s.sqnr_db(), 1000.0);
  }
  return out;
}

absl::StatusOr<std::vector<Tensor>> ReferenceOutputs(
    Executor& reference, Dataset& data, int64_t max_bytes,
    const std::atomic<bool>* cancelled) {
  std::vector<Tensor> outputs;
  int64_t bytes = 0;
  absl::StatusOr<int64_t> n =
      ForEachBatch(data, "", nullptr, cancelled,
                   [&](const DataBatch& batch) -> absl::Status {
                     if (bytes > max_bytes) return absl::OkStatus();
                     QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> r,
                                             reference.RunOutputs(batch.feeds));
                     bytes += static_cast<int64_t>((r)[0].byte_size());
                     outputs.push_back(std::move((r)[0]));
                     return absl::OkStatus();
                   });
  if (!n.ok()) return n.status();
  if (bytes > max_bytes) outputs.clear();
  return outputs;
}

absl::StatusOr<v1::EvaluationMetrics> EvaluateAgainstOutputs(
    const std::vector<Tensor>& reference_outputs, Executor& candidate,
    Dataset& data, const std::atomic<bool>* cancelled) {
  EvaluationAccumulator acc(data.task(), data.mask_threshold());
  size_t index = 0;
  absl::StatusOr<int64_t> n =
      ForEachBatch(data, "", nullptr, cancelled,
                   [&](const DataBatch& batch) -> absl::Status {
                     if (index >= reference_outputs.size()) {
                       return absl::InternalError(
                           "more batches than cached reference outputs");
                     }
                     QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> c,
                                             candidate.RunOutputs(batch.feeds));
                     return acc.Add(reference_outputs[index++], (c)[0],
                                    batch.labels, batch.targets);
                   });
  if (!n.ok()) return n.status();
  return acc.Finish();
}

absl::StatusOr<std::unique_ptr<Executor>> FakeQuantExecutor(
    const Graph& graph, const QuantizationPlan& plan) {
  QdqExportOptions options;
  options.packed_code_nodes = true;  // int4 codes stay half a byte each
  QUANTD_ASSIGN_OR_RETURN(QdqGraph qdq, BuildQdqGraph(graph, plan, options));
  // Weights' DequantizeLinear nodes read only initializers: folded once
  // here, not recomputed by every run (at ResNet-50's batch 32, 370 MB of
  // float weights re-made per run, at the job's memory peak). The folded
  // floats are what the nodes would compute, so results do not change.
  // Weights the plan holds as codes (GPTQ's) stay DequantizeLinear (or,
  // for int4, quantd.DequantizePackedCodes) nodes, placed before their
  // first reader: each layer's float weights exist only while it runs,
  // where folded copies of a 1.1B decoder's were 4.4 GB next to the float
  // model's.
  std::set<std::string> code_inputs;
  for (const auto& [value, weight] : qdq.dequantized_weights) {
    if (plan.weight_codes.contains(weight)) code_inputs.insert(value);
  }
  FoldingOptions folding;
  folding.keep_node = [&](const Node& n) {
    return n.outputs.size() == 1 && code_inputs.contains(n.outputs[0]);
  };
  QUANTD_RETURN_IF_ERROR(
      FoldConstants(qdq.graph, DefaultOpRegistry(), nullptr, folding));
  RemoveDeadNodes(qdq.graph);
  return Executor::Create(std::move(qdq.graph));
}

absl::StatusOr<Evaluated> EvaluatePlan(
    const Graph& graph, const QuantizationPlan& plan, Executor& reference,
    Dataset& data, const std::map<std::string, std::string>& layers,
    const std::string& stage, const ProgressCallback& progress,
    const std::atomic<bool>* cancelled) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> ex,
                          FakeQuantExecutor(graph, plan));
  return Evaluate(reference, *ex, data, layers, stage, progress, cancelled);
}

double TargetMetric(const v1::EvaluationMetrics& m) {
  if (m.task() == "segmentation") return 100.0 * (1.0 - m.mask_iou());
  if (m.task() == "output_fidelity") return -m.output_sqnr_db();
  if (m.has_labels()) return -m.accuracy_delta_points();
  if (m.is_language_model()) return m.perplexity_delta_percent();
  return 100.0 * (1.0 - m.top1_agreement());
}

std::string TargetMetricName(const v1::EvaluationMetrics& m) {
  if (m.task() == "segmentation") return "mask IoU loss, points";
  if (m.task() == "output_fidelity") return "output SQNR, minus dB";
  if (m.has_labels()) return "accuracy drop, points";
  if (m.is_language_model()) return "perplexity increase, percent";
  return "top-1 disagreement with the float model, points";
}

bool AnyTargetSet(const v1::AccuracyTarget& target) {
  return target.max_accuracy_drop_points() > 0 ||
         target.max_perplexity_increase_percent() > 0 ||
         target.min_output_sqnr_db() > 0 || target.min_mask_iou() > 0;
}

std::optional<double> TargetBound(const v1::AccuracyTarget& target,
                                  const v1::EvaluationMetrics& m) {
  if (m.task() == "segmentation") {
    if (!(target.min_mask_iou() > 0)) return std::nullopt;
    return 100.0 * (1.0 - target.min_mask_iou());
  }
  if (m.task() == "output_fidelity") {
    if (!(target.min_output_sqnr_db() > 0)) return std::nullopt;
    return -target.min_output_sqnr_db();
  }
  const double bound = m.is_language_model()
                           ? target.max_perplexity_increase_percent()
                           : target.max_accuracy_drop_points();
  if (!(bound > 0)) return std::nullopt;
  return bound;
}

}  // namespace quantd
