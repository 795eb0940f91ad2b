// Shape arithmetic for convolution.h, apart from the oneDNN machinery: the
// kernels, the references and the backward passes all resolve their
// parameters here, so they agree on every output size and error.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/convolution.h"
#include "util/status_macros.h"

namespace quantd {
namespace conv_internal {
namespace {

// Bounds strides, dilations and pads so that shape arithmetic cannot
// overflow int64.
constexpr int64_t kMaxConvParam = int64_t{1} << 24;

absl::Status ParseParam(const char* name, const std::vector<int64_t>& given,
                        int spatial, int64_t default_value, int64_t min_value,
                        std::vector<int64_t>* out) {
  if (given.empty()) {
    out->assign(spatial, default_value);
    return absl::OkStatus();
  }
  if (static_cast<int>(given.size()) != spatial) {
    return absl::InvalidArgumentError(
        absl::StrCat(name, " has ", given.size(), " entries, expected ",
                     spatial, " (one per spatial dim)"));
  }
  for (int i = 0; i < spatial; ++i) {
    if (given[i] < min_value || given[i] > kMaxConvParam) {
      return absl::InvalidArgumentError(
          absl::StrCat(name, "[", i, "] is ", given[i], ", expected ",
                       min_value, "..", kMaxConvParam));
    }
  }
  *out = given;
  return absl::OkStatus();
}

// Ranks and signs, checked before any dim is used in arithmetic.
absl::Status CheckConvShapes(const char* op, const Shape& src,
                             const Shape& weights) {
  if (src.size() < 3 || src.size() > 5) {
    return absl::InvalidArgumentError(absl::StrCat(
        op, " src has ", src.size(),
        " dims, expected 3, 4 or 5 ([N, C, spatial...] for a 1-D, 2-D or 3-D "
        "convolution)"));
  }
  const int spatial = static_cast<int>(src.size()) - 2;
  if (weights.size() != src.size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, " weights have ", weights.size(), " dims, expected ",
                     src.size(), " for a ", spatial, "-D convolution"));
  }
  for (int64_t d : src) {
    if (d < 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          op, " src shape ", ShapeToString(src), " has a negative dim"));
    }
  }
  for (int i = 0; i < static_cast<int>(weights.size()); ++i) {
    if (weights[i] < 0 || (i >= 2 && weights[i] == 0)) {
      return absl::InvalidArgumentError(
          absl::StrCat(op, " weights shape ", ShapeToString(weights),
                       " has a negative dim or an empty kernel"));
    }
  }
  return absl::OkStatus();
}

// Sets g->out_channels. Conv weights are [OC, C/G, k...], ConvTranspose
// weights [C, OC/G, k...], so the channel checks differ.
absl::Status ResolveChannels(const Shape& weights, ConvGeometry* g) {
  if (!g->transposed) {
    if (weights[1] * g->groups != g->in_channels) {
      return absl::InvalidArgumentError(absl::StrCat(
          "conv src has ", g->in_channels, " channels, but weights ",
          ShapeToString(weights), " with ", g->groups, " groups expect ",
          weights[1] * g->groups));
    }
    g->out_channels = weights[0];
    if (g->out_channels % g->groups != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "conv weights have ", g->out_channels,
          " output channels, not divisible by ", g->groups, " groups"));
    }
    return absl::OkStatus();
  }
  if (weights[0] != g->in_channels) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ConvTranspose src has ", g->in_channels, " channels, but weights ",
        ShapeToString(weights), " expect ", weights[0]));
  }
  if (g->in_channels % g->groups != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("ConvTranspose src has ", g->in_channels,
                     " channels, not divisible by ", g->groups, " groups"));
  }
  g->out_channels = weights[1] * g->groups;
  return absl::OkStatus();
}

absl::Status ParseConvParams(const ConvParams& p, ConvGeometry* g) {
  const int n = g->spatial;
  QUANTD_RETURN_IF_ERROR(
      ParseParam("strides", p.strides, n, 1, 1, &g->strides));
  QUANTD_RETURN_IF_ERROR(
      ParseParam("dilations", p.dilations, n, 1, 1, &g->dilations));
  QUANTD_RETURN_IF_ERROR(
      ParseParam("pads_begin", p.pads_begin, n, 0, 0, &g->pads_begin));
  QUANTD_RETURN_IF_ERROR(
      ParseParam("pads_end", p.pads_end, n, 0, 0, &g->pads_end));
  return ParseParam("output_padding", p.output_padding, n, 0, 0,
                    &g->output_padding);
}

absl::StatusOr<int64_t> ConvOutputDim(const ConvGeometry& g, int i,
                                      int64_t extent) {
  if (g.output_padding[i] != 0) {
    return absl::InvalidArgumentError(
        "output_padding is only meaningful for ConvTranspose");
  }
  const int64_t padded = g.in[i] + g.pads_begin[i] + g.pads_end[i];
  if (padded < extent) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv spatial dim ", i, ": input ", g.in[i], " plus pads ",
                     g.pads_begin[i] + g.pads_end[i],
                     " is smaller than the dilated kernel extent ", extent));
  }
  return (padded - extent) / g.strides[i] + 1;
}

absl::StatusOr<int64_t> DeconvOutputDim(const ConvGeometry& g, int i,
                                        int64_t extent) {
  if (g.output_padding[i] >= g.strides[i]) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ConvTranspose output_padding[", i, "] is ", g.output_padding[i],
        ", must be smaller than the stride ", g.strides[i]));
  }
  if (g.in[i] < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ConvTranspose src spatial dim ", i, " is empty"));
  }
  const int64_t out = g.strides[i] * (g.in[i] - 1) + g.output_padding[i] +
                      extent - g.pads_begin[i] - g.pads_end[i];
  if (out < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("ConvTranspose spatial dim ", i, ": pads ",
                     g.pads_begin[i] + g.pads_end[i], " leave no output"));
  }
  return out;
}

}  // namespace

absl::StatusOr<ConvGeometry> ResolveConvGeometry(const ConvParams& p,
                                                 const Shape& src,
                                                 const Shape& weights,
                                                 bool transposed) {
  const char* op = transposed ? "ConvTranspose" : "conv";
  QUANTD_RETURN_IF_ERROR(CheckConvShapes(op, src, weights));
  if (p.groups < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, " groups is ", p.groups, ", expected >= 1"));
  }
  ConvGeometry g;
  g.transposed = transposed;
  g.spatial = static_cast<int>(src.size()) - 2;
  g.groups = p.groups;
  g.batch = src[0];
  g.in_channels = src[1];
  QUANTD_RETURN_IF_ERROR(ResolveChannels(weights, &g));
  g.in.assign(src.begin() + 2, src.end());
  g.kernel.assign(weights.begin() + 2, weights.end());
  QUANTD_RETURN_IF_ERROR(ParseConvParams(p, &g));
  g.out.resize(g.spatial);
  for (int i = 0; i < g.spatial; ++i) {
    const int64_t extent = (g.kernel[i] - 1) * g.dilations[i] + 1;
    QUANTD_ASSIGN_OR_RETURN(g.out[i], transposed ? DeconvOutputDim(g, i, extent)
                                                 : ConvOutputDim(g, i, extent));
  }
  g.dst_shape = {g.batch, g.out_channels};
  g.dst_shape.insert(g.dst_shape.end(), g.out.begin(), g.out.end());
  QUANTD_RETURN_IF_ERROR((CheckedNumElements(g.dst_shape)).status());
  return g;
}

absl::Status PrepareConvOutput(const ConvGeometry& g, const PostOps& post,
                               DataType type, const Tensor* bias, Tensor* dst) {
  if (dst == nullptr) return absl::InvalidArgumentError("conv dst is null");
  if (bias != nullptr && (bias->dtype() != DataType::kFloat32 ||
                          bias->shape() != Shape{g.out_channels})) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv bias is ", bias->DebugString(), ", expected f32[",
                     g.out_channels, "]"));
  }
  if (dst->defined() && dst->dtype() == type && dst->shape() == g.dst_shape) {
    return absl::OkStatus();
  }
  if (post.sum) {
    return absl::InvalidArgumentError(absl::StrCat(
        "post-op sum needs dst to hold the addend: dst is ", dst->DebugString(),
        ", expected ", DataTypeName(type), ShapeToString(g.dst_shape)));
  }
  *dst = Tensor(type, g.dst_shape);
  return absl::OkStatus();
}

}  // namespace conv_internal

absl::StatusOr<Shape> ConvOutputShape(const ConvParams& params,
                                      const Shape& src, const Shape& weights) {
  QUANTD_ASSIGN_OR_RETURN(conv_internal::ConvGeometry g,
                          conv_internal::ResolveConvGeometry(
                              params, src, weights, /*transposed=*/false));
  return g.dst_shape;
}

absl::StatusOr<Shape> DeconvOutputShape(const ConvParams& params,
                                        const Shape& src,
                                        const Shape& weights) {
  QUANTD_ASSIGN_OR_RETURN(conv_internal::ConvGeometry g,
                          conv_internal::ResolveConvGeometry(
                              params, src, weights, /*transposed=*/true));
  return g.dst_shape;
}

}  // namespace quantd
