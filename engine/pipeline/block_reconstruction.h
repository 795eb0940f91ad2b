// Block reconstruction, AutoRound's objective: after a block's layers are
// rounded one by one, their rounding offsets and clipping factors
// (engine/quantization/rounding_variables.h) are learned together so that
// the block's outputs with quantized weights match the float block's on the
// same inputs, through the block's nonlinearities (attention, LayerNorm,
// GELU), which a layer's own output error (GPTQ's and the Hessian objective)
// does not see. Gradients come from the QAT autograd (engine/qat); steps
// are signed, one calibration batch per step, and the whole calibration set
// is scored a few times along the way: the best scoring variables are kept,
// so the result never scores worse than the layers' own rounding.
//
//   std::vector<BlockLayer> layers = {{&slot, params, on_grid_weights}, ...};
//   absl::StatusOr<BlockReconstructionResult> r = ReconstructBlock(
//       segment.graph, batches, &float_outputs, scheme, options, layers);
//   // layers[i].params / .weights now hold the block's rounding
#ifndef QUANTD_ENGINE_PIPELINE_BLOCK_RECONSTRUCTION_H_
#define QUANTD_ENGINE_PIPELINE_BLOCK_RECONSTRUCTION_H_

#include <atomic>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"

namespace quantd {

struct BlockReconstructionOptions {
  int iterations = 200;
  double learning_rate = 0;  // 0: 1 / iterations
  bool learn_clipping = true;
  const std::atomic<bool>* cancelled = nullptr;
  // Static activation quantization to simulate (QDrop's point: weights
  // tuned with float inputs are tuned for the wrong inputs): each block
  // layer's input with an entry here is fake-quantized with it in every
  // forward pass, the gradient passing straight through. Null: float
  // activations (weight-only and dynamic jobs).
  const std::map<std::string, QuantParams>* activations = nullptr;
  // Called at each scoring of the calibration set (4 times, and once at
  // the start): steps taken so far and the output error relative to the
  // start's. May be empty.
  std::function<void(int step, double relative_error)> on_score;
};

// One layer of the block: in, the rounding to start from; out, the block's.
struct BlockLayer {
  const WeightSlot* slot = nullptr;
  QuantParams params;
  Tensor weights;  // on the grid of params, the weight's orientation
};

struct BlockReconstructionResult {
  // Mean squared error of the block's float outputs over the calibration
  // batches, summed over outputs: with the start's rounding and the kept.
  double start_loss = 0;
  double loss = 0;
};

// `block` holds the float weights; `batches` its feeds, one map per
// calibration batch; `targets` (optional) the outputs to match per batch:
// the float model's, on its own inputs (AutoRound's objective, which also
// corrects the error of the blocks before). Without them the targets are
// the float block's outputs on `batches`. FailedPrecondition (naming the ops)
// when the block has ops the autograd cannot differentiate; the caller keeps
// its rounding.
absl::StatusOr<BlockReconstructionResult> ReconstructBlock(
    const Graph& block, const std::vector<TensorMap>& batches,
    const std::vector<std::vector<Tensor>>* targets, const WeightScheme& scheme,
    const BlockReconstructionOptions& options, std::vector<BlockLayer>& layers);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_BLOCK_RECONSTRUCTION_H_
