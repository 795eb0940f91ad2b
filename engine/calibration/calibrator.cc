#include "engine/calibration/calibrator.h"

#include <algorithm>
#include <cmath>
#include <tuple>
#include <utility>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {

const char* CalibrationMethodName(CalibrationMethod method) {
  switch (method) {
    case CalibrationMethod::kMinMax:
      return "minmax";
    case CalibrationMethod::kMovingAverageMinMax:
      return "moving_average_minmax";
    case CalibrationMethod::kPercentile:
      return "percentile";
    case CalibrationMethod::kEntropy:
      return "entropy";
    case CalibrationMethod::kMse:
      return "mse";
  }
  return "invalid";
}

namespace {

bool UsesHistogram(CalibrationMethod method) {
  return method == CalibrationMethod::kPercentile ||
         method == CalibrationMethod::kEntropy ||
         method == CalibrationMethod::kMse;
}

// Levels the entropy search quantizes its window to: a histogram of |x|
// covers half the integer range.
int EntropyLevels(const CalibrationOptions& o) {
  const int levels = QuantTypeMax(o.type) - QuantTypeMin(o.type) + 1;
  return o.symmetric ? levels / 2 : levels;
}

}  // namespace

absl::Status CalibrationOptions::Validate() const {
  switch (method) {
    case CalibrationMethod::kMinMax:
    case CalibrationMethod::kMovingAverageMinMax:
    case CalibrationMethod::kPercentile:
    case CalibrationMethod::kEntropy:
    case CalibrationMethod::kMse:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown calibration method ", static_cast<int>(method),
                       "; use minmax, moving_average_minmax, percentile, "
                       "entropy or mse"));
  }
  switch (type) {
    case QuantType::kInt8:
    case QuantType::kUInt8:
    case QuantType::kInt4:
    case QuantType::kUInt4:
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("unknown activation type ", static_cast<int>(type),
                       "; use int8, uint8, int4 or uint4"));
  }
  // Written so that NaN fails too.
  if (!(percentile > 0 && percentile <= 100)) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration percentile is ", percentile,
                     "; it must be in (0, 100], e.g. 99.99"));
  }
  if (!(moving_average_momentum >= 0 && moving_average_momentum < 1)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "moving average momentum is ", moving_average_momentum,
        "; it must be in [0, 1), e.g. 0.9 (1 would never move the range)"));
  }
  if (num_bins < 128 || num_bins > (1 << 16)) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibration histogram has ", num_bins,
                     " bins; use between 128 and 65536, e.g. 2048"));
  }
  if (method == CalibrationMethod::kEntropy &&
      num_bins < EntropyLevels(*this)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "entropy calibration for ", symmetric ? "symmetric " : "",
        QuantTypeName(type), " quantizes to ", EntropyLevels(*this),
        " levels and needs at least that many bins, got ", num_bins,
        "; use e.g. 2048"));
  }
  return absl::OkStatus();
}

TensorCalibrator::TensorCalibrator(std::string name,
                                   const CalibrationOptions& options)
    : name_(std::move(name)), options_(options) {
  if (UsesHistogram(options.method)) histogram_.emplace(options.num_bins);
}

absl::StatusOr<TensorCalibrator> TensorCalibrator::Create(
    std::string name, const CalibrationOptions& options) {
  if (absl::Status s = options.Validate(); !s.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("calibrating tensor '", name, "': ", s.message()));
  }
  return TensorCalibrator(std::move(name), options);
}

absl::Status TensorCalibrator::Observe(const Tensor& batch) {
  if (batch.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "tensor '", name_, "' is ", batch.DebugString(),
        "; only float32 activations can be calibrated, so leave it out of "
        "the calibrated tensors"));
  }
  const absl::Span<const float> x = batch.span<float>();
  if (x.empty()) return absl::OkStatus();
  float lo = x[0], hi = x[0], amax = 0;
  bool finite = true;
  for (float v : x) {
    finite &= std::isfinite(v);
    lo = std::min(lo, v);
    hi = std::max(hi, v);
    amax = std::max(amax, std::fabs(v));
  }
  if (!finite) {
    // Second pass only on the error path, to name the first bad element.
    size_t i = 0;
    while (std::isfinite(x[i])) ++i;
    return absl::InvalidArgumentError(absl::StrCat(
        "calibration data for tensor '", name_, "' contains ",
        std::isnan(x[i]) ? "NaN" : "Inf", " (element ", i, " of ",
        batch.DebugString(), " in batch ", num_batches_ + 1,
        "); NaN/Inf cannot be calibrated: clean the calibration dataset or "
        "fix the model upstream of this tensor"));
  }
  const float batch_lo = options_.symmetric ? -amax : lo;
  const float batch_hi = options_.symmetric ? amax : hi;
  const double m = options_.moving_average_momentum;
  if (num_batches_ == 0) {
    min_ = lo, max_ = hi, max_abs_ = amax;
    average_min_ = batch_lo, average_max_ = batch_hi;
  } else {
    min_ = std::min(min_, lo);
    max_ = std::max(max_, hi);
    max_abs_ = std::max(max_abs_, amax);
    average_min_ = m * average_min_ + (1 - m) * batch_lo;
    average_max_ = m * average_max_ + (1 - m) * batch_hi;
  }
  if (histogram_) {
    if (options_.symmetric) {
      histogram_->AddAbsolute(x, amax);
    } else {
      histogram_->Add(x, lo, hi);
    }
  }
  ++num_batches_;
  num_elements_ += x.size();
  return absl::OkStatus();
}

absl::StatusOr<CalibrationRange> TensorCalibrator::ComputeRange() const {
  if (num_batches_ == 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "no calibration data was observed for tensor '", name_,
        "'; check that the tensor is produced when the model runs on the "
        "calibration dataset and that the dataset is not empty"));
  }
  const bool sym = options_.symmetric;
  // The data's own bounds; no method returns a range beyond them.
  const double data_lo = sym ? -max_abs_ : min_;
  const double data_hi = sym ? max_abs_ : max_;
  double lo = data_lo, hi = data_hi;
  switch (options_.method) {
    case CalibrationMethod::kMinMax:
      break;
    case CalibrationMethod::kMovingAverageMinMax:
      lo = average_min_;
      hi = average_max_;
      break;
    case CalibrationMethod::kPercentile: {
      const double p = options_.percentile / 100.0;
      if (sym) {
        hi = histogram_->Quantile(p);
        lo = -hi;
      } else {
        lo = histogram_->Quantile((1 - p) / 2);
        hi = histogram_->Quantile((1 + p) / 2);
      }
      break;
    }
    case CalibrationMethod::kEntropy: {
      const auto [wlo, whi] =
          EntropyRange(*histogram_, EntropyLevels(options_));
      lo = sym ? -whi : wlo;
      hi = whi;
      break;
    }
    case CalibrationMethod::kMse: {
      std::tie(lo, hi) =
          MseRange(*histogram_, data_lo, data_hi, options_.type, sym);
      break;
    }
  }
  CalibrationRange r;
  r.min = static_cast<float>(std::clamp(lo, data_lo, data_hi));
  r.max = static_cast<float>(std::clamp(hi, data_lo, data_hi));
  if (r.min > r.max) std::swap(r.min, r.max);
  return r;
}

absl::StatusOr<QuantParams> TensorCalibrator::ComputeParams() const {
  QUANTD_ASSIGN_OR_RETURN(CalibrationRange r, ComputeRange());
  return ActivationParamsForRange(r.min, r.max, options_.type,
                                  options_.symmetric);
}

}  // namespace quantd
