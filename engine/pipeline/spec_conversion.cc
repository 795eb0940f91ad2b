#include "engine/pipeline/spec_conversion.h"

namespace quantd {

CalibrationOptions CalibrationOptionsFromSpec(const v1::JobSpec& spec) {
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

WeightScheme WeightSchemeFromSpec(const v1::JobSpec& spec) {
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
  s.bits = spec.weights().bits();
  switch (spec.weights().granularity()) {
    case v1::GRANULARITY_PER_TENSOR:
      s.granularity = WeightGranularity::kPerTensor;
      break;
    case v1::GRANULARITY_PER_GROUP:
      s.granularity = WeightGranularity::kPerGroup;
      s.group_size = spec.weights().group_size();
      s.allow_partial_groups = spec.weights().allow_partial_groups();
      break;
    default:
      s.granularity = WeightGranularity::kPerChannel;
  }
  return s;
}

WeightSelection WeightSelectionFromSpec(const v1::JobSpec& spec) {
  WeightSelection s;
  s.excluded_nodes.insert(spec.exclude_nodes().begin(),
                          spec.exclude_nodes().end());
  s.excluded_op_types.insert(spec.exclude_op_types().begin(),
                             spec.exclude_op_types().end());
  return s;
}

RoundingConfig RoundingConfigFromSpec(const v1::JobSpec& spec) {
  const v1::Algorithms& alg = spec.algorithms();
  RoundingConfig r;
  r.scheme = WeightSchemeFromSpec(spec);
  r.gptq = alg.gptq().enabled();
  r.gptq_options.block_size = alg.gptq().block_size();
  r.gptq_options.damp_percent = alg.gptq().damp_percent();
  r.gptq_options.act_order = alg.gptq().act_order();
  r.learned_rounding = alg.learned_rounding().enabled();
  r.learned_rounding_options.iterations = alg.learned_rounding().iterations();
  r.learned_rounding_options.learning_rate =
      alg.learned_rounding().learning_rate();
  r.learned_rounding_options.learn_clipping =
      !alg.learned_rounding().no_clipping();
  r.bias_correction = alg.bias_correction();
  switch (spec.mode()) {
    case v1::QUANT_MODE_DYNAMIC:
      r.activations = RoundingConfig::Activations::kDynamic;
      break;
    case v1::QUANT_MODE_WEIGHT_ONLY:
      r.activations = RoundingConfig::Activations::kNone;
      break;
    default:
      r.activations = RoundingConfig::Activations::kStatic;
  }
  return r;
}

QatOptions QatOptionsFromSpec(const v1::JobSpec& spec) {
  const v1::QatConfig& q = spec.qat();
  QatOptions o;
  o.max_steps = q.max_steps();
  o.time_budget_seconds = q.time_budget_seconds();
  o.optimizer.kind = q.optimizer() == v1::QatConfig::OPTIMIZER_SGD
                         ? OptimizerKind::kSgd
                         : OptimizerKind::kAdam;
  o.optimizer.learning_rate = q.learning_rate();
  o.optimizer.weight_decay = q.weight_decay();
  o.optimizer.cosine = q.cosine_schedule();
  o.optimizer.gradient_clip_norm = q.gradient_clip_norm();
  o.loss.distillation_weight =
      q.has_distillation_weight() ? q.distillation_weight() : 1.0;
  o.learned_step_size = q.learned_step_size();
  o.checkpoint_every_steps = q.checkpoint_every_steps();
  return o;
}

}  // namespace quantd
