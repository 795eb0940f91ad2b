// Optimizers for quantization-aware training: Adam and SGD with momentum,
// decoupled weight decay, a cosine or constant learning-rate schedule with
// linear warm-up, and clipping of the global gradient norm. Parameters and
// gradients are f32 tensors held by the caller, by name.
//
//   OptimizerOptions o{.kind = OptimizerKind::kAdam, .learning_rate = 1e-4,
//                      .total_steps = 500};
//   Optimizer opt(o);
//   std::map<std::string, Tensor*> params = {{"conv1.w", &w}};
//   std::map<std::string, const Tensor*> grads = {{"conv1.w", &dw}};
//   absl::StatusOr<StepInfo> info = opt.Step(params, grads);
//
// The state (moments, step count) can be saved and restored for
// checkpoints, so a resumed run continues exactly.
#ifndef QUANTD_ENGINE_QAT_OPTIMIZER_H_
#define QUANTD_ENGINE_QAT_OPTIMIZER_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace quantd {

enum class OptimizerKind { kAdam, kSgd };

struct OptimizerOptions {
  OptimizerKind kind = OptimizerKind::kAdam;
  double learning_rate = 1e-4;
  double momentum = 0.9;                              // SGD
  double beta1 = 0.9, beta2 = 0.999, epsilon = 1e-8;  // Adam
  double weight_decay = 0;   // decoupled (AdamW style), applied to weights
  bool cosine = true;        // cosine decay to 0 over total_steps
  int64_t warmup_steps = 0;  // linear warm-up from 0
  int64_t total_steps = 1;
  double gradient_clip_norm = 0;  // 0: no clipping
};

struct StepInfo {
  int64_t step = 0;          // after this update, 1-based
  double learning_rate = 0;  // used for this update
  double gradient_norm = 0;  // before clipping
};

class Optimizer {
 public:
  explicit Optimizer(OptimizerOptions options) : options_(options) {}

  // One update of every parameter that has a gradient. Names in `grads`
  // must be in `params` with the same shape; a non-finite gradient norm is
  // an error (InvalidArgument naming the step) and changes nothing.
  // `decay` lists the parameters weight decay applies to (not scales).
  absl::StatusOr<StepInfo> Step(
      const std::map<std::string, Tensor*>& params,
      const std::map<std::string, const Tensor*>& grads,
      const std::map<std::string, bool>& decay = {});

  // The learning rate at `step` (0-based) of the schedule.
  double LearningRate(int64_t step) const;

  int64_t step() const { return step_; }
  // Re-plans the schedule's horizon (QAT plans it for the steps its time
  // budget fits).
  void set_total_steps(int64_t n) { options_.total_steps = n; }
  int64_t total_steps() const { return options_.total_steps; }
  // State for checkpoints: moments by "<name>/m", "<name>/v" and "step".
  std::vector<std::pair<std::string, Tensor>> SaveState() const;
  absl::Status RestoreState(
      const std::vector<std::pair<std::string, Tensor>>& state);

 private:
  OptimizerOptions options_;
  int64_t step_ = 0;
  std::map<std::string, std::vector<float>> m_, v_;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_QAT_OPTIMIZER_H_
