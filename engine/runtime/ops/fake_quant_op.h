// quantd.FakeQuant(x f32, scale f32 [K] or scalar, zero_point int32 [K]?)
// -> y f32: quantize-dequantize for quantization-aware training
// (kernels/fake_quant.h). Attributes: axis (default -1: per tensor),
// block_size (0), qmin, qmax. The training graph carries these nodes where
// the exported model will have QuantizeLinear/DequantizeLinear pairs.
#ifndef QUANTD_ENGINE_RUNTIME_OPS_FAKE_QUANT_OP_H_
#define QUANTD_ENGINE_RUNTIME_OPS_FAKE_QUANT_OP_H_

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "kernels/fake_quant.h"

namespace quantd {

inline constexpr char kFakeQuantOp[] = "FakeQuant";  // domain "quantd"

// The kernel parameters of a FakeQuant node given its scale and zero-point
// inputs (zero_point may be null).
absl::StatusOr<FakeQuantParams> ReadFakeQuantParams(const Node& node,
                                                    const Tensor& scale,
                                                    const Tensor* zero_point);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_FAKE_QUANT_OP_H_
