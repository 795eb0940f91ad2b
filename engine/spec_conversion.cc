#include "engine/spec_conversion.h"

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

}  // namespace quantd
