// Resizing of f32 tensors of any rank with the semantics of ONNX Resize
// (opsets 10, 11, 13) and Upsample (opsets 7, 9): nearest, n-linear and
// n-cubic interpolation over every axis whose coordinate mapping is not the
// identity, six coordinate transformation modes, four nearest rounding modes
// plus the rounding of opset <= 10, and crop-and-resize with extrapolation.
//
//   ResizeParams p;
//   p.mode = ResizeMode::kLinear;
//   p.coordinate_transformation_mode = CoordinateTransform::kAlignCorners;
//   Tensor y;
//   absl::Status s = Resize(p, x, /*scales=*/{1, 1, 2, 2},
//                           /*out_shape=*/{1, 3, 64, 64}, /*roi=*/{}, &y);
//
// Coordinates (ONNX 1.12 spec and its reference implementation): each
// output index x_resized along an axis maps to x_original in the input,
// with scale the axis' scale and length_resized = length_original * scale:
//   half_pixel             (x_resized + 0.5) / scale - 0.5
//   pytorch_half_pixel     as half_pixel, or 0 when length_resized <= 1
//   align_corners          x_resized * (length_original - 1) /
//                          (length_resized - 1), or 0 when length_resized <= 1
//   asymmetric             x_resized / scale
//   tf_half_pixel_for_nn   (x_resized + 0.5) / scale
//   tf_crop_and_resize     start * (length_original - 1) + x_resized *
//                          (end - start) * (length_original - 1) /
//                          (length_resized - 1), or 0.5 * (start + end) *
//                          (length_original - 1) when length_resized <= 1;
//                          an output whose x_original falls outside
//                          [0, length_original - 1] on any axis is
//                          extrapolation_value.
// length_resized is the real number length_original * scale, not the
// integer output length (they differ when scales, not sizes, define the
// output: 4 * 0.6 = 2.4 for an output of 2), as in ONNX's reference
// implementation and test data. A scale whose length_resized is within
// float rounding of the integer output length is taken as exactly
// out / in, so that scales computed in float from sizes behave as the
// exact ratio.
//
// Interpolation reads neighbours clamped to the input (edge padding): linear
// uses floor(x) and floor(x) + 1, cubic floor(x) - 1 .. floor(x) + 2 (for an
// integer x, x - 1 stands for floor(x), so the ratio is in (0, 1] as in ONNX's
// reference) with Keys' kernel of coefficient cubic_coeff_a. With
// exclude_outside, cubic zeroes the weights of neighbours outside the input
// and renormalizes the rest (linear and nearest ignore it: for linear it
// changes nothing). Nearest picks floor(x) or ceil(x) by nearest_mode and
// clamps it.
//
// Per-axis index and weight tables are built once per call; the loop over
// output rows runs in parallel with OpenMP.
#ifndef QUANTD_KERNELS_RESIZE_H_
#define QUANTD_KERNELS_RESIZE_H_

#include <vector>

#include "absl/status/status.h"
#include "kernels/tensor.h"

namespace quantd {

enum class ResizeMode { kNearest, kLinear, kCubic };

enum class CoordinateTransform {
  kHalfPixel,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize,
};

enum class NearestMode {
  kRoundPreferFloor,  // round half down
  kRoundPreferCeil,   // round half up
  kFloor,
  kCeil,
  // Resize-10 and Upsample, which had no nearest_mode: floor on an axis
  // whose scale is >= 1, ceil on one whose scale is < 1. This is what
  // ONNX's opset-10 test data expects and what ONNX Runtime does.
  kLegacy,
};

struct ResizeParams {
  ResizeMode mode = ResizeMode::kNearest;
  CoordinateTransform coordinate_transformation_mode =
      CoordinateTransform::kHalfPixel;
  NearestMode nearest_mode = NearestMode::kRoundPreferFloor;
  float cubic_coeff_a = -0.75f;
  bool exclude_outside = false;
  // Only with kTfCropAndResize.
  float extrapolation_value = 0.f;
};

// Names as ONNX spells them ("half_pixel", "round_prefer_floor", ...;
// kLegacy is "legacy"), for messages.
const char* ResizeModeName(ResizeMode mode);
const char* CoordinateTransformName(CoordinateTransform mode);
const char* NearestModeName(NearestMode mode);

// x: f32 of any rank. scales and out_shape: one per axis of x; scales must
// be positive and finite, out dims >= 0 (an axis of length 0 must stay 0).
// roi: [start_0, ..., start_{r-1}, end_0, ..., end_{r-1}] in normalized
// coordinates, used (and required) only with kTfCropAndResize. *y becomes a
// new f32 tensor of out_shape (y may be &x).
absl::Status Resize(const ResizeParams& params, const Tensor& x,
                    const std::vector<float>& scales, const Shape& out_shape,
                    const std::vector<float>& roi, Tensor* y);

}  // namespace quantd

#endif  // QUANTD_KERNELS_RESIZE_H_
