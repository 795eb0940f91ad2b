#include "kernels/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// How one axis maps output indices to input taps. Tap t of output o reads
// input index index[o * taps + t] (already clamped) with weight
// weight[o * taps + t].
struct AxisTable {
  bool identity = false;  // output o reads input o, weight 1: no taps stored
  int taps = 1;
  std::vector<int64_t> index;
  std::vector<float> weight;
  std::vector<uint8_t> outside;  // tf_crop_and_resize: 1 = extrapolate
  bool any_outside = false;
};

double OriginalCoordinate(const ResizeParams& p, int64_t o, int64_t in,
                          double scale, double length_resized, double roi_start,
                          double roi_end) {
  const double x = static_cast<double>(o);
  switch (p.coordinate_transformation_mode) {
    case CoordinateTransform::kHalfPixel:
      return (x + 0.5) / scale - 0.5;
    case CoordinateTransform::kPytorchHalfPixel:
      return length_resized > 1 ? (x + 0.5) / scale - 0.5 : 0.0;
    case CoordinateTransform::kAlignCorners:
      return length_resized > 1
                 ? x * static_cast<double>(in - 1) / (length_resized - 1)
                 : 0.0;
    case CoordinateTransform::kAsymmetric:
      return x / scale;
    case CoordinateTransform::kTfHalfPixelForNn:
      return (x + 0.5) / scale;
    case CoordinateTransform::kTfCropAndResize:
      return length_resized > 1
                 ? roi_start * static_cast<double>(in - 1) +
                       x * (roi_end - roi_start) * static_cast<double>(in - 1) /
                           (length_resized - 1)
                 : 0.5 * (roi_start + roi_end) * static_cast<double>(in - 1);
  }
  return 0.0;
}

int64_t NearestIndex(NearestMode mode, double x, double scale) {
  const double fl = std::floor(x);
  const int64_t base = static_cast<int64_t>(fl);
  if (x == fl) return base;
  const double r = x - fl;
  switch (mode) {
    case NearestMode::kRoundPreferFloor:
      return r <= 0.5 ? base : base + 1;
    case NearestMode::kRoundPreferCeil:
      return r < 0.5 ? base : base + 1;
    case NearestMode::kFloor:
      return base;
    case NearestMode::kCeil:
      return base + 1;
    case NearestMode::kLegacy:
      return scale < 1 ? base + 1 : base;
  }
  return base;
}

// Keys' cubic convolution weights for taps at distances 1 + r, r, 1 - r and
// 2 - r from the sample point, r in (0, 1].
void CubicWeights(double a, double r, double w[4]) {
  const double s = 1 - r;
  w[0] = ((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a;
  w[1] = ((a + 2) * r - (a + 3)) * r * r + 1;
  w[2] = ((a + 2) * s - (a + 3)) * s * s + 1;
  w[3] = ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a;
}

bool IsCrop(const ResizeParams& p) {
  return p.coordinate_transformation_mode ==
         CoordinateTransform::kTfCropAndResize;
}

// scale may come from float sizes / in; when in * scale is the output
// length up to float rounding, use the exact ratio.
void SnapScale(int64_t in, int64_t out, double* scale, double* length_resized) {
  *length_resized = static_cast<double>(in) * *scale;
  if (in > 0 && std::fabs(*length_resized - static_cast<double>(out)) <=
                    1e-6 * static_cast<double>(out)) {
    *length_resized = static_cast<double>(out);
    *scale = static_cast<double>(out) / static_cast<double>(in);
  }
}

// The input coordinate of every output index. *identity is set when every
// output o reads exactly input o, which lets the axis store no taps.
std::vector<double> SourceCoordinates(const ResizeParams& p, int64_t in,
                                      int64_t out, double scale,
                                      double length_resized, double roi_start,
                                      double roi_end, bool* identity) {
  const bool crop = IsCrop(p);
  std::vector<double> xs(out);
  *identity = out == in;
  for (int64_t o = 0; o < out; ++o) {
    xs[o] =
        OriginalCoordinate(p, o, in, scale, length_resized, roi_start, roi_end);
    if (crop && (xs[o] < 0 || xs[o] > static_cast<double>(in - 1))) {
      *identity = false;
    } else if (xs[o] != static_cast<double>(o)) {
      *identity = false;
    }
  }
  return xs;
}

// Weights of the four cubic taps base - 1 .. base + 2, r = x - base.
void CubicTapWeights(const ResizeParams& p, int64_t in, int64_t base, double r,
                     double (&cw)[4]) {
  if (r == 1) {
    cw[0] = cw[1] = cw[3] = 0;
    cw[2] = 1;
  } else {
    CubicWeights(p.cubic_coeff_a, r, cw);
  }
  if (p.exclude_outside) {
    double sum = 0;
    for (int k = 0; k < 4; ++k) {
      const int64_t i = base - 1 + k;
      if (i < 0 || i >= in) cw[k] = 0;
      sum += cw[k];
    }
    if (sum != 0) {
      for (double& c : cw) c /= sum;
    }
  }
}

// The taps of one output whose input coordinate x lies inside the input.
void FillTaps(const ResizeParams& p, int64_t in, double x, double scale,
              int64_t* idx, float* w) {
  auto clamp = [in](int64_t i) { return std::clamp<int64_t>(i, 0, in - 1); };
  if (p.mode == ResizeMode::kNearest) {
    idx[0] = clamp(NearestIndex(p.nearest_mode, x, scale));
    w[0] = 1.f;
    return;
  }
  // The left neighbour is the largest index strictly below x, so that the
  // ratio is in (0, 1] (ONNX's reference picks neighbours this way).
  const double fl = std::floor(x);
  const int64_t base =
      x == fl ? static_cast<int64_t>(fl) - 1 : static_cast<int64_t>(fl);
  const double r = x - static_cast<double>(base);
  if (p.mode == ResizeMode::kLinear) {
    idx[0] = clamp(base);
    idx[1] = clamp(base + 1);
    w[0] = static_cast<float>(1 - r);
    w[1] = static_cast<float>(r);
    return;
  }
  double cw[4];
  CubicTapWeights(p, in, base, r, cw);
  for (int k = 0; k < 4; ++k) {
    idx[k] = clamp(base - 1 + k);
    w[k] = static_cast<float>(cw[k]);
  }
}

// Taps that collapse to one input with weight 1 (integer coordinates, e.g.
// linear downsampling by exactly 2 with asymmetric coordinates) make the
// axis a gather.
void CollapseSingleTaps(bool crop, int64_t out, AxisTable* t) {
  if (t->taps <= 1) return;
  bool single = true;
  std::vector<int64_t> picked(out, 0);
  for (int64_t o = 0; o < out && single; ++o) {
    if (crop && t->outside[o]) continue;
    int nonzero = 0;
    for (int k = 0; k < t->taps; ++k) {
      const float w = t->weight[o * t->taps + k];
      if (w == 0) continue;
      ++nonzero;
      if (w != 1.f) single = false;
      picked[o] = t->index[o * t->taps + k];
    }
    if (nonzero != 1) single = false;
  }
  if (single) {
    t->index = std::move(picked);
    t->weight.assign(out, 1.f);
    t->taps = 1;
  }
}

AxisTable BuildAxisTable(const ResizeParams& p, int64_t in, int64_t out,
                         double scale, double roi_start, double roi_end) {
  AxisTable t;
  double length_resized;
  SnapScale(in, out, &scale, &length_resized);
  const bool crop = IsCrop(p);
  bool identity;
  const std::vector<double> xs = SourceCoordinates(
      p, in, out, scale, length_resized, roi_start, roi_end, &identity);
  if (identity) {
    t.identity = true;
    return t;
  }
  if (crop) t.outside.assign(out, 0);
  t.taps = p.mode == ResizeMode::kNearest  ? 1
           : p.mode == ResizeMode::kLinear ? 2
                                           : 4;
  t.index.assign(out * t.taps, 0);
  t.weight.assign(out * t.taps, 0.f);
  for (int64_t o = 0; o < out; ++o) {
    const double x = xs[o];
    int64_t* idx = &t.index[o * t.taps];
    float* w = &t.weight[o * t.taps];
    if (crop && (x < 0 || x > static_cast<double>(in - 1))) {
      t.outside[o] = 1;
      t.any_outside = true;
      w[0] = 1.f;  // index 0: harmless, never read
      continue;
    }
    FillTaps(p, in, x, scale, idx, w);
  }
  CollapseSingleTaps(crop, out, &t);
  return t;
}

struct RowTap {
  int64_t offset;
  float weight;
};

absl::Status CheckResizeArgs(const ResizeParams& params, const Tensor& x,
                             const std::vector<float>& scales,
                             const Shape& out_shape,
                             const std::vector<float>& roi) {
  if (x.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("Resize: input must be f32, got ", x.DebugString()));
  }
  const int rank = x.rank();
  if (static_cast<int>(scales.size()) != rank ||
      static_cast<int>(out_shape.size()) != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Resize: input ", x.DebugString(),
        " needs one scale and one output dim"
        " per axis; got ",
        scales.size(), " scales and output shape ", ShapeToString(out_shape)));
  }
  const bool crop = IsCrop(params);
  if (crop && static_cast<int>(roi.size()) != 2 * rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "Resize: tf_crop_and_resize needs a roi of 2 * rank = ", 2 * rank,
        " values (starts then ends), got ", roi.size()));
  }
  for (int d = 0; d < rank; ++d) {
    if (!(scales[d] > 0) || !std::isfinite(scales[d])) {
      return absl::InvalidArgumentError(
          absl::StrCat("Resize: scale ", scales[d], " of axis ", d,
                       " must be positive and finite"));
    }
    if (out_shape[d] < 0 || (x.dim(d) == 0 && out_shape[d] != 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat("Resize: output dim ", out_shape[d], " of axis ", d,
                       " is invalid for input dim ", x.dim(d),
                       " (must be >= 0, and 0 when the input dim is 0)"));
    }
    if (crop && (!std::isfinite(roi[d]) || !std::isfinite(roi[rank + d]))) {
      return absl::InvalidArgumentError(
          absl::StrCat("Resize: roi of axis ", d, " is not finite"));
    }
  }
  return absl::OkStatus();
}

std::vector<AxisTable> BuildAxisTables(const ResizeParams& params,
                                       const Tensor& x,
                                       const std::vector<float>& scales,
                                       const Shape& out_shape,
                                       const std::vector<float>& roi) {
  const int rank = x.rank();
  const bool crop = IsCrop(params);
  std::vector<AxisTable> tables(rank);
  for (int d = 0; d < rank; ++d) {
    tables[d] = BuildAxisTable(params, x.dim(d), out_shape[d], scales[d],
                               crop ? roi[d] : 0.0, crop ? roi[rank + d] : 0.0);
  }
  return tables;
}

// Whether resizing the last axis of every input row first, then combining
// whole rows, costs fewer multiply-adds than gathering row_taps * taps inputs
// per output. It pays when both the last axis and outer axes interpolate
// with several taps: bicubic x2 goes from 16 to 6 per output, most of them
// contiguous. This is the spec's nested 1-D interpolation, innermost axis
// first.
bool LastAxisFirstIsCheaper(const std::vector<AxisTable>& tables,
                            const Tensor& x, int64_t rows) {
  const int last = x.rank() - 1;
  const AxisTable& lt = tables[last];
  if (lt.identity || lt.taps <= 1) return false;
  double row_tap_count = 1;
  for (int d = 0; d < last; ++d) {
    if (!tables[d].identity) row_tap_count *= tables[d].taps;
  }
  const int64_t in_rows = x.num_elements() / x.dim(last);
  const double direct = static_cast<double>(rows) * row_tap_count * lt.taps;
  const double two_pass = static_cast<double>(in_rows) * lt.taps +
                          static_cast<double>(rows) * row_tap_count;
  return two_pass < direct;
}

// Resizes every row of src (in_rows x in_width) along the last axis into
// dst (in_rows x width).
void ResizeLastAxis(const AxisTable& lt, const float* src, int64_t in_rows,
                    int64_t in_width, int64_t width, bool parallel,
                    float* dst) {
  const int n = lt.taps;
  const int64_t* idx = lt.index.data();
  const float* w = lt.weight.data();
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t r = 0; r < in_rows; ++r) {
    const float* xr = src + r * in_width;
    float* nr = dst + r * width;
    for (int64_t j = 0; j < width; ++j) {
      float acc = 0;
      for (int k = 0; k < n; ++k) acc += w[j * n + k] * xr[idx[j * n + k]];
      nr[j] = acc;
    }
  }
}

// What the row pass reads: the input, or the input with its last axis
// already resized (then `last` is an identity table).
struct RowSource {
  const float* data;
  std::vector<int64_t> strides;  // per axis, in elements of data
  const AxisTable* last;         // still to apply along each row
};

// Sets *row_taps to the (source offset, weight) pairs that the output row
// at `coord` combines: the cartesian product of the taps of every axis but
// the last. Returns false when the row lies outside the roi.
bool CollectRowTaps(const std::vector<AxisTable>& tables,
                    const std::vector<int64_t>& coord,
                    const std::vector<int64_t>& strides,
                    std::vector<RowTap>* row_taps, std::vector<RowTap>* next) {
  const int last = static_cast<int>(tables.size()) - 1;
  row_taps->assign(1, RowTap{0, 1.f});
  for (int d = 0; d < last; ++d) {
    const AxisTable& t = tables[d];
    const int64_t c = coord[d];
    if (t.identity) {
      for (RowTap& rt : *row_taps) rt.offset += c * strides[d];
      continue;
    }
    if (t.any_outside && t.outside[c]) return false;
    next->clear();
    for (const RowTap& rt : *row_taps) {
      for (int k = 0; k < t.taps; ++k) {
        const float w = t.weight[c * t.taps + k];
        if (w == 0) continue;
        next->push_back(RowTap{rt.offset + t.index[c * t.taps + k] * strides[d],
                               rt.weight * w});
      }
    }
    row_taps->swap(*next);
  }
  return true;
}

// yr = rw * (xr resized along the last axis by lt) for the first row tap,
// yr += that for the others.
void AddResizedRow(const AxisTable& lt, const float* xr, float rw, bool first,
                   int64_t width, float* yr) {
  if (lt.identity) {
    if (first) {
      for (int64_t j = 0; j < width; ++j) yr[j] = rw * xr[j];
    } else {
      for (int64_t j = 0; j < width; ++j) yr[j] += rw * xr[j];
    }
  } else if (lt.taps == 1) {
    const int64_t* idx = lt.index.data();
    if (first) {
      for (int64_t j = 0; j < width; ++j) yr[j] = rw * xr[idx[j]];
    } else {
      for (int64_t j = 0; j < width; ++j) yr[j] += rw * xr[idx[j]];
    }
  } else {
    const int n = lt.taps;
    const int64_t* idx = lt.index.data();
    const float* w = lt.weight.data();
    for (int64_t j = 0; j < width; ++j) {
      float acc = 0;
      for (int k = 0; k < n; ++k) acc += w[j * n + k] * xr[idx[j * n + k]];
      yr[j] = first ? rw * acc : yr[j] + rw * acc;
    }
  }
}

// Writes every output row (rows x out_shape.back()) as a weighted sum of
// source rows.
void ResizeRows(const std::vector<AxisTable>& tables, const Shape& out_shape,
                const RowSource& source, int64_t rows, float extrapolation,
                bool parallel, float* dst) {
  const int rank = static_cast<int>(out_shape.size());
  const int last = rank - 1;
  const int64_t width = out_shape[last];
  const AxisTable& last_outside = tables[last];
#pragma omp parallel if (parallel)
  {
    std::vector<RowTap> row_taps, next;
    std::vector<int64_t> coord(rank, 0);
#pragma omp for schedule(static)
    for (int64_t row = 0; row < rows; ++row) {
      float* yr = dst + row * width;
      int64_t rem = row;
      for (int d = last - 1; d >= 0; --d) {
        coord[d] = rem % out_shape[d];
        rem /= out_shape[d];
      }
      const bool row_outside =
          !CollectRowTaps(tables, coord, source.strides, &row_taps, &next);
      if (row_outside || row_taps.empty()) {
        std::fill(yr, yr + width, row_outside ? extrapolation : 0.f);
        continue;
      }
      for (size_t r = 0; r < row_taps.size(); ++r) {
        AddResizedRow(*source.last, source.data + row_taps[r].offset,
                      row_taps[r].weight, r == 0, width, yr);
      }
      if (last_outside.any_outside) {
        for (int64_t j = 0; j < width; ++j) {
          if (last_outside.outside[j]) yr[j] = extrapolation;
        }
      }
    }
  }
}

}  // namespace

const char* ResizeModeName(ResizeMode mode) {
  switch (mode) {
    case ResizeMode::kNearest:
      return "nearest";
    case ResizeMode::kLinear:
      return "linear";
    case ResizeMode::kCubic:
      return "cubic";
  }
  return "?";
}

const char* CoordinateTransformName(CoordinateTransform mode) {
  switch (mode) {
    case CoordinateTransform::kHalfPixel:
      return "half_pixel";
    case CoordinateTransform::kPytorchHalfPixel:
      return "pytorch_half_pixel";
    case CoordinateTransform::kAlignCorners:
      return "align_corners";
    case CoordinateTransform::kAsymmetric:
      return "asymmetric";
    case CoordinateTransform::kTfHalfPixelForNn:
      return "tf_half_pixel_for_nn";
    case CoordinateTransform::kTfCropAndResize:
      return "tf_crop_and_resize";
  }
  return "?";
}

const char* NearestModeName(NearestMode mode) {
  switch (mode) {
    case NearestMode::kRoundPreferFloor:
      return "round_prefer_floor";
    case NearestMode::kRoundPreferCeil:
      return "round_prefer_ceil";
    case NearestMode::kFloor:
      return "floor";
    case NearestMode::kCeil:
      return "ceil";
    case NearestMode::kLegacy:
      return "legacy";
  }
  return "?";
}

absl::Status Resize(const ResizeParams& params, const Tensor& x,
                    const std::vector<float>& scales, const Shape& out_shape,
                    const std::vector<float>& roi, Tensor* y) {
  if (y == nullptr) return absl::InvalidArgumentError("Resize: y is null");
  QUANTD_RETURN_IF_ERROR(CheckResizeArgs(params, x, scales, out_shape, roi));
  QUANTD_ASSIGN_OR_RETURN(int64_t total, CheckedNumElements(out_shape));

  const int rank = x.rank();
  Tensor out(DataType::kFloat32, out_shape);
  if (total == 0) {
    *y = std::move(out);
    return absl::OkStatus();
  }
  if (rank == 0) {
    out.mutable_data<float>()[0] = x.data<float>()[0];
    *y = std::move(out);
    return absl::OkStatus();
  }

  const std::vector<AxisTable> tables =
      BuildAxisTables(params, x, scales, out_shape, roi);
  const int last = rank - 1;
  const int64_t width = out_shape[last];
  const int64_t rows = total / width;
  // Below a few thousand outputs the threads cost more than they save.
  const bool parallel = total >= 4096;

  RowSource source{x.data<float>(), std::vector<int64_t>(rank, 1),
                   &tables[last]};
  for (int d = rank - 2; d >= 0; --d) {
    source.strides[d] = source.strides[d + 1] * x.dim(d + 1);
  }
  AxisTable identity_table;
  identity_table.identity = true;
  Tensor last_resized;
  if (LastAxisFirstIsCheaper(tables, x, rows)) {
    const int64_t in_width = x.dim(last);
    const int64_t in_rows = x.num_elements() / in_width;
    last_resized = Tensor(DataType::kFloat32, {in_rows, width});
    ResizeLastAxis(tables[last], x.data<float>(), in_rows, in_width, width,
                   parallel, last_resized.mutable_data<float>());
    source.data = last_resized.data<float>();
    for (int d = 0; d < last; ++d) {
      source.strides[d] = source.strides[d] / in_width * width;
    }
    source.last = &identity_table;
  }
  ResizeRows(tables, out_shape, source, rows, params.extrapolation_value,
             parallel, out.mutable_data<float>());
  *y = std::move(out);
  return absl::OkStatus();
}

}  // namespace quantd
