#include "engine/calibration/calibrator_histogram.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <functional>
#include <limits>

#include "kernels/quantize.h"

namespace quantd {

QuantParams ActivationParamsForRange(double lo, double hi, QuantType type,
                                     bool symmetric) {
  QuantParams p;
  p.type = type;
  p.axis = -1;
  int32_t qmin = QuantTypeMin(type);
  const int32_t qmax = QuantTypeMax(type);
  const bool is_signed = qmin < 0;
  if (symmetric) {
    const double amax = std::max(std::fabs(lo), std::fabs(hi));
    if (is_signed) qmin = -qmax;
    lo = -amax;
    hi = amax;
  } else {
    lo = std::min(lo, 0.0);
    hi = std::max(hi, 0.0);
  }
  double scale = (hi - lo) / (qmax - qmin);
  if (!(scale > 0)) scale = 1;
  scale = std::clamp(scale, static_cast<double>(kMinQuantScale),
                     static_cast<double>(FLT_MAX));
  p.scales = {static_cast<float>(scale)};
  p.qmin = qmin;
  p.qmax = qmax;
  if (!symmetric) {
    const double zp = std::nearbyint(qmin - lo / scale);
    p.zero_points = {static_cast<int32_t>(std::clamp<double>(zp, qmin, qmax))};
  } else if (!is_signed) {
    p.zero_points = {(qmin + qmax + 1) / 2};
  }
  return p;
}

CalibrationHistogram::CalibrationHistogram(int num_bins)
    : counts_(std::max(num_bins, 1), 0.0) {}

// Growth keeps the bin edges on the current grid and multiplies the bin width
// by a whole number k, so every old bin lands entirely inside one new bin.
// The merge is therefore exact: the histogram always equals the histogram of
// all data seen on the final grid, whatever the batching (proportional
// re-binning, as ONNX Runtime and TensorRT do, smears counts by up to a bin
// per growth and the error accumulates over many small growths). Only the
// occupied bins and the new data need covering, so the range may also shift
// without widening (k = 1), and empty slack never compounds: the range stays
// under twice the data's span (plus two bins), i.e. at least half of the
// bins cover data.
void CalibrationHistogram::Cover(double lo, double hi) {
  const int n = num_bins();
  lo = std::min(lo, 0.0);
  hi = std::max(hi, 0.0);
  if (width_ == 0) {
    // All-zero data still needs a positive width for later growth.
    const double span = hi > lo ? hi - lo : 1e-30;
    lo_ = lo;
    width_ = span / n;
    return;
  }
  if (lo >= lo_ && hi <= this->hi()) return;
  int first = n, last = -1;
  for (int i = 0; i < n; ++i) {
    if (counts_[i] != 0) first = std::min(first, i), last = i;
  }
  // Grid lines, counted in current bins from lo_, that the new range must
  // span: the new data and every occupied bin.
  double begin = std::floor((lo - lo_) / width_);
  double end = std::ceil((hi - lo_) / width_);
  if (last >= 0) {
    begin = std::min<double>(begin, first);
    end = std::max<double>(end, last + 1);
  }
  const double k = std::max(1.0, std::ceil((end - begin) / n));
  std::vector<double> merged(n, 0.0);
  for (int i = first; i <= last; ++i) {
    const double target = std::floor((i - begin) / k);
    merged[static_cast<int>(std::clamp<double>(target, 0, n - 1))] +=
        counts_[i];
  }
  counts_ = std::move(merged);
  lo_ += begin * width_;
  width_ *= k;
  // Rounding in lo_ + n * width_ must not leave hi just outside.
  if (this->hi() < hi) width_ = std::nextafter(width_, HUGE_VAL);
}

template <typename Transform>
void CalibrationHistogram::Count(absl::Span<const float> values,
                                 Transform transform) {
  const int n = num_bins();
  const double inv = 1.0 / width_;
  for (float v : values) {
    const double x = (transform(v) - lo_) * inv;
    const int i = static_cast<int>(std::clamp(x, 0.0, n - 1.0));
    counts_[i] += 1;
  }
  total_ += values.size();
}

void CalibrationHistogram::Add(absl::Span<const float> values, float lo,
                               float hi) {
  if (values.empty()) return;
  Cover(lo, hi);
  Count(values, [](float v) { return static_cast<double>(v); });
}

void CalibrationHistogram::AddAbsolute(absl::Span<const float> values,
                                       float hi) {
  if (values.empty()) return;
  Cover(0, hi);
  Count(values, [](float v) { return std::fabs(static_cast<double>(v)); });
}

double CalibrationHistogram::Quantile(double fraction) const {
  if (empty()) return 0;
  const double target = std::clamp(fraction, 0.0, 1.0) * total_;
  double below = 0;
  int last = 0;
  for (int i = 0; i < num_bins(); ++i) {
    if (counts_[i] == 0) continue;
    last = i;
    if (below + counts_[i] >= target) {
      return lo_ + (i + (target - below) / counts_[i]) * width_;
    }
    below += counts_[i];
  }
  return lo_ + (last + 1) * width_;
}

namespace {

// Zero entries get eps and the distribution is renormalized, so that KL is
// finite. (ONNX Runtime subtracts the added mass from nonzero entries
// instead, which can make small entries negative.)
void Smooth(std::vector<double>& p) {
  constexpr double kEps = 1e-4;
  double sum = 0;
  for (double& v : p) {
    if (v == 0) v = kEps;
    sum += v;
  }
  for (double& v : p) v /= sum;
}

}  // namespace

std::pair<double, double> EntropyRange(const CalibrationHistogram& h,
                                       int levels) {
  const int n = h.num_bins();
  const std::vector<double>& c = h.counts();
  if (h.empty() || n <= levels) return {h.lo(), h.hi()};
  std::vector<double> prefix(n + 1, 0.0);
  for (int i = 0; i < n; ++i) prefix[i + 1] = prefix[i] + c[i];
  const int zero_bin = std::clamp(
      static_cast<int>(std::floor(-h.lo() / h.bin_width())), 0, n - 1);
  const int max_half = std::max(zero_bin, n - 1 - zero_bin);
  // Every window for up to 2048 bins (TensorRT's default); ~1024 windows
  // beyond, so that the search stays O(1024 * n).
  const int stride = n <= 2048 ? 1 : n / 1024;

  double best_kl = std::numeric_limits<double>::infinity();
  int best_begin = 0, best_end = n;
  std::vector<double> p, q;
  for (int half = 0; half <= max_half; half += stride) {
    int begin = std::max(0, zero_bin - half);
    int end = std::min(n, zero_bin + half + 1);
    if (half + stride > max_half) begin = 0, end = n;  // always try it all
    const int len = end - begin;
    if (len < levels) continue;
    // P: the window, with the clipped mass folded into its edge bins.
    p.assign(c.begin() + begin, c.begin() + end);
    p.front() += prefix[begin];
    p.back() += prefix[n] - prefix[end];
    // Q: each of `levels` chunks of the unfolded window spreads its mass
    // evenly over the bins where P is nonzero (zero bins stay zero, as in
    // TensorRT).
    q.assign(len, 0.0);
    for (int l = 0; l < levels; ++l) {
      const int b0 = static_cast<int>(int64_t{l} * len / levels);
      const int b1 = static_cast<int>(int64_t{l + 1} * len / levels);
      const double mass = prefix[begin + b1] - prefix[begin + b0];
      int nonzero = 0;
      for (int b = b0; b < b1; ++b) nonzero += p[b] != 0;
      if (nonzero == 0) continue;
      for (int b = b0; b < b1; ++b) {
        if (p[b] != 0) q[b] = mass / nonzero;
      }
    }
    const double total = prefix[n];
    for (double& v : p) v /= total;
    const double q_total = prefix[end] - prefix[begin];
    if (q_total > 0) {
      for (double& v : q) v /= q_total;
    }
    Smooth(p);
    Smooth(q);
    double kl = 0;
    for (int b = 0; b < len; ++b) kl += p[b] * std::log(p[b] / q[b]);
    if (kl < best_kl) {
      best_kl = kl;
      best_begin = begin;
      best_end = end;
    }
    if (begin == 0 && end == n) break;
  }
  return {h.lo() + best_begin * h.bin_width(),
          h.lo() + best_end * h.bin_width()};
}

double ExpectedQdqError(const CalibrationHistogram& h, double lo, double hi,
                        QuantType type, bool symmetric) {
  if (h.empty()) return 0;
  const QuantParams p = ActivationParamsForRange(lo, hi, type, symmetric);
  const double scale = p.scales[0];
  const double zp = p.zero_points.empty() ? 0 : p.zero_points[0];
  double low = (p.qmin - zp) * scale;
  double high = (p.qmax - zp) * scale;
  if (symmetric) {  // the histogram holds |x|
    high = std::min(-low, high);
    low = -high;
  }
  const double rounding = scale * scale / 12;
  double err = 0;
  const std::vector<double>& c = h.counts();
  for (int i = 0; i < h.num_bins(); ++i) {
    if (c[i] == 0) continue;
    const double x = h.bin_center(i);
    double e = rounding;
    if (x > high) e = (x - high) * (x - high);
    if (x < low) e = (x - low) * (x - low);
    err += c[i] * e;
  }
  return err / h.total();
}

namespace {

// Minimizes f over t in (0, bound] (bound may be negative: then t runs over
// [bound, 0)): a grid of 100, then 100 more between the best's neighbours.
double Search(const std::function<double(double)>& f, double bound) {
  if (bound == 0) return 0;
  constexpr int kSteps = 100;
  double best_t = bound, best = f(bound);
  for (int k = 1; k < kSteps; ++k) {
    const double t = bound * k / kSteps;
    const double e = f(t);
    if (e < best) best = e, best_t = t;
  }
  const double step = bound / kSteps;
  const double from = best_t - step;
  for (int k = 1; k < 2 * kSteps; ++k) {
    const double t = from + 2 * step * k / (2 * kSteps);
    if (std::fabs(t) > std::fabs(bound) || t * bound <= 0) continue;
    const double e = f(t);
    if (e < best) best = e, best_t = t;
  }
  return best_t;
}

}  // namespace

std::pair<double, double> MseRange(const CalibrationHistogram& h,
                                   double data_lo, double data_hi,
                                   QuantType type, bool symmetric) {
  if (symmetric) {
    const double amax = std::max(std::fabs(data_lo), std::fabs(data_hi));
    const double t = Search(
        [&](double t) { return ExpectedQdqError(h, -t, t, type, true); }, amax);
    return {-t, t};
  }
  const double lo_bound = std::min(data_lo, 0.0);
  const double hi_bound = std::max(data_hi, 0.0);
  double lo = lo_bound, hi = hi_bound;
  for (int round = 0; round < 3; ++round) {
    hi = Search(
        [&](double t) { return ExpectedQdqError(h, lo, t, type, false); },
        hi_bound);
    lo = Search(
        [&](double t) { return ExpectedQdqError(h, t, hi, type, false); },
        lo_bound);
  }
  return {lo, hi};
}

}  // namespace quantd
