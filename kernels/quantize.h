// QuantizeLinear and DequantizeLinear with ONNX semantics (opset 21):
//
//   quantize:   y = saturate(round_half_even(x / scale) + zero_point)
//   dequantize: y = (x - zero_point) * scale
//
// Layouts of scale (and zero_point, which has scale's shape):
//   per tensor  scale is a scalar or has one element           (block_size 0)
//   per axis    scale is 1-D with x.dim(axis) elements         (block_size 0)
//   blocked     scale has x's rank and shape, except that dim `axis` is
//               ceil(x.dim(axis) / block_size); element i along `axis` uses
//               scale entry i / block_size                     (block_size > 0)
//
// Quantized values are stored in u8 or s8; a caller-given [qmin, qmax]
// narrows the range, e.g. [-8, 7] in s8 for int4 groups (block quantization
// of weights), or [-64, 64] for 7-bit weights (see
// MaxExactInt8WeightMagnitude in post_ops.h). NaN quantizes to the zero point.
//
//   QuantizeOptions opts;
//   opts.output_type = DataType::kInt8;
//   opts.axis = 0;                              // per output channel
//   Tensor q;                                   // allocated by the call
//   absl::Status s = QuantizeLinear(w, scales, nullptr, opts, &q);
//   Tensor back;
//   DequantizeOptions dopts;
//   dopts.axis = 0;
//   s = DequantizeLinear(q, scales, nullptr, dopts, &back);
//
// DynamicQuantizeLinear (ONNX opset 11): u8 per-tensor parameters chosen
// from x's own range at run time, then QuantizeLinear with them. In f32, as
// the ONNX spec and ONNX Runtime compute it:
//
//   x_min = min(0, min(x)),  x_max = max(0, max(x))
//   scale = (x_max - x_min) / 255
//   zero_point = saturate(round_half_even(0 - x_min / scale))  in [0, 255]
//   y = saturate(round_half_even(x / scale) + zero_point)
//
// When x_max == x_min (x all zero or empty) the spec's scale would be 0 and
// every division above 0/0. ONNX Runtime uses scale 1 then, which gives
// zero_point 0 and y all 0; so does quantd (also when a range of a few
// denormals makes (x_max - x_min) / 255 underflow to 0), so nothing ever
// divides by zero and the scale is always a valid QuantizeLinear scale.
// NaNs are left out of min and max and quantize to the zero point; an
// infinite value, or a range whose width overflows f32, is an error (no
// finite scale covers it).
//
//   Tensor y;
//   DynamicQuantParams params;
//   absl::Status s = DynamicQuantizeLinear(x, &y, &params);
//   // y: u8, x's shape; params.scale, params.zero_point: y_scale, y_zp
//
// Plain loops (vectorized by the compiler), split over threads with OpenMP
// for large tensors.
#ifndef QUANTD_KERNELS_QUANTIZE_H_
#define QUANTD_KERNELS_QUANTIZE_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace quantd {

// The smallest scale quantd chooses for weights and activations (FLT_EPSILON,
// the floor torch.ao's observers use). A dead conv channel (weights all
// zero or ~1e-30 after BatchNorm folding) would otherwise get a denormal
// scale (2.5e-41 was seen on a third-party model) that fails the int8
// kernels, whose output stage needs src_scale * weight_scale to be a normal
// float: 2^-23 * 2^-23 is. Ranges narrower than 127 (or 255) such steps
// quantize to a few levels, which for weights means a dead channel stays
// dead. Plans, GPTQ/AWQ, QAT's learned steps and the int8 lowering all
// clamp to it, so the export and the kernels never see a smaller one.
inline constexpr float kMinQuantScale = 1.1920929e-07f;

struct QuantizeOptions {
  // Axis for per-axis and blocked layouts; negative counts from the back.
  // Ignored for per-tensor scales.
  int64_t axis = 1;
  // > 0 selects the blocked layout.
  int64_t block_size = 0;
  // kUInt8 or kInt8. A zero_point tensor, if given, must have this type.
  DataType output_type = DataType::kUInt8;
  // Clamp range, within output_type's; defaults to the whole type.
  std::optional<int32_t> qmin;
  std::optional<int32_t> qmax;
};

struct DequantizeOptions {
  int64_t axis = 1;
  int64_t block_size = 0;
};

// x: f32. scale: f32 (positive, finite). zero_point: optional, scale's shape,
// dtype output_type, within [qmin, qmax]. *y is reused when it has the right
// dtype and shape, else allocated.
absl::Status QuantizeLinear(const Tensor& x, const Tensor& scale,
                            const Tensor* zero_point,
                            const QuantizeOptions& options, Tensor* y);

// x: u8, s8 or s32. scale: f32. zero_point: optional, x's dtype, scale's
// shape. *y (f32) is reused when it has the right shape, else allocated.
absl::Status DequantizeLinear(const Tensor& x, const Tensor& scale,
                              const Tensor* zero_point,
                              const DequantizeOptions& options, Tensor* y);

// DynamicQuantizeLinear's y_scale and y_zero_point for x (f32).
struct DynamicQuantParams {
  float scale = 1.f;
  int32_t zero_point = 0;  // in [0, 255]
};

// The parameters alone, from one pass over x (min and max).
absl::StatusOr<DynamicQuantParams> ComputeDynamicQuantParams(const Tensor& x);

// Parameters and y (u8, x's shape; reused when it already is one, else
// allocated). `params` may be null.
absl::Status DynamicQuantizeLinear(const Tensor& x, Tensor* y,
                                   DynamicQuantParams* params);

// The same with plain scalar loops and no threads, written from the formulas
// above rather than from the kernel: what the tests compare it with.
absl::Status DynamicQuantizeLinearReference(const Tensor& x, Tensor* y,
                                            DynamicQuantParams* params);

}  // namespace quantd

#endif  // QUANTD_KERNELS_QUANTIZE_H_
