#include "engine/quantization/channel_scaling_pass.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "engine/quantization/input_channel_scaling.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// The group's weights side by side in MatMul orientation [K, sum N], so a
// single search sees every output the shared input feeds. Per-channel and
// per-group parameters are per output column, so rounding the concatenation
// rounds each weight exactly as on its own.
absl::StatusOr<Tensor> ConcatenatedWeights(const Graph& graph,
                                           const ScalingGroup& group) {
  int64_t k = -1, total = 0;
  for (const WeightSlot& s : group.slots) {
    const Tensor* w = graph.FindInitializer(s.initializer);
    if (w == nullptr || w->rank() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", s.node, "' has no 2-D weight"));
    }
    const int64_t wk = w->dim(static_cast<int>(s.input_axis));
    if (k >= 0 && wk != k) {
      return absl::InvalidArgumentError("a group's weights disagree on K");
    }
    k = wk;
    total += w->dim(static_cast<int>(s.channel_axis));
  }
  Tensor out(DataType::kFloat32, {k, total});
  float* d = out.mutable_data<float>();
  int64_t col = 0;
  for (const WeightSlot& s : group.slots) {
    const Tensor& w = *graph.FindInitializer(s.initializer);
    const int64_t n = w.dim(static_cast<int>(s.channel_axis));
    const float* src = w.data<float>();
    for (int64_t i = 0; i < k; ++i) {
      for (int64_t j = 0; j < n; ++j) {
        d[i * total + col + j] =
            s.input_axis == 0 ? src[i * n + j] : src[j * k + i];
      }
    }
    col += n;
  }
  return out;
}

}  // namespace

std::map<std::string, ChannelLayout> ScalingPassInputs(
    const Graph& graph, const std::vector<WeightSlot>& slots) {
  std::map<std::string, ChannelLayout> out;
  for (const ScalingGroup& g : GroupLinearLayersByInput(graph, slots)) {
    out[g.input] = ChannelLayout::kLastDim;
  }
  return out;
}

absl::StatusOr<ScalingNotes> ApplySmoothQuant(
    Graph& graph, const std::vector<WeightSlot>& slots,
    const InputStatisticsCollector& stats, double alpha) {
  ScalingNotes notes;
  for (const ScalingGroup& g : GroupLinearLayersByInput(graph, slots)) {
    const LayerInputStatistics* s = stats.Find(g.input);
    if (s == nullptr) {
      return absl::InternalError(
          absl::StrCat("no statistics for '", g.input, "'"));
    }
    QUANTD_ASSIGN_OR_RETURN(std::vector<float> scales,
                            SmoothQuantScales(graph, g, s->abs_max, alpha));
    float lo = (scales)[0], hi = lo;
    for (float v : scales) lo = std::min(lo, v), hi = std::max(hi, v);
    QUANTD_ASSIGN_OR_RETURN(std::string how,
                            ApplyInputChannelScaling(graph, g, scales));
    char range[64];
    std::snprintf(range, sizeof(range), "scales %.3g..%.3g", lo, hi);
    for (const WeightSlot& slot : g.slots) {
      notes[slot.node] =
          absl::StrCat("smoothquant alpha ", alpha, ": ", range, ", ", how);
    }
  }
  return notes;
}

absl::StatusOr<ScalingNotes> ApplyAwq(Graph& graph,
                                      const std::vector<WeightSlot>& slots,
                                      const InputStatisticsCollector& stats,
                                      const WeightScheme& scheme,
                                      const AwqOptions& options) {
  ScalingNotes notes;
  for (const ScalingGroup& g : GroupLinearLayersByInput(graph, slots)) {
    const LayerInputStatistics* s = stats.Find(g.input);
    if (s == nullptr || s->sample_rows == 0) {
      return absl::InternalError(
          absl::StrCat("no sampled rows for '", g.input, "'"));
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor w, ConcatenatedWeights(graph, g));
    WeightSlot joint{absl::StrCat(g.slots[0].node, " group"), "MatMul",
                     g.slots[0].initializer, 1, 0};
    QUANTD_ASSIGN_OR_RETURN(
        AwqResult r,
        SearchAwqScales(w, joint, scheme, s->SampleTensor(), options));
    char note[128];
    std::snprintf(note, sizeof(note),
                  "awq alpha %.2f: output error %.3gx of round-to-nearest",
                  r.alpha, r.rtn_loss > 0 ? r.loss / r.rtn_loss : 1.0);
    std::string how = "unscaled";
    if (r.alpha > 0) {
      QUANTD_ASSIGN_OR_RETURN(std::string h,
                              ApplyInputChannelScaling(graph, g, r.scales));
      how = h;
    }
    for (const WeightSlot& slot : g.slots) {
      notes[slot.node] = absl::StrCat(note, ", ", how);
    }
  }
  return notes;
}

}  // namespace quantd
