// What the compute kernels (convolution, deconvolution, matmul, inner
// product) do after the accumulation: fused post-ops, and for the int8
// kernels the quantization parameters of inputs and output.
//
//   PostOps post;               // ResNet block tail: conv + Add + Relu
//   post.sum = true;            //   dst = relu(conv(x) + dst_on_entry)
//   post.relu = true;
//   ConvolutionKernel conv(params, post);
//
//   QuantizedOpParams q;        // u8 activations, per-channel s8 weights
//   q.src_scale = 0.02f;        // real = 0.02 * (q - 128)
//   q.src_zero_point = 128;
//   q.weight_scales = {...};    // one per output channel, or one in all
//   q.dst_type = DataType::kUInt8;
//   q.dst_scale = 0.05f;
//   q.dst_zero_point = 0;       // dst = sat(round(real / 0.05) + 0)
//
// The int8 kernels share one definition of the arithmetic, in real numbers:
//   real_acc[c] = src_scale * weight_scales[c] * sum((src - src_zp) * w)
//                 + bias[c]                       (bias is f32, real units)
//   real = real_acc (+ sum_scale * real value of dst on entry, if post.sum)
//   real = relu(real) / leaky relu               (if post.relu)
//   dst  = real                                   (dst_type f32)
//   dst  = saturate(round_half_even(real / dst_scale) + dst_zp)  (u8 / s8)
// Weights are s8 and symmetric (no weight zero point).
//
// Also here: the reference side of that arithmetic (ApplyPostOpsReal,
// QuantizeReal) and, in post_ops_internal, the oneDNN plumbing the optimized
// kernels share (attributes, scratchpads, the u8 <-> s8 shift).
#ifndef QUANTD_KERNELS_POST_OPS_H_
#define QUANTD_KERNELS_POST_OPS_H_

#include <climits>
#include <cmath>
#include <cstdint>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/tensor.h"
#include "oneapi/dnnl/dnnl.hpp"

namespace quantd {

// Applied in this order: sum, then relu, the order of the common fused
// pattern Conv + Add + Relu.
struct PostOps {
  // dst = result + sum_scale * dst_on_entry. dst must then be defined with the
  // output's dtype and shape when the kernel is called.
  bool sum = false;
  float sum_scale = 1.f;
  // dst = x > 0 ? x : relu_alpha * x (relu_alpha 0 is ReLU, else LeakyRelu).
  bool relu = false;
  float relu_alpha = 0.f;
};

// Quantization of the int8 kernels' operands and result; see the top of this
// file for the arithmetic. The source's element type (u8 or s8) comes from the
// tensor itself.
struct QuantizedOpParams {
  float src_scale = 1.f;
  int32_t src_zero_point = 0;
  // Per output channel (conv / inner product: OC entries; matmul: N entries)
  // or per tensor (1 entry).
  std::vector<float> weight_scales;
  // kFloat32 returns real values; kUInt8 / kInt8 requantize with dst_scale
  // and dst_zero_point.
  DataType dst_type = DataType::kFloat32;
  float dst_scale = 1.f;
  int32_t dst_zero_point = 0;
  PostOps post_ops;
};

// The largest |w| of s8 weights for which the int8 kernels are exact on this
// CPU: 127 with VNNI, 64 without. See convolution.h for why (AVX2's
// vpmaddubsw saturates pairs of u8*s8 products at 16 bits). The quantizer can
// use it to choose 7-bit weights on CPUs without VNNI.
int32_t MaxExactInt8WeightMagnitude();

// Checks scales are positive and finite, zero points fit their types, the
// dst type is f32/u8/s8 and weight_scales has 1 or `output_channels` entries.
absl::Status ValidateQuantizedOpParams(const QuantizedOpParams& q,
                                       DataType src_type,
                                       int64_t output_channels);

// --- Shared by the reference implementations (plain C++, no oneDNN). ---

// Applies post-ops to one real-valued result; `dst_on_entry_real` is the real
// value dst held on entry (read only when post.sum).
inline double ApplyPostOpsReal(double real, const PostOps& post,
                               double dst_on_entry_real) {
  if (post.sum) real += post.sum_scale * dst_on_entry_real;
  if (post.relu && real < 0) real *= post.relu_alpha;
  return real;
}

// saturate(round_half_even(real / scale) + zero_point) into [qmin, qmax].
inline int32_t QuantizeReal(double real, double scale, int32_t zero_point,
                            int32_t qmin, int32_t qmax) {
  double v = std::nearbyint(real / scale) + zero_point;
  if (!(v >= qmin)) return qmin;  // also NaN
  if (v >= qmax) return qmax;
  return static_cast<int32_t>(v);
}

// Range of the integer types the int8 kernels read and write.
inline int32_t QuantTypeMin(DataType t) {
  return t == DataType::kUInt8 ? 0 : t == DataType::kInt8 ? -128 : INT32_MIN;
}
inline int32_t QuantTypeMax(DataType t) {
  return t == DataType::kUInt8 ? 255 : t == DataType::kInt8 ? 127 : INT32_MAX;
}

// Element i of a u8 or s8 tensor as a number.
inline double ReadQuantized(const Tensor& t, int64_t i) {
  return t.dtype() == DataType::kUInt8 ? t.data<uint8_t>()[i]
                                       : t.data<int8_t>()[i];
}

// The int8 references' epilogue: turns the exact accumulation `acc` of
// output element `i` (output channel `channel`) into dst[i] by the
// arithmetic above: scales, bias, post-ops, then f32 or requantization.
void StoreQuantizedResultReference(const QuantizedOpParams& q,
                                   const Tensor* bias, int64_t channel,
                                   double acc, int64_t i, Tensor* dst);

// --- oneDNN plumbing shared by the optimized kernels. ---
namespace post_ops_internal {

// attr with a user-managed scratchpad (so that one primitive can run on
// several threads at once; see RunPrimitive) and the post-op chain for
// `post`. sum_zero_point is subtracted from dst on entry (int8 dst).
dnnl::primitive_attr MakeAttr(const PostOps& post, int32_t sum_zero_point = 0);

// MakeAttr plus what the int8 kernels need: output scales per channel
// (`channel_dim` is the channel dim of dst), and runtime zero points for src
// (when src_zero_point, the one the primitive will see, is non-zero) and dst
// (int8 dst with a non-zero zero point). Pass their values with
// AddZeroPointArgs.
dnnl::primitive_attr MakeInt8Attr(const QuantizedOpParams& q, int channel_dim,
                                  int32_t src_zero_point);

// Adds the runtime zero-point arguments MakeInt8Attr asked for. The int32
// values live in `storage`, which must outlive the execution.
void AddZeroPointArgs(const QuantizedOpParams& q, int32_t src_zero_point,
                      int32_t storage[2],
                      std::unordered_map<int, dnnl::memory>& args);

// oneDNN's int8 primitives compute dst = oscale * (acc + bias), so the scale
// the primitive applies is src_scale * w_scale[c] (/ dst_scale for int8 dst),
// and a real-units bias must be divided by src_scale * w_scale[c].
std::vector<float> Int8OutputScales(const QuantizedOpParams& q);
std::vector<float> Int8DnnlBias(const QuantizedOpParams& q, const float* bias,
                                int64_t channels);

// Executes on this thread's stream with a freshly allocated scratchpad and
// waits. oneDNN primitives are safe to execute concurrently when each
// execution has its own scratchpad.
void RunPrimitive(const dnnl::primitive& prim,
                  const dnnl::memory::desc& scratchpad_desc,
                  std::unordered_map<int, dnnl::memory>& args);

// A copy of an s8 tensor as u8 with every value + 128, or of a u8 tensor as
// s8 with every value - 128: flipping the sign bit does exactly that. With
// the zero point moved by the same 128, every (q - zp) is unchanged.
Tensor FlipSignBit(const Tensor& t);

}  // namespace post_ops_internal
}  // namespace quantd

#endif  // QUANTD_KERNELS_POST_OPS_H_
