// The online rotation before MLP down projections (QuaRot's R4): a down
// projection's input comes out of a nonlinearity (GELU, SiLU * up, ReLU),
// so no weight before it can absorb a rotation; one has to run at run time.
// For a MatMul with a constant weight W [K, N] whose input x comes from an
// activation (Gelu, Relu, Mul, Sigmoid, Tanh, HardSwish, ...):
//
//   x -> Reshape [-1, a, b] -> MatMul(., B) -> MatMul(A^T, .) -> Reshape
//     back (Shape of x) -> MatMul(., R^T W)
//
// with K = a * b and R = A (x) B, A and B randomized Hadamard matrices
// (mean_preserving_rotation.h): x R = vec(A^T X B), so the two small
// MatMuls cost K (a + b) multiply-adds per row instead of a dense K x K
// product's K^2, which ONNX has no fast Walsh-Hadamard op to avoid. The
// function is unchanged up to rounding; the down projection's quantized
// input has an outlier channel spread over all K channels. The inserted
// MatMuls stay float (`float_nodes`: the caller keeps them out of
// quantization; rotating by an int8 Hadamard would quantize the very
// outliers it is there to spread).
//
// b is the largest power of two dividing K with b^2 <= K; an odd K (b = 1)
// is skipped with the reason.
//
//   absl::StatusOr<OnlineRotationOutcome> r = InsertOnlineRotations(g, 7);
//   for (const std::string& n : r->float_nodes) selection.excluded_nodes...
#ifndef QUANTD_ENGINE_PASSES_ONLINE_ROTATION_H_
#define QUANTD_ENGINE_PASSES_ONLINE_ROTATION_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/passes/residual_rotation.h"

namespace quantd {

// notes: "'fc_out': online Hadamard 32 x 16 on its 512 inputs, 24576 float
// multiply-adds per row (37.5% of the layer's)".
struct OnlineRotationOutcome : RotationOutcome {
  // The inserted MatMul with a constant right operand, which would
  // otherwise be taken for a quantizable layer.
  std::vector<std::string> float_nodes;
  int64_t added_macs_per_row = 0;  // summed over the layers rotated
};

// Inserts an online rotation before every activation-fed MatMul layer.
absl::StatusOr<OnlineRotationOutcome> InsertOnlineRotations(Graph& graph,
                                                            uint64_t seed);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_ONLINE_ROTATION_H_
