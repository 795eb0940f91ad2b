// Inner product (fully connected layer; ONNX Gemm with transB = 1, and
// MatMul against a constant [OC, K] weight), f32 and int8, with plain-loop
// references beside them.
//
//   InnerProductKernel fc;
//   Tensor y;                                      // allocated by Forward
//   absl::Status s = fc.Forward(x, w, &b, &y);     // x f32[N, 512]
//                                                  // w f32[1000, 512]
//                                                  // b f32[1000] -> y [N,
//                                                  1000]
//
//   QuantizedOpParams q;                           // see post_ops.h
//   q.src_scale = 0.1f; q.src_zero_point = 0;
//   q.weight_scales = per_output_channel_scales;   // OC entries, or 1
//   q.dst_type = DataType::kFloat32;
//   QuantizedInnerProductKernel qfc(q);
//   s = qfc.Forward(x_u8, w_s8, &b, &y);
//
// src is [N, K] or [N, C, spatial...], flattened to [N, C * spatial...];
// weights are [OC, K] (or [OC, C, spatial...] with the same flattening);
// bias f32 [OC] may be null; dst is [N, OC]. Post-ops and the int8
// arithmetic (per-OC weight scales, real-unit bias, requantization) are those
// of post_ops.h, as for convolution.
//
// Implemented on the matmul kernels with a transposed weight view: oneDNN 2.6's
// inner-product primitive has no zero-point support, its matmul does. Same
// int8 caveat as matmul.h: without VNNI, full-range u8 activations times
// weights beyond [-64, 64] can saturate.
#ifndef QUANTD_KERNELS_INNER_PRODUCT_H_
#define QUANTD_KERNELS_INNER_PRODUCT_H_

#include "absl/status/status.h"
#include "kernels/matmul.h"
#include "kernels/post_ops.h"
#include "kernels/tensor.h"

namespace quantd {

class InnerProductKernel {
 public:
  explicit InnerProductKernel(PostOps post_ops = {});
  absl::Status Forward(const Tensor& src, const Tensor& weights,
                       const Tensor* bias, Tensor* dst);
  // For tests: primitives created so far (one per distinct shape).
  size_t cached_primitives() const { return matmul_.cached_primitives(); }

 private:
  MatMulKernel matmul_;
};

class QuantizedInnerProductKernel {
 public:
  explicit QuantizedInnerProductKernel(QuantizedOpParams quant);
  absl::Status Forward(const Tensor& src, const Tensor& weights,
                       const Tensor* bias, Tensor* dst);
  size_t cached_primitives() const { return matmul_.cached_primitives(); }

 private:
  QuantizedMatMulKernel matmul_;
};

// References: loops in double precision, no oneDNN.
absl::Status InnerProductReference(const PostOps& post_ops, const Tensor& src,
                                   const Tensor& weights, const Tensor* bias,
                                   Tensor* dst);
absl::Status QuantizedInnerProductReference(const QuantizedOpParams& quant,
                                            const Tensor& src,
                                            const Tensor& weights,
                                            const Tensor* bias, Tensor* dst);

namespace inner_product_internal {

// src as [N, K] and weights as [OC, K] (views of the same storage), with
// bias checked against OC, or an InvalidArgument error naming the mismatch.
absl::Status FlattenOperands(const Tensor& src, const Tensor& weights,
                             const Tensor* bias, Tensor* src2d,
                             Tensor* weights2d);

}  // namespace inner_product_internal
}  // namespace quantd

#endif  // QUANTD_KERNELS_INNER_PRODUCT_H_
