// smooth: residual-stream rotation of transformers and cross-layer
// equalization of convolutions (both data-free), then SmoothQuant or AWQ
// input-channel scales from the float model's activations, folded into the
// graph that gets quantized (its function unchanged; the float graph stays the
// reference).
#include "absl/strings/str_cat.h"
#include "engine/passes/cross_layer_equalization.h"
#include "engine/passes/head_rotation.h"
#include "engine/passes/online_rotation.h"
#include "engine/passes/residual_rotation.h"
#include "engine/pipeline/stages.h"
#include "engine/quantization/channel_scaling_pass.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Rows of each layer input AWQ keeps to score candidate scales.
constexpr int64_t kAwqSampleRows = 1024;

// Equalizes the float graph itself, then quantizes a copy: the function is
// the same, and every intermediate value (each layer's output SQNR, the
// sensitivity runs) is compared with its rescaled float counterpart, not
// with the original model's value of the same name, which differs by the
// channel scales. Both layers of a pair get its note; a skipped pair goes
// to the report's warnings.
absl::Status EqualizeConvolutions(JobContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(EqualizationOutcome eq,
                          EqualizeCrossLayerRanges(ctx.float_graph));
  ctx.graph = ctx.float_graph;
  for (const std::string& why : eq.skipped) {
    ctx.report().add_warnings(absl::StrCat("cross_layer_equalization: ", why));
  }
  for (const EqualizedPair& p : eq.equalized) {
    const std::string entry = absl::StrCat("cle: ", p.note);
    ctx.facts.algorithms[p.first].push_back(entry);
    ctx.facts.algorithms[p.second].push_back(entry);
  }
  if (eq.equalized.empty()) {
    ctx.report().add_warnings(
        "cross_layer_equalization: no pair of convolutions with only Relu or "
        "pooling between them; nothing was rescaled");
  }
  QUANTD_ASSIGN_OR_RETURN(ctx.slots, FindLayers(ctx, ctx.graph));
  return absl::OkStatus();
}

void Append(const RotationOutcome& from, RotationOutcome& into) {
  into.notes.insert(into.notes.end(), from.notes.begin(), from.notes.end());
  into.skipped.insert(into.skipped.end(), from.skipped.begin(),
                      from.skipped.end());
  into.changed_nodes.insert(into.changed_nodes.end(),
                            from.changed_nodes.begin(),
                            from.changed_nodes.end());
}

absl::Status RotateHeads(JobContext& ctx, RotationOutcome& r) {
  QUANTD_ASSIGN_OR_RETURN(
      const RotationOutcome heads,
      RotateValueOutputHeads(ctx.float_graph, ctx.spec().seed()));
  Append(heads, r);
  const v1::Algorithms& alg = ctx.spec().algorithms();
  if (!heads.notes.empty() && ctx.plan.weights.type == QuantType::kInt4 &&
      !alg.gptq().enabled() && !alg.learned_rounding().enabled()) {
    ctx.report().add_warnings(
        "rotation.value_output_heads with int4 weights rounded to nearest: "
        "a head's large value columns are mixed into its others, which int4 "
        "steps round away (perplexity +34% vs +5.6% without the head "
        "rotation on a fixture with one x40 channel per head); enable gptq, "
        "or keep the value projections at int8");
  }
  return absl::OkStatus();
}

// The online rotation's MatMuls stay float: they join the exclusions.
absl::Status RotateOnline(JobContext& ctx, RotationOutcome& r) {
  QUANTD_ASSIGN_OR_RETURN(
      const OnlineRotationOutcome online,
      InsertOnlineRotations(ctx.float_graph, ctx.spec().seed()));
  Append(online, r);
  ctx.inserted_float_nodes.insert(online.float_nodes.begin(),
                                  online.float_nodes.end());
  if (!online.notes.empty()) {
    ctx.report().add_warnings(absl::StrCat(
        "rotation.online_down_projections: ", online.notes.size(),
        " layers get an online Hadamard at run time, ",
        online.added_macs_per_row,
        " float multiply-adds per token in all (each layer's note has its "
        "share)"));
  }
  return absl::OkStatus();
}

// Rotates the float graph's residual streams (same function, new
// weights), then quantizes a copy, for the reason EqualizeConvolutions
// gives. Parts that could not be rotated go to the warnings.
absl::Status RotateResidual(JobContext& ctx) {
  QUANTD_ASSIGN_OR_RETURN(
      RotationOutcome r,
      RotateResidualStreams(ctx.float_graph, ctx.spec().seed()));
  const bool stream_rotated = !r.notes.empty();
  const v1::RotationConfig& config = ctx.spec().algorithms().rotation();
  if (config.value_output_heads()) {
    QUANTD_RETURN_IF_ERROR(RotateHeads(ctx, r));
  }
  if (config.online_down_projections()) {
    QUANTD_RETURN_IF_ERROR(RotateOnline(ctx, r));
  }
  ctx.graph = ctx.float_graph;
  // A 24-layer post-LN encoder says the same thing per LayerNorm: the
  // first few say what, the count says how often.
  constexpr size_t kMaxSkipWarnings = 4;
  for (size_t i = 0; i < r.skipped.size() && i < kMaxSkipWarnings; ++i) {
    ctx.report().add_warnings(absl::StrCat("rotation: ", r.skipped[i]));
  }
  if (r.skipped.size() > kMaxSkipWarnings) {
    ctx.report().add_warnings(
        absl::StrCat("rotation: ", r.skipped.size() - kMaxSkipWarnings,
                     " more LayerNorms or streams skipped"));
  }
  if (!stream_rotated) {
    ctx.report().add_warnings(
        r.notes.empty() ? "rotation: no residual stream could be rotated; "
                          "the model is quantized as it came"
                        : "rotation: no residual stream could be rotated; "
                          "only the parts named in the layer notes were");
  }
  for (const auto& [node, note] : r.changed_nodes) {
    ctx.facts.algorithms[node].push_back(note);
  }
  QUANTD_ASSIGN_OR_RETURN(ctx.slots, FindLayers(ctx, ctx.graph));
  return absl::OkStatus();
}

}  // namespace

absl::Status SmoothStage(JobContext& ctx) {
  const v1::Algorithms& alg = ctx.spec().algorithms();
  if (alg.rotation().enabled()) {
    QUANTD_RETURN_IF_ERROR(RotateResidual(ctx));
  }
  if (alg.cross_layer_equalization()) {
    QUANTD_RETURN_IF_ERROR(EqualizeConvolutions(ctx));
  }
  if (!alg.smooth_quant().enabled() && !alg.awq().enabled()) {
    return absl::OkStatus();
  }
  InputStatisticsOptions o;
  o.max_sample_rows = alg.awq().enabled() ? kAwqSampleRows : 0;
  o.seed = ctx.spec().seed();
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<InputStatisticsCollector> stats,
                          InputStatisticsCollector::Create(
                              ScalingPassInputs(ctx.graph, ctx.slots), o));
  QUANTD_RETURN_IF_ERROR(RunHookedPass(ctx, ctx.float_graph,
                                       *ctx.data->calibration, stats->Hook(),
                                       "smooth")
                             .status());
  QUANTD_ASSIGN_OR_RETURN(
      ScalingNotes notes,
      alg.smooth_quant().enabled()
          ? ApplySmoothQuant(ctx.graph, ctx.slots, *stats,
                             alg.smooth_quant().alpha())
          : ApplyAwq(ctx.graph, ctx.slots, *stats, ctx.plan.weights,
                     AwqOptions{alg.awq().grid_size()}));
  for (const auto& [node, note] : notes) {
    ctx.facts.algorithms[node].push_back(note);
  }
  QUANTD_ASSIGN_OR_RETURN(ctx.slots, FindLayers(ctx, ctx.graph));
  return absl::OkStatus();
}

}  // namespace quantd
