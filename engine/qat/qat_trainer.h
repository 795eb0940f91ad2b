// The quantization-aware training loop: the training graph (qat_graph.h)
// learns from the float model (distillation, plus cross-entropy with
// labels) with gradients from autograd.h and the optimizer in optimizer.h,
// on mini-batches of a dataset, within a step and a time budget. It keeps
// the best weights by a held-out metric, checkpoints so that an interrupted
// job resumes, and stops with a clear message on a non-finite loss.
//
//   QatOptions o;
//   o.max_steps = 300;
//   o.checkpoint_path = "/var/lib/quantd/checkpoints/job-1.npz";
//   absl::StatusOr<QatOutcome> r = TrainQat(float_graph, &training, &train,
//                                           &held_out, o, on_point, &cancel);
#ifndef QUANTD_ENGINE_QAT_QAT_TRAINER_H_
#define QUANTD_ENGINE_QAT_QAT_TRAINER_H_

#include <atomic>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "engine/data/dataset.h"
#include "engine/qat/optimizer.h"
#include "engine/qat/qat_graph.h"
#include "engine/qat/training_loss.h"
#include "quantd/v1/report.pb.h"

namespace quantd {

struct QatOptions {
  int64_t max_steps = 300;
  // The budget bounds the whole of TrainQat (scoring the starting weights,
  // the steps, held-out evaluations): it ends at `deadline`, or when unset
  // (InfiniteFuture) time_budget_seconds after TrainQat starts. A caller
  // with work of its own before training (the train stage: building the
  // training graph, opening data) sets the deadline from its own start.
  double time_budget_seconds = 300;
  absl::Time deadline = absl::InfiniteFuture();
  OptimizerOptions optimizer;
  LossOptions loss;
  bool learned_step_size = false;      // LSQ: train the scales too
  int64_t eval_every_steps = 25;       // held-out metric and best-weights check
  int64_t checkpoint_every_steps = 0;  // 0: no checkpoints
  std::string checkpoint_path;         // .npz, written atomically
  // Called after each checkpoint is written (the service copies it to
  // object storage, so another replica can resume the job).
  std::function<void(const std::string& path)> on_checkpoint;
};

struct QatOutcome {
  int64_t steps = 0;         // total, including steps before a resume
  int64_t resumed_from = 0;  // 0: started from scratch
  double best_held_out = 0;  // TargetMetric of the kept weights
  std::vector<v1::TrainingPoint> curve;
  std::string stop_reason;  // "max_steps", "time_budget", "non-finite ..."
  // Steps the cosine schedule was planned for: max_steps, or fewer when the
  // time budget could not fit them (the schedule then still decays to 0
  // instead of stopping at a high learning rate).
  int64_t planned_steps = 0;
};

using TrainingPointCallback = std::function<void(const v1::TrainingPoint&)>;

// Trains `training` in place (its graph's trainable initializers end as the
// best weights seen). `held_out` may be null (then the last weights are
// kept). Cancellation is checked between steps.
absl::StatusOr<QatOutcome> TrainQat(const Graph& float_graph,
                                    TrainingGraph* training, Dataset* train,
                                    Dataset* held_out,
                                    const QatOptions& options,
                                    const TrainingPointCallback& on_point,
                                    const std::atomic<bool>* cancelled);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QAT_QAT_TRAINER_H_
