// Constant folding: evaluates every node whose inputs are all constants and
// stores its outputs as initializers. This turns exporter artifacts into
// plain weights: paddle2onnx writes weights as `Constant` nodes, and torch
// exports `Shape -> Gather -> Unsqueeze -> Concat -> Reshape` chains that are
// constant except for the batch dimension.
//
// Those chains are folded by partial evaluation: a shape vector whose entries
// are known except for dynamic dims is tracked through Shape, Gather, Slice,
// Concat, Squeeze/Unsqueeze and Cast, and a Reshape whose target has exactly
// one unknown entry gets a constant target with -1 there.
//
//   FoldingStats stats;
//   absl::Status s = FoldConstants(graph, DefaultOpRegistry(), &stats);
#ifndef QUANTD_ENGINE_PASSES_CONSTANT_FOLDING_H_
#define QUANTD_ENGINE_PASSES_CONSTANT_FOLDING_H_

#include <cstdint>
#include <functional>

#include "absl/status/status.h"
#include "engine/ir/graph.h"
#include "engine/runtime/op_registry.h"

namespace quantd {

struct FoldingStats {
  int nodes_folded = 0;
  int reshapes_made_static = 0;
};

struct FoldingOptions {
  // A folded output larger than this stays a node (ConstantOfShape or Tile
  // could otherwise bloat the model).
  int64_t max_folded_elements = int64_t{1} << 24;
  // Nodes for which this returns true stay nodes although their inputs are
  // constant: the fake-quant executor keeps the DequantizeLinear of compact
  // weight codes, so each layer's float weights exist only while it runs.
  std::function<bool(const Node& node)> keep_node;
};

absl::Status FoldConstants(Graph& graph, const OpRegistry& registry,
                           FoldingStats* stats = nullptr,
                           const FoldingOptions& options = {});

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_CONSTANT_FOLDING_H_
