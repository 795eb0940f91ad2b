// The numeric core of activation calibration (engine/calibration/calibrator.h):
// a fixed-size histogram whose range grows as batches arrive, and the range
// searches that run on it (percentile, TensorRT-style entropy, MSE).
//
//   CalibrationHistogram h(2048);
//   h.Add(values, /*lo=*/batch_min, /*hi=*/batch_max);   // per batch
//   double t = h.Quantile(0.9999);
//
// Memory is num_bins doubles whatever the number of batches: raw data is
// never kept.
#ifndef QUANTD_ENGINE_CALIBRATION_CALIBRATOR_HISTOGRAM_H_
#define QUANTD_ENGINE_CALIBRATION_CALIBRATOR_HISTOGRAM_H_

#include <cstdint>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "engine/ir/quantization_plan.h"

namespace quantd {

// Per-tensor parameters for the clipping range [lo, hi] (ONNX Runtime's
// conventions, so that exported QDQ models match what ORT would produce):
//   asymmetric  range widened to include 0, scale = (hi - lo) / (qmax - qmin),
//               zero point = qmin - round(lo / scale), clamped
//   symmetric   amax = max(|lo|, |hi|); signed types use [-qmax, qmax]
//               (so +-amax map to +-qmax) with no zero point (empty, as
//               QuantParams documents); unsigned types use their full range,
//               scale = 2 amax / (qmax - qmin) and zero point (qmin+qmax+1)/2
//               (128 for uint8).
// An empty range (all zeros) gets scale 1: any positive scale represents 0
// exactly, and it stays finite. Scales are kept within [FLT_MIN, FLT_MAX].
QuantParams ActivationParamsForRange(double lo, double hi, QuantType type,
                                     bool symmetric);

class CalibrationHistogram {
 public:
  explicit CalibrationHistogram(int num_bins);

  // Counts `values`, all finite and within [lo, hi] (the caller's batch
  // min/max). The histogram's range always includes 0, because every
  // quantized range does; it grows to cover [lo, hi] first.
  void Add(absl::Span<const float> values, float lo, float hi);
  // Same for |values|, with hi = max |value| (symmetric calibration).
  void AddAbsolute(absl::Span<const float> values, float hi);

  bool empty() const { return total_ == 0; }
  int num_bins() const { return static_cast<int>(counts_.size()); }
  double lo() const { return lo_; }
  double bin_width() const { return width_; }
  double hi() const { return lo_ + width_ * counts_.size(); }
  double bin_center(int i) const { return lo_ + (i + 0.5) * width_; }
  double total() const { return total_; }
  const std::vector<double>& counts() const { return counts_; }

  // The value below which `fraction` (in [0, 1]) of the counts lie,
  // interpolating linearly inside a bin (values are assumed uniform within
  // a bin, which is exact to within one bin width).
  double Quantile(double fraction) const;

 private:
  void Cover(double lo, double hi);
  template <typename Transform>
  void Count(absl::Span<const float> values, Transform transform);

  std::vector<double> counts_;
  double lo_ = 0;
  double width_ = 0;  // 0 until the first non-empty batch
  double total_ = 0;
};

// TensorRT's entropy calibration: the window of bins [lo, hi] minimizing
// KL(P || Q), where P is the histogram clipped to the window (outside mass
// folded into the edge bins) and Q is the window quantized to `levels`
// levels. Windows grow outward from the bin holding 0, one bin per side per
// step, and are cut at the histogram's ends, so for a histogram of |x| or of
// post-ReLU x they are TensorRT's [0, t], and for two-sided x they are ONNX
// Runtime's windows centered on zero. Windows start at `levels` bins, so
// the result is never narrower than levels / num_bins of the histogram's
// range (as in TensorRT; more bins allow tighter ranges). Every window is
// tried for up to 2048 bins, ~1024 evenly spaced ones for more.
std::pair<double, double> EntropyRange(const CalibrationHistogram& h,
                                       int levels);

// The clipping range minimizing the expected squared error of
// quantize-dequantize over the histogram: counts inside the representable
// range cost scale^2 / 12 (uniform rounding error), counts outside cost the
// squared distance from their bin center to the nearest representable
// value. Each bound is found by a grid search (100 candidates between 0 and
// the data's bound, then 100 between the best one's neighbours); the two
// bounds of an asymmetric range by three rounds of coordinate descent. For
// symmetric calibration the histogram holds |x| and the range is [-t, t].
std::pair<double, double> MseRange(const CalibrationHistogram& h,
                                   double data_lo, double data_hi,
                                   QuantType type, bool symmetric);

// Expected squared quantize-dequantize error per element of the histogram's
// data for the clipping range [lo, hi]; exposed for tests.
double ExpectedQdqError(const CalibrationHistogram& h, double lo, double hi,
                        QuantType type, bool symmetric);

}  // namespace quantd

#endif  // QUANTD_ENGINE_CALIBRATION_CALIBRATOR_HISTOGRAM_H_
