#include "engine/qat/optimizer.h"

#include <cmath>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace quantd {

double Optimizer::LearningRate(int64_t step) const {
  const double base = options_.learning_rate;
  if (options_.warmup_steps > 0 && step < options_.warmup_steps) {
    return base * (step + 1) / options_.warmup_steps;
  }
  if (!options_.cosine) return base;
  const int64_t span =
      std::max<int64_t>(1, options_.total_steps - options_.warmup_steps);
  const double t = std::min<double>(
      1.0, static_cast<double>(step - options_.warmup_steps) / span);
  return base * 0.5 * (1.0 + std::cos(M_PI * t));
}

absl::StatusOr<StepInfo> Optimizer::Step(
    const std::map<std::string, Tensor*>& params,
    const std::map<std::string, const Tensor*>& grads,
    const std::map<std::string, bool>& decay) {
  double sq = 0;
  for (const auto& [name, g] : grads) {
    auto p = params.find(name);
    if (p == params.end() || p->second->shape() != g->shape() ||
        g->dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(
          absl::StrCat("gradient '", name, "' has no parameter of its shape"));
    }
    const float* d = g->data<float>();
    for (int64_t i = 0; i < g->num_elements(); ++i) sq += double{d[i]} * d[i];
  }
  const double norm = std::sqrt(sq);
  if (!std::isfinite(norm)) {
    return absl::InvalidArgumentError(
        absl::StrCat("the gradient norm is not finite at step ", step_ + 1,
                     "; lower the learning rate or enable gradient clipping"));
  }
  const double clip =
      options_.gradient_clip_norm > 0 && norm > options_.gradient_clip_norm
          ? options_.gradient_clip_norm / norm
          : 1.0;
  const double lr = LearningRate(step_);
  ++step_;
  for (const auto& [name, g] : grads) {
    Tensor* p = params.at(name);
    // Parameters are updated in place: give the optimizer tensors it owns
    // (Tensor copies share buffers).
    float* w = p->mutable_data<float>();
    const float* d = g->data<float>();
    const int64_t n = p->num_elements();
    auto dec = decay.find(name);
    const double wd =
        dec != decay.end() && dec->second ? options_.weight_decay : 0.0;
    std::vector<float>& m = m_[name];
    m.resize(n, 0.f);
    if (options_.kind == OptimizerKind::kSgd) {
      for (int64_t i = 0; i < n; ++i) {
        m[i] = static_cast<float>(options_.momentum * m[i] + clip * d[i]);
        w[i] = static_cast<float>(w[i] - lr * (m[i] + wd * w[i]));
      }
      continue;
    }
    std::vector<float>& v = v_[name];
    v.resize(n, 0.f);
    const double b1 = options_.beta1, b2 = options_.beta2;
    const double c1 = 1 - std::pow(b1, step_), c2 = 1 - std::pow(b2, step_);
    for (int64_t i = 0; i < n; ++i) {
      const double gi = clip * d[i];
      m[i] = static_cast<float>(b1 * m[i] + (1 - b1) * gi);
      v[i] = static_cast<float>(b2 * v[i] + (1 - b2) * gi * gi);
      const double update =
          (m[i] / c1) / (std::sqrt(v[i] / c2) + options_.epsilon);
      w[i] = static_cast<float>(w[i] - lr * (update + wd * w[i]));
    }
  }
  return StepInfo{step_, lr, norm};
}

std::vector<std::pair<std::string, Tensor>> Optimizer::SaveState() const {
  std::vector<std::pair<std::string, Tensor>> out;
  out.emplace_back("step", Tensor::FromVector<int64_t>({1}, {step_}));
  for (const auto& [name, m] : m_) {
    out.emplace_back(absl::StrCat(name, "/m"),
                     Tensor::FromVector<float>({int64_t(m.size())}, m));
  }
  for (const auto& [name, v] : v_) {
    out.emplace_back(absl::StrCat(name, "/v"),
                     Tensor::FromVector<float>({int64_t(v.size())}, v));
  }
  return out;
}

absl::Status Optimizer::RestoreState(
    const std::vector<std::pair<std::string, Tensor>>& state) {
  int64_t step = -1;
  std::map<std::string, std::vector<float>> m, v;
  for (const auto& [name, t] : state) {
    if (name == "step" && t.dtype() == DataType::kInt64 &&
        t.num_elements() == 1) {
      step = t.data<int64_t>()[0];
    } else if (t.dtype() == DataType::kFloat32 && absl::EndsWith(name, "/m")) {
      m[name.substr(0, name.size() - 2)] = t.ToVector<float>();
    } else if (t.dtype() == DataType::kFloat32 && absl::EndsWith(name, "/v")) {
      v[name.substr(0, name.size() - 2)] = t.ToVector<float>();
    } else {
      return absl::DataLossError(
          absl::StrCat("optimizer state has an unexpected entry '", name, "'"));
    }
  }
  if (step < 0) return absl::DataLossError("optimizer state has no step");
  step_ = step;
  m_ = std::move(m);
  v_ = std::move(v);
  return absl::OkStatus();
}

}  // namespace quantd
