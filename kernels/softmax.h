// Softmax and log-softmax along one axis (ONNX Softmax / LogSoftmax, opset
// 13 semantics) on f32 tensors.
//
//   SoftmaxForward softmax(/*axis=*/-1);
//   Tensor y;
//   absl::Status s = softmax.Forward(logits, &y);     // rows sum to 1
//   SoftmaxForward log_softmax(/*axis=*/1, /*log=*/true);
//
// oneDNN 2.6 has a JIT softmax only for the innermost axis of a plain
// tensor (other axes get its slow reference implementation), so a softmax
// over an inner axis is computed as transpose -> softmax over the last axis
// -> transpose back, all three oneDNN primitives.
#ifndef QUANTD_KERNELS_SOFTMAX_H_
#define QUANTD_KERNELS_SOFTMAX_H_

#include "absl/status/status.h"
#include "kernels/primitive_cache.h"
#include "kernels/reorder.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

class SoftmaxForward {
 public:
  // axis may be negative (counts from the end); it is checked against the
  // input's rank in Forward.
  explicit SoftmaxForward(int axis = -1, bool log = false);
  // x: f32 of rank >= 1. *y is reused if it is f32 of x's shape (it may be x).
  absl::Status Forward(const Tensor& x, Tensor* y);

 private:
  struct Entry {
    dnnl::softmax_v2_forward prim;
    dnnl::memory::desc md;
  };
  int axis_;
  bool log_;
  PrimitiveCache<Entry> cache_;
  TransposeForward to_last_{{0, 2, 1}};    // [outer, axis, inner] -> last
  TransposeForward from_last_{{0, 2, 1}};  // and back
};

// Plain-loop reference (double accumulation, max-subtracted).
absl::Status SoftmaxReference(const Tensor& x, int axis, bool log, Tensor* y);

}  // namespace quantd

#endif  // QUANTD_KERNELS_SOFTMAX_H_
