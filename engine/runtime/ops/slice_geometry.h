// ONNX Slice's starts/ends/axes/steps resolved against an input shape: the
// first index, step and length per dim, with ONNX's clamping rules. Shared
// by the Slice op and its backward pass (engine/qat/autograd.cc).
#ifndef QUANTD_ENGINE_RUNTIME_OPS_SLICE_GEOMETRY_H_
#define QUANTD_ENGINE_RUNTIME_OPS_SLICE_GEOMETRY_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace quantd {

struct SliceArgs {
  std::vector<int64_t> starts, ends, axes, steps;
  bool has_axes = false;
};

struct SliceGeometry {
  std::vector<int64_t> start, step;  // per input dim
  Shape out;
};

absl::StatusOr<SliceGeometry> ResolveSlice(const Shape& in,
                                           const SliceArgs& args);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_SLICE_GEOMETRY_H_
