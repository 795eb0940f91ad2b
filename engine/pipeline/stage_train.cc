// train: quantization-aware training around the plan's rounding. The plan's
// weights and scales are replaced by the trained ones; export then runs
// exactly as for PTQ.
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/stages.h"
#include "engine/qat/qat_graph.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

struct TrainingData {
  std::unique_ptr<Dataset> train;
  std::unique_ptr<Dataset> held_out;  // the last fifth: picks the best weights
};

// The training set (qat.train_data, else the calibration set without its
// held-back evaluation part), split into training and held-out parts. The
// held-out part is never the evaluation set, whose figures the report gives.
absl::StatusOr<TrainingData> OpenTrainingData(const JobContext& ctx) {
  const JobPaths& paths = ctx.plan.paths;
  const std::string& path =
      !paths.train.empty() ? paths.train : paths.calibration;
  if (path.empty()) {
    return absl::InvalidArgumentError(
        "QAT needs training data: qat.train_data or calibration_data");
  }
  DatasetOptions options;
  ApplyTask(ctx.data->task, &options);
  options.batch_size = ctx.spec().qat().batch_size();
  if (paths.train.empty() && ctx.data->calibration != nullptr) {
    options.max_samples = ctx.data->calibration->num_samples();
  }
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Dataset> all,
                          Dataset::Open(path, ctx.float_graph, options));
  const int64_t n = all->num_samples();
  // A fixed-batch model (Dataset::fixed_batch) runs batches of its own size.
  const int64_t batch = all->batch_size();
  const int64_t held =
      std::max<int64_t>(std::max<int64_t>(1, n / 5), all->fixed_batch());
  if (n - held < batch) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the training data has ", n, " samples: too few for a batch of ", batch,
        " plus a held-out fifth; give more data or a smaller qat.batch_size"));
  }
  DatasetOptions held_options = options;
  held_options.first_sample = n - held;
  held_options.max_samples = held;
  options.max_samples = n - held;
  TrainingData data;
  QUANTD_ASSIGN_OR_RETURN(data.train,
                          Dataset::Open(path, ctx.float_graph, options));
  QUANTD_ASSIGN_OR_RETURN(data.held_out,
                          Dataset::Open(path, ctx.float_graph, held_options));
  return data;
}

void ReportPoint(const JobContext& ctx, const v1::TrainingPoint& p,
                 int64_t max_steps) {
  if (!ctx.progress) return;
  ProgressEvent e;
  e.stage = "train";
  e.fraction = double(p.step()) / max_steps;
  e.metrics["loss"] = p.loss();
  e.metrics["learning_rate"] = p.learning_rate();
  if (p.held_out_metric() != 0) e.metrics["held_out"] = p.held_out_metric();
  ctx.progress(e);
}

}  // namespace

absl::Status TrainStage(JobContext& ctx) {
  if (!ctx.plan.is_qat()) return absl::OkStatus();
  // qat.time_budget_seconds bounds the whole stage, set-up included.
  const absl::Time stage_start = absl::Now();
  QUANTD_ASSIGN_OR_RETURN(TrainingGraph training,
                          BuildTrainingGraph(ctx.graph, *ctx.quantization));
  QUANTD_ASSIGN_OR_RETURN(TrainingData data, OpenTrainingData(ctx));
  QatOptions options = ctx.plan.qat;
  options.checkpoint_path = ctx.options.checkpoint_path;
  options.on_checkpoint = ctx.options.on_checkpoint;
  options.deadline = stage_start + absl::Seconds(options.time_budget_seconds);
  if (!ctx.spec().qat().has_distillation_weight()) {
    // The documented default: distillation alone without labels, half and
    // half with cross-entropy when there are labels. The report shows it.
    options.loss.distillation_weight = data.train->has_labels() ? 0.5 : 1.0;
  }
  ctx.report().mutable_spec()->mutable_qat()->set_distillation_weight(
      options.loss.distillation_weight);
  v1::QuantizationReport& report = ctx.report();
  QUANTD_ASSIGN_OR_RETURN(QatOutcome outcome,
                          TrainQat(
                              ctx.float_graph, &training, data.train.get(),
                              data.held_out.get(), options,
                              [&](const v1::TrainingPoint& p) {
                                *report.add_training_curve() = p;
                                ReportPoint(ctx, p, options.max_steps);
                              },
                              ctx.cancelled));
  if (outcome.planned_steps < options.max_steps) {
    report.add_warnings(absl::StrCat(
        "the time budget of ", options.time_budget_seconds, " s fits ",
        outcome.planned_steps, " of qat.max_steps ", options.max_steps,
        " steps; the learning-rate schedule was planned for ",
        outcome.planned_steps));
  }
  if (outcome.stop_reason != "max_steps") {
    report.add_warnings(absl::StrCat("training stopped: ", outcome.stop_reason,
                                     " after ", outcome.steps, " steps"));
  }
  if (outcome.resumed_from > 0) {
    report.add_warnings(absl::StrCat(
        "training resumed from the checkpoint at step ", outcome.resumed_from));
  }
  QUANTD_ASSIGN_OR_RETURN(ctx.quantization, training.ToPlan(*ctx.quantization));
  return absl::OkStatus();
}

}  // namespace quantd
