// Data movement kernels: transpose by a permutation (ONNX Transpose) and
// element type conversion (ONNX Cast).
//
//   TransposeForward t({0, 2, 3, 1});          // NCHW -> NHWC
//   Tensor y;                                  // allocated by Forward
//   absl::Status s = t.Forward(x, &y);         // y is f32[N,H,W,C]
//
//   CastForward to_int(DataType::kInt64);
//   s = to_int.Forward(x, &y);                 // 2.7f -> 2, -2.7f -> -2
//
// Transpose works for every DataType as a oneDNN reorder: f32 moves as f32,
// other types as groups of bytes (u8), which keeps them bit-exact (oneDNN
// 2.6's JIT transpose of s32 rounds through f32, and its f16 reorders lose
// the sign of -0.0). Adjacent
// dims that stay adjacent are merged first, so any rank works; the rare
// shape that still has more than 12 dims falls back to a loop.
//
// Cast runs as OpenMP loops: oneDNN 2.6 reorders round float -> int to
// nearest (ONNX truncates) and flip -0.0 to +0.0 in f16 <-> f32. Semantics
// (ONNX leaves float->int out-of-range behaviour undefined; this is quantd's):
//   float -> integer   truncates toward zero, saturates to the target range
//                      (like oneDNN's saturating conversions), NaN -> 0.
//   integer -> integer wraps (two's complement), as C++ and numpy do.
//   integer -> float   rounds to nearest even.
//   f32 <-> f16        rounds to nearest even; overflow -> inf; NaN stays NaN.
//   anything -> bool   x != 0 (NaN -> true); bool -> anything: 0 or 1.
//   integer -> f16     goes through f32 (rounds twice; exact below 2^24).
// Forward writes into *y when it already has the right dtype and shape, and
// allocates a fresh plain row-major tensor otherwise.
#ifndef QUANTD_KERNELS_REORDER_H_
#define QUANTD_KERNELS_REORDER_H_

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/primitive_cache.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

// Output dim i is input dim perm[i]. An empty perm reverses the dims (the
// ONNX default). Fails unless perm is a permutation of 0..rank-1.
absl::StatusOr<Shape> TransposeOutputShape(absl::Span<const int64_t> input,
                                           absl::Span<const int64_t> perm);

class TransposeForward {
 public:
  explicit TransposeForward(std::vector<int64_t> perm = {});
  absl::Status Forward(const Tensor& x, Tensor* y);

 private:
  struct Entry {
    bool copy_only = false;  // the permutation moves no data
    dnnl::reorder prim;
    dnnl::memory::desc src_md;
    dnnl::memory::desc dst_md;
  };
  std::vector<int64_t> perm_;
  PrimitiveCache<Entry> cache_;
};

class CastForward {
 public:
  explicit CastForward(DataType to);
  absl::Status Forward(const Tensor& x, Tensor* y);

 private:
  DataType to_;
};

// IEEE binary16 bit patterns, round to nearest even. Exposed because model
// loading and export need them too.
uint16_t HalfBitsFromFloat(float f);
float FloatFromHalfBits(uint16_t h);

// Plain-loop references the tests compare the kernels against.
absl::Status TransposeReference(const Tensor& x, absl::Span<const int64_t> perm,
                                Tensor* y);
absl::Status CastReference(const Tensor& x, DataType to, Tensor* y);

}  // namespace quantd

#endif  // QUANTD_KERNELS_REORDER_H_
