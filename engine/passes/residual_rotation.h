// Rotates a transformer's residual stream (QuaRot, Ashkboos et al. 2024;
// SpinQuant, Liu et al. 2024) with an orthogonal Q folded into the weights,
// so that the exported model has no extra op: every value on the stream
// becomes x Q, which has no outlier channels (mean_preserving_rotation.h).
//
//   writers:  embedding tables E -> E Q, output projections W -> W Q,
//             their biases b -> b Q
//   readers:  after their LayerNorm's gain and bias are folded into them
//             (layer_norm_folding.h), W -> Q^T W
//   LayerNorm itself is unchanged: Q fixes the ones vector, so
//   LayerNorm(x Q) = LayerNorm(x) Q for a LayerNorm with unit gain.
//
// The stream is found from the graph, not from names: starting at each
// folded LayerNorm's input, every value that Add nodes connect to it, and
// each such value's producers (Add, MatMul or Gather with a constant
// weight) and readers (LayerNorm, Add, MatMul with a constant weight,
// Shape). A stream reaching anything else (a graph input or output, a
// LayerNorm that could not be folded, a Mul, a Concat) is left alone and
// the reason reported; nothing is changed for it.
//
// The per-head value/output rotation (QuaRot's R2) is head_rotation.h, the
// online rotation before MLP down projections (R4, extra ops at run time)
// online_rotation.h.
//
//   absl::StatusOr<RotationOutcome> r = RotateResidualStreams(graph, seed);
//   for (const std::string& n : r->notes) ...    // what was rotated
//   for (const std::string& n : r->skipped) ...  // what was not, and why
#ifndef QUANTD_ENGINE_PASSES_RESIDUAL_ROTATION_H_
#define QUANTD_ENGINE_PASSES_RESIDUAL_ROTATION_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"

namespace quantd {

struct RotationOutcome {
  // "residual stream of 'ln_f' (d=128, Hadamard 128): 2 embeddings, 14
  // weights, 8 biases, 5 LayerNorms; no op added".
  std::vector<std::string> notes;
  // LayerNorms that could not be folded, streams that could not be rotated.
  std::vector<std::string> skipped;
  // Each node whose constant input changed (MatMul layers, Gathers, Adds)
  // with how: {"fc1", "rotation: reads the d=128 stream, W -> Q^T W"}.
  std::vector<std::pair<std::string, std::string>> changed_nodes;
};

// Folds LayerNorm affines, then rotates every stream it can; the float
// function is unchanged up to rounding. `seed` picks Q's random signs.
absl::StatusOr<RotationOutcome> RotateResidualStreams(Graph& graph,
                                                      uint64_t seed);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_RESIDUAL_ROTATION_H_
