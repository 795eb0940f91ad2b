// Rounding each layer's weights at a chosen precision, and assembling the
// QuantizationPlan for a set of per-layer precisions. Sensitivity analysis
// and accuracy-aware fallback build many plans that differ in a few layers,
// so rounded layers are computed once per (layer, precision) and cached.
//
//   LayerRounder rounder(graph, slots, config, &statistics);
//   std::map<std::string, LayerPrecision> precisions = {{"fc1", kInt4}, ...};
//   absl::StatusOr<QuantizationPlan> plan =
//       rounder.BuildPlan(precisions, activation_params);
//
// Per layer: round-to-nearest, or GPTQ when enabled (2-D weights with a
// Hessian from calibration; other layers fall back to round-to-nearest and
// say so), then learned rounding when enabled (from GPTQ's result or from
// RTN; same Hessian), then bias correction when enabled and the layer has a
// bias.
#ifndef QUANTD_ENGINE_QUANTIZATION_WEIGHT_ROUNDING_H_
#define QUANTD_ENGINE_QUANTIZATION_WEIGHT_ROUNDING_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/calibration/layer_input_statistics.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"
#include "engine/quantization/gptq.h"
#include "engine/quantization/learned_rounding.h"
#include "engine/quantization/weight_quantization.h"

namespace quantd {

enum class LayerPrecision { kFloat, kInt8, kInt4 };
const char* LayerPrecisionName(LayerPrecision p);  // "float", "int8", "int4"

struct RoundingConfig {
  WeightScheme scheme;  // as requested (int8 or int4)
  bool gptq = false;
  GptqOptions gptq_options;
  // After GPTQ (from its result) or instead of it (from RTN).
  bool learned_rounding = false;
  LearnedRoundingOptions learned_rounding_options;
  bool bias_correction = false;
  // Static mode: inputs of quantized layers get plan.activations entries;
  // dynamic mode: plan.dynamic_activations; weight-only: neither.
  enum class Activations {
    kStatic,
    kDynamic,
    kNone
  } activations = Activations::kStatic;
};

// The precision the job asks for, and the scheme of a layer at a precision:
// the requested scheme at its own precision; as a fallback from int4, int8
// per output channel, symmetric (what oneDNN's int8 kernels run).
LayerPrecision RequestedPrecision(const WeightScheme& scheme);
WeightScheme SchemeAt(const WeightScheme& requested, LayerPrecision p);

struct RoundedLayer {
  QuantParams params;
  // GPTQ's or learned rounding's integers (QuantizeWeightCodes form);
  // absent for round-to-nearest.
  std::optional<WeightCodes> codes;
  std::string bias_name;  // bias correction: which initializer
  std::optional<Tensor> bias;
  std::vector<std::string> notes;  // for LayerReport.algorithms
};

class LayerRounder {
 public:
  // `statistics` (may be null without GPTQ and bias correction) holds the
  // inputs of the slots' nodes, by value name.
  LayerRounder(const Graph& graph, std::vector<WeightSlot> slots,
               RoundingConfig config,
               const InputStatisticsCollector* statistics);

  const std::vector<WeightSlot>& slots() const { return slots_; }
  const RoundingConfig& config() const { return config_; }
  // The input value of a slot's node.
  const std::string& InputOf(const WeightSlot& slot) const;

  // Rounds (or returns the cached) layer; precision must not be kFloat.
  absl::StatusOr<const RoundedLayer*> Round(const WeightSlot& slot,
                                            LayerPrecision precision);

  // Every slot at precisions[node] (missing: the requested precision);
  // kFloat layers go to plan.float_nodes. `activation_params` holds
  // calibrated parameters by value name (static mode); static plans also
  // quantize the int8 regions' values (engine/passes/int8_regions.h) that
  // have parameters there.
  absl::StatusOr<QuantizationPlan> BuildPlan(
      const std::map<std::string, LayerPrecision>& precisions,
      const std::map<std::string, QuantParams>& activation_params);

  // Replaces the cached rounding of (slot, precision): block
  // reconstruction's, which saw the whole block.
  void Replace(const WeightSlot& slot, LayerPrecision precision,
               RoundedLayer rounded) {
    cache_[std::make_pair(slot.node, precision)] = std::move(rounded);
  }

  // Forgets the statistics pointer: the caller is about to free them (GPT-2
  // small's Hessians are 1.08 GB). Layers already rounded stay cached;
  // rounding a new (layer, precision) that needs the statistics (GPTQ, bias
  // correction) then fails instead of silently falling back to RTN.
  void DropStatistics();

 private:
  // The algorithms' rounding of one layer, into out.params/codes; the
  // on-grid weights they chose (for bias correction) into `rounded`.
  // A layer's Hessian: one K x K matrix (MatMul/Gemm inputs) or one per
  // conv group (a Conv's input patches, then `conv` is set).
  struct LayerHessian {
    const std::vector<float>& matrices;
    int64_t blocks = 1;
    int64_t rows = 0;
    const ConvPatchHessian* conv = nullptr;
  };
  absl::Status RoundWithHessian(const Tensor& w, const WeightSlot& slot,
                                const WeightScheme& scheme,
                                const LayerHessian& hessian, RoundedLayer& out,
                                Tensor& rounded) const;
  // GPTQ's rounding when configured and possible; nullopt otherwise (with a
  // note when GPTQ was asked for).
  absl::StatusOr<std::optional<GptqResult>> RunGptq(const Tensor& w,
                                                    const WeightSlot& slot,
                                                    const WeightScheme& scheme,
                                                    const LayerHessian& hessian,
                                                    RoundedLayer& out) const;
  // Round-to-nearest, with a note saying why the configured algorithm did
  // not round this layer (unless one says so already).
  // Why a layer that asked for GPTQ or learned rounding has no Hessian,
  // for its notes.
  std::string WhyNoHessian(const Tensor& w, const WeightSlot& slot) const;
  absl::Status RoundToNearest(const Tensor& w, const WeightSlot& slot,
                              const WeightScheme& scheme, RoundedLayer& out,
                              Tensor& rounded) const;
  void ExtendRegions(
      const std::map<std::string, QuantParams>& activation_params,
      QuantizationPlan& plan) const;

  const Graph& graph_;
  std::vector<WeightSlot> slots_;
  RoundingConfig config_;
  const InputStatisticsCollector* statistics_;
  bool statistics_dropped_ = false;
  std::map<std::string, std::string> input_of_;  // node -> input value
  std::map<std::pair<std::string, LayerPrecision>, RoundedLayer> cache_;
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_QUANTIZATION_WEIGHT_ROUNDING_H_
