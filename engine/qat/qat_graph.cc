#include "engine/qat/qat_graph.h"

#include <tuple>

#include "absl/strings/str_cat.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/op_registry.h"
#include "engine/runtime/ops/fake_quant_op.h"
#include "kernels/quantize.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

Attribute IntAttr(int64_t v) {
  Attribute a;
  a.i = v;
  return a;
}

// The FakeQuant node's scale and zero-point initializers for `p`; the
// scale keeps the plan's layout (scales_shape for blocks).
void AddParams(Graph& g, const std::string& base, const QuantParams& p,
               std::string* scale, std::string* zp) {
  *scale = g.UniqueName(absl::StrCat(base, "_qat_scale"));
  const Shape shape = p.group_size > 0
                          ? p.scales_shape
                          : Shape{static_cast<int64_t>(p.scales.size())};
  g.initializers[*scale] = Tensor::FromVector<float>(shape, p.scales);
  zp->clear();
  if (!p.zero_points.empty()) {
    *zp = g.UniqueName(absl::StrCat(base, "_qat_zero_point"));
    g.initializers[*zp] = Tensor::FromVector<int32_t>(shape, p.zero_points);
  }
}

Node FakeQuantNode(Graph& g, const std::string& input,
                   const std::string& output, const std::string& scale,
                   const std::string& zp, const QuantParams& p) {
  Node n;
  n.name = g.UniqueName(absl::StrCat(input, "_FakeQuant"));
  n.domain = kQuantdDomain;
  n.op_type = kFakeQuantOp;
  n.inputs = {input, scale};
  if (!zp.empty()) n.inputs.push_back(zp);
  n.outputs = {output};
  n.attributes.Set("axis", IntAttr(p.axis));
  n.attributes.Set("block_size", IntAttr(p.group_size));
  n.attributes.Set("qmin", IntAttr(p.qmin));
  n.attributes.Set("qmax", IntAttr(p.qmax));
  return n;
}

// The graph's nodes after `prologue`, reading FakeQuant outputs instead of
// the values in `renamed`, each followed by the activation FakeQuants in
// `after` of what it writes.
std::vector<Node> ReadFakeQuantized(
    const Graph& graph, const QuantizationPlan& plan,
    const std::map<std::string, std::string>& renamed,
    const std::map<std::string, Node>& after, std::vector<Node> prologue) {
  std::vector<Node> nodes = std::move(prologue);
  for (Node n : graph.nodes) {
    const bool float_node = plan.float_nodes.contains(n.name);
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      auto r = renamed.find(n.inputs[i]);
      if (r == renamed.end()) continue;
      // Float layers read float weights; biases of Conv/Gemm stay float.
      const bool weight = plan.weights.contains(n.inputs[i]);
      const bool bias = i == 2 && (n.op_type == "Conv" || n.op_type == "Gemm");
      if (weight && (float_node || bias)) continue;
      n.inputs[i] = r->second;
    }
    const std::vector<std::string> outputs = n.outputs;
    nodes.push_back(std::move(n));
    for (const std::string& o : outputs) {
      auto a = after.find(o);
      if (a != after.end()) nodes.push_back(a->second);
    }
  }
  return nodes;
}

// Biases of quantized Conv/Gemm layers train with their weights.
void AddTrainableBiases(const Graph& graph, const QuantizationPlan& plan,
                        TrainingGraph& t) {
  for (const Node& n : graph.nodes) {
    if ((n.op_type == "Conv" || n.op_type == "Gemm") && n.domain.empty() &&
        !plan.float_nodes.contains(n.name) &&
        plan.weights.contains(n.input(1)) && n.has_input(2) &&
        t.graph.FindInitializer(n.input(2)) != nullptr) {
      t.weights.insert(n.input(2));
    }
  }
}

// MaxPool outputs quantized with their input's parameters (int8 regions,
// engine/passes/int8_regions.h): they share the input's trained step, so
// the max of quantized values stays on the input's grid after training.
std::map<std::string, std::string> TiedActivations(
    const Graph& graph, const QuantizationPlan& plan) {
  std::map<std::string, std::string> tied;
  for (const Node& n : graph.nodes) {
    if (!n.domain.empty() || n.op_type != "MaxPool" || n.outputs.empty()) {
      continue;
    }
    auto in = plan.activations.find(n.input(0));
    auto out = plan.activations.find(n.outputs[0]);
    if (in == plan.activations.end() || out == plan.activations.end() ||
        in->second.scales != out->second.scales ||
        in->second.zero_points != out->second.zero_points ||
        tied.contains(n.input(0))) {
      continue;  // (a MaxPool of a tied value keeps its own step)
    }
    tied[n.outputs[0]] = n.input(0);
  }
  return tied;
}

}  // namespace

absl::StatusOr<TrainingGraph> BuildTrainingGraph(const Graph& graph,
                                                 const QuantizationPlan& plan) {
  if (!plan.dynamic_activations.empty()) {
    return absl::InvalidArgumentError(
        "quantization-aware training needs static activation ranges; "
        "DYNAMIC mode is not trainable");
  }
  TrainingGraph t;
  t.graph = graph;
  Graph& g = t.graph;
  for (const auto& [name, w] : plan.updated_initializers) {
    g.initializers[name] = w.Clone();
  }
  // Training moves the weights off the grid: codes become floats again.
  for (const auto& [name, codes] : plan.weight_codes) {
    QUANTD_ASSIGN_OR_RETURN(g.initializers[name],
                            PlanFloatWeight(graph, plan, name));
  }
  std::vector<Node> prologue;  // weight FakeQuants, before every node
  std::map<std::string, std::string> renamed;  // value -> FakeQuant output
  for (const auto& [name, p] : plan.weights) {
    if (g.FindInitializer(name) == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("plan weight '", name, "' is not an initializer"));
    }
    std::string scale, zp;
    AddParams(g, name, p, &scale, &zp);
    const std::string out = g.UniqueName(absl::StrCat(name, "_fq"));
    prologue.push_back(FakeQuantNode(g, name, out, scale, zp, p));
    renamed[name] = out;
    t.weights.insert(name);
    t.scales[scale] = absl::StrCat("w:", name);
  }
  std::map<std::string, Node> after;  // activation FakeQuant by producer out
  t.tied = TiedActivations(graph, plan);
  std::map<std::string, std::pair<std::string, std::string>> params_of;
  for (bool tied : {false, true}) {  // a tied value after the one it shares
    for (const auto& [name, p] : plan.activations) {
      auto tie = t.tied.find(name);
      if ((tie != t.tied.end()) != tied) continue;
      std::string scale, zp;
      if (tied) {
        std::tie(scale, zp) = params_of.at(tie->second);
      } else {
        AddParams(g, name, p, &scale, &zp);
        t.scales[scale] = absl::StrCat("a:", name);
      }
      params_of[name] = {scale, zp};
      const std::string out = g.UniqueName(absl::StrCat(name, "_fq"));
      after.emplace(name, FakeQuantNode(g, name, out, scale, zp, p));
      renamed[name] = out;
    }
  }
  // Graph inputs that are quantized come first.
  for (const ValueInfo& in : g.inputs) {
    auto a = after.find(in.name);
    if (a != after.end()) prologue.push_back(a->second);
  }
  std::vector<Node> nodes =
      ReadFakeQuantized(graph, plan, renamed, after, std::move(prologue));
  AddTrainableBiases(graph, plan, t);
  g.nodes = std::move(nodes);
  // Quantized graph outputs would need renaming; QAT keeps outputs float.
  for (ValueInfo& o : g.outputs) {
    if (after.contains(o.name)) {
      return absl::UnimplementedError(absl::StrCat(
          "graph output '", o.name,
          "' is quantized in the plan; training graphs keep outputs float"));
    }
  }
  QUANTD_RETURN_IF_ERROR(TopologicalSort(g));
  return t;
}

absl::StatusOr<QuantizationPlan> TrainingGraph::ToPlan(
    const QuantizationPlan& base) const {
  QuantizationPlan plan = base;
  for (const std::string& name : weights) {
    const Tensor* w = graph.FindInitializer(name);
    if (w == nullptr) {
      return absl::InternalError(absl::StrCat("weight '", name, "' is gone"));
    }
    plan.updated_initializers[name] = w->Clone();
  }
  for (const auto& [scale_name, entry] : scales) {
    const Tensor* s = graph.FindInitializer(scale_name);
    if (s == nullptr) continue;
    const std::string key = entry.substr(2);
    QuantParams& p =
        entry[0] == 'w' ? plan.weights.at(key) : plan.activations.at(key);
    std::vector<float> v = s->ToVector<float>();
    for (float& x : v) x = std::max(x, kMinQuantScale);  // learned step > 0
    p.scales = std::move(v);
  }
  for (const auto& [value, shares] : tied) {
    plan.activations.at(value) = plan.activations.at(shares);
  }
  return plan;
}

}  // namespace quantd
