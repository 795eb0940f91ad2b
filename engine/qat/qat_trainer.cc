#include "engine/qat/qat_trainer.h"

#include <sys/stat.h>

#include <cmath>
#include <cstdlib>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/data/array_file.h"
#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/qat/autograd.h"
#include "engine/runtime/executor.h"

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
absl::StatusOr<bool> ReadCheckpoint(const std::string& path, TrainingGraph* t,
                                    const std::set<std::string>& names,
                                    Optimizer* opt,
                                    std::map<std::string, Tensor>* best,
                                    double* best_metric) {
  struct stat st;
  if (path.empty() || stat(path.c_str(), &st) != 0) return false;
  absl::StatusOr<std::unique_ptr<ArrayFile>> f = ArrayFile::Open(path);
  if (!f.ok()) return f.status();
  std::vector<std::pair<std::string, Tensor>> opt_state;
  for (const std::string& name : (*f)->names()) {
    absl::StatusOr<Tensor> a = (*f)->ReadArray(name);
    if (!a.ok()) return a.status();
    if (name.rfind("param/", 0) == 0 && names.contains(name.substr(6))) {
      t->graph.initializers[name.substr(6)] = *a;
    } else if (name.rfind("best/", 0) == 0 && names.contains(name.substr(5))) {
      (*best)[name.substr(5)] = *a;
    } else if (name.rfind("opt/", 0) == 0) {
      opt_state.emplace_back(name.substr(4), *a);
    } else if (name == "best_metric") {
      *best_metric = a->data<float>()[0];
    }
  }
  if (absl::Status s = opt->RestoreState(opt_state); !s.ok()) return s;
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
  absl::StatusOr<std::unique_ptr<Executor>> ref = Executor::Create(float_graph);
  if (!ref.ok()) return ref.status();
  absl::StatusOr<std::unique_ptr<Executor>> cand = Executor::Create(student);
  if (!cand.ok()) return cand.status();
  absl::StatusOr<Evaluated> e =
      Evaluate(**ref, **cand, data, {}, "", nullptr, cancelled);
  if (!e.ok()) return e.status();
  double sum = 0;
  int64_t batches = 0;
  absl::StatusOr<int64_t> n = ForEachBatch(
      data, "", nullptr, cancelled, [&](const DataBatch& b) -> absl::Status {
        absl::StatusOr<std::vector<Tensor>> t = (*ref)->RunOutputs(b.feeds);
        if (!t.ok()) return t.status();
        absl::StatusOr<std::vector<Tensor>> s = (*cand)->RunOutputs(b.feeds);
        if (!s.ok()) return s.status();
        absl::StatusOr<LossResult> l = TrainingLoss(
            (*s)[0], (*t)[0], b.targets.defined() ? b.targets : b.labels, loss);
        if (!l.ok()) return l.status();
        sum += l->loss;
        ++batches;
        return absl::OkStatus();
      });
  if (!n.ok()) return n.status();
  return HeldOutFigures{TargetMetric(e->metrics),
                        batches > 0 ? sum / batches : 0};
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
  const std::set<std::string> names =
      Trainable(training, options.learned_step_size);
  if (absl::Status s = CheckDifferentiable(training->graph, names); !s.ok()) {
    return s;
  }
  std::map<std::string, bool> decay;
  for (const std::string& w : training->weights) decay[w] = true;
  OptimizerOptions oo = options.optimizer;
  oo.total_steps = options.max_steps;
  Optimizer opt(oo);
  QatOutcome out;
  std::map<std::string, Tensor> best = Snapshot(*training, names);
  double best_metric = INFINITY;
  absl::StatusOr<bool> resumed = ReadCheckpoint(
      options.checkpoint_path, training, names, &opt, &best, &best_metric);
  if (!resumed.ok()) return resumed.status();
  out.resumed_from = *resumed ? opt.step() : 0;
  if (held_out != nullptr && !*resumed) {
    absl::StatusOr<HeldOutFigures> m = HeldOut(
        float_graph, training->graph, *held_out, options.loss, cancelled);
    if (!m.ok()) return m.status();
    best_metric = m->selection;
  }

  absl::StatusOr<std::unique_ptr<Executor>> teacher =
      Executor::Create(float_graph);
  if (!teacher.ok()) return teacher.status();
  const std::string output = training->graph.outputs[0].name;
  const absl::Time deadline =
      absl::Now() + absl::Seconds(options.time_budget_seconds);
  if (absl::Status s = train->Rewind(); !s.ok()) return s;
  out.stop_reason = "max_steps";
  while (opt.step() < options.max_steps) {
    if (absl::Now() > deadline) {
      out.stop_reason = "time_budget";
      break;
    }
    if (absl::Status s = CheckCancelled(cancelled); !s.ok()) return s;
    absl::StatusOr<std::optional<DataBatch>> batch = train->Next();
    if (!batch.ok()) return batch.status();
    if (!batch->has_value()) {  // an epoch ended: start over
      if (absl::Status s = train->Rewind(); !s.ok()) return s;
      batch = train->Next();
      if (!batch.ok()) return batch.status();
      if (!batch->has_value()) {
        return absl::InvalidArgumentError("the training data has no batch");
      }
    }
    const DataBatch& b = **batch;
    absl::StatusOr<RunResult> t = (*teacher)->Run(b.feeds);
    if (!t.ok()) return t.status();
    // The student's kernels are built per step: weights change in place.
    absl::StatusOr<std::unique_ptr<Executor>> student =
        Executor::Create(training->graph);
    if (!student.ok()) return student.status();
    RunOptions ro;
    ro.keep_all_values = true;
    absl::StatusOr<RunResult> s = (*student)->Run(b.feeds, ro);
    if (!s.ok()) return s.status();
    const Tensor& labels = b.targets.defined() ? b.targets : b.labels;
    absl::StatusOr<LossResult> loss =
        TrainingLoss(s->outputs[0], t->outputs[0], labels, options.loss);
    if (!loss.ok()) return loss.status();
    if (!std::isfinite(loss->loss)) {
      out.stop_reason =
          absl::StrCat("the loss became non-finite at step ", opt.step() + 1,
                       "; kept the best weights before it");
      break;
    }
    TensorMap values = s->values;
    for (const auto& [k, v] : b.feeds) values[k] = v;
    absl::StatusOr<Gradients> grads =
        Backward(training->graph, values, {{output, loss->grad}}, names);
    if (!grads.ok()) return grads.status();
    std::map<std::string, Tensor*> params;
    std::map<std::string, const Tensor*> gptr;
    for (const std::string& n : names) {
      params[n] = &training->graph.initializers.at(n);
      gptr[n] = &grads->at(n);
    }
    absl::StatusOr<StepInfo> info = opt.Step(params, gptr, decay);
    if (!info.ok()) {
      out.stop_reason = std::string(info.status().message());
      break;
    }
    // Learned step sizes stay positive.
    for (const auto& [scale, entry] : training->scales) {
      if (!names.contains(scale)) continue;
      float* d = training->graph.initializers.at(scale).mutable_data<float>();
      for (int64_t i = 0;
           i < training->graph.initializers.at(scale).num_elements(); ++i) {
        d[i] = std::max(d[i], 1e-8f);
      }
    }
    v1::TrainingPoint point;
    point.set_step(info->step);
    point.set_loss(loss->loss);
    point.set_learning_rate(info->learning_rate);
    const bool eval_now =
        held_out != nullptr && (info->step % options.eval_every_steps == 0 ||
                                info->step == options.max_steps);
    if (eval_now) {
      absl::StatusOr<HeldOutFigures> m = HeldOut(
          float_graph, training->graph, *held_out, options.loss, cancelled);
      if (!m.ok()) return m.status();
      point.set_held_out_metric(m->metric);
      if (m->selection <= best_metric) {
        best_metric = m->selection;
        best = Snapshot(*training, names);
      }
    }
    if (eval_now || info->step % 10 == 0) {
      out.curve.push_back(point);
      if (on_point) on_point(point);
    }
    if (options.checkpoint_every_steps > 0 &&
        info->step % options.checkpoint_every_steps == 0 &&
        !options.checkpoint_path.empty()) {
      if (absl::Status w = WriteCheckpoint(options.checkpoint_path, *training,
                                           names, opt, best, best_metric);
          !w.ok()) {
        return w;
      }
    }
  }
  out.steps = opt.step();
  if (held_out != nullptr) {
    for (auto& [n, t] : best) training->graph.initializers[n] = t;
    out.best_held_out = best_metric;
  }
  return out;
}

}  // namespace quantd
