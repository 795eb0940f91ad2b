// Registration of the built-in op families. Each family lives in its own file
// in engine/runtime/ops/ and registers its ops explicitly (no static
// initializers, which a static library's linker would silently drop).
#ifndef QUANTD_ENGINE_RUNTIME_OPS_REGISTER_OPS_H_
#define QUANTD_ENGINE_RUNTIME_OPS_REGISTER_OPS_H_

#include "engine/runtime/op_registry.h"

namespace quantd {

// Reshape, Flatten, Squeeze, Unsqueeze, Shape, Identity, Dropout, Expand,
// Constant, ConstantOfShape, Range.
void RegisterShapeOps(OpRegistry& registry);
// Concat, Split, Slice, Gather, Transpose, Pad, Tile, Trilu, Where, Cast.
void RegisterDataMovementOps(OpRegistry& registry);
// Resize, Upsample.
void RegisterResizeOps(OpRegistry& registry);
// Unary activations/math, broadcasting binary ops, comparisons, logic.
void RegisterElementwiseOps(OpRegistry& registry);
// Softmax, LogSoftmax, LayerNormalization, BatchNormalization, Reduce*.
void RegisterNormalizationOps(OpRegistry& registry);
// Conv, ConvTranspose.
void RegisterConvOps(OpRegistry& registry);
// MatMul, Gemm.
void RegisterMatMulOps(OpRegistry& registry);
// QuantizeLinear, DequantizeLinear.
void RegisterQuantizeOps(OpRegistry& registry);
// quantd.QuantizedConv, quantd.QuantizedMatMul (made by LowerToInt8).
void RegisterQuantizedOps(OpRegistry& registry);
// quantd.QuantizedAdd (made by LowerToInt8).
void RegisterQuantizedAddOp(OpRegistry& registry);
// quantd.WeightOnlyMatMul (made by LowerWeightOnly).
void RegisterWeightOnlyOps(OpRegistry& registry);
// MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool.
void RegisterPoolingOps(OpRegistry& registry);
// quantd.FakeQuant (fake_quant_op.cc), for quantization-aware training.
void RegisterFakeQuantOps(OpRegistry& registry);

// Every family above.
void RegisterAllOps(OpRegistry& registry);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_REGISTER_OPS_H_
