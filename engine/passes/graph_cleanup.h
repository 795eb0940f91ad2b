// Graph clean-ups run after loading: BatchNormalization folded into the Conv
// before it, Identity/Dropout removed, dead nodes and unused initializers
// dropped. PrepareGraph runs them all with constant folding, in the order
// that lets each expose work for the next.
//
//   PrepareStats stats;
//   absl::Status s = PrepareGraph(graph, DefaultOpRegistry(), &stats);
#ifndef QUANTD_ENGINE_PASSES_GRAPH_CLEANUP_H_
#define QUANTD_ENGINE_PASSES_GRAPH_CLEANUP_H_

#include "absl/status/status.h"
#include "engine/ir/graph.h"
#include "engine/passes/constant_folding.h"
#include "engine/runtime/op_registry.h"

namespace quantd {

// Folds Conv -> BatchNormalization (inference form, constant statistics,
// Conv output read only by the BN) into the Conv's weights and bias.
// Returns the number of BNs folded.
absl::StatusOr<int> FoldBatchNormIntoConv(Graph& graph);

// Removes Identity and inference-mode Dropout nodes by rewiring readers.
int RemoveIdentities(Graph& graph);

// Drops nodes none of whose outputs reach a graph output, then initializers
// nothing reads. Returns the number of nodes removed.
int RemoveDeadNodes(Graph& graph);

struct PrepareStats {
  FoldingStats folding;
  int batchnorms_folded = 0;
  int identities_removed = 0;
  int dead_nodes_removed = 0;
};

absl::Status PrepareGraph(Graph& graph, const OpRegistry& registry,
                          PrepareStats* stats = nullptr);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_GRAPH_CLEANUP_H_
