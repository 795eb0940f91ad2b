// Sequential (block-by-block) GPTQ, as GPTQ's reference code and
// llm-compressor run it: the graph is cut between blocks
// (engine/passes/graph_segments.h) and for each segment in turn
//   1. the segment runs on the calibration activations that the segments
//      before it produced with their weights already quantized, and the
//      inputs of its layers are collected (GPTQ's Hessians);
//   2. its layers are rounded;
//   3. it runs again with the rounded weights, and its outputs become the
//      next segment's inputs.
// So each layer's Hessian sees the error of the layers before it (GPTQ
// compensates for it), and only one segment's statistics and the values
// that cross one cut are held at a time, instead of every layer's Hessian
// at once. Costs one more forward pass than one-pass calibration. Learned
// rounding uses the same Hessians and runs the same way.
//
//   ctx.segments = PlanSequentialRounding(ctx);  // in calibrate; may be {}
//   QUANTD_RETURN_IF_ERROR(RoundSequentially(ctx, round_layer));
#ifndef QUANTD_ENGINE_PIPELINE_SEQUENTIAL_ROUNDING_H_
#define QUANTD_ENGINE_PIPELINE_SEQUENTIAL_ROUNDING_H_

#include <functional>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/pipeline/job_context.h"

namespace quantd {

// The segments for a sequential GPTQ (or learned rounding) job, or none
// when the job rounds in one pass: neither enabled,
// spec.algorithms.gptq.one_pass set, bias correction on (it wants the float
// model's input means), or a graph with no narrow point between its layers.
std::vector<GraphSegment> PlanSequentialRounding(const JobContext& ctx);

// Rounds one layer (ctx.rounder, with ctx.statistics as they are now) and
// does the caller's bookkeeping; returns the rounded layer.
using RoundLayerFn =
    std::function<absl::StatusOr<const RoundedLayer*>(const WeightSlot&)>;

// Runs the three steps above over ctx.segments, calling `round_layer` for
// every slot (in graph order). Needs ctx.statistics (created, empty) and the
// calibration data; reports progress as "quantize".
absl::Status RoundSequentially(JobContext& ctx,
                               const RoundLayerFn& round_layer);

}  // namespace quantd

#endif  // QUANTD_ENGINE_PIPELINE_SEQUENTIAL_ROUNDING_H_
