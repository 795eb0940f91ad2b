// Each layer's local error: the SQNR of its output when it computes with its
// quantized weights (and quantized input, for static activations) instead of
// the float ones, both on the float model's own input to that layer. One
// pass of the float model over the data, with each layer run twice more as a
// one-node graph from the tensor hook, so about three forward passes for
// every layer at once, where end-to-end sensitivity costs one pass per
// layer. The sensitivity stage measures layers worst-first by this figure
// (so a time budget spends itself on the layers that matter), fallback
// orders the layers it did not reach by it, and the report shows it per
// layer (LayerReport.local_sqnr_db).
//
//   absl::StatusOr<std::map<std::string, double>> sqnr =
//       LocalLayerSqnr(graph, rounder, precision, activation_params, data,
//                      cancelled);
//
// Dynamic activations are not simulated (their per-batch range is computed
// at run time); the figure is then the weights' share of the error.
#ifndef QUANTD_ENGINE_PIPELINE_LAYER_LOCAL_ERROR_H_
#define QUANTD_ENGINE_PIPELINE_LAYER_LOCAL_ERROR_H_

#include <atomic>
#include <map>
#include <string>

#include "absl/status/statusor.h"
#include "engine/data/dataset.h"
#include "engine/ir/graph.h"
#include "engine/quantization/weight_rounding.h"

namespace quantd {

// Local output SQNR in dB by node name, for every slot of `rounder` rounded
// at `precision`; +infinity for a layer whose output did not change.
// `activation_params` (by value name; may be empty) quantizes the inputs of
// static-activation plans.
absl::StatusOr<std::map<std::string, double>> LocalLayerSqnr(
    const Graph& graph, LayerRounder& rounder, LayerPrecision precision,
    const std::map<std::string, QuantParams>& activation_params, Dataset& data,
    const std::atomic<bool>* cancelled);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_LAYER_LOCAL_ERROR_H_
