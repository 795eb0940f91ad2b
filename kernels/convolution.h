// Convolution (ONNX Conv), transposed convolution (ONNX ConvTranspose) and
// int8 convolution (ONNX QLinearConv / QDQ Conv), on oneDNN, with plain-loop
// reference implementations beside them for tests.
//
//   ConvParams p;
//   p.strides = {2, 2};
//   p.pads_begin = {1, 1};
//   p.pads_end = {1, 1};
//   PostOps relu;
//   relu.relu = true;
//   ConvolutionKernel conv(p, relu);
//   Tensor y;                                     // allocated by Forward
//   absl::Status s = conv.Forward(x, w, &b, &y);  // x f32[N,C,H,W]
//                                                 // w f32[OC,C,3,3]
//
//   QuantizedOpParams q;                        // see post_ops.h
//   q.src_scale = 0.02f; q.src_zero_point = 128;
//   q.weight_scales = per_channel_scales;       // OC entries
//   q.dst_type = DataType::kUInt8; q.dst_scale = 0.05f;
//   QuantizedConvolutionKernel qconv(p, q);
//   s = qconv.Forward(x_u8, w_s8, &b_f32_real_units, &y_u8);
//
// Shapes: src [N, C, spatial...], weights [OC, C/groups, k...]
// (ConvTranspose: [C, OC/groups, k...]), bias [OC], dst [N, OC, spatial...].
// Weights and bias are plain row-major; src may be plain or channels-last
// (Tensor::layout()), and dst is written in `dst_layout` (default plain), so
// chains of convolutions can stay channels-last, the layout oneDNN's
// convolutions use, without a reorder per conv (see engine/runtime/executor.h).
// 1-D, 2-D and 3-D; groups (depthwise when groups == C == OC), dilations,
// asymmetric pads, strides, any batch size. dst is written in place when it
// already has the output's dtype and shape, else allocated; with PostOps::sum
// it must hold the addend on entry.
//
// Speed: each kernel object caches a oneDNN primitive per input shape, lets
// oneDNN choose blocked layouts, reorders activations in and out of them,
// and caches the weights reordered into the primitive's layout. That cache
// is keyed by the weights' storage address and shape, and holds a reference
// to the storage, so the address cannot be reused by another tensor while the
// entry lives: weights must not be modified in place after their first use
// with a kernel (they are model constants). A kernel object may be used from
// several threads at once.
//
// Int8 numerics (QuantizedConvolutionKernel): the result is defined in real
// numbers in post_ops.h and the reference computes exactly that. oneDNN 2.6
// computes dst = oscale * (acc + bias) with f32 bias, so the kernel passes
// bias / (src_scale * w_scale[oc]) as bias and src_scale * w_scale[oc]
// (/ dst_scale) as output scales; src and dst zero points are runtime
// attributes. What the hardware does to the s32 accumulation matters:
//
//  * Without VNNI (this AVX2 EPYC; any AVX2 or AVX-512 CPU before Cascade
//    Lake), oneDNN multiplies u8 activations by s8 weights with vpmaddubsw,
//    which adds each pair of adjacent u8*s8 products into a SATURATING int16.
//    255 * 127 * 2 = 64770 > 32767, so full-range data silently clips: we
//    measured errors of 40000+ in acc units on most outputs of a conv with
//    uniform random u8 src and s8 weights in [-127, 127]. With |w| <= 64 the
//    pair sum is at most 255 * 128 = 32640 and cannot saturate.
//  * For s8 activations, oneDNN (non-VNNI) adds 128 to make them u8 and, to
//    avoid that saturation, halves the weights when it reorders them
//    (round-half-even of w / 2, "scale_adjust" 0.5) and doubles the output
//    scale: no saturation, but every odd weight is off by one, so results
//    are NOT exact even for small weights.
//  * With VNNI (vpdpbusd accumulates in 32 bits) both paths are exact.
//
// So the kernel chooses the path by the weights (their max |w| is computed
// once, with the weights cache): when max |w| <= MaxExactInt8WeightMagnitude()
// (64 without VNNI, 127 with), it runs oneDNN's u8 path, converting s8
// activations to u8 by flipping the sign bit (v + 128, zero point + 128),
// which is exact. With larger weights it runs the s8 path, converting u8
// activations to s8 (v - 128, zero point - 128): never catastrophic, but the
// weights lose their lowest bit, like 7-bit weights. The quantizer should
// therefore produce weights within [-64, 64] on CPUs without VNNI
// (MaxExactInt8WeightMagnitude()). The matmul and inner-product kernels run
// on oneDNN's int8 GEMM, which saturates the same way and has no s8 escape
// (see matmul.h).
//
// Requantization rounds half to even and saturates. oneDNN adds the dst zero
// point before rounding, so exact .5 ties can land one quantum away from
// round(real / dst_scale) + zp when the zero point is odd; results are
// within one quantum of the reference.
#ifndef QUANTD_KERNELS_CONVOLUTION_H_
#define QUANTD_KERNELS_CONVOLUTION_H_

#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/post_ops.h"
#include "kernels/tensor.h"

namespace quantd {

// One entry per spatial dim in every vector; an empty vector means the
// default (strides and dilations 1, pads and output_padding 0).
struct ConvParams {
  std::vector<int64_t> strides;
  std::vector<int64_t> dilations;  // ONNX convention: 1 is dense
  std::vector<int64_t> pads_begin;
  std::vector<int64_t> pads_end;
  // ConvTranspose only: extra output at the end of each spatial dim; must be
  // smaller than the stride. Must be empty or zero for Conv.
  std::vector<int64_t> output_padding;
  int64_t groups = 1;
};

// [N, OC, out...] with out = (in + pads - ((k - 1) * dilation + 1)) / stride
// + 1, or an InvalidArgument error saying what does not fit.
absl::StatusOr<Shape> ConvOutputShape(const ConvParams& params,
                                      const Shape& src, const Shape& weights);
// ConvTranspose: weights [C, OC/groups, k...]; out = stride * (in - 1) +
// output_padding + (k - 1) * dilation + 1 - pads.
absl::StatusOr<Shape> DeconvOutputShape(const ConvParams& params,
                                        const Shape& src, const Shape& weights);

namespace conv_internal {
class ConvCore;  // convolution.cc
}  // namespace conv_internal

// f32 Conv. bias (f32 [OC]) may be null.
class ConvolutionKernel {
 public:
  explicit ConvolutionKernel(ConvParams params, PostOps post_ops = {});
  ~ConvolutionKernel();
  absl::Status Forward(const Tensor& src, const Tensor& weights,
                       const Tensor* bias, Tensor* dst,
                       Layout dst_layout = Layout::kPlain);
  // The same with other post-ops than the constructor's. Variants share
  // this kernel's reordered weights (one primitive per variant): the
  // executor's fusions (engine/runtime/executor.h) use them.
  absl::Status ForwardWithPostOps(const PostOps& post, const Tensor& src,
                                  const Tensor& weights, const Tensor* bias,
                                  Tensor* dst,
                                  Layout dst_layout = Layout::kPlain);
  // For tests: primitives created so far (one per distinct input shape), and
  // reordered weight copies held.
  size_t cached_primitives() const;
  size_t cached_weights() const;

 private:
  ConvParams params_;
  PostOps post_ops_;
  std::unique_ptr<conv_internal::ConvCore> core_;
};

// f32 ConvTranspose. weights [C, OC/groups, k...], bias (f32 [OC]) may be
// null. ONNX's output_shape attribute and auto_pad are resolved to pads by the
// caller.
class DeconvolutionKernel {
 public:
  explicit DeconvolutionKernel(ConvParams params, PostOps post_ops = {});
  ~DeconvolutionKernel();
  absl::Status Forward(const Tensor& src, const Tensor& weights,
                       const Tensor* bias, Tensor* dst,
                       Layout dst_layout = Layout::kPlain);
  // The same with other post-ops than the constructor's. Variants share
  // this kernel's reordered weights (one primitive per variant): the
  // executor's fusions (engine/runtime/executor.h) use them.
  absl::Status ForwardWithPostOps(const PostOps& post, const Tensor& src,
                                  const Tensor& weights, const Tensor* bias,
                                  Tensor* dst,
                                  Layout dst_layout = Layout::kPlain);
  size_t cached_primitives() const;
  size_t cached_weights() const;

 private:
  ConvParams params_;
  PostOps post_ops_;
  std::unique_ptr<conv_internal::ConvCore> core_;
};

// int8 Conv: src u8 or s8, weights s8 [OC, C/groups, k...], bias f32 [OC] in
// real units (may be null), dst f32 / u8 / s8 per quant.dst_type. The
// arithmetic is in post_ops.h; quant.post_ops are applied in real numbers
// before requantization.
class QuantizedConvolutionKernel {
 public:
  QuantizedConvolutionKernel(ConvParams params, QuantizedOpParams quant);
  ~QuantizedConvolutionKernel();
  absl::Status Forward(const Tensor& src, const Tensor& weights,
                       const Tensor* bias, Tensor* dst,
                       Layout dst_layout = Layout::kPlain);
  // The same with other post-ops than the constructor's. Variants share
  // this kernel's reordered weights (one primitive per variant): the
  // executor's fusions (engine/runtime/executor.h) use them.
  absl::Status ForwardWithPostOps(const PostOps& post, const Tensor& src,
                                  const Tensor& weights, const Tensor* bias,
                                  Tensor* dst,
                                  Layout dst_layout = Layout::kPlain);
  size_t cached_primitives() const;
  size_t cached_weights() const;

 private:
  absl::Status Run(const QuantizedOpParams& quant, const Tensor& src,
                   const Tensor& weights, const Tensor* bias, Tensor* dst,
                   Layout dst_layout);

  ConvParams params_;
  QuantizedOpParams quant_;
  std::unique_ptr<conv_internal::ConvCore> core_;
};

// Reference implementations: direct loops with double accumulation, no
// oneDNN. Same arguments and dst handling as the kernels.
absl::Status ConvolutionReference(const ConvParams& params,
                                  const PostOps& post_ops, const Tensor& src,
                                  const Tensor& weights, const Tensor* bias,
                                  Tensor* dst);
absl::Status DeconvolutionReference(const ConvParams& params,
                                    const PostOps& post_ops, const Tensor& src,
                                    const Tensor& weights, const Tensor* bias,
                                    Tensor* dst);
absl::Status QuantizedConvolutionReference(const ConvParams& params,
                                           const QuantizedOpParams& quant,
                                           const Tensor& src,
                                           const Tensor& weights,
                                           const Tensor* bias, Tensor* dst);

namespace conv_internal {

// Parsed and validated parameters, shared by the kernels and the reference.
// Vectors have one entry per spatial dim.
struct ConvGeometry {
  bool transposed = false;
  int spatial = 0;
  int64_t batch = 0;
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t groups = 1;
  std::vector<int64_t> in, kernel, out;
  std::vector<int64_t> strides, dilations, pads_begin, pads_end, output_padding;
  Shape dst_shape;
};

absl::StatusOr<ConvGeometry> ResolveConvGeometry(const ConvParams& params,
                                                 const Shape& src,
                                                 const Shape& weights,
                                                 bool transposed);

// Checks dtypes and bias, and makes *dst a tensor of `type` and the output
// shape (reusing it when it already is one; with post.sum it must be).
absl::Status PrepareConvOutput(const ConvGeometry& g, const PostOps& post,
                               DataType type, const Tensor* bias, Tensor* dst);

}  // namespace conv_internal
}  // namespace quantd

#endif  // QUANTD_KERNELS_CONVOLUTION_H_
