// Activation calibration: one TensorCalibrator per observed tensor turns the
// values seen over the calibration batches into per-tensor quantization
// parameters.
//
//   CalibrationOptions options;
//   options.method = CalibrationMethod::kPercentile;
//   absl::StatusOr<TensorCalibrator> c =
//       TensorCalibrator::Create("conv1_out", options);
//   for (const Tensor& batch : batches) {
//     absl::Status s = c->Observe(batch);   // NaN/Inf: InvalidArgument
//   }
//   absl::StatusOr<QuantParams> params = c->ComputeParams();
//
// Methods and their exact conventions:
//   kMinMax                the range of all data seen.
//   kMovingAverageMinMax   per-batch min and max (max |x| if symmetric),
//                          averaged as ORT and NNCF do:
//                          range = m * range + (1 - m) * batch_range; the
//                          first batch sets the range.
//   kPercentile            ORT's convention. Symmetric: t = the p-th
//                          percentile of |x|, range [-t, t] (the (100-p)%
//                          clipped is shared by both tails as the data
//                          dictates). Asymmetric: (100-p)/2 % clipped from
//                          each tail, i.e. the (100-p)/2 and (100+p)/2
//                          percentiles of x. Interpolated within a bin.
//   kEntropy               TensorRT's KL-divergence threshold search
//                          (EntropyRange in calibrator_histogram.h):
//                          symmetric on the histogram of |x| with
//                          (qmax-qmin+1)/2 levels (128 for 8 bits), range
//                          [-t, t]; asymmetric on the histogram of x with
//                          qmax-qmin+1 levels (256), over windows growing
//                          from the bin holding 0 (for non-negative data:
//                          exactly TensorRT's [0, t]). Windows start at
//                          `levels` bins, so more bins allow tighter ranges
//                          (2048 bins, uint8: at least 1/8 of the range).
//   kMse                   the range minimizing the expected squared
//                          quantize-dequantize error computed from the
//                          histogram (MseRange in calibrator_histogram.h).
// Every range is finally clamped to the data's own [min, max]; the
// parameters then include 0 (asymmetric) or are symmetric around it.
//
// Histogram methods keep num_bins counts whose range grows with the data, so
// memory does not depend on the number of batches, and raw data is never
// stored. NaN or Inf in a batch is an error naming the tensor, and the
// batch is then not counted. A TensorCalibrator is not thread-safe;
// CalibrationSession serializes observations.
#ifndef QUANTD_ENGINE_CALIBRATION_CALIBRATOR_H_
#define QUANTD_ENGINE_CALIBRATION_CALIBRATOR_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "engine/calibration/calibrator_histogram.h"
#include "engine/ir/quantization_plan.h"
#include "kernels/tensor.h"

namespace quantd {

enum class CalibrationMethod {
  kMinMax,
  kMovingAverageMinMax,
  kPercentile,
  kEntropy,
  kMse
};

// "minmax", "moving_average_minmax", "percentile", "entropy", "mse".
const char* CalibrationMethodName(CalibrationMethod method);

struct CalibrationOptions {
  CalibrationMethod method = CalibrationMethod::kMinMax;
  // kPercentile: percentage of values kept, in (0, 100].
  float percentile = 99.99f;
  // kMovingAverageMinMax: weight of the running range, in [0, 1).
  float moving_average_momentum = 0.9f;
  // Histogram methods: bins, in [128, 65536].
  int num_bins = 2048;
  // Symmetric ranges [-t, t] (zero point 0 for signed types).
  bool symmetric = false;
  // Target activation type.
  QuantType type = QuantType::kUInt8;

  absl::Status Validate() const;
};

// The clipping range a method chose, before 0 is included.
struct CalibrationRange {
  float min = 0;
  float max = 0;
};

class TensorCalibrator {
 public:
  // Fails if the options are invalid.
  static absl::StatusOr<TensorCalibrator> Create(
      std::string name, const CalibrationOptions& options);

  // f32 batches only; empty batches are ignored.
  absl::Status Observe(const Tensor& batch);

  // FAILED_PRECONDITION before any non-empty batch was observed.
  absl::StatusOr<CalibrationRange> ComputeRange() const;
  // Per-tensor parameters for options.type (see ActivationParamsForRange).
  absl::StatusOr<QuantParams> ComputeParams() const;

  const std::string& name() const { return name_; }
  const CalibrationOptions& options() const { return options_; }
  int64_t num_batches() const { return num_batches_; }
  int64_t num_elements() const { return num_elements_; }
  // Nullptr for kMinMax and kMovingAverageMinMax, which need none.
  const CalibrationHistogram* histogram() const {
    return histogram_ ? &*histogram_ : nullptr;
  }

 private:
  TensorCalibrator(std::string name, const CalibrationOptions& options);

  std::string name_;
  CalibrationOptions options_;
  int64_t num_batches_ = 0;
  int64_t num_elements_ = 0;
  // Exact extremes of all data (max_abs for symmetric ranges).
  float min_ = 0, max_ = 0, max_abs_ = 0;
  // kMovingAverageMinMax: averaged batch min and max (or max |x|).
  double average_min_ = 0, average_max_ = 0;
  // Of x, or of |x| when symmetric.
  std::optional<CalibrationHistogram> histogram_;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_CALIBRATION_CALIBRATOR_H_
