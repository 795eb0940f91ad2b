// The u8 half of LowerToInt8 (int8_lowering.h), run after the layers are
// lowered: values with a range that an int8 op produces stay u8.
//   - a static QuantizedConv or QuantizedMatMul whose output has a range
//     writes it as u8 (y_scale, y_zero_point);
//   - an Add whose two operands are u8 becomes quantd.QuantizedAdd, its
//     sole-reader Relu fused, writing u8 when its output has a range;
//   - a MaxPool whose u8 input has the same parameters as its output's
//     range runs on u8;
//   - where an Add or MaxPool reads a value with a range that no int8 op
//     produced (a graph input, a float node's output), one QuantizeLinear
//     starts the region there;
//   - any other reader of a u8 value (a float op, a graph output's
//     producer, a reader expecting other parameters) reads it through one
//     DequantizeLinear, which is what the QDQ graph's readers see.
// Graph outputs are never u8.
#ifndef QUANTD_ENGINE_PASSES_INT8_CHAINING_H_
#define QUANTD_ENGINE_PASSES_INT8_CHAINING_H_

#include "engine/passes/int8_lowering.h"

namespace quantd {

void LowerInt8Regions(Graph& graph, const RangeMap& ranges,
                      Int8LoweringStats& stats);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_INT8_CHAINING_H_
