#include "engine/export/qdq_export.h"

#include <algorithm>
#include <map>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "engine/export/qdq_internal.h"
#include "engine/onnx/onnx_convert.h"
#include "kernels/quantize.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

constexpr int64_t kPerAxisOpset = 13;
constexpr int64_t kBlockedOpset = 21;

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

Shape ScaleShape(const QuantParams& p, const Shape& tensor_shape) {
  if (p.axis < 0) return {};
  if (p.group_size == 0) return {static_cast<int64_t>(p.scales.size())};
  Shape s = tensor_shape;
  s[p.axis] = (tensor_shape[p.axis] + p.group_size - 1) / p.group_size;
  return s;
}

Tensor ZeroPointTensor(const QuantParams& p, const Shape& shape) {
  Tensor zp = Tensor::Zeros(QuantHolderType(p.type), shape);
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

// The opset the export writes: at least 13 (per-axis QDQ), 21 when a weight
// is 4-bit or per group (blocked QDQ).
absl::StatusOr<int64_t> ExportOpset(const Graph& g,
                                    const QuantizationPlan& plan) {
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
  return opset;
}

// Rewrites what opset 18 spells differently: Split's implicit number of
// outputs, and the `axes` attribute of Reduce* ops, which became an input.
void RewriteForOpset18(Graph& g) {
  for (Node& node : g.nodes) {
    if (node.domain.empty() && node.op_type == "Split" && !node.has_input(1) &&
        !node.attributes.Has("num_outputs")) {
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

// The graph being built and where its new nodes go: they are appended to
// g.nodes, and their indices are listed next to the original node they must
// follow or precede, to be put in order at the end.
struct QdqBuild {
  explicit QdqBuild(QdqGraph& qdq)
      : out(qdq),
        g(qdq.graph),
        original_nodes(qdq.graph.nodes.size()),
        before(original_nodes),
        after(original_nodes),
        producers(ProducerIndex(qdq.graph)) {
    for (const ValueInfo& o : g.outputs) graph_outputs.insert(o.name);
  }

  QdqGraph& out;
  Graph& g;
  size_t original_nodes;
  std::vector<std::vector<size_t>> before;
  std::vector<std::vector<size_t>> after;
  std::vector<size_t> at_start;
  absl::flat_hash_map<std::string, size_t> producers;
  absl::flat_hash_set<std::string> graph_outputs;
  bool packed_code_nodes = false;  // QdqExportOptions::packed_code_nodes
};

// Moves the original readers of activation `name` to the DQ output that
// replaces it; returns that output's name. A graph output keeps its name on
// the DQ side, so its producer then writes `*source`, a new float value.
std::string RerouteActivation(QdqBuild& b, const std::string& name,
                              std::string* source) {
  Graph& g = b.g;
  *source = name;
  std::string dq_out;
  if (b.graph_outputs.contains(name)) {
    // Only a node output can be an output and quantized (validated).
    *source = g.UniqueName(absl::StrCat(name, "_float"));
    for (std::string& o : g.nodes[b.producers.find(name)->second].outputs) {
      if (o == name) o = *source;
    }
    dq_out = name;
  } else {
    dq_out = g.UniqueName(absl::StrCat(name, "_dequantized"));
  }
  for (size_t i = 0; i < b.original_nodes; ++i) {
    for (std::string& in : g.nodes[i].inputs) {
      if (in == name) in = dq_out;
    }
  }
  return dq_out;
}

// The Q node of activation `name` reading `source`: QuantizeLinear with
// constant parameters when `p` is set, else DynamicQuantizeLinear, whose
// scale and zero point outputs feed the DQ. Sets the names of both.
Node ActivationQuantizer(Graph& g, const std::string& name,
                         const std::string& source, const QuantParams* p,
                         std::string* scale, std::string* zp) {
  // Every base below differs, so names made before the nodes join the
  // graph cannot collide with one another.
  Node q;
  if (p != nullptr) {
    *scale = g.UniqueName(absl::StrCat(name, "_scale"));
    g.initializers[*scale] = Tensor::Scalar<float>(p->scales[0]);
    *zp = g.UniqueName(absl::StrCat(name, "_zero_point"));
    g.initializers[*zp] = ZeroPointTensor(*p, {});
    q.op_type = "QuantizeLinear";
    q.name = g.UniqueName(absl::StrCat(name, "_QuantizeLinear"));
    q.inputs = {source, *scale, *zp};
    q.outputs = {g.UniqueName(absl::StrCat(name, "_quantized"))};
  } else {
    q.op_type = "DynamicQuantizeLinear";
    q.name = g.UniqueName(absl::StrCat(name, "_DynamicQuantizeLinear"));
    q.inputs = {source};
    *scale = g.UniqueName(absl::StrCat(name, "_scale"));
    *zp = g.UniqueName(absl::StrCat(name, "_zero_point"));
    q.outputs = {g.UniqueName(absl::StrCat(name, "_quantized")), *scale, *zp};
  }
  return q;
}

// Activations: Q -> DQ after the producer (or first, for a graph input);
// readers move to the DQ output. `p` is null for a dynamic activation.
void QuantizeActivation(QdqBuild& b, const std::string& name,
                        const QuantParams* p) {
  Graph& g = b.g;
  auto producer = b.producers.find(name);
  std::string source;
  const std::string dq_out = RerouteActivation(b, name, &source);
  std::string scale, zp;
  Node q = ActivationQuantizer(g, name, source, p, &scale, &zp);
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
      producer == b.producers.end() ? b.at_start : b.after[producer->second];
  slot.push_back(q_index);
  slot.push_back(dq_index);
}

// The integer initializer of weight `name` with its scale and zero point,
// and the DequantizeLinear node that reads them.
// Codes the plan holds (GPTQ's) are the integers as they are: 8-bit codes
// shared; 4-bit codes unpacked one per byte (the writer packs them again),
// or with QdqExportOptions::packed_code_nodes kept packed and read by
// quantd.DequantizePackedCodes.
absl::StatusOr<Node> WeightDequantizer(QdqBuild& b,
                                       const QuantizationPlan& plan,
                                       const std::string& name,
                                       const QuantParams& p) {
  Graph& g = b.g;
  const Tensor& w = *g.FindInitializer(name);
  const Shape scale_shape = ScaleShape(p, w.shape());
  Tensor scale = Tensor::FromVector<float>(scale_shape, p.scales);
  Tensor zp = ZeroPointTensor(p, scale_shape);
  Tensor q;
  const WeightCodes* packed = nullptr;
  if (auto codes = plan.weight_codes.find(name);
      codes != plan.weight_codes.end()) {
    if (b.packed_code_nodes && codes->second.bits() == 4) {
      packed = &codes->second;
      q = packed->storage();
    } else {
      q = codes->second.Values();
    }
  } else {
    QuantizeOptions qopts;
    qopts.axis = p.axis < 0 ? 0 : p.axis;
    qopts.block_size = p.group_size;
    qopts.output_type = QuantHolderType(p.type);
    qopts.qmin = p.qmin;
    qopts.qmax = p.qmax;
    absl::Status s = QuantizeLinear(w, scale, &zp, qopts, &q);
    if (!s.ok()) {
      return absl::InternalError(
          absl::StrCat("quantizing weight '", name, "': ", s.message()));
    }
  }
  const std::string q_name = g.UniqueName(absl::StrCat(name, "_quantized"));
  g.initializers[q_name] = std::move(q);
  const std::string scale_name = g.UniqueName(absl::StrCat(name, "_scale"));
  g.initializers[scale_name] = std::move(scale);
  const std::string zp_name = g.UniqueName(absl::StrCat(name, "_zero_point"));
  g.initializers[zp_name] = std::move(zp);
  if (IsFourBit(p.type)) {
    if (packed == nullptr) b.out.four_bit_initializers.insert(q_name);
    b.out.four_bit_initializers.insert(zp_name);
  }
  Node dq;
  dq.op_type = "DequantizeLinear";
  if (packed != nullptr) {
    dq.domain = kPackedCodesDomain;
    dq.op_type = kDequantizePackedCodesOp;
    Attribute shape;
    shape.type = Attribute::Type::kInts;
    shape.ints = packed->shape();
    dq.attributes.Set("shape", std::move(shape));
  }
  dq.name = g.UniqueName(absl::StrCat(name, "_DequantizeLinear"));
  dq.inputs = {q_name, scale_name, zp_name};
  dq.outputs = {g.UniqueName(absl::StrCat(name, "_dequantized"))};
  b.out.dequantized_weights[dq.outputs[0]] = name;
  if (p.axis >= 0) dq.attributes.Set("axis", IntAttribute(p.axis));
  if (p.group_size > 0) {
    dq.attributes.Set("block_size", IntAttribute(p.group_size));
  }
  return dq;
}

// Weights: integer initializer -> DQ before the first quantized reader. The
// float initializer stays only while float nodes or biases still read it.
absl::Status QuantizeWeight(QdqBuild& b, const QuantizationPlan& plan,
                            const std::string& name, const QuantParams& p) {
  Graph& g = b.g;
  std::vector<std::pair<size_t, size_t>> readers;  // (node, input slot)
  bool float_readers = false;
  for (size_t i = 0; i < b.original_nodes; ++i) {
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
  if (readers.empty()) return absl::OkStatus();
  QUANTD_ASSIGN_OR_RETURN(Node dq, WeightDequantizer(b, plan, name, p));
  for (const auto& [i, s] : readers) g.nodes[i].inputs[s] = dq.outputs[0];
  if (!float_readers) g.initializers.erase(name);
  g.nodes.push_back(std::move(dq));
  b.before[readers.front().first].push_back(g.nodes.size() - 1);
  return absl::OkStatus();
}

// Puts the appended Q/DQ nodes next to the original nodes they belong to.
void OrderNodes(QdqBuild& b) {
  Graph& g = b.g;
  std::vector<Node> ordered;
  ordered.reserve(g.nodes.size());
  for (size_t i : b.at_start) ordered.push_back(std::move(g.nodes[i]));
  for (size_t n = 0; n < b.original_nodes; ++n) {
    for (size_t i : b.before[n]) ordered.push_back(std::move(g.nodes[i]));
    ordered.push_back(std::move(g.nodes[n]));
    for (size_t i : b.after[n]) ordered.push_back(std::move(g.nodes[i]));
  }
  g.nodes = std::move(ordered);
}

}  // namespace

absl::StatusOr<QdqGraph> BuildQdqGraph(Graph graph,
                                       const QuantizationPlan& plan,
                                       const QdqExportOptions& options) {
  QUANTD_RETURN_IF_ERROR(ValidateQuantizationPlan(graph, plan));

  QdqGraph out;
  Graph& g = out.graph;
  g = std::move(graph);
  for (const auto& [name, t] : plan.updated_initializers) {
    g.initializers[name] = t;
  }
  QUANTD_ASSIGN_OR_RETURN(const int64_t opset, ExportOpset(g, plan));
  if (opset >= 18 && g.opset < 18) RewriteForOpset18(g);
  g.opset = opset;
  out.ir_version = IrVersionForOpset(opset);

  QdqBuild b(out);
  b.packed_code_nodes = options.packed_code_nodes;
  for (const auto& [name, p] : plan.activations) {
    QuantizeActivation(b, name, &p);
  }
  for (const std::string& name : plan.dynamic_activations) {
    QuantizeActivation(b, name, nullptr);
  }
  for (const auto& [name, p] : plan.weights) {
    QUANTD_RETURN_IF_ERROR(QuantizeWeight(b, plan, name, p));
  }
  OrderNodes(b);
  // Shape-inference results described the float graph; they are not
  // exported and would mislead whoever runs this graph.
  g.value_info.clear();
  return out;
}

namespace {

// The model proto of an export, taking the graph apart as it goes: each
// initializer's tensor is released once it is protobuf, so the quantized
// weights are held once, not twice. 4-bit holders are packed here.
onnx::ModelProto QdqGraphToModelProto(QdqGraph&& qdq,
                                      const QdqExportOptions& options) {
  std::map<std::string, Tensor> initializers;  // sorted: deterministic files
  for (auto& [name, t] : qdq.graph.initializers) {
    initializers.emplace(name, std::move(t));
  }
  qdq.graph.initializers.clear();
  onnx::ModelProto model =
      GraphToModelProto(qdq.graph, qdq.ir_version, options.producer_name);
  if (!options.producer_version.empty()) {
    model.set_producer_version(options.producer_version);
  }
  onnx::GraphProto* g = model.mutable_graph();
  for (auto it = initializers.begin(); it != initializers.end();
       it = initializers.erase(it)) {
    const auto& [name, t] = *it;
    onnx::TensorProto* proto = g->add_initializer();
    if (!qdq.four_bit_initializers.contains(name)) {
      *proto = TensorToProto(t, name);
      continue;
    }
    proto->set_name(name);
    proto->set_data_type(t.dtype() == DataType::kInt8 ? kOnnxInt4 : kOnnxUInt4);
    for (int64_t d : t.shape()) proto->add_dims(d);
    proto->set_raw_data(PackFourBit(t));
  }
  return model;
}

}  // namespace

absl::StatusOr<onnx::ModelProto> ExportQdqModel(
    Graph graph, const QuantizationPlan& plan,
    const QdqExportOptions& options) {
  QUANTD_ASSIGN_OR_RETURN(QdqGraph qdq,
                          BuildQdqGraph(std::move(graph), plan, options));
  return QdqGraphToModelProto(std::move(qdq), options);
}

absl::StatusOr<ExportedModel> ExportQdqModelFiles(
    Graph graph, const QuantizationPlan& plan,
    const QdqExportOptions& options) {
  QUANTD_ASSIGN_OR_RETURN(onnx::ModelProto model,
                          ExportQdqModel(std::move(graph), plan, options));
  ExportedModel out;
  const bool too_large =
      static_cast<int64_t>(model.ByteSizeLong()) > options.max_inline_bytes;
  if (too_large || options.prefer_external_data) {
    if (options.external_data_location.empty()) {
      return absl::ResourceExhaustedError(absl::StrCat(
          "the quantized model is ", model.ByteSizeLong(),
          " bytes, more than one ONNX file can hold (",
          options.max_inline_bytes,
          "); it needs external data, which this export path cannot write "
          "(use `quantd run-job`, which writes it beside the model)"));
    }
    QUANTD_RETURN_IF_ERROR(
        MoveToExternalData(&model, options.external_data_location,
                           options.external_data, &out.external_data));
  }
  if (static_cast<int64_t>(model.ByteSizeLong()) > kProtobufMaxBytes ||
      !model.SerializeToString(&out.model_bytes)) {
    return absl::InternalError(
        absl::StrCat("serializing the QDQ model failed (", model.ByteSizeLong(),
                     " bytes without the external data)"));
  }
  return out;
}

absl::StatusOr<std::string> ExportQdqModelBytes(
    Graph graph, const QuantizationPlan& plan,
    const QdqExportOptions& options) {
  QdqExportOptions inline_only = options;
  inline_only.external_data_location.clear();
  inline_only.prefer_external_data = false;
  QUANTD_ASSIGN_OR_RETURN(
      ExportedModel files,
      ExportQdqModelFiles(std::move(graph), plan, inline_only));
  return std::move(files.model_bytes);
}

}  // namespace quantd
