#include "engine/pipeline/block_reconstruction.h"

#include <map>
#include <memory>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/qat/autograd.h"
#include "engine/quantization/rounding_variables.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// One layer's variables and the tensor the block runs with.
struct LayerState {
  BlockLayer* layer = nullptr;
  RoundingProblem problem;
  std::unique_ptr<RoundingClipping> clip;
  std::unique_ptr<RoundingVariables> vars;
  Tensor current;  // w_q of the current variables
};

class Reconstruction {
 public:
  Reconstruction(const Graph& block, const std::vector<TensorMap>& batches,
                 const std::vector<std::vector<Tensor>>* targets,
                 const BlockReconstructionOptions& options)
      : block_(block), batches_(batches), options_(options) {
    if (targets != nullptr) targets_ = *targets;
  }

  absl::Status Start(const WeightScheme& scheme,
                     std::vector<BlockLayer>& layers) {
    for (BlockLayer& l : layers) wrt_.insert(l.slot->initializer);
    QUANTD_RETURN_IF_ERROR(CheckDifferentiable(block_, wrt_));
    states_.resize(layers.size());
    for (size_t i = 0; i < layers.size(); ++i) {
      LayerState& s = states_[i];
      s.layer = &layers[i];
      const Tensor* w = block_.FindInitializer(s.layer->slot->initializer);
      if (w == nullptr) {
        return absl::InternalError(absl::StrCat(
            "block has no weight '", s.layer->slot->initializer, "'"));
      }
      const RoundingStart start{s.layer->params, s.layer->weights};
      QUANTD_ASSIGN_OR_RETURN(
          s.problem, MakeRoundingProblem(*w, *s.layer->slot, scheme, &start,
                                         options_.learn_clipping));
      s.clip = std::make_unique<RoundingClipping>(s.problem);
      s.vars = std::make_unique<RoundingVariables>(s.problem, *s.clip, 0,
                                                   s.problem.layout.n);
    }
    if (targets_.empty()) {  // the float block's outputs on the batches
      QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> reference,
                              Executor::Create(block_));
      for (const TensorMap& feeds : batches_) {
        QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> out,
                                reference->RunOutputs(feeds));
        targets_.push_back(std::move(out));
      }
    }
    QUANTD_ASSIGN_OR_RETURN(executor_, Executor::Create(block_));
    if (options_.activations != nullptr) SimulateActivations(layers);
    return absl::OkStatus();
  }

  absl::StatusOr<BlockReconstructionResult> Run() {
    BlockReconstructionResult result;
    QUANTD_RETURN_IF_ERROR(SetWeights());
    QUANTD_ASSIGN_OR_RETURN(result.start_loss, FullLoss());
    result.loss = result.start_loss;
    Score(0, 1.0);
    const int iters = options_.iterations;
    const double lr0 = options_.learning_rate > 0 ? options_.learning_rate
                                                  : 1.0 / std::max(iters, 1);
    const int score_every = std::max(1, iters / 4);
    for (int t = 0; t < iters; ++t) {
      if (options_.cancelled != nullptr && options_.cancelled->load()) {
        return absl::CancelledError("the job was cancelled");
      }
      QUANTD_RETURN_IF_ERROR(StepOnBatch(
          t % batches_.size(), lr0 * (1.0 - static_cast<double>(t) / iters)));
      QUANTD_RETURN_IF_ERROR(SetWeights());
      if ((t + 1) % score_every != 0 && t + 1 != iters) continue;
      QUANTD_ASSIGN_OR_RETURN(const double loss, FullLoss());
      Score(t + 1, result.start_loss > 0 ? loss / result.start_loss : 1.0);
      if (loss < result.loss) {
        result.loss = loss;
        for (LayerState& s : states_) s.vars->KeepAll();
      }
    }
    for (LayerState& s : states_) {
      // A new tensor: the caller's may share its storage with others.
      s.layer->weights = Tensor(DataType::kFloat32, s.layer->weights.shape());
      s.vars->WriteBest(s.layer->weights.mutable_data<float>());
      s.layer->params = BestParams(s.problem, *s.clip);
    }
    return result;
  }

 private:
  // Fake-quantizes the layers' inputs that have static parameters in
  // every run of the block (scoring and steps alike).
  void SimulateActivations(const std::vector<BlockLayer>& layers) {
    std::map<std::string, const Node*> nodes;
    for (const Node& n : block_.nodes) nodes[n.name] = &n;
    for (const BlockLayer& l : layers) {
      auto n = nodes.find(l.slot->node);
      if (n == nodes.end()) continue;
      const std::string& input = n->second->input(0);
      auto a = options_.activations->find(input);
      if (a != options_.activations->end()) simulated_[input] = a->second;
    }
    if (simulated_.empty()) return;
    run_.tensor_hook = [this](const Node*, const std::string& name,
                              Tensor& value) -> absl::Status {
      auto a = simulated_.find(name);
      if (a == simulated_.end() || value.dtype() != DataType::kFloat32) {
        return absl::OkStatus();
      }
      QUANTD_ASSIGN_OR_RETURN(value, FakeQuantizeWeights(value, a->second));
      return absl::OkStatus();
    };
  }

  void Score(int step, double relative) const {
    if (options_.on_score) options_.on_score(step, relative);
  }

  // Quantizes every layer's current variables into the executor.
  absl::Status SetWeights() {
    for (LayerState& s : states_) {
      s.vars->Quantize(false);
      // A fresh tensor: the executor and the last run's values share the
      // previous one.
      s.current = Tensor(DataType::kFloat32, s.layer->weights.shape());
      float* out = s.current.mutable_data<float>();
      const std::vector<float>& wq = s.vars->wq();
      for (int64_t e = 0; e < s.vars->size(); ++e) out[s.vars->Flat(e)] = wq[e];
      QUANTD_RETURN_IF_ERROR(
          executor_->ReplaceInitializer(s.layer->slot->initializer, s.current));
    }
    return absl::OkStatus();
  }

  // Sum over float outputs of the mean squared error; the outputs'
  // gradients into `grads` when given.
  double Loss(const std::vector<Tensor>& outputs,
              const std::vector<Tensor>& targets, TensorMap* grads) const {
    double loss = 0;
    for (size_t o = 0; o < outputs.size(); ++o) {
      const Tensor& y = outputs[o];
      if (y.dtype() != DataType::kFloat32 || y.num_elements() == 0) continue;
      const float* yv = y.data<float>();
      const float* tv = targets[o].data<float>();
      const double n = static_cast<double>(y.num_elements());
      Tensor g(DataType::kFloat32, y.shape());
      float* gv = g.mutable_data<float>();
      double sum = 0;
      for (int64_t i = 0; i < y.num_elements(); ++i) {
        const double d = static_cast<double>(yv[i]) - tv[i];
        sum += d * d;
        gv[i] = static_cast<float>(2 * d / n);
      }
      loss += sum / n;
      if (grads != nullptr) (*grads)[block_.outputs[o].name] = std::move(g);
    }
    return loss;
  }

  absl::StatusOr<double> FullLoss() {
    double total = 0;
    for (size_t b = 0; b < batches_.size(); ++b) {
      QUANTD_ASSIGN_OR_RETURN(RunResult r, executor_->Run(batches_[b], run_));
      total += Loss(r.outputs, targets_[b], nullptr);
    }
    return total / batches_.size();
  }

  absl::Status StepOnBatch(size_t b, double lr) {
    RunOptions ro = run_;
    ro.keep_all_values = true;
    QUANTD_ASSIGN_OR_RETURN(RunResult r, executor_->Run(batches_[b], ro));
    TensorMap output_grads;
    Loss(r.outputs, targets_[b], &output_grads);
    TensorMap values = std::move(r.values);
    // Feeds the run did not keep; a kept feed is the fake-quantized one.
    for (const auto& [k, v] : batches_[b]) values.try_emplace(k, v);
    for (const LayerState& s : states_) {
      values[s.layer->slot->initializer] = s.current;
    }
    QUANTD_ASSIGN_OR_RETURN(Gradients grads,
                            Backward(block_, values, output_grads, wrt_));
    for (LayerState& s : states_) {
      const float* g = grads.at(s.layer->slot->initializer).data<float>();
      step_grad_.resize(s.vars->size());
      for (int64_t e = 0; e < s.vars->size(); ++e) {
        step_grad_[e] = g[s.vars->Flat(e)];
      }
      s.vars->Step(step_grad_, lr);
    }
    return absl::OkStatus();
  }

  const Graph& block_;
  const std::vector<TensorMap>& batches_;
  const BlockReconstructionOptions& options_;
  std::set<std::string> wrt_;
  std::vector<LayerState> states_;
  std::vector<std::vector<Tensor>> targets_;
  std::unique_ptr<Executor> executor_;
  std::vector<double> step_grad_;
  std::map<std::string, QuantParams> simulated_;  // by value name
  RunOptions run_;  // with the activation hook when simulating
};

}  // namespace

absl::StatusOr<BlockReconstructionResult> ReconstructBlock(
    const Graph& block, const std::vector<TensorMap>& batches,
    const std::vector<std::vector<Tensor>>* targets, const WeightScheme& scheme,
    const BlockReconstructionOptions& options,
    std::vector<BlockLayer>& layers) {
  if (layers.empty() || batches.empty()) {
    return absl::InvalidArgumentError(
        "block reconstruction needs layers and calibration batches");
  }
  if (targets != nullptr) {
    if (targets->size() != batches.size()) {
      return absl::InvalidArgumentError("one target per batch expected");
    }
    for (const std::vector<Tensor>& t : *targets) {
      if (t.size() != block.outputs.size()) {
        return absl::InvalidArgumentError(
            "one target per block output expected");
      }
    }
  }
  Reconstruction r(block, batches, targets, options);
  QUANTD_RETURN_IF_ERROR(r.Start(scheme, layers));
  return r.Run();
}

}  // namespace quantd
