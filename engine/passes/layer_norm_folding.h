// Folds each LayerNormalization's gain and bias into the MatMul layers that
// read it, leaving a LayerNorm with unit gain and no bias:
//
//   (LN0(x) * g + b) W + c  =  LN0(x) (diag(g) W) + (b W + c)
//
// LN0 the normalization without its affine part, W a layer's weight, c its
// bias (an Add after the MatMul; one is inserted when the layer has none
// and b is not zero). The float function is unchanged up to rounding.
//
// The first step of rotating a residual stream (residual_rotation.h): a
// rotation commutes with LN0 but not with a per-channel gain. On its own it
// also removes the outlier channels a large LayerNorm gain puts into the
// layers' inputs (they move into the weights, which are quantized per
// output channel, not per input channel).
//
// Folded: LayerNormalization over the last axis, gain and bias constant,
// output read only by MatMul (as its first input, with a constant 2-D
// float weight) and Shape nodes. Anything else is skipped with its reason.
//
//   absl::StatusOr<LayerNormFoldOutcome> r = FoldLayerNormAffine(graph);
//   for (const std::string& name : r->folded) ...   // LayerNorm nodes
#ifndef QUANTD_ENGINE_PASSES_LAYER_NORM_FOLDING_H_
#define QUANTD_ENGINE_PASSES_LAYER_NORM_FOLDING_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"

namespace quantd {

struct LayerNormFoldOutcome {
  // LayerNorm node names now with unit gain and no bias (including those
  // that had them already).
  std::vector<std::string> folded;
  // MatMul node names whose weights (and biases) absorbed a gain.
  std::vector<std::string> layers;
  // "LayerNorm 'ln_f': 'logits_softcap' (Tanh) reads its output; ...".
  std::vector<std::string> skipped;
};

absl::StatusOr<LayerNormFoldOutcome> FoldLayerNormAffine(Graph& graph);

// Who reads each value: (node index, input index) pairs.
using ValueReaders =
    absl::flat_hash_map<std::string, std::vector<std::pair<size_t, int>>>;
ValueReaders FindValueReaders(const Graph& graph);

// The initializer node `node`'s input `input` names, made private to that
// input first when anything else reads it (copied under a new name, `uses`
// updated), so that rewriting it changes no other reader.
Tensor& PrivateInitializer(Graph& graph, size_t node, int input,
                           absl::flat_hash_map<std::string, int>& uses);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_LAYER_NORM_FOLDING_H_
