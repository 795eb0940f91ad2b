#include "engine/export/qdq_export.h"

#include <cmath>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/onnx/onnx_convert.h"
#include "kernels/quantize.h"

namespace quantd {
namespace {

constexpr int64_t kPerAxisOpset = 13;
constexpr int64_t kBlockedOpset = 21;

bool IsFourBit(QuantType t) {
  return t == QuantType::kInt4 || t == QuantType::kUInt4;
}

// The type that holds quantized values in quantd's tensors (4-bit values sit
// one per byte until the export packs them).
DataType HolderType(QuantType t) {
  return t == QuantType::kInt8 || t == QuantType::kInt4 ? DataType::kInt8
                                                        : DataType::kUInt8;
}

int64_t IrVersionForOpset(int64_t opset) {
  if (opset <= 13) return 7;
  if (opset <= 18) return 8;
  if (opset <= 20) return 9;
  return 10;
}

// Reduce ops whose `axes` attribute became an input in opset 18.
bool IsReduceWithAxesInputSince18(const Node& node) {
  static const absl::flat_hash_set<std::string>* const kOps =
      new absl::flat_hash_set<std::string>{
          "ReduceL1",        "ReduceL2",   "ReduceLogSum",
          "ReduceLogSumExp", "ReduceMax",  "ReduceMean",
          "ReduceMin",       "ReduceProd", "ReduceSumSquare"};
  return node.domain.empty() && kOps->contains(node.op_type);
}

// True when input `slot` of `node` is a Conv/Gemm bias, which stays float.
bool IsBiasSlot(const Node& node, size_t slot) {
  return node.domain.empty() && slot == 2 &&
         (node.op_type == "Conv" || node.op_type == "Gemm");
}

absl::Status CheckParams(const std::string& what, const QuantParams& p,
                         const Shape& shape, bool has_shape) {
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
  const int64_t dim = shape[p.axis];
  if (p.group_size == 0) {
    if (static_cast<int64_t>(p.scales.size()) != dim) {
      return absl::InvalidArgumentError(absl::StrCat(
          what, ": per-channel parameters along axis ", p.axis, " need ", dim,
          " scales (the axis' size), got ", p.scales.size()));
    }
    return absl::OkStatus();
  }
  // ONNX blocked quantization: ceil(dim / block_size) blocks, the last one
  // possibly shorter.
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

Shape ScaleShape(const QuantParams& p, const Shape& tensor_shape) {
  if (p.axis < 0) return {};
  if (p.group_size == 0) return {static_cast<int64_t>(p.scales.size())};
  Shape s = tensor_shape;
  s[p.axis] = (tensor_shape[p.axis] + p.group_size - 1) / p.group_size;
  return s;
}

Tensor ZeroPointTensor(const QuantParams& p, const Shape& shape) {
  Tensor zp = Tensor::Zeros(HolderType(p.type), shape);
  for (size_t i = 0; i < p.zero_points.size(); ++i) {
    if (zp.dtype() == DataType::kInt8) {
      zp.mutable_data<int8_t>()[i] = static_cast<int8_t>(p.zero_points[i]);
    } else {
      zp.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(p.zero_points[i]);
    }
  }
  return zp;
}

Attribute IntAttribute(int64_t v) {
  Attribute a;
  a.type = Attribute::Type::kInt;
  a.i = v;
  return a;
}

// The float value a weight's export quantizes.
const Tensor* FloatWeight(const Graph& graph, const QuantizationPlan& plan,
                          const std::string& name) {
  auto it = plan.updated_initializers.find(name);
  if (it != plan.updated_initializers.end()) return &it->second;
  return graph.FindInitializer(name);
}

}  // namespace

std::string PackFourBit(const Tensor& values) {
  const int64_t n = values.num_elements();
  std::string packed((n + 1) / 2, '\0');
  const uint8_t* src = static_cast<const uint8_t*>(values.raw_data());
  for (int64_t i = 0; i < n; ++i) {
    const uint8_t nibble = src[i] & 0x0F;
    packed[i / 2] = static_cast<char>(static_cast<uint8_t>(packed[i / 2]) |
                                      (i % 2 == 0 ? nibble : nibble << 4));
  }
  return packed;
}

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
  absl::flat_hash_map<std::string, size_t> producers = ProducerIndex(graph);
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
  // What static and dynamic activations have in common: a float value
  // that is a graph input or a node output, and not also a graph output if
  // it is an input.
  auto check_activation_value = [&](const std::string& what,
                                    const std::string& name) -> absl::Status {
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
  };
  for (const auto& [name, p] : plan.activations) {
    const std::string what = absl::StrCat("activation '", name, "'");
    if (absl::Status s = check_activation_value(what, name); !s.ok()) {
      return s;
    }
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
    absl::Status s = CheckParams(what, p, {}, false);
    if (!s.ok()) return s;
  }
  for (const std::string& name : plan.dynamic_activations) {
    const std::string what = absl::StrCat("dynamic activation '", name, "'");
    if (absl::Status s = check_activation_value(what, name); !s.ok()) {
      return s;
    }
  }
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
    absl::Status s = CheckParams(what, p, w->shape(), true);
    if (!s.ok()) return s;
  }
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

absl::StatusOr<QdqGraph> BuildQdqGraph(const Graph& graph,
                                       const QuantizationPlan& plan,
                                       const QdqExportOptions& options) {
  absl::Status valid = ValidateQuantizationPlan(graph, plan);
  if (!valid.ok()) return valid;

  QdqGraph out;
  Graph& g = out.graph;
  g = graph;
  for (const auto& [name, t] : plan.updated_initializers) {
    g.initializers[name] = t;
  }

  bool needs_opset21 = false;
  for (const auto& [name, p] : plan.weights) {
    needs_opset21 |= IsFourBit(p.type) || p.group_size > 0;
  }
  int64_t opset = std::max(g.opset, kPerAxisOpset);
  if (needs_opset21) opset = std::max(opset, kBlockedOpset);
  if (g.opset < kPerAxisOpset) {
    // Raising an old graph's opset would change the meaning of ops such as
    // Softmax, Split and Squeeze; the loader's converter does that properly.
    return absl::FailedPreconditionError(absl::StrCat(
        "the graph is at opset ", g.opset,
        "; QDQ export needs opset >= 13 (load the model with the opset "
        "converter enabled)"));
  }

  const size_t original_nodes = g.nodes.size();
  std::vector<std::vector<size_t>> before(original_nodes);
  std::vector<std::vector<size_t>> after(original_nodes);
  std::vector<size_t> at_start;

  if (opset >= 18 && g.opset < 18) {
    for (size_t i = 0; i < original_nodes; ++i) {
      Node& node = g.nodes[i];
      if (node.domain.empty() && node.op_type == "Split" &&
          !node.has_input(1) && !node.attributes.Has("num_outputs")) {
        // Opset 18 wants the number of equal parts spelled out.
        node.attributes.Set(
            "num_outputs",
            IntAttribute(static_cast<int64_t>(node.outputs.size())));
        continue;
      }
      if (!IsReduceWithAxesInputSince18(node)) continue;
      const Attribute* axes = node.attributes.Find("axes");
      if (axes == nullptr) continue;
      const std::string axes_name = g.UniqueName(
          absl::StrCat(node.name.empty() ? node.op_type : node.name, "_axes"));
      g.initializers[axes_name] = Tensor::FromVector<int64_t>(
          {static_cast<int64_t>(axes->ints.size())}, axes->ints);
      node.attributes.Erase("axes");
      node.inputs.resize(1);
      node.inputs.push_back(axes_name);
    }
  }
  g.opset = opset;
  out.ir_version = IrVersionForOpset(opset);

  absl::flat_hash_map<std::string, size_t> producers = ProducerIndex(g);
  absl::flat_hash_set<std::string> graph_outputs;
  for (const ValueInfo& o : g.outputs) graph_outputs.insert(o.name);

  // Activations: Q -> DQ after the producer (static: QuantizeLinear with
  // constant parameters; dynamic: DynamicQuantizeLinear, whose scale and
  // zero point outputs feed the DequantizeLinear); readers move to the DQ
  // output. `p` is null for a dynamic activation.
  auto quantize_activation = [&](const std::string& name,
                                 const QuantParams* p) {
    const bool is_output = graph_outputs.contains(name);
    auto producer = producers.find(name);
    std::string source = name;
    std::string dq_out;
    if (is_output) {
      // Only a node output can be an output and quantized (validated).
      source = g.UniqueName(absl::StrCat(name, "_float"));
      for (std::string& o : g.nodes[producer->second].outputs) {
        if (o == name) o = source;
      }
      dq_out = name;
    } else {
      dq_out = g.UniqueName(absl::StrCat(name, "_dequantized"));
    }
    for (size_t i = 0; i < original_nodes; ++i) {
      for (std::string& in : g.nodes[i].inputs) {
        if (in == name) in = dq_out;
      }
    }
    // Every base below differs, so names made before the nodes join the
    // graph cannot collide with one another.
    Node q;
    std::string scale, zp;
    if (p != nullptr) {
      scale = g.UniqueName(absl::StrCat(name, "_scale"));
      g.initializers[scale] = Tensor::Scalar<float>(p->scales[0]);
      zp = g.UniqueName(absl::StrCat(name, "_zero_point"));
      g.initializers[zp] = ZeroPointTensor(*p, {});
      q.op_type = "QuantizeLinear";
      q.name = g.UniqueName(absl::StrCat(name, "_QuantizeLinear"));
      q.inputs = {source, scale, zp};
      q.outputs = {g.UniqueName(absl::StrCat(name, "_quantized"))};
    } else {
      q.op_type = "DynamicQuantizeLinear";
      q.name = g.UniqueName(absl::StrCat(name, "_DynamicQuantizeLinear"));
      q.inputs = {source};
      scale = g.UniqueName(absl::StrCat(name, "_scale"));
      zp = g.UniqueName(absl::StrCat(name, "_zero_point"));
      q.outputs = {g.UniqueName(absl::StrCat(name, "_quantized")), scale, zp};
    }
    const std::string quantized = q.outputs[0];
    g.nodes.push_back(std::move(q));
    const size_t q_index = g.nodes.size() - 1;
    Node dq;
    dq.op_type = "DequantizeLinear";
    dq.name = g.UniqueName(absl::StrCat(name, "_DequantizeLinear"));
    dq.inputs = {quantized, scale, zp};
    dq.outputs = {dq_out};
    g.nodes.push_back(std::move(dq));
    const size_t dq_index = g.nodes.size() - 1;
    std::vector<size_t>& slot =
        producer == producers.end() ? at_start : after[producer->second];
    slot.push_back(q_index);
    slot.push_back(dq_index);
  };
  for (const auto& [name, p] : plan.activations) quantize_activation(name, &p);
  for (const std::string& name : plan.dynamic_activations) {
    quantize_activation(name, nullptr);
  }

  // Weights: integer initializer -> DQ before the first quantized reader.
  for (const auto& [name, p] : plan.weights) {
    std::vector<std::pair<size_t, size_t>> readers;  // (node, input slot)
    bool float_readers = false;
    for (size_t i = 0; i < original_nodes; ++i) {
      const Node& node = g.nodes[i];
      for (size_t s = 0; s < node.inputs.size(); ++s) {
        if (node.inputs[s] != name) continue;
        if (plan.float_nodes.contains(node.name) || IsBiasSlot(node, s)) {
          float_readers = true;
        } else {
          readers.emplace_back(i, s);
        }
      }
    }
    if (readers.empty()) continue;
    const Tensor& w = *g.FindInitializer(name);
    const Shape scale_shape = ScaleShape(p, w.shape());
    Tensor scale = Tensor::FromVector<float>(scale_shape, p.scales);
    Tensor zp = ZeroPointTensor(p, scale_shape);
    QuantizeOptions qopts;
    qopts.axis = p.axis < 0 ? 0 : p.axis;
    qopts.block_size = p.group_size;
    qopts.output_type = HolderType(p.type);
    qopts.qmin = p.qmin;
    qopts.qmax = p.qmax;
    Tensor q;
    absl::Status s = QuantizeLinear(w, scale, &zp, qopts, &q);
    if (!s.ok()) {
      return absl::InternalError(
          absl::StrCat("quantizing weight '", name, "': ", s.message()));
    }
    const std::string q_name = g.UniqueName(absl::StrCat(name, "_quantized"));
    g.initializers[q_name] = std::move(q);
    const std::string scale_name = g.UniqueName(absl::StrCat(name, "_scale"));
    g.initializers[scale_name] = std::move(scale);
    const std::string zp_name = g.UniqueName(absl::StrCat(name, "_zero_point"));
    g.initializers[zp_name] = std::move(zp);
    if (IsFourBit(p.type)) {
      out.four_bit_initializers.insert(q_name);
      out.four_bit_initializers.insert(zp_name);
    }
    Node dq;
    dq.op_type = "DequantizeLinear";
    dq.name = g.UniqueName(absl::StrCat(name, "_DequantizeLinear"));
    dq.inputs = {q_name, scale_name, zp_name};
    dq.outputs = {g.UniqueName(absl::StrCat(name, "_dequantized"))};
    if (p.axis >= 0) dq.attributes.Set("axis", IntAttribute(p.axis));
    if (p.group_size > 0) {
      dq.attributes.Set("block_size", IntAttribute(p.group_size));
    }
    for (const auto& [i, s] : readers) g.nodes[i].inputs[s] = dq.outputs[0];
    if (!float_readers) g.initializers.erase(name);
    g.nodes.push_back(std::move(dq));
    before[readers.front().first].push_back(g.nodes.size() - 1);
  }

  std::vector<Node> ordered;
  ordered.reserve(g.nodes.size());
  for (size_t i : at_start) ordered.push_back(std::move(g.nodes[i]));
  for (size_t n = 0; n < original_nodes; ++n) {
    for (size_t i : before[n]) ordered.push_back(std::move(g.nodes[i]));
    ordered.push_back(std::move(g.nodes[n]));
    for (size_t i : after[n]) ordered.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(ordered);
  // Shape-inference results described the float graph; they are not
  // exported and would mislead whoever runs this graph.
  g.value_info.clear();
  (void)options;
  return out;
}

absl::StatusOr<onnx::ModelProto> ExportQdqModel(
    const Graph& graph, const QuantizationPlan& plan,
    const QdqExportOptions& options) {
  absl::StatusOr<QdqGraph> qdq = BuildQdqGraph(graph, plan, options);
  if (!qdq.ok()) return qdq.status();
  onnx::ModelProto model =
      GraphToModelProto(qdq->graph, qdq->ir_version, options.producer_name);
  if (!options.producer_version.empty()) {
    model.set_producer_version(options.producer_version);
  }
  for (onnx::TensorProto& t : *model.mutable_graph()->mutable_initializer()) {
    if (!qdq->four_bit_initializers.contains(t.name())) continue;
    const Tensor& holder = qdq->graph.initializers.at(t.name());
    t.set_data_type(holder.dtype() == DataType::kInt8 ? kOnnxInt4 : kOnnxUInt4);
    t.set_raw_data(PackFourBit(holder));
  }
  return model;
}

absl::StatusOr<std::string> ExportQdqModelBytes(
    const Graph& graph, const QuantizationPlan& plan,
    const QdqExportOptions& options) {
  absl::StatusOr<onnx::ModelProto> model = ExportQdqModel(graph, plan, options);
  if (!model.ok()) return model.status();
  std::string bytes;
  if (!model->SerializeToString(&bytes)) {
    return absl::InternalError(
        "serializing the QDQ model failed (is it larger than 2 GiB?)");
  }
  return bytes;
}

}  // namespace quantd
