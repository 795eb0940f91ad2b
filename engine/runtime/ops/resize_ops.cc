// Resize (opsets 10, 11, 13) and Upsample (opsets 7, 9) on f32 tensors.
//
// Upsample and Resize-10 had no coordinate or rounding attributes: they map
// output to input coordinates asymmetrically (x / scale), and nearest rounds
// down on an axis that grows and up on one that shrinks (ONNX's opset-10
// test data; ONNX Runtime does the same). Resize-11 added roi, sizes and the
// attributes; Resize-13 made roi and scales optional. Output dims are
// floor(in * scale), computed in float like ONNX's shape inference; with
// sizes, the scales the coordinate formulas use are sizes / in.
#include <cmath>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "engine/runtime/ops/shape_util.h"
#include "kernels/resize.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::StatusOr<ResizeMode> ParseMode(const std::string& s, bool allow_cubic) {
  if (s == "nearest") return ResizeMode::kNearest;
  if (s == "linear") return ResizeMode::kLinear;
  if (s == "cubic" && allow_cubic) return ResizeMode::kCubic;
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported mode '", s, "' (expected nearest, linear",
      allow_cubic ? " or cubic" : "; cubic needs Resize-11+", ")"));
}

absl::StatusOr<CoordinateTransform> ParseCoordinateTransform(
    const std::string& s) {
  for (CoordinateTransform c :
       {CoordinateTransform::kHalfPixel, CoordinateTransform::kPytorchHalfPixel,
        CoordinateTransform::kAlignCorners, CoordinateTransform::kAsymmetric,
        CoordinateTransform::kTfHalfPixelForNn,
        CoordinateTransform::kTfCropAndResize}) {
    if (s == CoordinateTransformName(c)) return c;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      "unsupported coordinate_transformation_mode '", s,
      "' (expected half_pixel, pytorch_half_pixel, align_corners, asymmetric, "
      "tf_half_pixel_for_nn or tf_crop_and_resize)"));
}

absl::StatusOr<NearestMode> ParseNearestMode(const std::string& s) {
  for (NearestMode m :
       {NearestMode::kRoundPreferFloor, NearestMode::kRoundPreferCeil,
        NearestMode::kFloor, NearestMode::kCeil}) {
    if (s == NearestModeName(m)) return m;
  }
  return absl::InvalidArgumentError(
      absl::StrCat("unsupported nearest_mode '", s,
                   "' (expected round_prefer_floor, round_prefer_ceil, floor "
                   "or ceil)"));
}

// Null for an omitted input or an empty tensor (ONNX marks an unused
// scales or roi with an empty tensor).
const Tensor* PresentInput(const OpKernelContext& ctx, int i) {
  const Tensor* t = ctx.input(i);
  if (t == nullptr || !t->defined() || t->num_elements() == 0) return nullptr;
  return t;
}

absl::StatusOr<std::vector<float>> ReadScales(const Tensor& t, int rank,
                                              float min_scale) {
  if (t.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("scales must be float32, got ", DataTypeName(t.dtype())));
  }
  if (t.num_elements() != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "scales has ", t.num_elements(), " values but the input has rank ",
        rank, "; give one scale per input axis"));
  }
  std::vector<float> scales = t.ToVector<float>();
  for (size_t d = 0; d < scales.size(); ++d) {
    if (!std::isfinite(scales[d]) || !(scales[d] > 0) ||
        scales[d] < min_scale) {
      return absl::InvalidArgumentError(absl::StrCat(
          "scale ", scales[d], " of axis ", d, " must be finite and ",
          min_scale > 0 ? absl::StrCat(">= ", min_scale) : "positive"));
    }
  }
  return scales;
}

// floor(in * scale) per axis, in float as ONNX's shape inference does, and
// bounded so that a hostile scale cannot allocate without limit.
absl::StatusOr<Shape> ScaledShape(const Shape& in,
                                  const std::vector<float>& scales) {
  Shape out(in.size());
  double total = 1;
  for (size_t d = 0; d < in.size(); ++d) {
    const float dim = std::floor(static_cast<float>(in[d]) * scales[d]);
    total *= dim;
    if (!(dim <= static_cast<float>(kMaxOpOutputElements)) ||
        total > static_cast<double>(kMaxOpOutputElements)) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "scale ", scales[d], " of axis ", d, " makes the output of input ",
          ShapeToString(in), " larger than the limit of ", kMaxOpOutputElements,
          " elements"));
    }
    out[d] = static_cast<int64_t>(dim);
  }
  return out;
}

absl::Status RunResize(const ResizeParams& params, const Tensor& x,
                       const std::vector<float>& scales, const Shape& out_shape,
                       const std::vector<float>& roi, OpKernelContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(out_shape));
  if (n > kMaxOpOutputElements) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "output shape ", ShapeToString(out_shape), " exceeds the limit of ",
        kMaxOpOutputElements, " elements"));
  }
  return Resize(params, x, scales, out_shape, roi, ctx.output(0));
}

absl::StatusOr<const Tensor*> FloatInput(const OpKernelContext& ctx,
                                         absl::string_view op) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
  if ((x)->dtype() != DataType::kFloat32) {
    return absl::UnimplementedError(
        absl::StrCat(op, " supports float32 input X only, got ",
                     DataTypeName((x)->dtype())));
  }
  return x;
}

class ResizeKernel : public OpKernel {
 public:
  static absl::StatusOr<std::unique_ptr<OpKernel>> Create(
      const OpKernelInfo& info) {
    const AttributeMap& a = info.node.attributes;
    auto kernel = std::unique_ptr<ResizeKernel>(new ResizeKernel());
    kernel->legacy_ = info.opset < 11;
    ResizeParams& p = kernel->params_;
    absl::StatusOr<ResizeMode> mode =
        ParseMode(a.GetString("mode", "nearest"), !kernel->legacy_);
    if (!mode.ok()) return mode.status();
    p.mode = *mode;
    if (kernel->legacy_) {
      p.coordinate_transformation_mode = CoordinateTransform::kAsymmetric;
      p.nearest_mode = NearestMode::kLegacy;
      return kernel;
    }
    QUANTD_ASSIGN_OR_RETURN(
        CoordinateTransform coords,
        ParseCoordinateTransform(
            a.GetString("coordinate_transformation_mode", "half_pixel")));
    p.coordinate_transformation_mode = coords;
    QUANTD_ASSIGN_OR_RETURN(
        NearestMode nearest,
        ParseNearestMode(a.GetString("nearest_mode", "round_prefer_floor")));
    p.nearest_mode = nearest;
    p.cubic_coeff_a = a.GetFloat("cubic_coeff_a", -0.75f);
    p.exclude_outside = a.GetInt("exclude_outside", 0) != 0;
    p.extrapolation_value = a.GetFloat("extrapolation_value", 0.f);
    if (!std::isfinite(p.cubic_coeff_a)) {
      return absl::InvalidArgumentError(
          absl::StrCat("cubic_coeff_a must be finite, got ", p.cubic_coeff_a));
    }
    return kernel;
  }

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, FloatInput(ctx, "Resize"));
    const int rank = (x)->rank();
    // Resize-10: (X, scales). Resize-11+: (X, roi, scales, sizes).
    const Tensor* scales_t = PresentInput(ctx, legacy_ ? 1 : 2);
    const Tensor* sizes_t = legacy_ ? nullptr : PresentInput(ctx, 3);
    if (legacy_ && scales_t == nullptr) {
      return absl::InvalidArgumentError(
          "Resize-10 needs its scales input (one float per input axis)");
    }
    if (!legacy_ && (scales_t == nullptr) == (sizes_t == nullptr)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "give exactly one of scales (input 2) and sizes (input 3); ",
          scales_t == nullptr ? "neither is" : "both are", " non-empty"));
    }
    std::vector<float> scales;
    Shape out_shape;
    if (scales_t != nullptr) {
      QUANTD_ASSIGN_OR_RETURN(std::vector<float> s,
                              ReadScales(*scales_t, rank, 0));
      scales = std::move(s);
      QUANTD_ASSIGN_OR_RETURN(Shape shape, ScaledShape((x)->shape(), scales));
      out_shape = std::move(shape);
    } else {
      QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> sizes,
                              ReadInt64s(*sizes_t, "sizes"));
      if (static_cast<int>(sizes.size()) != rank) {
        return absl::InvalidArgumentError(absl::StrCat(
            "sizes has ", sizes.size(), " values but the input has rank ", rank,
            "; give one output size per input axis"));
      }
      scales.resize(rank);
      for (int d = 0; d < rank; ++d) {
        const int64_t in = (x)->dim(d), out = (sizes)[d];
        if (out < 0 || (in == 0 && out != 0)) {
          return absl::InvalidArgumentError(absl::StrCat(
              "sizes[", d, "] = ", out, " is invalid for input dim ", in,
              " (must be >= 0, and 0 when the input dim is 0)"));
        }
        scales[d] =
            in == 0 ? 1.f : static_cast<float>(static_cast<double>(out) / in);
      }
      out_shape = std::move(sizes);
    }
    std::vector<float> roi;
    if (params_.coordinate_transformation_mode ==
        CoordinateTransform::kTfCropAndResize) {
      const Tensor* roi_t = PresentInput(ctx, 1);
      if (roi_t == nullptr || roi_t->dtype() != DataType::kFloat32 ||
          roi_t->num_elements() != 2 * rank) {
        return absl::InvalidArgumentError(absl::StrCat(
            "tf_crop_and_resize needs roi (input 1): float32 with 2 * rank = ",
            2 * rank, " values [starts..., ends...], got ",
            roi_t == nullptr ? "none" : roi_t->DebugString()));
      }
      roi = roi_t->ToVector<float>();
    }
    return RunResize(params_, *x, scales, out_shape, roi, ctx);
  }

 private:
  ResizeKernel() = default;
  ResizeParams params_;
  bool legacy_ = false;  // opset 10: (X, scales), no attributes but mode
};

class UpsampleKernel : public OpKernel {
 public:
  static absl::StatusOr<std::unique_ptr<OpKernel>> Create(
      const OpKernelInfo& info) {
    const AttributeMap& a = info.node.attributes;
    auto kernel = std::unique_ptr<UpsampleKernel>(new UpsampleKernel());
    absl::StatusOr<ResizeMode> mode =
        ParseMode(a.GetString("mode", "nearest"), /*allow_cubic=*/false);
    if (!mode.ok()) return mode.status();
    kernel->params_.mode = *mode;
    kernel->params_.coordinate_transformation_mode =
        CoordinateTransform::kAsymmetric;
    kernel->params_.nearest_mode = NearestMode::kLegacy;
    // Upsample-7 carries scales as an attribute, Upsample-9 as input 1.
    kernel->scales_from_attribute_ = info.opset < 9;
    if (kernel->scales_from_attribute_) {
      if (!a.Has("scales")) {
        return absl::InvalidArgumentError(
            "Upsample-7 needs the 'scales' attribute (one float >= 1 per "
            "input axis)");
      }
      kernel->scales_attribute_ = a.GetFloats("scales");
    }
    return kernel;
  }

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, FloatInput(ctx, "Upsample"));
    const int rank = (x)->rank();
    std::vector<float> scales;
    if (scales_from_attribute_) {
      Tensor t = Tensor::FromVector<float>(
          {static_cast<int64_t>(scales_attribute_.size())}, scales_attribute_);
      QUANTD_ASSIGN_OR_RETURN(std::vector<float> s, ReadScales(t, rank, 1));
      scales = std::move(s);
    } else {
      const Tensor* scales_t = PresentInput(ctx, 1);
      if (scales_t == nullptr) {
        return absl::InvalidArgumentError(
            "Upsample-9 needs its scales input (one float >= 1 per input "
            "axis)");
      }
      QUANTD_ASSIGN_OR_RETURN(std::vector<float> s,
                              ReadScales(*scales_t, rank, 1));
      scales = std::move(s);
    }
    QUANTD_ASSIGN_OR_RETURN(Shape out_shape, ScaledShape((x)->shape(), scales));
    return RunResize(params_, *x, scales, out_shape, {}, ctx);
  }

 private:
  UpsampleKernel() = default;
  ResizeParams params_;
  bool scales_from_attribute_ = false;
  std::vector<float> scales_attribute_;
};

}  // namespace

void RegisterResizeOps(OpRegistry& r) {
  r.Register("Resize", ResizeKernel::Create);
  r.Register("Upsample", UpsampleKernel::Create);
}

}  // namespace quantd
