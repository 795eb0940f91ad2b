// ONNX Conv/ConvTranspose attributes and their resolution to kernel
// parameters for a given input shape (auto_pad, output_shape). Shared by the
// fp32 ops and quantd's int8 ops.
#ifndef QUANTD_ENGINE_RUNTIME_OPS_CONV_ATTRIBUTES_H_
#define QUANTD_ENGINE_RUNTIME_OPS_CONV_ATTRIBUTES_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "kernels/convolution.h"

namespace quantd {

struct ConvAttributes {
  std::string auto_pad;
  std::vector<int64_t> kernel_shape, strides, dilations, pads, output_padding,
      output_shape;
  int64_t group = 1;
};

ConvAttributes ReadConvAttributes(const Node& node);

// Kernel parameters for input `src` and weights `w`; validates attribute
// lengths against the spatial rank.
absl::StatusOr<ConvParams> ResolveConvParams(const ConvAttributes& attrs,
                                             const Shape& src, const Shape& w,
                                             bool transposed);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_CONV_ATTRIBUTES_H_
