#include "engine/qat/qat_trainer.h"

#include <sys/stat.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/data/array_file.h"
#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/qat/autograd.h"
#include "engine/runtime/executor.h"
#include "kernels/quantize.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Trainable tensors of the training graph, cloned so that updates never
// write into buffers shared with the float graph (Tensor copies share).
std::set<std::string> Trainable(TrainingGraph* t, bool lsq) {
  std::set<std::string> names = t->weights;
  if (lsq) {
    for (const auto& [scale, entry] : t->scales) names.insert(scale);
  }
  for (const std::string& n : names) {
    t->graph.initializers[n] = t->graph.initializers.at(n).Clone();
  }
  return names;
}

std::map<std::string, Tensor> Snapshot(const TrainingGraph& t,
                                       const std::set<std::string>& names) {
  std::map<std::string, Tensor> out;
  for (const std::string& n : names) {
    out[n] = t.graph.initializers.at(n).Clone();
  }
  return out;
}

absl::Status WriteCheckpoint(const std::string& path, const TrainingGraph& t,
                             const std::set<std::string>& names,
                             const Optimizer& opt,
                             const std::map<std::string, Tensor>& best,
                             double best_metric) {
  std::vector<std::pair<std::string, Tensor>> arrays;
  for (const std::string& n : names) {
    arrays.emplace_back(absl::StrCat("param/", n), t.graph.initializers.at(n));
    arrays.emplace_back(absl::StrCat("best/", n), best.at(n));
  }
  for (auto& [k, v] : opt.SaveState()) {
    arrays.emplace_back(absl::StrCat("opt/", k), v);
  }
  arrays.emplace_back("best_metric",
                      Tensor::FromVector<float>({1}, {float(best_metric)}));
  return WriteNpz(path, arrays);
}

// Restores a checkpoint if one exists; returns whether it did.
// A checkpoint written for another model (a changed spec rerun into the same
// output folder) must not be resumed: its tensors would silently replace
// this model's, or fail later with an unrelated message.
absl::Status CheckCheckpointTensor(const std::string& path,
                                   const TrainingGraph& t,
                                   const std::string& name,
                                   const Tensor& stored) {
  auto it = t.graph.initializers.find(name);
  if (it != t.graph.initializers.end() &&
      it->second.shape() == stored.shape() &&
      it->second.dtype() == stored.dtype()) {
    return absl::OkStatus();
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "the QAT checkpoint '", path, "' was written for another model ('", name,
      "' is ", ShapeToString(stored.shape()), " there",
      it == t.graph.initializers.end()
          ? ", absent here"
          : absl::StrCat(", ", ShapeToString(it->second.shape()), " here"),
      "); delete the checkpoint or use another output folder"));
}

absl::StatusOr<bool> ReadCheckpoint(const std::string& path, TrainingGraph* t,
                                    const std::set<std::string>& names,
                                    Optimizer* opt,
                                    std::map<std::string, Tensor>* best,
                                    double* best_metric) {
  struct stat st;
  if (path.empty() || stat(path.c_str(), &st) != 0) return false;
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<ArrayFile> f, ArrayFile::Open(path));
  std::vector<std::pair<std::string, Tensor>> opt_state;
  for (const std::string& name : (f)->names()) {
    QUANTD_ASSIGN_OR_RETURN(Tensor a, (f)->ReadArray(name));
    if (name.rfind("param/", 0) == 0 && names.contains(name.substr(6))) {
      QUANTD_RETURN_IF_ERROR(
          CheckCheckpointTensor(path, *t, name.substr(6), a));
      t->graph.initializers[name.substr(6)] = a;
    } else if (name.rfind("best/", 0) == 0 && names.contains(name.substr(5))) {
      QUANTD_RETURN_IF_ERROR(
          CheckCheckpointTensor(path, *t, name.substr(5), a));
      (*best)[name.substr(5)] = a;
    } else if (name.rfind("opt/", 0) == 0) {
      opt_state.emplace_back(name.substr(4), a);
    } else if (name == "best_metric") {
      *best_metric = a.data<float>()[0];
    }
  }
  QUANTD_RETURN_IF_ERROR(opt->RestoreState(opt_state));
  return true;
}

struct HeldOutFigures {
  double metric = 0;  // TargetMetric, for the training curve
  // What picks the best weights: the training loss on held-out data (what
  // training minimizes, and smooth, unlike accuracy on a few hundred
  // samples where one sample is a whole fraction of a point).
  double selection = 0;
};

// Evaluates the current training graph against the float model.
absl::StatusOr<HeldOutFigures> HeldOut(const Graph& float_graph,
                                       const Graph& student, Dataset& data,
                                       const LossOptions& loss,
                                       const std::atomic<bool>* cancelled) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> ref,
                          Executor::Create(float_graph));
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> cand,
                          Executor::Create(student));
  absl::StatusOr<Evaluated> e =
      Evaluate(*ref, *cand, data, {}, "", nullptr, cancelled);
  if (!e.ok()) return e.status();
  double sum = 0;
  int64_t batches = 0;
  absl::StatusOr<int64_t> n = ForEachBatch(
      data, "", nullptr, cancelled, [&](const DataBatch& b) -> absl::Status {
        QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> t,
                                (ref)->RunOutputs(b.feeds));
        QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> s,
                                (cand)->RunOutputs(b.feeds));
        QUANTD_ASSIGN_OR_RETURN(
            LossResult l,
            TrainingLoss((s)[0], (t)[0],
                         b.targets.defined() ? b.targets : b.labels, loss));
        sum += l.loss;
        ++batches;
        return absl::OkStatus();
      });
  if (!n.ok()) return n.status();
  return HeldOutFigures{TargetMetric(e->metrics),
                        batches > 0 ? sum / batches : 0};
}

OptimizerOptions RunOptimizerOptions(const QatOptions& options) {
  OptimizerOptions oo = options.optimizer;
  oo.total_steps = options.max_steps;
  return oo;
}

// What the training loop carries from step to step.
struct QatRun {
  QatRun(const Graph& float_graph, TrainingGraph* training, Dataset* held_out,
         const QatOptions& options, const std::atomic<bool>* cancelled,
         std::set<std::string> trainable)
      : float_graph(float_graph),
        training(training),
        held_out(held_out),
        options(options),
        cancelled(cancelled),
        names(std::move(trainable)),
        opt(RunOptimizerOptions(options)),
        best(Snapshot(*training, names)) {
    for (const std::string& w : training->weights) decay[w] = true;
  }

  const Graph& float_graph;
  TrainingGraph* training;
  Dataset* held_out;
  const QatOptions& options;
  const std::atomic<bool>* cancelled;
  const std::set<std::string> names;
  std::map<std::string, bool> decay;
  Optimizer opt;
  // The trainable tensors that scored best_metric (their held-out selection
  // figure, lower is better).
  std::map<std::string, Tensor> best;
  double best_metric = INFINITY;
};

// Restores the checkpoint if there is one; otherwise scores the starting
// weights, so that training keeps only weights that beat them. Returns
// whether it resumed.
absl::StatusOr<bool> StartRun(QatRun& run) {
  QUANTD_ASSIGN_OR_RETURN(
      const bool resumed,
      ReadCheckpoint(run.options.checkpoint_path, run.training, run.names,
                     &run.opt, &run.best, &run.best_metric));
  if (run.held_out != nullptr && !resumed) {
    QUANTD_ASSIGN_OR_RETURN(
        const HeldOutFigures m,
        HeldOut(run.float_graph, run.training->graph, *run.held_out,
                run.options.loss, run.cancelled));
    run.best_metric = m.selection;
  }
  return resumed;
}

// The next training batch; an epoch's end starts over.
absl::StatusOr<DataBatch> NextBatch(Dataset* train) {
  QUANTD_ASSIGN_OR_RETURN(std::optional<DataBatch> batch, train->Next());
  if (!batch.has_value()) {
    QUANTD_RETURN_IF_ERROR(train->Rewind());
    QUANTD_ASSIGN_OR_RETURN(batch, train->Next());
    if (!batch.has_value()) {
      return absl::InvalidArgumentError("the training data has no batch");
    }
  }
  return *std::move(batch);
}

struct StepGradients {
  LossResult loss;
  Gradients grads;  // empty when the loss is not finite
};

// The student's loss on `b` against the teacher and, when that is finite,
// the gradients of the trainable tensors.
absl::StatusOr<StepGradients> LossAndGradients(QatRun& run, Executor& teacher,
                                               const DataBatch& b) {
  QUANTD_ASSIGN_OR_RETURN(const RunResult t, teacher.Run(b.feeds));
  // The student's kernels are built per step: weights change in place.
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> student,
                          Executor::Create(run.training->graph));
  RunOptions ro;
  ro.keep_all_values = true;
  QUANTD_ASSIGN_OR_RETURN(const RunResult s, student->Run(b.feeds, ro));
  const Tensor& labels = b.targets.defined() ? b.targets : b.labels;
  StepGradients out;
  QUANTD_ASSIGN_OR_RETURN(out.loss, TrainingLoss(s.outputs[0], t.outputs[0],
                                                 labels, run.options.loss));
  if (!std::isfinite(out.loss.loss)) return out;
  TensorMap values = s.values;
  for (const auto& [k, v] : b.feeds) values[k] = v;
  const std::string& output = run.training->graph.outputs[0].name;
  QUANTD_ASSIGN_OR_RETURN(out.grads,
                          Backward(run.training->graph, values,
                                   {{output, out.loss.grad}}, run.names));
  return out;
}

// One optimizer step over the trainable tensors.
absl::StatusOr<StepInfo> UpdateParameters(QatRun& run, const Gradients& grads) {
  TrainingGraph* training = run.training;
  std::map<std::string, Tensor*> params;
  std::map<std::string, const Tensor*> gptr;
  for (const std::string& n : run.names) {
    params[n] = &training->graph.initializers.at(n);
    gptr[n] = &grads.at(n);
  }
  QUANTD_ASSIGN_OR_RETURN(const StepInfo info,
                          run.opt.Step(params, gptr, run.decay));
  // Learned step sizes stay positive.
  for (const auto& [scale, entry] : training->scales) {
    if (!run.names.contains(scale)) continue;
    float* d = training->graph.initializers.at(scale).mutable_data<float>();
    for (int64_t i = 0;
         i < training->graph.initializers.at(scale).num_elements(); ++i) {
      d[i] = std::max(d[i], kMinQuantScale);
    }
  }
  return info;
}

// Puts the step on the training curve (every 10th step, and every step
// scored on held-out data, which may become the best), and writes a
// checkpoint when one is due.
absl::Status RecordStep(QatRun& run, const StepInfo& info, double loss,
                        const TrainingPointCallback& on_point,
                        QatOutcome& out) {
  const QatOptions& options = run.options;
  v1::TrainingPoint point;
  point.set_step(info.step);
  point.set_loss(loss);
  point.set_learning_rate(info.learning_rate);
  const bool eval_now =
      run.held_out != nullptr && (info.step % options.eval_every_steps == 0 ||
                                  info.step == run.opt.total_steps());
  if (eval_now) {
    QUANTD_ASSIGN_OR_RETURN(
        const HeldOutFigures m,
        HeldOut(run.float_graph, run.training->graph, *run.held_out,
                options.loss, run.cancelled));
    point.set_held_out_metric(m.metric);
    if (m.selection <= run.best_metric) {
      run.best_metric = m.selection;
      run.best = Snapshot(*run.training, run.names);
    }
  }
  if (eval_now || info.step % 10 == 0) {
    out.curve.push_back(point);
    if (on_point) on_point(point);
  }
  if (options.checkpoint_every_steps > 0 &&
      info.step % options.checkpoint_every_steps == 0 &&
      !options.checkpoint_path.empty()) {
    QUANTD_RETURN_IF_ERROR(WriteCheckpoint(options.checkpoint_path,
                                           *run.training, run.names, run.opt,
                                           run.best, run.best_metric));
    if (options.on_checkpoint) options.on_checkpoint(options.checkpoint_path);
  }
  return absl::OkStatus();
}

// Plans the schedule for the steps that fit before `deadline` at the pace
// so far (held-out evaluations included, as they fall inside the loop),
// with 5% to spare, capped at max_steps. Re-planned every step: the first
// steps are slow (primitive creation) and an early estimate alone would
// give away a third of the budget; the average converges, so the horizon
// and the learning rate move only slightly after the first plan.
void PlanSchedule(QatRun& run, int64_t steps_timed, absl::Duration elapsed,
                  absl::Time deadline) {
  if (steps_timed < 10 || deadline == absl::InfiniteFuture()) return;
  const double per_step = absl::ToDoubleSeconds(elapsed) / steps_timed;
  const double left = absl::ToDoubleSeconds(deadline - absl::Now());
  const int64_t fits =
      run.opt.step() + static_cast<int64_t>(0.95 * std::max(0.0, left) /
                                            std::max(per_step, 1e-9));
  run.opt.set_total_steps(
      std::clamp<int64_t>(fits, run.opt.step() + 1, run.options.max_steps));
}

// Steps until the planned steps, the time budget, a non-finite loss or a
// failed optimizer step; out.stop_reason says which.
absl::Status TrainSteps(QatRun& run, Executor& teacher, Dataset* train,
                        absl::Time deadline,
                        const TrainingPointCallback& on_point,
                        QatOutcome& out) {
  QUANTD_RETURN_IF_ERROR(train->Rewind());
  out.stop_reason = "max_steps";
  const absl::Time loop_start = absl::Now();
  const int64_t first_step = run.opt.step();
  while (run.opt.step() < run.opt.total_steps()) {
    const int64_t timed = run.opt.step() - first_step;
    const absl::Duration elapsed = absl::Now() - loop_start;
    PlanSchedule(run, timed, elapsed, deadline);
    // Stop when the next step would likely end past the deadline.
    const absl::Duration next =
        timed > 0 ? elapsed / timed : absl::ZeroDuration();
    if (run.opt.step() >= run.opt.total_steps() ||
        absl::Now() + next > deadline) {
      out.stop_reason = "time_budget";
      break;
    }
    QUANTD_RETURN_IF_ERROR(CheckCancelled(run.cancelled));
    QUANTD_ASSIGN_OR_RETURN(const DataBatch b, NextBatch(train));
    QUANTD_ASSIGN_OR_RETURN(const StepGradients g,
                            LossAndGradients(run, teacher, b));
    if (!std::isfinite(g.loss.loss)) {
      out.stop_reason =
          absl::StrCat("the loss became non-finite at step ",
                       run.opt.step() + 1, "; kept the best weights before it");
      break;
    }
    absl::StatusOr<StepInfo> info = UpdateParameters(run, g.grads);
    if (!info.ok()) {
      out.stop_reason = std::string(info.status().message());
      break;
    }
    QUANTD_RETURN_IF_ERROR(RecordStep(run, *info, g.loss.loss, on_point, out));
  }
  if (out.stop_reason == "max_steps" &&
      run.opt.total_steps() < run.options.max_steps) {
    out.stop_reason = "time_budget";  // the shortened schedule's end
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<QatOutcome> TrainQat(const Graph& float_graph,
                                    TrainingGraph* training, Dataset* train,
                                    Dataset* held_out,
                                    const QatOptions& options,
                                    const TrainingPointCallback& on_point,
                                    const std::atomic<bool>* cancelled) {
  if (options.max_steps <= 0 || !(options.time_budget_seconds > 0)) {
    return absl::InvalidArgumentError(
        "quantization-aware training needs max_steps > 0 and a positive time "
        "budget");
  }
  if (options.eval_every_steps < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "eval_every_steps must be at least 1, got ", options.eval_every_steps));
  }
  std::set<std::string> names = Trainable(training, options.learned_step_size);
  QUANTD_RETURN_IF_ERROR(CheckDifferentiable(training->graph, names));
  const absl::Time deadline =
      options.deadline != absl::InfiniteFuture()
          ? options.deadline
          : absl::Now() + absl::Seconds(options.time_budget_seconds);
  QatRun run(float_graph, training, held_out, options, cancelled,
             std::move(names));
  QatOutcome out;
  QUANTD_ASSIGN_OR_RETURN(const bool resumed, StartRun(run));
  out.resumed_from = resumed ? run.opt.step() : 0;
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> teacher,
                          Executor::Create(float_graph));
  QUANTD_RETURN_IF_ERROR(
      TrainSteps(run, *teacher, train, deadline, on_point, out));
  out.steps = run.opt.step();
  out.planned_steps = run.opt.total_steps();
  if (held_out != nullptr) {
    for (auto& [n, t] : run.best) training->graph.initializers[n] = t;
    out.best_held_out = run.best_metric;
  }
  return out;
}

}  // namespace quantd
