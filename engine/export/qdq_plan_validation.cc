// ValidateQuantizationPlan, apart from the export itself: BuildQdqGraph
// runs it before touching the graph, and callers may run it alone.
#include <cmath>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/export/qdq_export.h"
#include "engine/export/qdq_internal.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// The values themselves: a non-empty [qmin, qmax] within the type, positive
// finite scales, and zero points (one per scale, or none) within [qmin, qmax].
absl::Status CheckParamValues(const std::string& what, const QuantParams& p) {
  const int32_t tmin = QuantTypeMin(p.type), tmax = QuantTypeMax(p.type);
  if (p.qmin < tmin || p.qmax > tmax || p.qmin >= p.qmax) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": [qmin, qmax] = [", p.qmin, ", ", p.qmax,
                     "] must be a non-empty range within ",
                     QuantTypeName(p.type), "'s [", tmin, ", ", tmax, "]"));
  }
  if (p.scales.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(what, " has no scales"));
  }
  for (size_t i = 0; i < p.scales.size(); ++i) {
    if (!std::isfinite(p.scales[i]) || p.scales[i] <= 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": scale ", i, " is ", p.scales[i],
                       "; scales must be positive and finite"));
    }
  }
  if (!p.zero_points.empty() && p.zero_points.size() != p.scales.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " has ", p.zero_points.size(), " zero points for ",
        p.scales.size(), " scales; give one per scale or none (symmetric)"));
  }
  for (size_t i = 0; i < p.zero_points.size(); ++i) {
    if (p.zero_points[i] < p.qmin || p.zero_points[i] > p.qmax) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": zero point ", i, " is ", p.zero_points[i],
          ", outside [qmin, qmax] = [", p.qmin, ", ", p.qmax, "]"));
    }
  }
  return absl::OkStatus();
}

// Per-group parameters along p.axis (< rank) of `shape`: ONNX blocked
// quantization, ceil(dim / block_size) blocks, the last one possibly shorter.
absl::Status CheckGroupedParamCount(const std::string& what,
                                    const QuantParams& p, const Shape& shape) {
  const int64_t dim = shape[p.axis];
  Shape expected = shape;
  expected[p.axis] = (dim + p.group_size - 1) / p.group_size;
  if (!p.scales_shape.empty() && p.scales_shape != expected) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": scales_shape is [", absl::StrJoin(p.scales_shape, ","),
        "], expected [", absl::StrJoin(expected, ","), "] for group_size ",
        p.group_size, " along axis ", p.axis));
  }
  int64_t count = 1;
  for (int64_t d : expected) count *= d;
  if (static_cast<int64_t>(p.scales.size()) != count) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": per-group parameters need ", count, " scales (shape [",
        absl::StrJoin(expected, ","), "]), got ", p.scales.size()));
  }
  return absl::OkStatus();
}

// The layout: as many scales as the axis and group size call for in a
// tensor of `shape` (unknown unless `has_shape`, enough for per tensor).
absl::Status CheckParamLayout(const std::string& what, const QuantParams& p,
                              const Shape& shape, bool has_shape) {
  if (p.group_size < 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": group_size is ", p.group_size, "; use 0 or a positive size"));
  }
  if (p.axis == -1) {
    if (p.group_size != 0) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": per-group parameters (group_size ",
                       p.group_size, ") need an axis >= 0"));
    }
    if (p.scales.size() != 1) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": per-tensor parameters (axis -1) need exactly ",
                       "one scale, got ", p.scales.size()));
    }
    return absl::OkStatus();
  }
  if (!has_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": per-channel or per-group parameters need a known shape"));
  }
  const int64_t rank = static_cast<int64_t>(shape.size());
  if (p.axis < 0 || p.axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": axis ", p.axis, " is out of range for rank ",
                     rank, " (use -1 for per tensor)"));
  }
  if (p.group_size != 0) return CheckGroupedParamCount(what, p, shape);
  const int64_t dim = shape[p.axis];
  if (static_cast<int64_t>(p.scales.size()) != dim) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, ": per-channel parameters along axis ", p.axis, " need ", dim,
        " scales (the axis' size), got ", p.scales.size()));
  }
  return absl::OkStatus();
}

absl::Status CheckParams(const std::string& what, const QuantParams& p,
                         const Shape& shape, bool has_shape) {
  QUANTD_RETURN_IF_ERROR(CheckParamValues(what, p));
  return CheckParamLayout(what, p, shape, has_shape);
}

// The float value a weight's export quantizes.
const Tensor* FloatWeight(const Graph& graph, const QuantizationPlan& plan,
                          const std::string& name) {
  auto it = plan.updated_initializers.find(name);
  if (it != plan.updated_initializers.end()) return &it->second;
  return graph.FindInitializer(name);
}

absl::Status CheckUpdatedInitializers(const Graph& graph,
                                      const QuantizationPlan& plan) {
  for (const auto& [name, t] : plan.updated_initializers) {
    const Tensor* original = graph.FindInitializer(name);
    if (original == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("plan.updated_initializers names '", name,
                       "', which is not an initializer of the graph"));
    }
    if (t.dtype() != original->dtype() || t.shape() != original->shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "plan.updated_initializers['", name, "'] is ", t.DebugString(),
          " but the graph's initializer is ", original->DebugString(),
          "; an update must keep dtype and shape"));
    }
  }
  return absl::OkStatus();
}

// What static and dynamic activations have in common: a float value that is
// a graph input or a node output, and not also a graph output if it is an
// input.
absl::Status CheckActivationValue(
    const Graph& graph, const QuantizationPlan& plan,
    const absl::flat_hash_map<std::string, size_t>& producers,
    const std::string& what, const std::string& name) {
  if (graph.FindInitializer(name) != nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is an initializer; list it in plan.weights"));
  }
  if (graph.FindInput(name) == nullptr && !producers.contains(name)) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is neither a graph input nor the output of a node"));
  }
  if (plan.weights.contains(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is also listed in plan.weights"));
  }
  const ValueInfo* info = graph.FindValueInfo(name);
  if (info != nullptr && info->dtype != DataType::kUndefined &&
      info->dtype != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is not float32; only float values can be ", "quantized"));
  }
  bool is_input = graph.FindInput(name) != nullptr;
  for (const ValueInfo& out : graph.outputs) {
    if (is_input && out.name == name) {
      return absl::InvalidArgumentError(
          absl::StrCat(what,
                       " is both a graph input and a graph output; its name "
                       "cannot be kept on both sides of a QDQ pair"));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckActivations(const Graph& graph,
                              const QuantizationPlan& plan) {
  absl::flat_hash_map<std::string, size_t> producers = ProducerIndex(graph);
  for (const auto& [name, p] : plan.activations) {
    const std::string what = absl::StrCat("activation '", name, "'");
    QUANTD_RETURN_IF_ERROR(
        CheckActivationValue(graph, plan, producers, what, name));
    if (plan.dynamic_activations.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what,
          " is in both plan.activations (static parameters) and "
          "plan.dynamic_activations (parameters per batch); choose one"));
    }
    if (IsFourBit(p.type)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is ", QuantTypeName(p.type),
                       "; activations are exported as int8 or uint8 only"));
    }
    if (p.axis != -1 || p.group_size != 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has axis ", p.axis, " and group_size ", p.group_size,
          "; activations take per-tensor parameters (axis -1)"));
    }
    QUANTD_RETURN_IF_ERROR(CheckParams(what, p, {}, false));
  }
  for (const std::string& name : plan.dynamic_activations) {
    const std::string what = absl::StrCat("dynamic activation '", name, "'");
    QUANTD_RETURN_IF_ERROR(
        CheckActivationValue(graph, plan, producers, what, name));
  }
  return absl::OkStatus();
}

absl::Status CheckWeights(const Graph& graph, const QuantizationPlan& plan) {
  for (const auto& [name, p] : plan.weights) {
    const std::string what = absl::StrCat("weight '", name, "'");
    const Tensor* w = FloatWeight(graph, plan, name);
    if (w == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " is not an initializer of the graph"));
    }
    if (w->dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " is ", w->DebugString(), "; only f32 weights are quantized"));
    }
    QUANTD_RETURN_IF_ERROR(CheckParams(what, p, w->shape(), true));
  }
  return absl::OkStatus();
}

bool CodesWithin(const WeightCodes& codes, int32_t qmin, int32_t qmax) {
  bool within = true;
  codes.ForEachValue(
      [&](int64_t, int32_t q) { within = within && q >= qmin && q <= qmax; });
  return within;
}

absl::Status CheckWeightCodes(const Graph& graph,
                              const QuantizationPlan& plan) {
  for (const auto& [name, codes] : plan.weight_codes) {
    const std::string what = absl::StrCat("plan.weight_codes['", name, "']");
    auto p = plan.weights.find(name);
    const Tensor* w = graph.FindInitializer(name);
    if (p == plan.weights.end() || w == nullptr) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " needs a plan.weights entry and a graph initializer"));
    }
    if (plan.updated_initializers.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " is also in plan.updated_initializers; one or the other"));
    }
    if (codes.dtype() != QuantHolderType(p->second.type) ||
        codes.bits() != CodeBits(p->second.type) ||
        codes.shape() != w->shape()) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, " is ", codes.DebugString(), "; weight ", w->DebugString(),
          " quantized to ", QuantTypeName(p->second.type), " needs ",
          QuantTypeName(p->second.type), " codes ", ShapeToString(w->shape())));
    }
    if (!CodesWithin(codes, p->second.qmin, p->second.qmax)) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " has values outside [", p->second.qmin, ", ",
                       p->second.qmax, "]"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ValidateQuantizationPlan(const Graph& graph,
                                      const QuantizationPlan& plan) {
  for (const Node& node : graph.nodes) {
    if (!node.domain.empty() && node.domain != "ai.onnx") {
      return absl::InvalidArgumentError(
          absl::StrCat("QDQ export takes the float graph, but node '",
                       node.name, "' is in domain '", node.domain,
                       "' (an int8-lowered graph?); export before lowering"));
    }
  }
  QUANTD_RETURN_IF_ERROR(CheckUpdatedInitializers(graph, plan));
  QUANTD_RETURN_IF_ERROR(CheckActivations(graph, plan));
  QUANTD_RETURN_IF_ERROR(CheckWeights(graph, plan));
  QUANTD_RETURN_IF_ERROR(CheckWeightCodes(graph, plan));
  absl::flat_hash_set<std::string> node_names;
  for (const Node& node : graph.nodes) node_names.insert(node.name);
  for (const std::string& name : plan.float_nodes) {
    if (!node_names.contains(name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "plan.float_nodes names '", name, "', which is not a node"));
    }
  }
  return absl::OkStatus();
}

}  // namespace quantd
