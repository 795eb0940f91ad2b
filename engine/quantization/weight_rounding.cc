#include "engine/quantization/weight_rounding.h"

#include <cstdio>

#include "absl/strings/str_cat.h"
#include "engine/passes/int8_regions.h"
#include "engine/quantization/bias_correction.h"
#include "engine/quantization/conv_gptq.h"
#include "engine/quantization/gptq_linear_algebra.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// How a Conv's Hessian was gathered, for the layer notes.
std::string PatchDescription(const ConvPatchHessian* conv) {
  if (conv == nullptr) return "";
  return absl::StrCat(" (Hessian over ", conv->patches, " input patches of ",
                      conv->patch_size, " values",
                      conv->groups > 1 ? ", one per group" : "", ")");
}

}  // namespace

const char* LayerPrecisionName(LayerPrecision p) {
  switch (p) {
    case LayerPrecision::kFloat:
      return "float";
    case LayerPrecision::kInt8:
      return "int8";
    case LayerPrecision::kInt4:
      return "int4";
  }
  return "?";
}

LayerPrecision RequestedPrecision(const WeightScheme& scheme) {
  return scheme.type == QuantType::kInt4 || scheme.type == QuantType::kUInt4
             ? LayerPrecision::kInt4
             : LayerPrecision::kInt8;
}

WeightScheme SchemeAt(const WeightScheme& requested, LayerPrecision p) {
  if (p == RequestedPrecision(requested)) return requested;
  WeightScheme s;
  s.type = QuantType::kInt8;
  s.symmetric = true;
  s.granularity = WeightGranularity::kPerChannel;
  s.int8_max_magnitude = requested.int8_max_magnitude;
  return s;
}

LayerRounder::LayerRounder(const Graph& graph, std::vector<WeightSlot> slots,
                           RoundingConfig config,
                           const InputStatisticsCollector* statistics)
    : graph_(graph),
      slots_(std::move(slots)),
      config_(std::move(config)),
      statistics_(statistics) {
  for (const Node& n : graph_.nodes) input_of_[n.name] = n.input(0);
}

const std::string& LayerRounder::InputOf(const WeightSlot& slot) const {
  return input_of_.at(slot.node);
}

absl::StatusOr<const RoundedLayer*> LayerRounder::Round(
    const WeightSlot& slot, LayerPrecision precision) {
  if (precision == LayerPrecision::kFloat) {
    return absl::InvalidArgumentError("a float layer is not rounded");
  }
  const auto key = std::make_pair(slot.node, precision);
  if (auto it = cache_.find(key); it != cache_.end()) return &it->second;

  const Tensor* w = graph_.FindInitializer(slot.initializer);
  if (w == nullptr) {
    return absl::InternalError(
        absl::StrCat("weight '", slot.initializer, "' disappeared"));
  }
  if (statistics_dropped_ &&
      (config_.gptq || config_.learned_rounding || config_.bias_correction)) {
    return absl::FailedPreconditionError(absl::StrCat(
        "layer '", slot.node, "' at ", LayerPrecisionName(precision),
        " needs the calibration statistics, which were already freed "
        "(quantd bug: LayerRounder::DropStatistics called too early)"));
  }
  const WeightScheme scheme = SchemeAt(config_.scheme, precision);
  const LayerInputStatistics* stats =
      statistics_ != nullptr ? statistics_->Find(InputOf(slot)) : nullptr;
  const bool uses_hessian = config_.gptq || config_.learned_rounding;
  const ConvPatchHessian* patches =
      uses_hessian && slot.op_type == "Conv" && statistics_ != nullptr
          ? statistics_->FindConvPatches(slot.node)
          : nullptr;
  RoundedLayer out;
  Tensor rounded;
  if (uses_hessian && w->rank() == 2 && stats != nullptr &&
      !stats->hessian.empty()) {
    QUANTD_RETURN_IF_ERROR(RoundWithHessian(
        *w, slot, scheme, {stats->hessian, 1, stats->rows}, out, rounded));
  } else if (patches != nullptr) {
    QUANTD_RETURN_IF_ERROR(RoundWithHessian(
        *w, slot, scheme,
        {patches->hessian, patches->groups, patches->patches, patches}, out,
        rounded));
  } else {
    QUANTD_RETURN_IF_ERROR(RoundToNearest(*w, slot, scheme, out, rounded));
  }
  if (config_.bias_correction) {
    out.bias_name = FindBiasInitializer(graph_, slot);
    if (out.bias_name.empty() || stats == nullptr) {
      out.bias_name.clear();
      out.notes.push_back("bias correction: the layer has no bias");
    } else {
      std::vector<double> mean(stats->channels);
      for (int64_t c = 0; c < stats->channels; ++c) mean[c] = stats->Mean(c);
      QUANTD_ASSIGN_OR_RETURN(Tensor b,
                              CorrectedBias(graph_, slot, rounded, mean));
      out.bias = std::move(b);
    }
  }
  return &cache_.emplace(key, std::move(out)).first->second;
}

absl::Status LayerRounder::RoundWithHessian(
    const Tensor& w, const WeightSlot& slot, const WeightScheme& scheme,
    const LayerHessian& hessian, RoundedLayer& out, Tensor& rounded) const {
  const char* blas =
      gptq_la::OpenBlasAvailable()
          ? ""
          : " (libopenblas0 not installed: scalar loops, slower)";
  QUANTD_ASSIGN_OR_RETURN(std::optional<GptqResult> g,
                          RunGptq(w, slot, scheme, hessian, out));
  if (g.has_value()) {
    char note[200];
    std::snprintf(note, sizeof(note),
                  "gptq: proxy loss %.3gx of round-to-nearest%s%s",
                  g->rtn_loss > 0 ? g->gptq_loss / g->rtn_loss : 1.0,
                  PatchDescription(hessian.conv).c_str(), blas);
    out.notes.push_back(note);
    out.params = g->params;
    rounded = std::move(g->weights);
  } else if (!config_.learned_rounding) {
    return RoundToNearest(w, slot, scheme, out, rounded);
  }
  if (config_.learned_rounding) {
    std::optional<RoundingStart> start;
    if (g.has_value()) start = RoundingStart{out.params, std::move(rounded)};
    QUANTD_ASSIGN_OR_RETURN(
        LearnedRoundingResult r,
        LearnRounding(w, slot, scheme, hessian.matrices, hessian.blocks,
                      hessian.rows, config_.learned_rounding_options,
                      start.has_value() ? &*start : nullptr));
    const int64_t channels = w.dim(static_cast<int>(slot.channel_axis));
    char note[320];
    std::snprintf(note, sizeof(note),
                  "learned rounding: output error %.3gx of %s's, %lld of "
                  "%lld channels changed, %d steps%s%s",
                  r.rtn_loss > 0 ? r.loss / r.rtn_loss : 1.0,
                  g.has_value() ? "gptq" : "round-to-nearest",
                  static_cast<long long>(r.channels_changed),
                  static_cast<long long>(channels),
                  config_.learned_rounding_options.iterations,
                  PatchDescription(hessian.conv).c_str(), blas);
    out.notes.push_back(note);
    out.params = std::move(r.params);
    rounded = std::move(r.weights);
  }
  QUANTD_ASSIGN_OR_RETURN(out.codes, QuantizeWeightCodes(rounded, out.params));
  return absl::OkStatus();
}

absl::StatusOr<std::optional<GptqResult>> LayerRounder::RunGptq(
    const Tensor& w, const WeightSlot& slot, const WeightScheme& scheme,
    const LayerHessian& hessian, RoundedLayer& out) const {
  if (!config_.gptq) return std::nullopt;
  if (hessian.conv == nullptr) {
    QUANTD_ASSIGN_OR_RETURN(
        GptqResult g, GptqQuantize(w, slot, scheme,
                                   std::vector<double>(hessian.matrices.begin(),
                                                       hessian.matrices.end()),
                                   hessian.rows, config_.gptq_options));
    return g;
  }
  const std::string why =
      ConvGptqUnsupportedReason(scheme, hessian.conv->groups, w.dim(1));
  if (!why.empty()) {
    out.notes.push_back(
        absl::StrCat("gptq: not applied (", why, "); round-to-nearest"));
    return std::nullopt;
  }
  QUANTD_ASSIGN_OR_RETURN(
      GptqResult g,
      GptqQuantizeConv(w, slot, scheme, *hessian.conv, config_.gptq_options));
  return g;
}

absl::Status LayerRounder::RoundToNearest(const Tensor& w,
                                          const WeightSlot& slot,
                                          const WeightScheme& scheme,
                                          RoundedLayer& out,
                                          Tensor& rounded) const {
  const bool noted = !out.notes.empty();  // RunGptq said why not
  if ((config_.gptq || config_.learned_rounding) && !noted) {
    const std::string why = WhyNoHessian(w, slot);
    out.notes.push_back(
        config_.gptq
            ? absl::StrCat("gptq: not applied (", why, "); round-to-nearest")
            : absl::StrCat("learned rounding: no per-layer Hessian (", why,
                           "); starts from round-to-nearest, tuned with its "
                           "block"));
  }
  QUANTD_ASSIGN_OR_RETURN(QuantParams p, ComputeWeightParams(w, slot, scheme));
  out.params = std::move(p);
  if (config_.bias_correction) {
    QUANTD_ASSIGN_OR_RETURN(Tensor fq, FakeQuantizeWeights(w, out.params));
    rounded = std::move(fq);
  }
  return absl::OkStatus();
}

std::string LayerRounder::WhyNoHessian(const Tensor& w,
                                       const WeightSlot& slot) const {
  std::string why;
  if (statistics_ != nullptr) {
    why = slot.op_type == "Conv" ? statistics_->WhyNoConvPatches(slot.node)
                                 : statistics_->WhyNoHessian(InputOf(slot));
  }
  if (!why.empty()) return why;
  if (w.rank() != 2 && slot.op_type != "Conv") {
    return "needs a 2-D MatMul/Gemm weight";
  }
  return "no Hessian: the layer's input was not seen in calibration";
}

void LayerRounder::DropStatistics() {
  statistics_ = nullptr;
  statistics_dropped_ = true;
}

absl::StatusOr<QuantizationPlan> LayerRounder::BuildPlan(
    const std::map<std::string, LayerPrecision>& precisions,
    const std::map<std::string, QuantParams>& activation_params) {
  QuantizationPlan plan;
  for (const WeightSlot& slot : slots_) {
    auto it = precisions.find(slot.node);
    const LayerPrecision p = it != precisions.end()
                                 ? it->second
                                 : RequestedPrecision(config_.scheme);
    if (p == LayerPrecision::kFloat) {
      plan.float_nodes.insert(slot.node);
      continue;
    }
    QUANTD_ASSIGN_OR_RETURN(const RoundedLayer* r, Round(slot, p));
    // A weight shared by two layers is rounded once, by the first; each
    // layer still gets its own bias and its input's activation parameters.
    if (!plan.weights.contains(slot.initializer)) {
      plan.weights[slot.initializer] = (r)->params;
      if ((r)->codes.has_value()) {
        plan.weight_codes[slot.initializer] = *(r)->codes;
      }
    }
    if ((r)->bias.has_value()) {
      plan.updated_initializers[(r)->bias_name] = *(r)->bias;
    }
    const std::string& input = InputOf(slot);
    switch (config_.activations) {
      case RoundingConfig::Activations::kStatic: {
        auto a = activation_params.find(input);
        if (a == activation_params.end()) {
          return absl::InternalError(absl::StrCat("no calibrated range for '",
                                                  input, "', input of '",
                                                  slot.node, "'"));
        }
        plan.activations[input] = a->second;
        break;
      }
      case RoundingConfig::Activations::kDynamic:
        plan.dynamic_activations.insert(input);
        break;
      case RoundingConfig::Activations::kNone:
        break;
    }
  }
  if (config_.activations == RoundingConfig::Activations::kStatic) {
    ExtendRegions(activation_params, plan);
  }
  return plan;
}

// Static plans also quantize what keeps int8 flowing between layers
// (engine/passes/int8_regions.h): layer outputs read only by int8 readers,
// residual Adds, MaxPools.
void LayerRounder::ExtendRegions(
    const std::map<std::string, QuantParams>& activation_params,
    QuantizationPlan& plan) const {
  std::set<std::string> layers;
  for (const WeightSlot& slot : slots_) {
    if (!plan.float_nodes.contains(slot.node)) layers.insert(slot.node);
  }
  std::set<std::string> quantized;
  for (const auto& [name, p] : plan.activations) quantized.insert(name);
  const std::vector<Int8RegionValue> more = ExtendInt8Regions(
      graph_, [&](const Node& n) { return layers.contains(n.name); },
      [&](const std::string& v) { return activation_params.contains(v); },
      quantized);
  for (const Int8RegionValue& v : more) {
    plan.activations[v.name] = v.same_as.empty()
                                   ? activation_params.at(v.name)
                                   : plan.activations.at(v.same_as);
  }
}

}  // namespace quantd
