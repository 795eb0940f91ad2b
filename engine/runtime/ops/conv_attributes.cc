#include "engine/runtime/ops/conv_attributes.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace quantd {

ConvAttributes ReadConvAttributes(const Node& node) {
  ConvAttributes a;
  a.auto_pad = node.attributes.GetString("auto_pad", "NOTSET");
  a.kernel_shape = node.attributes.GetInts("kernel_shape");
  a.strides = node.attributes.GetInts("strides");
  a.dilations = node.attributes.GetInts("dilations");
  a.pads = node.attributes.GetInts("pads");
  a.output_padding = node.attributes.GetInts("output_padding");
  a.output_shape = node.attributes.GetInts("output_shape");
  a.group = node.attributes.GetInt("group", 1);
  return a;
}

namespace {
int64_t At(const std::vector<int64_t>& v, size_t i, int64_t fallback) {
  return i < v.size() ? v[i] : fallback;
}

}  // namespace

absl::StatusOr<ConvParams> ResolveConvParams(const ConvAttributes& a,
                                             const Shape& src, const Shape& w,
                                             bool transposed) {
  if (src.size() < 3 || w.size() != src.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "input ", ShapeToString(src), " and weights ", ShapeToString(w),
        " must both be [N, C, spatial...] / [M, C/group, k...] of equal rank "
        ">= 3"));
  }
  const size_t spatial = src.size() - 2;
  if (a.group < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("group must be >= 1, got ", a.group));
  }
  for (const auto* v : {&a.strides, &a.dilations, &a.kernel_shape,
                        &a.output_padding, &a.output_shape}) {
    if (!v->empty() && v->size() != spatial) {
      return absl::InvalidArgumentError(
          absl::StrCat("an attribute has ", v->size(),
                       " entries; the input has ", spatial, " spatial dims"));
    }
  }
  if (!a.pads.empty() && a.pads.size() != 2 * spatial) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pads has ", a.pads.size(), " entries; expected ", 2 * spatial));
  }
  ConvParams p;
  p.groups = a.group;
  for (size_t i = 0; i < spatial; ++i) {
    p.strides.push_back(At(a.strides, i, 1));
    p.dilations.push_back(At(a.dilations, i, 1));
    p.pads_begin.push_back(At(a.pads, i, 0));
    p.pads_end.push_back(At(a.pads, i + spatial, 0));
    if (transposed) p.output_padding.push_back(At(a.output_padding, i, 0));
  }
  const bool same = a.auto_pad == "SAME_UPPER" || a.auto_pad == "SAME_LOWER";
  if (a.auto_pad == "VALID") {
    std::fill(p.pads_begin.begin(), p.pads_begin.end(), 0);
    std::fill(p.pads_end.begin(), p.pads_end.end(), 0);
  }
  for (size_t i = 0; i < spatial; ++i) {
    const int64_t in = src[i + 2];
    const int64_t k = w[i + 2];
    const int64_t eff_k = (k - 1) * p.dilations[i] + 1;
    const int64_t s = p.strides[i];
    int64_t total = -1;
    if (!transposed && same) {
      const int64_t out = (in + s - 1) / s;
      total = std::max<int64_t>(0, (out - 1) * s + eff_k - in);
    } else if (transposed && (!a.output_shape.empty() || same)) {
      const int64_t out = !a.output_shape.empty() ? a.output_shape[i] : in * s;
      total = s * (in - 1) + p.output_padding[i] + eff_k - out;
      if (total < 0) {
        // A larger requested output is reached with extra output padding.
        p.output_padding[i] -= total;
        total = 0;
      }
    }
    if (total >= 0) {
      // ONNX: SAME_UPPER puts the odd pixel at the end, SAME_LOWER at the
      // beginning.
      const bool lower = a.auto_pad == "SAME_LOWER";
      p.pads_begin[i] = lower ? total - total / 2 : total / 2;
      p.pads_end[i] = total - p.pads_begin[i];
    }
  }
  return p;
}

}  // namespace quantd
