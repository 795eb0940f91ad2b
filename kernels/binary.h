// Elementwise binary ops with numpy (ONNX multidirectional) broadcasting:
// Add, Sub, Mul, Div, Max, Min, Pow, and the comparisons Equal, Less,
// Greater, LessOrEqual, GreaterOrEqual, which produce kBool (one byte, 0/1).
//
//   BinaryForward add(BinaryOp::kAdd);
//   Tensor y;
//   absl::Status s = add.Forward(a, b, &y);  // f32[2,3,4] + f32[3,1] ->
//   [2,3,4] absl::StatusOr<Shape> shape = BroadcastShapes({2, 1, 4}, {3, 1});
//
// Types: f32 for every op; int32 and int64 for all but Pow (shape arithmetic
// in ONNX graphs runs on int64); bool for Equal. Both inputs have the same
// type, except Pow, whose f32 base may take an f32, int32 or int64 exponent.
// Integer Div truncates toward zero (C semantics, as ONNX Runtime does) and
// fails with InvalidArgument on a zero divisor; integer overflow wraps.
// NaN handling of Max/Min is unspecified.
//
// f32 arithmetic and comparisons run as oneDNN binary primitives when one
// input already has the output's shape (oneDNN 2.6 broadcasts only its
// second source; commutative ops and comparisons swap their inputs to get
// there). Everything else runs a strided loop over dims merged by broadcast
// pattern. *out is reused when it already has the right type and shape, and
// may be one of the inputs (in place).
#ifndef QUANTD_KERNELS_BINARY_H_
#define QUANTD_KERNELS_BINARY_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "kernels/primitive_cache.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

enum class BinaryOp {
  kAdd,
  kSub,
  kMul,
  kDiv,
  kMax,
  kMin,
  kPow,
  kEqual,
  kLess,
  kGreater,
  kLessOrEqual,
  kGreaterOrEqual,
};

const char* BinaryOpName(BinaryOp op);
// True for the ops that produce kBool.
bool IsComparison(BinaryOp op);

// The numpy broadcast of two shapes: right-aligned, each pair of dims equal
// or one of them 1. Fails with a message naming both shapes otherwise.
absl::StatusOr<Shape> BroadcastShapes(absl::Span<const int64_t> a,
                                      absl::Span<const int64_t> b);

class BinaryForward {
 public:
  explicit BinaryForward(BinaryOp op);
  absl::Status Forward(const Tensor& a, const Tensor& b, Tensor* out);

 private:
  struct Entry {
    dnnl::binary prim;
    dnnl::memory::desc src0_md, src1_md, dst_md;
    bool swapped = false;  // src0 is b
  };
  BinaryOp op_;
  PrimitiveCache<Entry> cache_;
};

// Plain-loop reference: one output element at a time.
absl::Status BinaryReference(BinaryOp op, const Tensor& a, const Tensor& b,
                             Tensor* out);

}  // namespace quantd

#endif  // QUANTD_KERNELS_BINARY_H_
