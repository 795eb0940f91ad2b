#include "engine/ptq_pipeline.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "engine/accuracy_fallback.h"
#include "engine/calibration_session.h"
#include "engine/channel_scaling_pass.h"
#include "engine/graph_cleanup.h"
#include "engine/int8_lowering.h"
#include "engine/job_data.h"
#include "engine/layer_input_statistics.h"
#include "engine/model_loader.h"
#include "engine/pipeline_report.h"
#include "engine/qat_graph.h"
#include "engine/qat_trainer.h"
#include "engine/qdq_export.h"
#include "engine/spec_conversion.h"
#include "engine/weight_rounding.h"

#ifndef QUANTD_VERSION
#define QUANTD_VERSION "dev"
#endif

namespace quantd {
namespace {

// Rows of each layer input AWQ keeps to score candidate scales.
constexpr int64_t kAwqSampleRows = 1024;

// The range an activation's parameters represent, for LowerToInt8.
TensorRange RangeOf(const QuantParams& p) {
  const float s = p.scales.empty() ? 1.f : p.scales[0];
  const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[0];
  return TensorRange{(p.qmin - zp) * s, (p.qmax - zp) * s};
}

// One pass of `graph` over `data` with `hook`, reporting progress as
// `stage`. Returns the number of samples seen.
absl::StatusOr<int64_t> RunPass(const Graph& graph, Dataset& data,
                                TensorHook hook, const std::string& stage,
                                const ProgressCallback& progress,
                                const std::atomic<bool>* cancelled) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(graph);
  if (!ex.ok()) return ex.status();
  RunOptions opts;
  opts.tensor_hook = std::move(hook);
  opts.cancelled = cancelled;
  return ForEachBatch(data, stage, progress, cancelled,
                      [&](const DataBatch& batch) -> absl::Status {
                        return (*ex)->Run(batch.feeds, opts).status();
                      });
}

std::map<std::string, ChannelLayout> LayerInputs(
    const Graph& graph, const std::vector<WeightSlot>& slots) {
  std::map<std::string, std::string> op_of;
  for (const WeightSlot& s : slots) op_of[s.node] = s.op_type;
  std::map<std::string, ChannelLayout> out;
  for (const Node& n : graph.nodes) {
    auto it = op_of.find(n.name);
    if (it == op_of.end()) continue;
    out[n.input(0)] =
        it->second == "Conv" ? ChannelLayout::kDim1 : ChannelLayout::kLastDim;
  }
  return out;
}

absl::StatusOr<std::vector<WeightSlot>> FindSlots(
    const Graph& graph, const WeightSelection& selection) {
  absl::StatusOr<std::vector<WeightSlot>> slots =
      FindQuantizableWeights(graph, selection);
  if (slots.ok() && slots->empty()) {
    return absl::InvalidArgumentError(
        "the model has no Conv, Gemm or MatMul with constant weights left to "
        "quantize (after exclusions)");
  }
  return slots;
}

// Defaults of the spec's QatConfig fields left at 0.
QatOptions QatOptionsFromSpec(const v1::JobSpec& spec, bool has_labels) {
  const v1::QatConfig& q = spec.qat();
  QatOptions o;
  if (q.max_steps() > 0) o.max_steps = q.max_steps();
  if (q.time_budget_seconds() > 0)
    o.time_budget_seconds = q.time_budget_seconds();
  o.optimizer.kind = q.optimizer() == v1::QatConfig::OPTIMIZER_SGD
                         ? OptimizerKind::kSgd
                         : OptimizerKind::kAdam;
  o.optimizer.learning_rate =
      q.learning_rate() > 0
          ? q.learning_rate()
          : (o.optimizer.kind == OptimizerKind::kSgd ? 1e-3 : 1e-4);
  o.optimizer.weight_decay = q.weight_decay();
  o.optimizer.cosine = q.cosine_schedule();
  o.optimizer.gradient_clip_norm = q.gradient_clip_norm();
  o.loss.distillation_weight = q.distillation_weight() > 0
                                   ? q.distillation_weight()
                                   : (has_labels ? 0.5 : 1.0);
  o.learned_step_size = q.learned_step_size();
  o.checkpoint_every_steps = q.checkpoint_every_steps();
  return o;
}

absl::Status RunQat(const v1::JobSpec& spec, const JobPaths& paths,
                    const PipelineOptions& options, const Graph& float_graph,
                    const Graph& graph, JobData& data, QuantizationPlan* plan,
                    v1::QuantizationReport* report,
                    const ProgressCallback& progress,
                    const std::atomic<bool>* cancelled) {
  absl::StatusOr<TrainingGraph> training = BuildTrainingGraph(graph, *plan);
  if (!training.ok()) return training.status();
  DatasetOptions train_opts;
  train_opts.batch_size =
      spec.qat().batch_size() > 0 ? spec.qat().batch_size() : 32;
  const std::string train_path =
      !paths.train.empty() ? paths.train : paths.calibration;
  if (train_path.empty()) {
    return absl::InvalidArgumentError(
        "QAT needs training data: qat.train_data or calibration_data");
  }
  if (paths.train.empty() && data.calibration != nullptr) {
    // The calibration set without its held-back evaluation part.
    train_opts.max_samples = data.calibration->num_samples();
  }
  absl::StatusOr<std::unique_ptr<Dataset>> all =
      Dataset::Open(train_path, float_graph, train_opts);
  if (!all.ok()) return all.status();
  // The last fifth of the training data picks the best weights: never the
  // evaluation set, whose figures the report gives.
  const int64_t n = (*all)->num_samples();
  const int64_t held = std::max<int64_t>(1, n / 5);
  if (n - held < train_opts.batch_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("the training data has ", n,
                     " samples: too few for a batch of ", train_opts.batch_size,
                     " plus a held-out fifth; give more data or a "
                     "smaller qat.batch_size"));
  }
  DatasetOptions held_opts = train_opts;
  held_opts.first_sample = n - held;
  held_opts.max_samples = held;
  train_opts.max_samples = n - held;
  absl::StatusOr<std::unique_ptr<Dataset>> train =
      Dataset::Open(train_path, float_graph, train_opts);
  if (!train.ok()) return train.status();
  absl::StatusOr<std::unique_ptr<Dataset>> held_out =
      Dataset::Open(train_path, float_graph, held_opts);
  if (!held_out.ok()) return held_out.status();
  QatOptions qo = QatOptionsFromSpec(spec, (*train)->has_labels());
  qo.checkpoint_path = options.checkpoint_path;
  absl::StatusOr<QatOutcome> outcome = TrainQat(
      float_graph, &*training, train->get(), held_out->get(), qo,
      [&](const v1::TrainingPoint& p) {
        *report->add_training_curve() = p;
        if (progress) {
          ProgressEvent e;
          e.stage = "train";
          e.fraction = double(p.step()) / qo.max_steps;
          e.metrics["loss"] = p.loss();
          e.metrics["learning_rate"] = p.learning_rate();
          if (p.held_out_metric() != 0) {
            e.metrics["held_out"] = p.held_out_metric();
          }
          progress(e);
        }
      },
      cancelled);
  if (!outcome.ok()) return outcome.status();
  if (outcome->stop_reason != "max_steps") {
    report->add_warnings(
        absl::StrCat("training stopped: ", outcome->stop_reason, " after ",
                     outcome->steps, " steps"));
  }
  if (outcome->resumed_from > 0) {
    report->add_warnings(
        absl::StrCat("training resumed from the checkpoint "
                     "at step ",
                     outcome->resumed_from));
  }
  absl::StatusOr<QuantizationPlan> trained = training->ToPlan(*plan);
  if (!trained.ok()) return trained.status();
  *plan = std::move(*trained);
  return absl::OkStatus();
}

}  // namespace

absl::Status CheckJobInputs(const v1::JobSpec& raw_spec,
                            const JobPaths& paths) {
  if (absl::Status s = ValidateJobSpec(raw_spec, SpecOrigin::kBatch); !s.ok()) {
    return s;
  }
  const v1::JobSpec spec = WithDefaults(raw_spec);
  absl::StatusOr<LoadedModel> model = LoadModelFromFile(paths.model);
  if (!model.ok()) return model.status();
  Graph graph = std::move(model->graph);
  if (absl::Status s = PrepareGraph(graph, DefaultOpRegistry()); !s.ok()) {
    return s;
  }
  absl::StatusOr<JobData> data =
      OpenJobData(spec, paths.calibration, paths.evaluation, graph);
  if (!data.ok()) return data.status();
  WeightSelection selection;
  selection.excluded_nodes.insert(spec.exclude_nodes().begin(),
                                  spec.exclude_nodes().end());
  selection.excluded_op_types.insert(spec.exclude_op_types().begin(),
                                     spec.exclude_op_types().end());
  absl::StatusOr<std::vector<WeightSlot>> slots = FindSlots(graph, selection);
  if (!slots.ok()) return slots.status();
  const WeightScheme scheme = WeightSchemeFromSpec(spec);
  for (const WeightSlot& slot : *slots) {
    absl::StatusOr<QuantParams> p = ComputeWeightParams(
        *graph.FindInitializer(slot.initializer), slot, scheme);
    if (!p.ok()) return p.status();
  }
  return absl::OkStatus();
}

absl::StatusOr<PipelineResult> RunPtqPipeline(
    const v1::JobSpec& raw_spec, const JobPaths& paths,
    const ProgressCallback& progress, const std::atomic<bool>* cancelled,
    const PipelineOptions& options) {
  if (absl::Status s = ValidateJobSpec(raw_spec, SpecOrigin::kBatch); !s.ok()) {
    return s;
  }
  const v1::JobSpec spec = WithDefaults(raw_spec);
  const v1::Algorithms& alg = spec.algorithms();
  const bool qat = spec.method() == v1::METHOD_QAT;
  auto report_progress = [&](const std::string& stage, double fraction,
                             const std::string& message) {
    if (!progress) return;
    ProgressEvent e;
    e.stage = stage;
    e.fraction = fraction;
    e.message = message;
    progress(e);
  };
  PipelineResult result;
  v1::QuantizationReport& report = result.report;
  *report.mutable_spec() = spec;
  StageClock clock(&report);

  // Load and prepare. `float_graph` stays the reference; `graph` is what
  // gets quantized (SmoothQuant/AWQ rescale it, keeping its function).
  report_progress("load", 0, paths.model);
  absl::StatusOr<LoadedModel> model = LoadModelFromFile(paths.model);
  if (!model.ok()) return model.status();
  if (!model->conversion_note.empty()) {
    report.add_warnings(model->conversion_note);
  }
  clock.Done("load");
  Graph float_graph = std::move(model->graph);
  if (absl::Status s = PrepareGraph(float_graph, DefaultOpRegistry());
      !s.ok()) {
    return s;
  }
  clock.Done("prepare");
  if (absl::Status s = CheckCancelled(cancelled); !s.ok()) return s;

  absl::StatusOr<JobData> data =
      OpenJobData(spec, paths.calibration, paths.evaluation, float_graph);
  if (!data.ok()) return data.status();
  for (const std::string& w : data->warnings) report.add_warnings(w);

  WeightSelection selection;
  selection.excluded_nodes.insert(spec.exclude_nodes().begin(),
                                  spec.exclude_nodes().end());
  selection.excluded_op_types.insert(spec.exclude_op_types().begin(),
                                     spec.exclude_op_types().end());
  absl::StatusOr<std::vector<WeightSlot>> slots =
      FindSlots(float_graph, selection);
  if (!slots.ok()) return slots.status();
  const WeightScheme scheme = WeightSchemeFromSpec(spec);
  // Parameters are checked before any pass over the data: a group size
  // that does not divide a layer fails here, at once.
  for (const WeightSlot& slot : *slots) {
    absl::StatusOr<QuantParams> p = ComputeWeightParams(
        *float_graph.FindInitializer(slot.initializer), slot, scheme);
    if (!p.ok()) return p.status();
  }

  // Smooth: SmoothQuant or AWQ scales from the float model's activations.
  Graph graph = float_graph;
  LayerFacts facts;
  if (alg.smooth_quant().enabled() || alg.awq().enabled()) {
    InputStatisticsOptions o;
    o.max_sample_rows = alg.awq().enabled() ? kAwqSampleRows : 0;
    o.seed = spec.seed();
    absl::StatusOr<std::unique_ptr<InputStatisticsCollector>> stats =
        InputStatisticsCollector::Create(ScalingPassInputs(graph, *slots), o);
    if (!stats.ok()) return stats.status();
    absl::StatusOr<int64_t> n =
        RunPass(float_graph, *data->calibration, (*stats)->Hook(), "smooth",
                progress, cancelled);
    if (!n.ok()) return n.status();
    absl::StatusOr<ScalingNotes> notes =
        alg.smooth_quant().enabled()
            ? ApplySmoothQuant(graph, *slots, **stats,
                               alg.smooth_quant().alpha())
            : ApplyAwq(graph, *slots, **stats, scheme,
                       AwqOptions{alg.awq().grid_size()});
    if (!notes.ok()) return notes.status();
    for (const auto& [node, note] : *notes) {
      facts.algorithms[node].push_back(note);
    }
    slots = FindSlots(graph, selection);
    if (!slots.ok()) return slots.status();
  }
  clock.Done("smooth");

  // Calibrate: activation ranges (static mode) and the layer-input
  // statistics GPTQ and bias correction need, in one pass.
  const v1::QuantMode mode = spec.mode();
  std::unique_ptr<CalibrationSession> session;
  std::unique_ptr<InputStatisticsCollector> statistics;
  std::vector<TensorHook> hooks;
  if (mode == v1::QUANT_MODE_STATIC) {
    std::set<std::string> watched;
    for (const auto& [value, layout] : LayerInputs(graph, *slots)) {
      watched.insert(value);
    }
    absl::StatusOr<std::unique_ptr<CalibrationSession>> s =
        CalibrationSession::Create(watched, CalibrationOptionsFromSpec(spec));
    if (!s.ok()) return s.status();
    session = std::move(*s);
    hooks.push_back(session->Hook());
  }
  if (alg.gptq().enabled() || alg.bias_correction()) {
    InputStatisticsOptions o;
    o.hessian = alg.gptq().enabled();
    o.seed = spec.seed();
    absl::StatusOr<std::unique_ptr<InputStatisticsCollector>> c =
        InputStatisticsCollector::Create(LayerInputs(graph, *slots), o);
    if (!c.ok()) return c.status();
    statistics = std::move(*c);
    hooks.push_back(statistics->Hook());
  }
  int64_t calibration_samples = 0;
  std::map<std::string, QuantParams> activation_params;
  if (!hooks.empty()) {
    if (data->calibration == nullptr) {
      return absl::InvalidArgumentError(
          "this job needs calibration_data (static activations, GPTQ or "
          "bias correction)");
    }
    TensorHook all = [&hooks](const Node* n, const std::string& name,
                              Tensor& v) -> absl::Status {
      for (TensorHook& h : hooks) {
        if (absl::Status s = h(n, name, v); !s.ok()) return s;
      }
      return absl::OkStatus();
    };
    absl::StatusOr<int64_t> n = RunPass(graph, *data->calibration, all,
                                        "calibrate", progress, cancelled);
    if (!n.ok()) return n.status();
    calibration_samples = *n;
    if (session != nullptr) {
      absl::StatusOr<std::map<std::string, QuantParams>> p = session->Finish();
      if (!p.ok()) return p.status();
      activation_params = std::move(*p);
    }
  }
  clock.Done("calibrate");

  // Quantize: round every layer at the requested precision.
  RoundingConfig rounding;
  rounding.scheme = scheme;
  rounding.gptq = alg.gptq().enabled();
  rounding.gptq_options.block_size = alg.gptq().block_size();
  rounding.gptq_options.damp_percent = alg.gptq().damp_percent();
  rounding.gptq_options.act_order = alg.gptq().act_order();
  rounding.bias_correction = alg.bias_correction();
  rounding.activations = mode == v1::QUANT_MODE_STATIC
                             ? RoundingConfig::Activations::kStatic
                             : (mode == v1::QUANT_MODE_DYNAMIC
                                    ? RoundingConfig::Activations::kDynamic
                                    : RoundingConfig::Activations::kNone);
  LayerRounder rounder(graph, *slots, rounding, statistics.get());
  const LayerPrecision requested = RequestedPrecision(scheme);
  for (size_t i = 0; i < slots->size(); ++i) {
    if (absl::Status s = CheckCancelled(cancelled); !s.ok()) return s;
    const WeightSlot& slot = (*slots)[i];
    absl::StatusOr<const RoundedLayer*> r = rounder.Round(slot, requested);
    if (!r.ok()) return r.status();
    for (const std::string& note : (*r)->notes) {
      facts.algorithms[slot.node].push_back(note);
    }
    facts.bias_corrected[slot.node] = (*r)->bias.has_value();
    if (progress) {
      ProgressEvent e;
      e.stage = "quantize";
      e.fraction = double(i + 1) / slots->size();
      e.current_layer = slot.node;
      progress(e);
    }
  }
  absl::StatusOr<QuantizationPlan> plan =
      rounder.BuildPlan({}, activation_params);
  if (!plan.ok()) return plan.status();
  clock.Done("quantize");

  // Quantization-aware training: the plan's rounding, learned around.
  if (qat) {
    absl::Status s = RunQat(spec, paths, options, float_graph, graph, *data,
                            &*plan, &report, progress, cancelled);
    if (!s.ok()) return s;
  }
  clock.Done("train");

  absl::StatusOr<std::unique_ptr<Executor>> float_ex =
      Executor::Create(float_graph);
  if (!float_ex.ok()) return float_ex.status();
  FallbackContext ctx;
  ctx.graph = &graph;
  ctx.rounder = &rounder;
  ctx.reference = float_ex->get();
  ctx.activation_params = &activation_params;
  ctx.progress = progress;
  ctx.cancelled = cancelled;

  // Sensitivity: one evaluation per layer on a bounded subset.
  if (!spec.sensitivity().disabled() && !qat) {
    absl::StatusOr<std::unique_ptr<Dataset>> subset =
        data->OpenEvaluationSubset(spec.sensitivity().max_samples(),
                                   spec.calibration().batch_size());
    if (!subset.ok()) return subset.status();
    absl::StatusOr<std::map<std::string, double>> s =
        MeasureSensitivity(ctx, **subset);
    if (!s.ok()) return s.status();
    facts.sensitivity = std::move(*s);
  }
  clock.Done("sensitivity");

  // Evaluate the fake-quant model (the QDQ graph ONNX Runtime will run),
  // with per-layer SQNR on the quantized layers' outputs.
  std::map<std::string, std::string> layer_values;  // output -> node
  {
    std::set<std::string> names;
    for (const WeightSlot& s : *slots) names.insert(s.node);
    for (const Node& n : graph.nodes) {
      if (names.contains(n.name)) layer_values[n.outputs[0]] = n.name;
    }
  }
  absl::StatusOr<Evaluated> fq =
      EvaluatePlan(graph, *plan, **float_ex, *data->evaluation, layer_values,
                   "evaluate_fake_quant", progress, cancelled);
  if (!fq.ok()) return fq.status();
  clock.Done("evaluate_fake_quant");
  report.set_sensitivity_metric(TargetMetricName(fq->metrics));

  // Accuracy-aware fallback while the target is missed.
  const double bound = TargetBound(spec.accuracy_target(), fq->metrics);
  report.set_accuracy_target_met(true);
  if (bound >= 0 && qat) {
    report.add_warnings(
        "accuracy_target is not applied to QAT jobs (no layer fallback after "
        "training); the report says whether the trained model meets it");
    report.set_accuracy_target_met(TargetMetric(fq->metrics) <= bound);
  } else if (bound >= 0) {
    if (facts.sensitivity.empty()) {
      return absl::InvalidArgumentError(
          "an accuracy_target needs per-layer sensitivity to choose which "
          "layers fall back; do not set sensitivity.disabled");
    }
    absl::StatusOr<FallbackOutcome> f =
        RunAccuracyFallback(ctx, *data->evaluation, facts.sensitivity, *plan,
                            *fq, bound, layer_values);
    if (!f.ok()) return f.status();
    plan = std::move(f->plan);
    *fq = std::move(f->evaluated);
    for (auto& [node, reason] : f->reasons) facts.reasons[node] = reason;
    for (const v1::FallbackStep& s : f->steps) *report.add_fallback_steps() = s;
    report.set_accuracy_target_met(f->met);
    report.set_accuracy_target_message(f->message);
    if (!f->met) report.add_warnings(f->message);
  }
  *report.mutable_fake_quant() = fq->metrics;
  facts.output_sqnr_db = fq->layer_sqnr;
  clock.Done("fallback");

  // True int8 on oneDNN where the plan maps onto its kernels: int8
  // per-channel symmetric weights, uint8 (static or dynamic) activations.
  bool int8_runnable = mode != v1::QUANT_MODE_WEIGHT_ONLY &&
                       spec.activations().type() == v1::QUANT_DATA_TYPE_UINT8;
  for (const auto& [name, p] : plan->weights) {
    if (p.type != QuantType::kInt8 || p.group_size > 0 || p.axis < 0 ||
        !p.zero_points.empty()) {
      int8_runnable = false;
    }
  }
  std::unique_ptr<Executor> int8_ex;
  if (int8_runnable) {
    RangeMap ranges;
    for (const auto& [name, p] : plan->activations) ranges[name] = RangeOf(p);
    Graph int8_graph = graph;
    for (const auto& [name, t] : plan->updated_initializers) {
      int8_graph.initializers[name] = t;
    }
    Int8LoweringOptions lowering;
    lowering.dynamic_activations = mode == v1::QUANT_MODE_DYNAMIC;
    std::set<std::string> quantized;
    for (const WeightSlot& s : *slots) {
      if (!plan->float_nodes.contains(s.node)) quantized.insert(s.node);
    }
    for (const Node& n : graph.nodes) {
      if (!quantized.contains(n.name)) lowering.excluded_nodes.insert(n.name);
    }
    if (absl::Status s = LowerToInt8(int8_graph, ranges, lowering); !s.ok()) {
      return s;
    }
    absl::StatusOr<std::unique_ptr<Executor>> e = Executor::Create(int8_graph);
    if (!e.ok()) return e.status();
    int8_ex = std::move(*e);
    absl::StatusOr<Evaluated> i8 =
        Evaluate(**float_ex, *int8_ex, *data->evaluation, {}, "evaluate_int8",
                 progress, cancelled);
    if (!i8.ok()) return i8.status();
    *report.mutable_int8() = i8->metrics;
  } else {
    report.add_warnings(
        "true int8 evaluation runs where every quantized layer has int8 "
        "per-channel symmetric weights and uint8 activations (oneDNN 2.6 has "
        "no int4 or grouped kernels); this model was evaluated with fake "
        "quantization only");
  }
  clock.Done("evaluate_int8");

  facts.activation_precision =
      mode == v1::QUANT_MODE_STATIC
          ? absl::StrCat(
                spec.activations().type() == v1::QUANT_DATA_TYPE_INT8 ? "int8"
                                                                      : "uint8",
                spec.activations().symmetric() ? " symmetric" : " asymmetric",
                " per-tensor")
          : (mode == v1::QUANT_MODE_DYNAMIC ? "uint8 dynamic per-tensor"
                                            : "float");
  AddLayerReports(graph, *slots, *plan, facts,
                  {spec.exclude_nodes().begin(), spec.exclude_nodes().end()},
                  &report);

  // Export.
  QdqExportOptions export_options;
  export_options.producer_version = QUANTD_VERSION;
  absl::StatusOr<std::string> bytes =
      ExportQdqModelBytes(graph, *plan, export_options);
  if (!bytes.ok()) return bytes.status();
  result.model_bytes = std::move(*bytes);
  if (options.keep_qdq_graph) {
    absl::StatusOr<QdqGraph> qdq = BuildQdqGraph(graph, *plan);
    if (!qdq.ok()) return qdq.status();
    result.qdq_graph = std::move(qdq->graph);
  }
  clock.Done("export");

  // Size and speed.
  v1::SizeReport* size = report.mutable_size();
  size->set_float_bytes(FileSize(paths.model));
  size->set_quantized_bytes(static_cast<int64_t>(result.model_bytes.size()));
  size->set_compression_ratio(size->quantized_bytes() > 0
                                  ? double(size->float_bytes()) /
                                        size->quantized_bytes()
                                  : 0);
  if (int8_ex != nullptr) {
    absl::StatusOr<std::unique_ptr<Dataset>> perf_data =
        data->OpenEvaluationSubset(64, 64);
    if (!perf_data.ok()) return perf_data.status();
    absl::StatusOr<std::optional<DataBatch>> batch = (*perf_data)->Next();
    if (!batch.ok()) return batch.status();
    if (!batch->has_value()) {
      return absl::InternalError("the evaluation data yielded no batch");
    }
    if (absl::Status s = MeasurePerformance(**float_ex, *int8_ex,
                                            (*batch)->feeds, (*batch)->size, 10,
                                            report.mutable_performance());
        !s.ok()) {
      return s;
    }
  }
  clock.Done("benchmark");

  if (absl::Status s = FillReproducibility(
          {paths.model, paths.calibration, paths.evaluation},
          calibration_samples, spec.seed(), report.mutable_reproducibility());
      !s.ok()) {
    return s;
  }
  report_progress("done", 1, "");
  return result;
}

}  // namespace quantd
