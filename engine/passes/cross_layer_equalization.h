// Cross-layer equalization (Nagel et al., "Data-Free Quantization Through
// Weight Equalization and Bias Correction", 2019): for two convolutions in
// a row with a positively homogeneous activation between them,
//
//   y = W2 relu(W1 x + b1) = (W2 S) relu(S^-1 W1 x + S^-1 b1),  S > 0 diagonal,
//
// so each channel i of the first layer's output can be divided by s_i and
// the matching input channel of the second layer multiplied by it with the
// float function unchanged. With s_i = sqrt(r1_i / r2_i) (r1_i the range of
// W1's output channel i, r2_i that of W2's input channel i) both ranges
// become sqrt(r1_i r2_i): depthwise convolutions after BatchNorm folding,
// whose channels differ by orders of magnitude, get channels of similar
// range, which per-tensor quantization of weights and of the activation
// between the layers can hold. Iterated a few times over chains
// (conv -> dw -> conv), as in the paper.
//
// Pairs: Conv (any group count) whose output only a Relu reads (or the
// second Conv directly), that Relu read only by a Conv whose input channel
// i is the first one's output channel i (group 1, or depthwise with
// group = channels). Anything else between them (Clip as ReLU6,
// HardSwish, HardSigmoid: not homogeneous, so the transform would change
// the function) is skipped and reported with its reason.
//
//   absl::StatusOr<EqualizationOutcome> r = EqualizeCrossLayerRanges(graph);
//   for (const EqualizedPair& p : r->equalized) ...   // p.note says how
//   for (const std::string& why : r->skipped) ...
#ifndef QUANTD_ENGINE_PASSES_CROSS_LAYER_EQUALIZATION_H_
#define QUANTD_ENGINE_PASSES_CROSS_LAYER_EQUALIZATION_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"

namespace quantd {

struct EqualizedPair {
  std::string first, second;  // node names
  // "equalized 'conv1' -> 'dw2': output channel ranges 0.01-37 -> 0.4-5.1"
  std::string note;
};

struct EqualizationOutcome {
  std::vector<EqualizedPair> equalized;
  // "skipped 'conv3' -> 'conv4': HardSwish between them is not ...".
  std::vector<std::string> skipped;
};

// Rescales every eligible pair `iterations` times (new initializers, so
// weights shared with other nodes are untouched).
absl::StatusOr<EqualizationOutcome> EqualizeCrossLayerRanges(
    Graph& graph, int iterations = 4);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PASSES_CROSS_LAYER_EQUALIZATION_H_
