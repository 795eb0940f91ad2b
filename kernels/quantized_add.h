// Elementwise Add of two u8 tensors with per-tensor scales and zero points:
// what a QDQ graph's DequantizeLinear x2 -> Add -> [Relu] -> QuantizeLinear
// computes, and what ONNX Runtime fuses into QLinearAdd. quantd's int8
// lowering runs ResNet's residual Adds on it, so a block's output never
// leaves u8 (engine/passes/int8_lowering.h).
//
//   QuantizedAddParams p;
//   p.a = {0.02f, 0};  p.b = {0.05f, 128};     // scale, zero point
//   p.relu = true;
//   p.y = U8Params{0.04f, 0};                  // unset: f32 output
//   Tensor y;
//   absl::Status s = QuantizedAdd(a, b, p, &y);  // u8 [..] + u8 [..] -> u8
//
// Arithmetic, element for element the ONNX ops': each input dequantized in
// f32 ((q - zero_point) * scale, DequantizeLinear), summed in f32, relu'd,
// then quantized as QuantizeLinear does (x / scale, round half to even,
// saturate to [0, 255]). So the result equals quantd's fake-quant graph bit
// for bit, which the test checks against QuantizedAddReference.
//
// Shapes broadcast as numpy's (ONNX Add). Equal shapes in the same layout
// (plain, or both channels-last) run one pass, parallel over elements, with
// AVX-512 or AVX2 code for u8 output (kernels/cpu_isa.h), and y takes that
// layout; anything else runs the reference loop on plain copies.
#ifndef QUANTD_KERNELS_QUANTIZED_ADD_H_
#define QUANTD_KERNELS_QUANTIZED_ADD_H_

#include <cstdint>
#include <optional>

#include "absl/status/status.h"
#include "kernels/cpu_isa.h"
#include "kernels/tensor.h"

namespace quantd {

struct U8Params {
  float scale = 1.f;
  int32_t zero_point = 0;
};

struct QuantizedAddParams {
  U8Params a;
  U8Params b;
  bool relu = false;
  std::optional<U8Params> y;  // unset: y is f32
};

// Scales positive and finite, zero points in [0, 255].
absl::Status ValidateQuantizedAddParams(const QuantizedAddParams& p);

absl::Status QuantizedAdd(const Tensor& a, const Tensor& b,
                          const QuantizedAddParams& p, Tensor* y);

// Plain loop, one element at a time, through the broadcast index arithmetic.
absl::Status QuantizedAddReference(const Tensor& a, const Tensor& b,
                                   const QuantizedAddParams& p, Tensor* y);

namespace quantized_add_internal {
// The u8-output pass over n equal-shaped elements (p.y set) on one ISA's
// code; tests run every path the CPU has.
void AddSpanU8(CpuIsa isa, const uint8_t* a, const uint8_t* b, int64_t n,
               const QuantizedAddParams& p, uint8_t* y);
}  // namespace quantized_add_internal

}  // namespace quantd

#endif  // QUANTD_KERNELS_QUANTIZED_ADD_H_
