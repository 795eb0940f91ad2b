#include "kernels/resize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

// An independent, deliberately naive Resize: every output element is
// computed on its own from the formulas of the ONNX 1.12 spec, with the
// neighbour selection of ONNX's reference implementation
// (onnx/backend/test/case/node/resize.py): the n nearest positions of the
// edge-padded input, ties to the lower index, coefficients from the ratio in
// (0, 1], and the n-d result as the sum over the cartesian product of every
// axis' taps (n^rank terms, in double). It shares no code with the kernel.
//
// Departures from resize.py, each following the spec text instead:
// pytorch_half_pixel maps to 0 (not -0.5) when length_resized <= 1, and
// exclude_outside is applied only to cubic (the spec documents it with
// cubic; for linear it makes no difference). kLegacy nearest is floor when
// scale >= 1 and ceil when scale < 1 (opset-10 test data).
//
// scales[d] and lengths[d] (length_resized) are given in double so the
// reference sees exact values: for a sizes-defined output, scale = out / in
// and length = out; for a scales-defined one, length = in * scale.
struct ReferenceAxis {
  double scale;
  double length;
};

Tensor ResizeReferenceForTest(const ResizeParams& p, const Tensor& x,
                              const std::vector<ReferenceAxis>& axes,
                              const Shape& out_shape,
                              const std::vector<float>& roi) {
  const int rank = x.rank();
  Tensor y(DataType::kFloat32, out_shape);
  const int64_t total = y.num_elements();
  std::vector<int64_t> in_strides(rank, 1);
  for (int d = rank - 2; d >= 0; --d)
    in_strides[d] = in_strides[d + 1] * x.dim(d + 1);

  for (int64_t e = 0; e < total; ++e) {
    std::vector<int64_t> o(rank);
    int64_t rem = e;
    for (int d = rank - 1; d >= 0; --d) {
      o[d] = rem % out_shape[d];
      rem /= out_shape[d];
    }
    // Per axis: input indices (unclamped) and coefficients.
    std::vector<std::vector<int64_t>> idxs(rank);
    std::vector<std::vector<double>> coeffs(rank);
    bool extrapolate = false;
    for (int d = 0; d < rank; ++d) {
      const double in = static_cast<double>(x.dim(d));
      const double s = axes[d].scale;
      const double len = axes[d].length;
      const double xr = static_cast<double>(o[d]);
      double xo = 0;
      switch (p.coordinate_transformation_mode) {
        case CoordinateTransform::kHalfPixel:
          xo = (xr + 0.5) / s - 0.5;
          break;
        case CoordinateTransform::kPytorchHalfPixel:
          xo = len > 1 ? (xr + 0.5) / s - 0.5 : 0;
          break;
        case CoordinateTransform::kAlignCorners:
          xo = len > 1 ? xr * (in - 1) / (len - 1) : 0;
          break;
        case CoordinateTransform::kAsymmetric:
          xo = xr / s;
          break;
        case CoordinateTransform::kTfHalfPixelForNn:
          xo = (xr + 0.5) / s;
          break;
        case CoordinateTransform::kTfCropAndResize: {
          const double start = roi[d], end = roi[rank + d];
          xo = len > 1 ? start * (in - 1) +
                             xr * (end - start) * (in - 1) / (len - 1)
                       : 0.5 * (start + end) * (in - 1);
          if (xo < 0 || xo > in - 1) extrapolate = true;
          break;
        }
      }
      const double ratio = xo == std::floor(xo) ? 1.0 : xo - std::floor(xo);
      std::vector<double> c;
      switch (p.mode) {
        case ResizeMode::kNearest: {
          if (ratio == 1) {
            c = {0, 1};
            break;
          }
          switch (p.nearest_mode) {
            case NearestMode::kRoundPreferFloor:
              c = {ratio <= 0.5 ? 1.0 : 0.0, ratio > 0.5 ? 1.0 : 0.0};
              break;
            case NearestMode::kRoundPreferCeil:
              c = {ratio < 0.5 ? 1.0 : 0.0, ratio >= 0.5 ? 1.0 : 0.0};
              break;
            case NearestMode::kFloor:
              c = {1, 0};
              break;
            case NearestMode::kCeil:
              c = {0, 1};
              break;
            case NearestMode::kLegacy:
              c = s < 1 ? std::vector<double>{0, 1} : std::vector<double>{1, 0};
              break;
          }
          break;
        }
        case ResizeMode::kLinear:
          c = {1 - ratio, ratio};
          break;
        case ResizeMode::kCubic: {
          const double a = p.cubic_coeff_a, r = ratio;
          c = {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
               ((a + 2) * r - (a + 3)) * r * r + 1,
               ((a + 2) * (1 - r) - (a + 3)) * (1 - r) * (1 - r) + 1,
               ((a * ((1 - r) + 1) - 5 * a) * ((1 - r) + 1) + 8 * a) *
                       ((1 - r) + 1) -
                   4 * a};
          break;
        }
      }
      // The n nearest positions to xo in the edge-padded axis.
      const int n = static_cast<int>(c.size());
      const int pad = (n + 1) / 2;
      std::vector<int64_t> cand;
      for (int64_t i = -pad; i < x.dim(d) + pad; ++i) cand.push_back(i);
      std::stable_sort(cand.begin(), cand.end(), [&](int64_t a, int64_t b) {
        const double da = std::fabs(xo - static_cast<double>(a));
        const double db = std::fabs(xo - static_cast<double>(b));
        return da < db;
      });
      cand.resize(n);
      std::sort(cand.begin(), cand.end());
      if (p.exclude_outside && p.mode == ResizeMode::kCubic) {
        double sum = 0;
        for (int k = 0; k < n; ++k) {
          if (cand[k] < 0 || cand[k] >= x.dim(d)) c[k] = 0;
          sum += c[k];
        }
        for (double& v : c) v /= sum;
      }
      idxs[d] = cand;
      coeffs[d] = c;
    }
    if (extrapolate) {
      y.mutable_data<float>()[e] = p.extrapolation_value;
      continue;
    }
    // Sum over the cartesian product of taps.
    double acc = 0;
    std::vector<int> k(rank, 0);
    while (true) {
      double w = 1;
      int64_t off = 0;
      for (int d = 0; d < rank; ++d) {
        w *= coeffs[d][k[d]];
        const int64_t i = std::clamp<int64_t>(idxs[d][k[d]], 0, x.dim(d) - 1);
        off += i * in_strides[d];
      }
      if (w != 0) acc += w * static_cast<double>(x.data<float>()[off]);
      int d = rank - 1;
      while (d >= 0 && ++k[d] == static_cast<int>(coeffs[d].size())) {
        k[d] = 0;
        --d;
      }
      if (d < 0) break;
    }
    y.mutable_data<float>()[e] = static_cast<float>(acc);
  }
  return y;
}

std::string Describe(const ResizeParams& p) {
  return absl::StrCat(ResizeModeName(p.mode), "/",
                      CoordinateTransformName(p.coordinate_transformation_mode),
                      "/", NearestModeName(p.nearest_mode),
                      "/a=", p.cubic_coeff_a, "/exclude=", p.exclude_outside);
}

std::vector<float> ResizeValues(const ResizeParams& p, const Tensor& x,
                                std::vector<float> scales, Shape out,
                                std::vector<float> roi = {}) {
  Tensor y;
  absl::Status s = Resize(p, x, scales, out, roi, &y);
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok()) return {};
  EXPECT_EQ(y.shape(), out);
  return y.ToVector<float>();
}

ResizeParams Params(ResizeMode mode, CoordinateTransform coords,
                    NearestMode nearest = NearestMode::kRoundPreferFloor) {
  ResizeParams p;
  p.mode = mode;
  p.coordinate_transformation_mode = coords;
  p.nearest_mode = nearest;
  return p;
}

// ---- Hand-computed values (ONNX operator examples and arithmetic). ----

TEST(ResizeTest, NearestUpsampleRepeats) {
  // ONNX Upsample / Resize-10 example: scales [1, 1, 2, 3].
  Tensor x = Tensor::FromVector<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  for (ResizeParams p :
       {Params(ResizeMode::kNearest, CoordinateTransform::kAsymmetric,
               NearestMode::kLegacy),
        Params(ResizeMode::kNearest, CoordinateTransform::kHalfPixel)}) {
    EXPECT_THAT(ResizeValues(p, x, {1, 1, 2, 3}, {1, 1, 4, 6}),
                ElementsAreArray({1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,  //
                                  3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}));
  }
}

TEST(ResizeTest, NearestModesOnHalfwayPoints) {
  // Asymmetric x2: x_original = o / 2 = 0, .5, 1, ..., 3.5.
  Tensor x = Tensor::FromVector<float>({4}, {1, 2, 3, 4});
  auto run = [&](NearestMode m) {
    return ResizeValues(
        Params(ResizeMode::kNearest, CoordinateTransform::kAsymmetric, m), x,
        {2}, {8});
  };
  EXPECT_THAT(run(NearestMode::kRoundPreferFloor),
              ElementsAre(1, 1, 2, 2, 3, 3, 4, 4));
  EXPECT_THAT(run(NearestMode::kRoundPreferCeil),
              ElementsAre(1, 2, 2, 3, 3, 4, 4, 4));
  EXPECT_THAT(run(NearestMode::kFloor), ElementsAre(1, 1, 2, 2, 3, 3, 4, 4));
  EXPECT_THAT(run(NearestMode::kCeil), ElementsAre(1, 2, 2, 3, 3, 4, 4, 4));
  EXPECT_THAT(run(NearestMode::kLegacy), ElementsAre(1, 1, 2, 2, 3, 3, 4, 4));
}

TEST(ResizeTest, LegacyRoundingOfOpset10) {
  // ONNX 1.5's Resize-10 test data: scales 0.6 on [2, 4] -> [1, 2].
  Tensor x = Tensor::FromVector<float>({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_THAT(ResizeValues(
                  Params(ResizeMode::kNearest, CoordinateTransform::kAsymmetric,
                         NearestMode::kLegacy),
                  x, {1, 1, 0.6f, 0.6f}, {1, 1, 1, 2}),
              ElementsAre(1, 3));
  EXPECT_THAT(ResizeValues(
                  Params(ResizeMode::kLinear, CoordinateTransform::kAsymmetric),
                  x, {1, 1, 0.6f, 0.6f}, {1, 1, 1, 2}),
              Pointwise(FloatNear(1e-6), {1.f, 2.6666667f}));
}

TEST(ResizeTest, LinearHalfPixelAndAlignCorners) {
  Tensor x = Tensor::FromVector<float>({1, 1, 2, 2}, {1, 2, 3, 4});
  // (o + .5) / 2 - .5 = -.25, .25, .75, 1.25 on both axes.
  EXPECT_THAT(
      ResizeValues(Params(ResizeMode::kLinear, CoordinateTransform::kHalfPixel),
                   x, {1, 1, 2, 2}, {1, 1, 4, 4}),
      Pointwise(FloatNear(1e-6),
                {1.f, 1.25f, 1.75f, 2.f, 1.5f, 1.75f, 2.25f, 2.5f, 2.5f, 2.75f,
                 3.25f, 3.5f, 3.f, 3.25f, 3.75f, 4.f}));
  // o * (2 - 1) / (4 - 1) = 0, 1/3, 2/3, 1.
  const float t = 1.f / 3, u = 2.f / 3;
  EXPECT_THAT(ResizeValues(Params(ResizeMode::kLinear,
                                  CoordinateTransform::kAlignCorners),
                           x, {1, 1, 2, 2}, {1, 1, 4, 4}),
              Pointwise(FloatNear(1e-6),
                        {1.f, 1 + t, 1 + u, 2.f, 1 + 2 * t, 1 + 3 * t,
                         1 + 4 * t, 2 + 2 * t, 1 + 2 * u, 1 + 2 * u + t,
                         1 + 2 * u + u, 2 + 2 * u, 3.f, 3 + t, 3 + u, 4.f}));
}

TEST(ResizeTest, AlignCornersUsesRealResizedLength) {
  // ONNX test_resize_downsample_scales_linear_align_corners: the width
  // 4 * 0.6 = 2.4 (not the 2 outputs) divides: x_original(1) = 3 / 1.4.
  Tensor x = Tensor::FromVector<float>({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  EXPECT_THAT(ResizeValues(Params(ResizeMode::kLinear,
                                  CoordinateTransform::kAlignCorners),
                           x, {1, 1, 0.6f, 0.6f}, {1, 1, 1, 2}),
              Pointwise(FloatNear(1e-5), {1.f, 3.142857f}));
}

TEST(ResizeTest, PytorchHalfPixelSingleOutputReadsIndexZero) {
  Tensor x = Tensor::FromVector<float>({4}, {1, 2, 3, 4});
  EXPECT_THAT(ResizeValues(Params(ResizeMode::kLinear,
                                  CoordinateTransform::kPytorchHalfPixel),
                           x, {0.25f}, {1}),
              ElementsAre(1));
  EXPECT_THAT(
      ResizeValues(Params(ResizeMode::kLinear, CoordinateTransform::kHalfPixel),
                   x, {0.25f}, {1}),
      ElementsAre(2.5f));
  EXPECT_THAT(ResizeValues(Params(ResizeMode::kCubic,
                                  CoordinateTransform::kPytorchHalfPixel),
                           x, {0.25f}, {1}),
              ElementsAre(1));
}

TEST(ResizeTest, TfHalfPixelForNn) {
  // ONNX test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn.
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = i + 1;
  Tensor x = Tensor::FromVector<float>({1, 1, 4, 4}, v);
  EXPECT_THAT(ResizeValues(Params(ResizeMode::kNearest,
                                  CoordinateTransform::kTfHalfPixelForNn),
                           x, {1, 1, 0.75f, 0.5f}, {1, 1, 3, 2}),
              ElementsAre(6, 8, 10, 12, 14, 16));
}

TEST(ResizeTest, TfCropAndResizeExtrapolates) {
  // ONNX test_resize_tf_crop_and_resize.
  std::vector<float> v(16);
  for (int i = 0; i < 16; ++i) v[i] = i + 1;
  Tensor x = Tensor::FromVector<float>({1, 1, 4, 4}, v);
  ResizeParams p =
      Params(ResizeMode::kLinear, CoordinateTransform::kTfCropAndResize);
  p.extrapolation_value = 10;
  EXPECT_THAT(ResizeValues(p, x, {1, 1, 0.75f, 0.75f}, {1, 1, 3, 3},
                           {0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f}),
              Pointwise(FloatNear(1e-5), {7.6f, 10.f, 10.f, 12.4f, 10.f, 10.f,
                                          10.f, 10.f, 10.f}));
}

TEST(ResizeTest, CubicWeightsAndExcludeOutside) {
  // Asymmetric x2 on [1, 2, 4, 8]: x_original = 0, .5, 1, 1.5, ...
  // Keys' weights at ratio .5 with a = -.75: -3/32, 19/32, 19/32, -3/32.
  Tensor x = Tensor::FromVector<float>({4}, {1, 2, 4, 8});
  ResizeParams p = Params(ResizeMode::kCubic, CoordinateTransform::kAsymmetric);
  std::vector<float> y = ResizeValues(p, x, {2}, {8});
  ASSERT_EQ(y.size(), 8u);
  EXPECT_FLOAT_EQ(y[0], 1);
  // Neighbours -1, 0, 1, 2 read 1, 1, 2, 4 (edge padding).
  EXPECT_FLOAT_EQ(y[1], (-3 * 1 + 19 * 1 + 19 * 2 - 3 * 4) / 32.f);
  EXPECT_FLOAT_EQ(y[2], 2);
  EXPECT_FLOAT_EQ(y[3], (-3 * 1 + 19 * 2 + 19 * 4 - 3 * 8) / 32.f);
  // Excluding index -1 renormalizes the other three weights by 32 / 35.
  p.exclude_outside = true;
  y = ResizeValues(p, x, {2}, {8});
  ASSERT_EQ(y.size(), 8u);
  EXPECT_FLOAT_EQ(y[1], (19 * 1 + 19 * 2 - 3 * 4) / 35.f);
  EXPECT_FLOAT_EQ(y[3], (-3 * 1 + 19 * 2 + 19 * 4 - 3 * 8) / 32.f);
}

TEST(ResizeTest, ResizesAnyAxis) {
  // Linear, half_pixel, along the middle axis of [1, 2, 1] only.
  Tensor x = Tensor::FromVector<float>({1, 2, 1}, {4, 8});
  EXPECT_THAT(
      ResizeValues(Params(ResizeMode::kLinear, CoordinateTransform::kHalfPixel),
                   x, {1, 2, 1}, {1, 4, 1}),
      Pointwise(FloatNear(1e-6), {4.f, 5.f, 7.f, 8.f}));
  // And the batch axis with nearest.
  Tensor b = Tensor::FromVector<float>({2, 2}, {1, 2, 3, 4});
  EXPECT_THAT(ResizeValues(Params(ResizeMode::kNearest,
                                  CoordinateTransform::kAsymmetric),
                           b, {2, 1}, {4, 2}),
              ElementsAre(1, 2, 1, 2, 3, 4, 3, 4));
}

TEST(ResizeTest, IdentityScalarEmptyAndInPlace) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, -2, 3, -0.f, 5, 6});
  for (ResizeMode m :
       {ResizeMode::kNearest, ResizeMode::kLinear, ResizeMode::kCubic}) {
    std::vector<float> y = ResizeValues(
        Params(m, CoordinateTransform::kHalfPixel), x, {1, 1}, {2, 3});
    EXPECT_EQ(y, x.ToVector<float>());
    EXPECT_TRUE(std::signbit(y[3]));
  }
  EXPECT_THAT(ResizeValues(ResizeParams(), Tensor::Scalar<float>(7), {}, {}),
              ElementsAre(7));
  EXPECT_TRUE(ResizeValues(ResizeParams(), x, {0.25f, 1}, {0, 3}).empty());
  EXPECT_TRUE(ResizeValues(ResizeParams(), Tensor(DataType::kFloat32, {0, 3}),
                           {2, 2}, {0, 6})
                  .empty());
  Tensor z = x;
  ASSERT_TRUE(Resize(ResizeParams(), z, {1, 2}, {2, 6}, {}, &z).ok());
  EXPECT_EQ(z.shape(), Shape({2, 6}));
  EXPECT_EQ(x.shape(), Shape({2, 3}));  // the caller's tensor is untouched
}

TEST(ResizeTest, RejectsBadArguments) {
  Tensor x(DataType::kFloat32, {1, 2, 2});
  Tensor y;
  ResizeParams p;
  auto code = [&](const Tensor& in, std::vector<float> s, Shape out,
                  std::vector<float> roi = {}) {
    return Resize(p, in, s, out, roi, &y);
  };
  absl::Status s = code(x, {1, 2}, {1, 4, 4});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("2 scales"));
  EXPECT_EQ(code(x, {1, 2, 2}, {1, 4}).code(),
            absl::StatusCode::kInvalidArgument);
  s = code(x, {1, 0, 2}, {1, 0, 4});
  EXPECT_THAT(s.message(), HasSubstr("positive"));
  EXPECT_EQ(code(x, {1, NAN, 2}, {1, 4, 4}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(x, {1, 2, 2}, {1, -4, 4}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Tensor(DataType::kFloat32, {1, 0}), {1, 2}, {1, 2}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(code(Tensor(DataType::kInt64, {2}), {2}, {4}).code(),
            absl::StatusCode::kInvalidArgument);
  p.coordinate_transformation_mode = CoordinateTransform::kTfCropAndResize;
  s = code(x, {1, 2, 2}, {1, 4, 4}, {0, 0, 0, 1, 1});
  EXPECT_THAT(s.message(), HasSubstr("roi"));
  EXPECT_EQ(
      Resize(p, x, {1, 2, 2}, {1, 4, 4}, {0, 0, 0, 1, 1, 1}, nullptr).code(),
      absl::StatusCode::kInvalidArgument);
}

// ---- Kernel vs the per-element reference, every mode combination. ----

struct Case {
  Shape in;
  Shape out;
  // Empty: sizes-defined (scale = out / in); else these scales, exactly
  // representable so that both sides see the same value.
  std::vector<float> scales;
};

std::vector<Case> Cases() {
  return {
      {{5}, {9}, {}},
      {{7}, {3}, {}},
      {{4}, {1}, {}},
      {{1}, {4}, {}},
      {{6}, {10}, {1.75f}},              // 10.5 -> 10
      {{3, 5}, {7, 2}, {}},              // up on one axis, down on another
      {{5, 6}, {3, 4}, {0.75f, 0.75f}},  // 3.75 x 4.5 -> 3 x 4
      {{2, 3, 4}, {2, 6, 3}, {}},        // leading axis untouched
      {{3, 2, 4}, {5, 2, 4}, {}},        // only the outermost axis
      {{1, 2, 4, 5}, {1, 2, 8, 3}, {}},  // NCHW
      {{2, 3, 5, 4}, {2, 3, 12, 10}, {2.5f, 2.5f}},
      {{1, 2, 3, 4}, {2, 3, 5, 2}, {}},  // every axis resized
      {{1, 1, 3, 4, 5}, {1, 1, 6, 2, 7}, {}},
      {{2, 3, 17, 19}, {2, 3, 23, 11}, {}},  // enough rows for the threads
  };
}

TEST(ResizeTest, MatchesPerElementReferenceForEveryModeCombination) {
  std::mt19937 rng(17);
  std::normal_distribution<float> value(0.f, 1.f);
  std::uniform_real_distribution<float> start(-0.2f, 0.6f), end(0.4f, 1.2f);
  int compared = 0;
  for (const Case& c : Cases()) {
    const int rank = static_cast<int>(c.in.size());
    Tensor x(DataType::kFloat32, c.in);
    for (float& v : x.mutable_span<float>()) v = value(rng);
    // Scales for the kernel (float) and the reference (exact).
    std::vector<float> scales(rank);
    std::vector<ReferenceAxis> axes(rank);
    for (int d = 0; d < rank; ++d) {
      const double in = static_cast<double>(c.in[d]);
      const double out = static_cast<double>(c.out[d]);
      // Scales-defined cases list scales for the innermost axes.
      const int listed = static_cast<int>(c.scales.size());
      const int from_end = rank - d;
      if (from_end <= listed) {
        const double s = c.scales[listed - from_end];
        scales[d] = static_cast<float>(s);
        axes[d] = {s, in * s};
      } else {
        scales[d] = static_cast<float>(out / in);
        axes[d] = {out / in, out};
      }
    }
    std::vector<float> roi(2 * rank);
    for (int d = 0; d < rank; ++d) {
      roi[d] = start(rng);
      roi[rank + d] = end(rng);
    }
    for (ResizeMode mode :
         {ResizeMode::kNearest, ResizeMode::kLinear, ResizeMode::kCubic}) {
      for (CoordinateTransform coords :
           {CoordinateTransform::kHalfPixel,
            CoordinateTransform::kPytorchHalfPixel,
            CoordinateTransform::kAlignCorners,
            CoordinateTransform::kAsymmetric,
            CoordinateTransform::kTfHalfPixelForNn,
            CoordinateTransform::kTfCropAndResize}) {
        std::vector<ResizeParams> variants;
        if (mode == ResizeMode::kNearest) {
          for (NearestMode n :
               {NearestMode::kRoundPreferFloor, NearestMode::kRoundPreferCeil,
                NearestMode::kFloor, NearestMode::kCeil,
                NearestMode::kLegacy}) {
            variants.push_back(Params(mode, coords, n));
          }
        } else if (mode == ResizeMode::kLinear) {
          variants.push_back(Params(mode, coords));
        } else {
          for (float a : {-0.75f, -0.5f}) {
            for (bool exclude : {false, true}) {
              ResizeParams p = Params(mode, coords);
              p.cubic_coeff_a = a;
              p.exclude_outside = exclude;
              variants.push_back(p);
            }
          }
        }
        for (ResizeParams& p : variants) {
          p.extrapolation_value = value(rng);
          Tensor got;
          absl::Status s = Resize(p, x, scales, c.out, roi, &got);
          ASSERT_TRUE(s.ok()) << s << " " << Describe(p);
          ASSERT_EQ(got.shape(), c.out);
          Tensor want = ResizeReferenceForTest(p, x, axes, c.out, roi);
          for (int64_t i = 0; i < want.num_elements(); ++i) {
            const float g = got.data<float>()[i], w = want.data<float>()[i];
            ASSERT_NEAR(g, w, 2e-5f * (1 + std::fabs(w)))
                << Describe(p) << " " << ShapeToString(c.in) << " -> "
                << ShapeToString(c.out) << " at " << i;
            if (mode == ResizeMode::kNearest) {
              ASSERT_EQ(g, w) << Describe(p) << " at " << i;
            }
          }
          ++compared;
        }
      }
    }
  }
  // 14 shapes x 6 coordinate modes x (5 nearest + 1 linear + 4 cubic).
  EXPECT_EQ(compared, 14 * 6 * 10);
}

}  // namespace
}  // namespace quantd
