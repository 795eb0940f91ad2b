// Matrix multiplication with ONNX MatMul (numpy matmul) semantics, f32 and
// int8, on oneDNN, with plain-loop references beside them for tests.
//
//   MatMulKernel mm;
//   Tensor y;                                   // allocated by Forward
//   absl::Status s = mm.Forward(a, b, nullptr, &y);  // [2,1,3,4] x [5,4,6]
//                                                    // -> y [2,5,3,6]
//
//   QuantizedOpParams q;                        // see post_ops.h
//   q.src_scale = 0.1f; q.src_zero_point = 128; // a is u8 (or s8)
//   q.weight_scales = per_column_scales;        // N entries, or 1
//   q.dst_type = DataType::kFloat32;
//   QuantizedMatMulKernel qmm(q);
//   s = qmm.Forward(a_u8, b_s8, &bias_f32, &y);
//
// Shapes: a [..., M, K] x b [..., K, N] -> [broadcast(...), M, N]. Batch dims
// broadcast numpy-style (they are aligned from the right, size 1 stretches).
// A 1-D a ([K]) is a row vector and a 1-D b ([K]) a column vector, whose
// dims are dropped from the result: [K] x [K, N] -> [N], [M, K] x [K] -> [M].
// With transpose_b, b is given as [..., N, K] (ONNX Gemm transB = 1; the
// layout of inner-product weights). bias (f32 [N], optional) is added to
// every row; post-ops as in post_ops.h (sum: dst holds the addend).
//
// Operands are plain row-major and used in place; oneDNN's matmul reads them
// through strides, so nothing is reordered or cached but the primitive (one
// per shape). dst is written in place when it already has the output's dtype
// and shape, else allocated. A kernel may be used from several threads.
//
// Int8 (QuantizedMatMulKernel): a is the activation (u8 or s8, per-tensor
// scale and zero point), b the weights (s8, symmetric, per-column scales over
// N or per tensor); arithmetic as in post_ops.h. s8 activations are converted
// to u8 (sign bit flipped, zero point + 128) because oneDNN 2.6's int8 GEMM
// falls back to a slow reference loop for s8 sources with a zero point.
// Caveat (see convolution.h): without VNNI, oneDNN's int8 GEMM adds pairs of
// u8 * s8 products into a saturating int16. Results are exact when the
// weights are within [-64, 64] (MaxExactInt8WeightMagnitude()) or the
// activations within [0, 127]; with full-range weights AND activations,
// outputs can be wrong by up to tens of thousands of accumulator units.
// Unlike convolution there is no non-saturating path for the GEMM, so the
// quantizer must produce 7-bit weights on such CPUs.
#ifndef QUANTD_KERNELS_MATMUL_H_
#define QUANTD_KERNELS_MATMUL_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/post_ops.h"
#include "kernels/tensor.h"

namespace quantd {

absl::StatusOr<Shape> MatMulOutputShape(const Shape& a, const Shape& b,
                                        bool transpose_b = false);

namespace matmul_internal {
class MatMulCore;  // matmul.cc
}  // namespace matmul_internal

// f32 x f32 -> f32.
class MatMulKernel {
 public:
  explicit MatMulKernel(PostOps post_ops = {}, bool transpose_b = false);
  ~MatMulKernel();
  absl::Status Forward(const Tensor& a, const Tensor& b, const Tensor* bias,
                       Tensor* dst);
  // For tests: primitives created so far (one per distinct shape pair).
  size_t cached_primitives() const;

 private:
  PostOps post_ops_;
  bool transpose_b_;
  std::unique_ptr<matmul_internal::MatMulCore> core_;
};

// (u8 | s8) x s8 -> f32 | u8 | s8.
class QuantizedMatMulKernel {
 public:
  explicit QuantizedMatMulKernel(QuantizedOpParams quant,
                                 bool transpose_b = false);
  ~QuantizedMatMulKernel();
  absl::Status Forward(const Tensor& a, const Tensor& b, const Tensor* bias,
                       Tensor* dst);
  size_t cached_primitives() const;

 private:
  QuantizedOpParams quant_;
  bool transpose_b_;
  std::unique_ptr<matmul_internal::MatMulCore> core_;
};

// References: loops in double precision, no oneDNN.
absl::Status MatMulReference(const PostOps& post_ops, bool transpose_b,
                             const Tensor& a, const Tensor& b,
                             const Tensor* bias, Tensor* dst);
absl::Status QuantizedMatMulReference(const QuantizedOpParams& quant,
                                      bool transpose_b, const Tensor& a,
                                      const Tensor& b, const Tensor* bias,
                                      Tensor* dst);

namespace matmul_internal {

// The problem with both operands brought to the same rank (>= 2) by
// prepending 1s, as oneDNN wants it.
struct MatMulGeometry {
  Shape a_dims;     // [batch..., M, K]
  Shape b_dims;     // [batch..., K, N] (logical, whatever the layout)
  Shape b_strides;  // of b_dims in b's memory
  Shape dst_dims;   // [broadcast batch..., M, N]
  int64_t m = 0, k = 0, n = 0;
  Shape dst_shape;  // the ONNX result: dst_dims without 1-D operands' dims
};

absl::StatusOr<MatMulGeometry> ResolveMatMulGeometry(const Shape& a,
                                                     const Shape& b,
                                                     bool transpose_b);

// Checks bias and makes *dst a tensor of `type` and the output shape.
absl::Status PrepareMatMulOutput(const MatMulGeometry& g, const PostOps& post,
                                 DataType type, const Tensor* bias,
                                 Tensor* dst);

}  // namespace matmul_internal
}  // namespace quantd

#endif  // QUANTD_KERNELS_MATMUL_H_
