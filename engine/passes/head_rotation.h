// Rotates each attention head's value vectors (QuaRot's R2, Ashkboos et al.
// 2024) with an orthogonal R folded into the value and output projections:
//
//   value projection   W_v[:, head h] -> W_v[:, head h] R, bias b_v[h] R
//   output projection  W_o[head h rows, :] -> R^T W_o[head h rows, :]
//
// Attention mixes a head's value vectors across positions, never across
// channels, so each head's output becomes (A V_h) R, and the output
// projection's R^T undoes it: the float function is unchanged and the
// exported model has no extra op. What changes is what gets quantized: the
// output projection's input (every head's output side by side) has any
// outlier channel of a head spread over that head's dh channels, and the
// value weights' columns are mixed within each head.
//
// The pair is traced from the graph, not matched by names:
//   V = MatMul(x, W_v) [+ b_v] -> Reshape whose shape ends in constants
//   [H, dh], H * dh = d -> Transposes -> MatMul(A, .) as the right operand
//   (dh last) -> Transposes -> Reshape merging [H, dh] (last two axes) ->
//   MatMul(., W_o) with W_o of H * dh rows.
// A fused QKV projection (GPT-2's c_attn: one MatMul, a Split along the last
// axis) works the same on the Split output that reaches the attention as
// values; only its columns are rotated. Each value on the way may also be
// read by Shape nodes, nothing else: a KV-cache output or a Concat with past
// values leaves that layer alone, with the reason.
// Exact because a Reshape that ends in [H, dh] (or merges the last two axes
// into H * dh) keeps every run of d channels together in row-major order.
//
//   absl::StatusOr<RotationOutcome> r = RotateValueOutputHeads(graph, seed);
//   // r->notes: "value/output heads 'v' -> 'proj': 4 heads of 32 ...".
#ifndef QUANTD_ENGINE_PASSES_HEAD_ROTATION_H_
#define QUANTD_ENGINE_PASSES_HEAD_ROTATION_H_

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/passes/residual_rotation.h"

namespace quantd {

// A value projection and the output projection that reads its heads.
struct HeadPair {
  size_t value = 0;                            // MatMul node index
  std::optional<std::pair<size_t, int>> bias;  // Add node, constant input
  size_t output = 0;                           // MatMul node index
  int64_t heads = 0;
  int64_t head_dim = 0;
  // The value columns within the projection's output: all of it, or one
  // part of a fused QKV projection's Split.
  int64_t column_offset = 0;
  int64_t width = 0;  // heads * head_dim
};

struct HeadPairs {
  std::vector<HeadPair> pairs;
  std::vector<std::string> skipped;  // value projections that are not
};

// The value/output projection pairs of `graph`, traced as above.
HeadPairs FindValueOutputPairs(const Graph& graph);

// Rotates every value/output projection pair it can trace; the others go to
// `skipped` with the reason. `seed` picks R's random signs (one R of size dh
// for every head, as QuaRot does).
absl::StatusOr<RotationOutcome> RotateValueOutputHeads(Graph& graph,
                                                       uint64_t seed);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_HEAD_ROTATION_H_
