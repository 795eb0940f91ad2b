#include "engine/quantization/weight_quantization.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/post_ops.h"
#include "kernels/quantize.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::vector<WeightSlot>> FindQuantizableWeights(
    const Graph& graph, const WeightSelection& selection) {
  std::set<std::string> names;
  for (const Node& n : graph.nodes) names.insert(n.name);
  for (const std::string& n : selection.excluded_nodes) {
    if (!names.contains(n)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "excluded node '", n,
          "' is not in the model (after graph "
          "preparation); check the name against the model's node names"));
    }
  }
  std::vector<WeightSlot> slots;
  for (const Node& node : graph.nodes) {
    if (!node.domain.empty() || selection.excluded_nodes.contains(node.name) ||
        selection.excluded_op_types.contains(node.op_type)) {
      continue;
    }
    const Tensor* w = graph.FindInitializer(node.input(1));
    if (w == nullptr || w->dtype() != DataType::kFloat32) continue;
    WeightSlot slot{node.name, node.op_type, node.input(1), 0, 1};
    if (node.op_type == "Conv" && w->rank() >= 3) {
      slot.channel_axis = 0;
      slot.input_axis = 1;
    } else if (node.op_type == "Gemm" && w->rank() == 2) {
      const bool trans_b = node.attributes.GetInt("transB", 0) != 0;
      slot.channel_axis = trans_b ? 0 : 1;
      slot.input_axis = trans_b ? 1 : 0;
    } else if (node.op_type == "MatMul" && w->rank() == 2) {
      slot.channel_axis = 1;
      slot.input_axis = 0;
    } else {
      continue;
    }
    slots.push_back(std::move(slot));
  }
  return slots;
}

int64_t ParamIndex(const QuantParams& p, const Shape& shape, int64_t i) {
  if (p.axis < 0) return 0;
  // Decompose i into (outer, axis index, inner) around `axis`.
  int64_t inner = 1;
  for (size_t d = p.axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t dim = shape[p.axis];
  const int64_t a = (i / inner) % dim;
  if (p.group_size <= 0) return a;
  // Blocked: scales have shape with dim `axis` = ceil(dim / group).
  const int64_t blocks = (dim + p.group_size - 1) / p.group_size;
  const int64_t outer = i / (inner * dim);
  return (outer * blocks + a / p.group_size) * inner + i % inner;
}

namespace {

// Which elements share a scale: the whole tensor, one output channel, or a
// group of inputs within one output channel.
absl::Status SetParamLayout(const Tensor& w, const WeightSlot& slot,
                            const WeightScheme& scheme, QuantParams& p) {
  switch (scheme.granularity) {
    case WeightGranularity::kPerTensor:
      p.axis = -1;
      break;
    case WeightGranularity::kPerChannel:
      p.axis = slot.channel_axis;
      break;
    case WeightGranularity::kPerGroup: {
      p.axis = slot.input_axis;
      p.group_size = scheme.group_size;
      const int64_t dim = w.dim(static_cast<int>(slot.input_axis));
      if (scheme.group_size <= 0 ||
          (dim % scheme.group_size != 0 && !scheme.allow_partial_groups)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "group size ", scheme.group_size,
            " does not divide the input dimension ", dim, " of weight '",
            slot.initializer, "' (node '", slot.node,
            "'); choose a divisor, exclude the node, or set "
            "weights.allow_partial_groups for a shorter last group"));
      }
      p.scales_shape = w.shape();
      p.scales_shape[slot.input_axis] =
          (dim + scheme.group_size - 1) / scheme.group_size;
      break;
    }
  }
  return absl::OkStatus();
}

// Scales (and zero points unless symmetric) from the range of each slice of
// `w` that p's layout gives one scale; ranges always include 0.
void SetScalesFromRanges(const Tensor& w, bool symmetric, QuantParams& p) {
  const int64_t count =
      p.axis < 0 ? 1
                 : (p.group_size > 0 ? NumElements(p.scales_shape)
                                     : w.dim(static_cast<int>(p.axis)));
  std::vector<float> lo(count, 0.f), hi(count, 0.f);
  const float* data = w.data<float>();
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t k = ParamIndex(p, w.shape(), i);
    lo[k] = std::min(lo[k], data[i]);
    hi[k] = std::max(hi[k], data[i]);
  }
  p.scales.resize(count);
  if (!symmetric) p.zero_points.resize(count);
  for (int64_t k = 0; k < count; ++k) {
    float scale;
    if (symmetric) {
      scale = std::max(-lo[k], hi[k]) / p.qmax;
    } else {
      scale = (hi[k] - lo[k]) / (p.qmax - p.qmin);
    }
    if (!(scale > 0) || !std::isfinite(scale)) scale = 1.f;  // all-zero slice
    scale = std::max(scale, kMinQuantScale);                 // near-zero slice
    p.scales[k] = scale;
    if (!symmetric) {
      p.zero_points[k] = static_cast<int32_t>(std::clamp<float>(
          std::nearbyint(p.qmin - lo[k] / scale), p.qmin, p.qmax));
    }
  }
}

}  // namespace

int SchemeBits(const WeightScheme& scheme) {
  if (scheme.type != QuantType::kInt4 && scheme.type != QuantType::kUInt4) {
    return 8;
  }
  return scheme.bits == 2 || scheme.bits == 3 ? scheme.bits : 4;
}

absl::StatusOr<QuantParams> ComputeWeightParams(const Tensor& w,
                                                const WeightSlot& slot,
                                                const WeightScheme& scheme) {
  if (w.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight '", slot.initializer, "' is not float"));
  }
  QuantParams p;
  p.type = scheme.type;
  const bool signed_type =
      scheme.type == QuantType::kInt8 || scheme.type == QuantType::kInt4;
  if (!signed_type) {
    return absl::InvalidArgumentError(
        "weights are quantized to signed types (int8, int4); asymmetric "
        "weights use a zero point within the signed range");
  }
  p.qmin = QuantTypeMin(scheme.type);
  p.qmax = QuantTypeMax(scheme.type);
  if (scheme.type == QuantType::kInt8 && scheme.symmetric) {
    // Narrow symmetric range [-m, m]: -128 is never used so that negation is
    // exact, and on CPUs without VNNI m = 64 keeps the int8 kernels exact.
    const int32_t m = scheme.int8_max_magnitude > 0
                          ? scheme.int8_max_magnitude
                          : MaxExactInt8WeightMagnitude();
    p.qmin = -m;
    p.qmax = m;
  } else {
    const int bits = SchemeBits(scheme);
    if (bits < 4) {  // int3 / int2 in int4 containers
      p.qmin = -(1 << (bits - 1));
      p.qmax = (1 << (bits - 1)) - 1;
    }
    if (scheme.symmetric) p.qmin = -p.qmax;  // int4: [-7, 7]
  }
  QUANTD_RETURN_IF_ERROR(SetParamLayout(w, slot, scheme, p));
  SetScalesFromRanges(w, scheme.symmetric, p);
  return p;
}

namespace {

// clamp(round(w / scale) + zero_point) of every element into `q`.
template <typename T>
absl::Status QuantizeInto(const Tensor& w, const QuantParams& p, T* q) {
  if (w.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError("only float weights are quantized");
  }
  const float* src = w.data<float>();
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t k = ParamIndex(p, w.shape(), i);
    if (k >= static_cast<int64_t>(p.scales.size())) {
      return absl::InvalidArgumentError(
          "quantization parameters do not match the weight's shape");
    }
    const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[k];
    q[i] = static_cast<T>(std::clamp<float>(
        std::nearbyint(src[i] / p.scales[k]) + zp, p.qmin, p.qmax));
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<std::vector<int32_t>> QuantizeWeightValues(
    const Tensor& w, const QuantParams& p) {
  std::vector<int32_t> q(w.num_elements());
  QUANTD_RETURN_IF_ERROR(QuantizeInto(w, p, q.data()));
  return q;
}

absl::StatusOr<WeightCodes> QuantizeWeightCodes(const Tensor& w,
                                                const QuantParams& p) {
  Tensor out(QuantHolderType(p.type), w.shape());
  if (out.dtype() == DataType::kInt8) {
    QUANTD_RETURN_IF_ERROR(QuantizeInto(w, p, out.mutable_data<int8_t>()));
  } else {
    QUANTD_RETURN_IF_ERROR(QuantizeInto(w, p, out.mutable_data<uint8_t>()));
  }
  return WeightCodes::FromValues(out, CodeBits(p.type));
}

namespace {

absl::Status CheckCodesMatch(const WeightCodes& codes, const QuantParams& p) {
  if (codes.dtype() != QuantHolderType(p.type) ||
      codes.bits() != CodeBits(p.type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight codes are ", codes.DebugString(), "; the plan's ",
                     QuantTypeName(p.type), " parameters need ",
                     QuantTypeName(p.type), " codes"));
  }
  const int64_t last = codes.num_elements() - 1;
  if (last >= 0 && ParamIndex(p, codes.shape(), last) >=
                       static_cast<int64_t>(p.scales.size())) {
    return absl::InvalidArgumentError(
        "quantization parameters do not match the codes' shape");
  }
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<Tensor> DequantizeWeightCodes(const WeightCodes& codes,
                                             const QuantParams& p) {
  QUANTD_RETURN_IF_ERROR(CheckCodesMatch(codes, p));
  Tensor out(DataType::kFloat32, codes.shape());
  float* dst = out.mutable_data<float>();
  const Shape& shape = codes.shape();
  codes.ForEachValue([&](int64_t i, int32_t q) {
    const int64_t k = ParamIndex(p, shape, i);
    const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[k];
    dst[i] = static_cast<float>(q - zp) * p.scales[k];
  });
  return out;
}

absl::StatusOr<Tensor> PlanFloatWeight(const Graph& graph,
                                       const QuantizationPlan& plan,
                                       const std::string& name) {
  if (auto c = plan.weight_codes.find(name); c != plan.weight_codes.end()) {
    auto p = plan.weights.find(name);
    if (p == plan.weights.end()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "plan.weight_codes['", name, "'] has no plan.weights entry"));
    }
    return DequantizeWeightCodes(c->second, p->second);
  }
  if (auto u = plan.updated_initializers.find(name);
      u != plan.updated_initializers.end()) {
    return u->second;
  }
  const Tensor* w = graph.FindInitializer(name);
  if (w == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not an initializer of the graph"));
  }
  return *w;
}

absl::StatusOr<double> RelativeWeightError(const Graph& graph,
                                           const QuantizationPlan& plan,
                                           const std::string& name,
                                           const QuantParams& p) {
  const Tensor* w = graph.FindInitializer(name);
  if (w == nullptr || w->dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", name, "' is not a float initializer of the graph"));
  }
  const WeightCodes* codes = nullptr;
  if (auto c = plan.weight_codes.find(name); c != plan.weight_codes.end()) {
    codes = &c->second;
  }
  const Tensor* source = w;
  if (auto u = plan.updated_initializers.find(name);
      u != plan.updated_initializers.end()) {
    source = &u->second;
  }
  if ((codes != nullptr &&
       (codes->dtype() != QuantHolderType(p.type) ||
        codes->bits() != CodeBits(p.type) || codes->shape() != w->shape())) ||
      source->shape() != w->shape() || source->dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("the plan's value of '", name, "' does not match it"));
  }
  const int64_t n = w->num_elements();
  if (n > 0 && ParamIndex(p, w->shape(), n - 1) >=
                   static_cast<int64_t>(p.scales.size())) {
    return absl::InvalidArgumentError(
        "quantization parameters do not match the weight's shape");
  }
  const float* wf = w->data<float>();
  const float* src = source->data<float>();
  double num = 0, den = 0;
  auto add = [&](int64_t i, int32_t q, int64_t k, int32_t zp) {
    const float wq = static_cast<float>(q - zp) * p.scales[k];
    const double d = double{wf[i]} - wq;
    num += d * d;
    den += double{wf[i]} * wf[i];
  };
  auto zero_point = [&](int64_t k) {
    return p.zero_points.empty() ? 0 : p.zero_points[k];
  };
  if (codes != nullptr) {
    codes->ForEachValue([&](int64_t i, int32_t q) {
      const int64_t k = ParamIndex(p, w->shape(), i);
      add(i, q, k, zero_point(k));
    });
  } else {
    for (int64_t i = 0; i < n; ++i) {
      const int64_t k = ParamIndex(p, w->shape(), i);
      const int32_t zp = zero_point(k);
      add(i,
          static_cast<int32_t>(std::clamp<float>(
              std::nearbyint(src[i] / p.scales[k]) + zp, p.qmin, p.qmax)),
          k, zp);
    }
  }
  return den > 0 ? std::sqrt(num / den) : 0.0;
}

absl::StatusOr<Tensor> FakeQuantizeWeights(const Tensor& w,
                                           const QuantParams& p) {
  QUANTD_ASSIGN_OR_RETURN(std::vector<int32_t> q, QuantizeWeightValues(w, p));
  Tensor out(DataType::kFloat32, w.shape());
  float* dst = out.mutable_data<float>();
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t k = ParamIndex(p, w.shape(), i);
    const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[k];
    dst[i] = static_cast<float>(q[i] - zp) * p.scales[k];
  }
  return out;
}

}  // namespace quantd
