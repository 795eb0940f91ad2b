// Max and average pooling with ONNX semantics (MaxPool, AveragePool,
// GlobalMaxPool, GlobalAveragePool) over 1-D, 2-D and 3-D spatial dims of an
// [N, C, D1, ...] tensor.
//
//   PoolParams p;
//   p.kind = PoolKind::kMax;
//   p.kernel = {3, 3};
//   p.strides = {2, 2};
//   p.pads = {1, 1, 1, 1};            // ONNX order: begins, then ends
//   PoolingForward pool(p);
//   Tensor y;
//   absl::Status s = pool.Forward(x, &y);   // f32[1,64,112,112] ->
//   [1,64,56,56]
//
//   PoolingForward gap(GlobalPoolParams(PoolKind::kAverage));  // -> [N,C,1,1]
//
// Output size per spatial dim (ONNX): floor or, with ceil_mode, ceil of
// (in + pad_begin + pad_end - ((k - 1) * dilation + 1)) / stride, plus 1;
// in ceil mode a last window that would start inside the end padding is
// dropped (the rule of PyTorch and ONNX >= 1.16; ONNX 1.12's shape inference
// would keep it, and that window would see no input). auto_pad SAME_* gives
// ceil(in / stride) outputs and splits the total padding, the odd element
// going at the end (SAME_UPPER) or the beginning (SAME_LOWER).
//
// Average pooling divides by the number of window taps inside the input
// (count_include_pad = false) or inside the padded input, i.e.
// [-pad_begin, in + pad_end) (count_include_pad = true; taps that ceil_mode
// pushes past the end padding are not counted, as in ONNX Runtime). Max
// pooling treats padding as the lowest finite value of the type.
//
// Types: f32; s8 and u8 for max pooling. Runs as a oneDNN pooling_v2
// primitive (dilation supported); more than 3 spatial dims run a loop.
// Layout: y has x's layout (plain or channels-last, tensor.h); the loop and
// the rare rescaled average (see ApplyRescale) convert x to plain first.
#ifndef QUANTD_KERNELS_POOLING_H_
#define QUANTD_KERNELS_POOLING_H_

#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/primitive_cache.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

enum class PoolKind { kMax, kAverage };
enum class AutoPad { kNotSet, kValid, kSameUpper, kSameLower };

struct PoolParams {
  PoolKind kind = PoolKind::kMax;
  std::vector<int64_t> kernel;          // one per spatial dim, each >= 1
  std::vector<int64_t> strides;         // empty: all 1
  std::vector<int64_t> dilations;       // empty: all 1
  std::vector<int64_t> pads;            // [begin..., end...]; empty: all 0
  AutoPad auto_pad = AutoPad::kNotSet;  // anything but kNotSet ignores pads
  bool ceil_mode = false;
  bool count_include_pad = false;  // average pooling only
  // Global pooling: the window is the whole spatial extent; kernel, strides,
  // dilations, pads, auto_pad and ceil_mode are ignored.
  bool global = false;
};

PoolParams GlobalPoolParams(PoolKind kind);

// Everything resolved for one input shape.
struct PoolGeometry {
  Shape output_shape;
  std::vector<int64_t> kernel, strides, dilations, pad_begin, pad_end;
};

absl::StatusOr<PoolGeometry> ResolvePoolGeometry(
    const PoolParams& params, absl::Span<const int64_t> input_shape);
absl::StatusOr<Shape> PoolOutputShape(const PoolParams& params,
                                      absl::Span<const int64_t> input_shape);

class PoolingForward {
 public:
  explicit PoolingForward(PoolParams params);
  absl::Status Forward(const Tensor& x, Tensor* y);

 private:
  struct Entry {
    PoolGeometry geometry;
    bool use_loop = false;  // no oneDNN primitive for this shape
    dnnl::pooling_v2_forward prim;
    dnnl::memory::desc src_md, dst_md;
    // Average pooling that counts padding, where ceil_mode windows reach
    // past the end padding: per spatial dim and output position, the factor
    // (kernel / taps counted) that turns oneDNN's divisor into ONNX's.
    std::vector<std::vector<float>> rescale;
  };
  PoolParams params_;
  PrimitiveCache<Entry> cache_;
};

// Plain-loop reference over every output and window tap.
absl::Status PoolReference(const PoolParams& params, const Tensor& x,
                           Tensor* y);

}  // namespace quantd

#endif  // QUANTD_KERNELS_POOLING_H_
