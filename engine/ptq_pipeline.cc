#include "engine/ptq_pipeline.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/calibration_session.h"
#include "engine/dataset.h"
#include "engine/evaluation_metrics.h"
#include "engine/executor.h"
#include "engine/graph_cleanup.h"
#include "engine/int8_lowering.h"
#include "engine/model_loader.h"
#include "engine/model_run.h"
#include "engine/qdq_export.h"
#include "engine/sha256.h"
#include "engine/weight_quantization.h"
#include "google/protobuf/util/json_util.h"
#include "kernels/dnnl_context.h"
#include "kernels/post_ops.h"

#ifndef QUANTD_VERSION
#define QUANTD_VERSION "dev"
#endif

namespace quantd {
namespace {

// Fraction of the calibration set held back for evaluation when the job
// gives no evaluation set.
constexpr double kHeldBackFraction = 0.2;

absl::Status CheckCancelled(const std::atomic<bool>* cancelled) {
  if (cancelled != nullptr && cancelled->load(std::memory_order_relaxed)) {
    return absl::CancelledError("the job was cancelled");
  }
  return absl::OkStatus();
}

CalibrationOptions ToCalibrationOptions(const v1::JobSpec& spec) {
  CalibrationOptions o;
  switch (spec.calibration().method()) {
    case v1::CALIBRATION_METHOD_MOVING_AVERAGE_MIN_MAX:
      o.method = CalibrationMethod::kMovingAverageMinMax;
      break;
    case v1::CALIBRATION_METHOD_PERCENTILE:
      o.method = CalibrationMethod::kPercentile;
      break;
    case v1::CALIBRATION_METHOD_ENTROPY:
      o.method = CalibrationMethod::kEntropy;
      break;
    case v1::CALIBRATION_METHOD_MSE:
      o.method = CalibrationMethod::kMse;
      break;
    default:
      o.method = CalibrationMethod::kMinMax;
  }
  o.percentile = static_cast<float>(spec.calibration().percentile());
  o.moving_average_momentum = static_cast<float>(spec.calibration().momentum());
  o.num_bins = spec.calibration().num_bins();
  o.symmetric = spec.activations().symmetric();
  o.type = spec.activations().type() == v1::QUANT_DATA_TYPE_INT8
               ? QuantType::kInt8
               : QuantType::kUInt8;
  return o;
}

WeightScheme ToWeightScheme(const v1::JobSpec& spec) {
  WeightScheme s;
  switch (spec.weights().type()) {
    case v1::QUANT_DATA_TYPE_INT4:
    case v1::QUANT_DATA_TYPE_UINT4:
      s.type = QuantType::kInt4;
      break;
    default:
      s.type = QuantType::kInt8;
  }
  s.symmetric = !spec.weights().asymmetric();
  switch (spec.weights().granularity()) {
    case v1::GRANULARITY_PER_TENSOR:
      s.granularity = WeightGranularity::kPerTensor;
      break;
    case v1::GRANULARITY_PER_GROUP:
      s.granularity = WeightGranularity::kPerGroup;
      s.group_size = spec.weights().group_size();
      break;
    default:
      s.granularity = WeightGranularity::kPerChannel;
  }
  return s;
}

// The range an activation's parameters represent, for LowerToInt8.
TensorRange RangeOf(const QuantParams& p) {
  const float s = p.scales.empty() ? 1.f : p.scales[0];
  const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[0];
  return TensorRange{(p.qmin - zp) * s, (p.qmax - zp) * s};
}

class StageClock {
 public:
  explicit StageClock(v1::QuantizationReport* report) : report_(report) {}
  void Done(const std::string& stage) {
    absl::Time now = absl::Now();
    v1::StageTiming* t = report_->add_stages();
    t->set_stage(stage);
    absl::Duration d = now - last_;
    t->mutable_duration()->set_seconds(absl::ToInt64Seconds(d));
    t->mutable_duration()->set_nanos(static_cast<int32_t>(
        absl::ToInt64Nanoseconds(d - absl::Seconds(absl::ToInt64Seconds(d)))));
    last_ = now;
  }

 private:
  v1::QuantizationReport* report_;
  absl::Time last_ = absl::Now();
};

struct Evaluated {
  v1::EvaluationMetrics metrics;
  std::map<std::string, double> layer_sqnr;  // by node name
};

// Runs the float and the candidate executor over the evaluation set and
// compares their first outputs; per-layer SQNR on the outputs of `layers`.
absl::StatusOr<Evaluated> Evaluate(
    Executor& reference, Executor& candidate, Dataset& data,
    const std::map<std::string, std::string>& layers,  // value -> node
    const std::string& stage, const ProgressCallback& progress,
    const std::atomic<bool>* cancelled) {
  if (absl::Status s = data.Rewind(); !s.ok()) return s;
  EvaluationAccumulator acc;
  std::map<std::string, SqnrAccumulator> per_layer;
  RunOptions ref_opts, cand_opts;
  ref_opts.cancelled = cand_opts.cancelled = cancelled;
  for (const auto& [value, node] : layers) {
    ref_opts.extra_outputs.push_back(value);
    cand_opts.extra_outputs.push_back(value);
  }
  int64_t done = 0;
  while (true) {
    if (absl::Status s = CheckCancelled(cancelled); !s.ok()) return s;
    absl::StatusOr<std::optional<DataBatch>> batch = data.Next();
    if (!batch.ok()) return batch.status();
    if (!batch->has_value()) break;
    absl::StatusOr<RunResult> r = reference.Run((*batch)->feeds, ref_opts);
    if (!r.ok()) return r.status();
    absl::StatusOr<RunResult> c = candidate.Run((*batch)->feeds, cand_opts);
    if (!c.ok()) return c.status();
    if (absl::Status s = acc.Add(r->outputs[0], c->outputs[0], (*batch)->labels,
                                 (*batch)->targets);
        !s.ok()) {
      return s;
    }
    for (const auto& [value, node] : layers) {
      auto rv = r->values.find(value), cv = c->values.find(value);
      if (rv != r->values.end() && cv != c->values.end() &&
          rv->second.shape() == cv->second.shape()) {
        (void)per_layer[node].Add(rv->second, cv->second);
      }
    }
    done += (*batch)->size;
    if (progress) {
      ProgressEvent e;
      e.stage = stage;
      e.fraction = double(done) / data.num_samples();
      e.samples_done = done;
      progress(e);
    }
  }
  Evaluated out;
  out.metrics = acc.Finish();
  for (const auto& [node, s] : per_layer) {
    out.layer_sqnr[node] = std::min(s.sqnr_db(), 1000.0);
  }
  return out;
}

int64_t FileSize(const std::string& path) {
  struct stat st;
  return stat(path.c_str(), &st) == 0 ? st.st_size : 0;
}

}  // namespace

absl::StatusOr<PipelineResult> RunPtqPipeline(
    const v1::JobSpec& raw_spec, const JobPaths& paths,
    const ProgressCallback& progress, const std::atomic<bool>* cancelled) {
  if (absl::Status s = ValidateJobSpec(raw_spec, SpecOrigin::kBatch); !s.ok()) {
    return s;
  }
  const v1::JobSpec spec = WithDefaults(raw_spec);
  const v1::Algorithms& alg = spec.algorithms();
  if (alg.smooth_quant().enabled() || alg.gptq().enabled() ||
      alg.awq().enabled() || alg.bias_correction()) {
    return absl::UnimplementedError(
        "this quantd build runs round-to-nearest PTQ only; SmoothQuant, "
        "GPTQ, AWQ and bias correction are not available in it yet");
  }
  if (spec.method() == v1::METHOD_QAT) {
    return absl::UnimplementedError(
        "method QAT is not available in this quantd build; use METHOD_PTQ");
  }
  if (spec.mode() == v1::QUANT_MODE_DYNAMIC) {
    return absl::UnimplementedError(
        "DYNAMIC mode is not available in this quantd build; use STATIC or "
        "WEIGHT_ONLY");
  }
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

  // Load and prepare.
  report_progress("load", 0, paths.model);
  absl::StatusOr<LoadedModel> model = LoadModelFromFile(paths.model);
  if (!model.ok()) return model.status();
  if (!model->conversion_note.empty()) {
    report.add_warnings(model->conversion_note);
  }
  clock.Done("load");
  Graph graph = std::move(model->graph);
  if (absl::Status s = PrepareGraph(graph, DefaultOpRegistry()); !s.ok()) {
    return s;
  }
  clock.Done("prepare");
  if (absl::Status s = CheckCancelled(cancelled); !s.ok()) return s;

  // Data: calibration, and evaluation (given, or held back).
  const bool weight_only = spec.mode() == v1::QUANT_MODE_WEIGHT_ONLY;
  DatasetOptions calib_opts;
  calib_opts.batch_size = spec.calibration().batch_size();
  std::unique_ptr<Dataset> calibration, evaluation;
  if (!paths.calibration.empty()) {
    absl::StatusOr<std::unique_ptr<Dataset>> probe =
        Dataset::Open(paths.calibration, graph, calib_opts);
    if (!probe.ok()) return probe.status();
    int64_t total = (*probe)->num_samples();
    DatasetOptions eval_opts = calib_opts;
    if (paths.evaluation.empty()) {
      const int64_t held = static_cast<int64_t>(total * kHeldBackFraction);
      if (held < 1 || total - held < 1) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the calibration set has ", total,
            " samples: too few to hold some back for evaluation; give an "
            "evaluation set"));
      }
      calib_opts.max_samples = total - held;
      eval_opts.first_sample = total - held;
      report.add_warnings(
          absl::StrCat("no evaluation set given: evaluated on the last ", held,
                       " calibration samples, held back from calibration"));
      absl::StatusOr<std::unique_ptr<Dataset>> e =
          Dataset::Open(paths.calibration, graph, eval_opts);
      if (!e.ok()) return e.status();
      evaluation = std::move(*e);
      total -= held;
    }
    if (spec.calibration().max_samples() > 0) {
      calib_opts.max_samples =
          std::min<int64_t>(total, spec.calibration().max_samples());
    }
    absl::StatusOr<std::unique_ptr<Dataset>> c =
        Dataset::Open(paths.calibration, graph, calib_opts);
    if (!c.ok()) return c.status();
    calibration = std::move(*c);
  }
  if (!paths.evaluation.empty()) {
    DatasetOptions eval_opts;
    eval_opts.batch_size = spec.calibration().batch_size();
    absl::StatusOr<std::unique_ptr<Dataset>> e =
        Dataset::Open(paths.evaluation, graph, eval_opts);
    if (!e.ok()) return e.status();
    evaluation = std::move(*e);
  }
  if (evaluation == nullptr) {
    return absl::InvalidArgumentError(
        "give calibration_data or evaluation_data: quantd evaluates every "
        "quantized model against the float model");
  }

  // Weights: which, and their round-to-nearest parameters.
  WeightSelection selection;
  selection.excluded_nodes.insert(spec.exclude_nodes().begin(),
                                  spec.exclude_nodes().end());
  selection.excluded_op_types.insert(spec.exclude_op_types().begin(),
                                     spec.exclude_op_types().end());
  absl::StatusOr<std::vector<WeightSlot>> slots =
      FindQuantizableWeights(graph, selection);
  if (!slots.ok()) return slots.status();
  if (slots->empty()) {
    return absl::InvalidArgumentError(
        "the model has no Conv, Gemm or MatMul with constant weights left to "
        "quantize (after exclusions)");
  }
  const WeightScheme scheme = ToWeightScheme(spec);
  QuantizationPlan plan;
  std::map<std::string, std::string> layer_values;  // output -> node
  std::map<std::string, const WeightSlot*> slot_of_node;
  for (const WeightSlot& slot : *slots) {
    absl::StatusOr<QuantParams> p = ComputeWeightParams(
        *graph.FindInitializer(slot.initializer), slot, scheme);
    if (!p.ok()) return p.status();
    plan.weights[slot.initializer] = std::move(*p);
    slot_of_node[slot.node] = &slot;
  }
  for (const Node& n : graph.nodes) {
    if (slot_of_node.contains(n.name) && !n.outputs.empty()) {
      layer_values[n.outputs[0]] = n.name;
    }
  }

  // Activations: calibrate the inputs of the quantized nodes.
  int64_t calibration_samples = 0;
  if (!weight_only) {
    std::set<std::string> watched;
    for (const Node& n : graph.nodes) {
      if (slot_of_node.contains(n.name)) watched.insert(n.input(0));
    }
    absl::StatusOr<std::unique_ptr<CalibrationSession>> session =
        CalibrationSession::Create(watched, ToCalibrationOptions(spec));
    if (!session.ok()) return session.status();
    absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(graph);
    if (!ex.ok()) return ex.status();
    RunOptions opts;
    opts.tensor_hook = (*session)->Hook();
    opts.cancelled = cancelled;
    while (true) {
      if (absl::Status s = CheckCancelled(cancelled); !s.ok()) return s;
      absl::StatusOr<std::optional<DataBatch>> batch = calibration->Next();
      if (!batch.ok()) return batch.status();
      if (!batch->has_value()) break;
      if (absl::StatusOr<RunResult> r = (*ex)->Run((*batch)->feeds, opts);
          !r.ok()) {
        return r.status();
      }
      calibration_samples += (*batch)->size;
      if (progress) {
        ProgressEvent e;
        e.stage = "calibrate";
        e.fraction = double(calibration_samples) / calibration->num_samples();
        e.samples_done = calibration_samples;
        progress(e);
      }
    }
    absl::StatusOr<std::map<std::string, QuantParams>> params =
        (*session)->Finish();
    if (!params.ok()) return params.status();
    plan.activations = std::move(*params);
  }
  clock.Done("calibrate");
  report_progress("quantize", 1, "");
  clock.Done("quantize");

  // Evaluate: fake-quant simulation (the QDQ graph itself) and, where the
  // scheme maps onto oneDNN's int8 kernels, true int8.
  absl::StatusOr<std::unique_ptr<Executor>> float_ex = Executor::Create(graph);
  if (!float_ex.ok()) return float_ex.status();
  absl::StatusOr<QdqGraph> qdq = BuildQdqGraph(graph, plan);
  if (!qdq.ok()) return qdq.status();
  absl::StatusOr<std::unique_ptr<Executor>> fq_ex =
      Executor::Create(qdq->graph);
  if (!fq_ex.ok()) return fq_ex.status();
  absl::StatusOr<Evaluated> fq =
      Evaluate(**float_ex, **fq_ex, *evaluation, layer_values,
               "evaluate_fake_quant", progress, cancelled);
  if (!fq.ok()) return fq.status();
  *report.mutable_fake_quant() = fq->metrics;
  clock.Done("evaluate_fake_quant");

  const bool int8_runnable =
      !weight_only && scheme.type == QuantType::kInt8 && scheme.symmetric &&
      scheme.granularity == WeightGranularity::kPerChannel &&
      spec.activations().type() == v1::QUANT_DATA_TYPE_UINT8;
  std::unique_ptr<Executor> int8_ex;
  if (int8_runnable) {
    RangeMap ranges;
    for (const auto& [name, p] : plan.activations) ranges[name] = RangeOf(p);
    Graph int8_graph = graph;
    Int8LoweringOptions lowering;
    lowering.excluded_nodes = selection.excluded_nodes;
    for (const Node& n : graph.nodes) {
      if (!slot_of_node.contains(n.name))
        lowering.excluded_nodes.insert(n.name);
    }
    if (absl::Status s = LowerToInt8(int8_graph, ranges, lowering); !s.ok()) {
      return s;
    }
    absl::StatusOr<std::unique_ptr<Executor>> e = Executor::Create(int8_graph);
    if (!e.ok()) return e.status();
    int8_ex = std::move(*e);
    absl::StatusOr<Evaluated> i8 =
        Evaluate(**float_ex, *int8_ex, *evaluation, {}, "evaluate_int8",
                 progress, cancelled);
    if (!i8.ok()) return i8.status();
    *report.mutable_int8() = i8->metrics;
  } else {
    report.add_warnings(
        "true int8 evaluation runs for static int8 per-channel symmetric "
        "weights with uint8 activations; this scheme was evaluated with "
        "fake quantization only");
  }
  clock.Done("evaluate_int8");

  // Per-layer report.
  for (const WeightSlot& slot : *slots) {
    v1::LayerReport* l = report.add_layers();
    l->set_node(slot.node);
    l->set_op_type(slot.op_type);
    const QuantParams& p = plan.weights[slot.initializer];
    l->set_weight_precision(absl::StrCat(
        QuantTypeName(p.type), "[", p.qmin, ",", p.qmax, "] ",
        p.group_size > 0 ? absl::StrCat("group ", p.group_size)
                         : (p.axis >= 0 ? "per-channel" : "per-tensor")));
    l->set_activation_precision(weight_only ? "float" : "uint8 per-tensor");
    const Tensor& w = *graph.FindInitializer(slot.initializer);
    absl::StatusOr<Tensor> fqw = FakeQuantizeWeights(w, p);
    if (fqw.ok()) {
      double num = 0, den = 0;
      for (int64_t i = 0; i < w.num_elements(); ++i) {
        const double d = double{w.data<float>()[i]} - fqw->data<float>()[i];
        num += d * d;
        den += double{w.data<float>()[i]} * w.data<float>()[i];
      }
      l->set_weight_error(den > 0 ? std::sqrt(num / den) : 0);
    }
    auto sq = fq->layer_sqnr.find(slot.node);
    if (sq != fq->layer_sqnr.end()) l->set_output_sqnr_db(sq->second);
  }
  for (const std::string& n : spec.exclude_nodes()) {
    v1::LayerReport* l = report.add_layers();
    l->set_node(n);
    l->set_weight_precision("float");
    l->set_reason("excluded by exclude_nodes");
  }

  // Export.
  QdqExportOptions export_options;
  export_options.producer_version = QUANTD_VERSION;
  absl::StatusOr<std::string> bytes =
      ExportQdqModelBytes(graph, plan, export_options);
  if (!bytes.ok()) return bytes.status();
  result.model_bytes = std::move(*bytes);
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
    DatasetOptions perf_opts;
    perf_opts.batch_size = 64;
    perf_opts.max_samples = 64;
    absl::StatusOr<std::unique_ptr<Dataset>> perf_data = Dataset::Open(
        paths.evaluation.empty() ? paths.calibration : paths.evaluation, graph,
        perf_opts);
    if (!perf_data.ok()) return perf_data.status();
    absl::StatusOr<std::optional<DataBatch>> batch = (*perf_data)->Next();
    if (!batch.ok()) return batch.status();
    if (!batch->has_value()) {
      return absl::InternalError("the evaluation data yielded no batch");
    }
    const int repeats = 10;
    absl::StatusOr<LatencyStats> f32 =
        MeasureLatency(**float_ex, (*batch)->feeds, repeats);
    if (!f32.ok()) return f32.status();
    absl::StatusOr<LatencyStats> i8 =
        MeasureLatency(*int8_ex, (*batch)->feeds, repeats);
    if (!i8.ok()) return i8.status();
    v1::PerformanceReport* perf = report.mutable_performance();
    const int64_t n = (*batch)->size;
    perf->set_batch_size(n);
    perf->set_repeats(repeats);
    perf->set_float_latency_ms(f32->median_ms);
    perf->set_quantized_latency_ms(i8->median_ms);
    perf->set_float_throughput(1000.0 * n / f32->median_ms);
    perf->set_quantized_throughput(1000.0 * n / i8->median_ms);
    perf->set_speedup(f32->median_ms / i8->median_ms);
  }
  clock.Done("benchmark");

  // Reproducibility.
  v1::Reproducibility* repro = report.mutable_reproducibility();
  for (const auto& [path, setter] :
       std::vector<std::pair<std::string, std::string*>>{
           {paths.model, repro->mutable_model_sha256()},
           {paths.calibration, repro->mutable_calibration_data_sha256()},
           {paths.evaluation, repro->mutable_evaluation_data_sha256()}}) {
    if (path.empty()) continue;
    absl::StatusOr<std::string> d = Sha256File(path);
    if (!d.ok()) return d.status();
    *setter = *d;
  }
  repro->set_calibration_samples(calibration_samples);
  repro->set_seed(spec.seed());
  repro->set_quantd_version(QUANTD_VERSION);
  repro->set_cpu_isa(CpuIsaName());
  repro->set_cpu_has_vnni(CpuHasVnni());
  repro->set_weight_qmax(MaxExactInt8WeightMagnitude());
  report.set_accuracy_target_met(true);
  report_progress("done", 1, "");
  return result;
}

}  // namespace quantd
