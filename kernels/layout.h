// Conversion between plain and channels-last tensors (Tensor::layout(), see
// tensor.h), and the oneDNN memory descriptor of either layout.
//
//   Tensor x(DataType::kFloat32, {8, 64, 56, 56});      // plain NCHW
//   absl::StatusOr<Tensor> nhwc = ToLayout(x, Layout::kChannelsLast);
//   // nhwc->shape() is still {8, 64, 56, 56}; its bytes are N,H,W,C.
//   absl::StatusOr<Tensor> back = ToLayout(*nhwc, Layout::kPlain);
//
// The executor calls ToLayout where a channels-last value meets a kernel,
// hook or caller that reads plain tensors; it is a oneDNN reorder (any
// element type, bit-exact: TransposeForward in reorder.h).
#ifndef QUANTD_KERNELS_LAYOUT_H_
#define QUANTD_KERNELS_LAYOUT_H_

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

// `t` in `layout`: `t` itself (shared storage) when it already is or when
// both layouts order its elements alike (one channel, or one spatial
// position as after global pooling), else a new tensor. kChannelsLast needs
// rank >= 3.
absl::StatusOr<Tensor> ToLayout(const Tensor& t, Layout layout);

// The same by index arithmetic, for tests.
absl::StatusOr<Tensor> ToLayoutReference(const Tensor& t, Layout layout);

// Strides of a tensor with this logical shape stored in `layout`: dense
// row-major, or (channels-last, rank >= 3) those of [N, spatial..., C].
dnnl::memory::dims LayoutStrides(absl::Span<const int64_t> shape,
                                 Layout layout);

// A oneDNN descriptor of a tensor with this logical shape stored in
// `layout` (channels-last: strides of [N, spatial..., C]).
dnnl::memory::desc LayoutDesc(DataType type, absl::Span<const int64_t> shape,
                              Layout layout);

}  // namespace quantd

#endif  // QUANTD_KERNELS_LAYOUT_H_
