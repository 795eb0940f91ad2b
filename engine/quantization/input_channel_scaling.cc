#include "engine/quantization/input_channel_scaling.h"

#include <cmath>
#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/quantization/awq.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Multiplies initializer `name` by `factors` along its last dim, copying it
// first if readers other than `owner` share it. Returns the name to read.
std::string ScaleLastDim(Graph& g, const std::string& name,
                         const std::vector<float>& factors,
                         const absl::flat_hash_map<std::string, int>& uses) {
  std::string target = name;
  auto it = uses.find(name);
  if (it != uses.end() && it->second > 1) {
    target = g.UniqueName(absl::StrCat(name, "_scaled"));
    g.initializers[target] = g.initializers.at(name).Clone();
  }
  // Tensor copies share their buffer (a copied Graph shares initializers
  // with the original), so scale a clone and replace the entry.
  Tensor t = g.initializers.at(target).Clone();
  const int64_t c = t.dim(-1);
  float* d = t.mutable_data<float>();
  for (int64_t i = 0; i < t.num_elements(); ++i) d[i] *= factors[i % c];
  g.initializers[target] = std::move(t);
  return target;
}

// The division folded into a LayerNormalization read only by the group
// (and by Shape nodes, which see the shape, not the values: exporters put
// them after every attention input); nullopt when the input is not such.
std::optional<std::string> DivideInLayerNorm(
    Graph& graph, const ScalingGroup& group, const std::vector<float>& inverse,
    const absl::flat_hash_map<std::string, int>& uses) {
  const auto producers = ProducerIndex(graph);
  auto p = producers.find(group.input);
  auto u = uses.find(group.input);
  int shape_readers = 0;
  for (const Node& n : graph.nodes) {
    if (n.op_type == "Shape" && n.domain.empty() && n.input(0) == group.input) {
      ++shape_readers;
    }
  }
  if (p == producers.end() || u == uses.end() ||
      u->second - shape_readers != static_cast<int>(group.slots.size())) {
    return std::nullopt;
  }
  Node& ln = graph.nodes[p->second];
  const Tensor* gamma = graph.FindInitializer(ln.input(1));
  const Tensor* beta = graph.FindInitializer(ln.input(2));
  const int64_t c = static_cast<int64_t>(inverse.size());
  if (ln.op_type != "LayerNormalization" || !ln.domain.empty() ||
      gamma == nullptr || gamma->num_elements() != c ||
      (ln.has_input(2) && (beta == nullptr || beta->num_elements() != c))) {
    return std::nullopt;
  }
  ln.inputs[1] = ScaleLastDim(graph, ln.input(1), inverse, uses);
  if (ln.has_input(2)) {
    ln.inputs[2] = ScaleLastDim(graph, ln.input(2), inverse, uses);
  }
  return absl::StrCat("folded into LayerNormalization '", ln.name, "'");
}

}  // namespace

std::vector<ScalingGroup> GroupLinearLayersByInput(
    const Graph& graph, const std::vector<WeightSlot>& slots) {
  std::map<std::string, const Node*> nodes;
  for (const Node& n : graph.nodes) nodes[n.name] = &n;
  std::map<std::string, ScalingGroup> by_input;
  std::vector<std::string> order;
  for (const WeightSlot& slot : slots) {
    const Node* n = nodes.at(slot.node);
    if (slot.op_type == "Conv") continue;
    if (slot.op_type == "Gemm" && n->attributes.GetInt("transA", 0) != 0) {
      continue;
    }
    ScalingGroup& g = by_input[n->input(0)];
    if (g.slots.empty()) order.push_back(n->input(0));
    g.input = n->input(0);
    g.slots.push_back(slot);
  }
  std::vector<ScalingGroup> out;
  for (const std::string& input : order) out.push_back(by_input[input]);
  return out;
}

absl::StatusOr<std::vector<float>> SmoothQuantScales(
    const Graph& graph, const ScalingGroup& group,
    const std::vector<float>& activation_abs_max, double alpha) {
  if (!(alpha >= 0 && alpha <= 1)) {
    return absl::InvalidArgumentError(
        absl::StrCat("SmoothQuant alpha must be in [0, 1]; got ", alpha));
  }
  const int64_t k = activation_abs_max.size();
  std::vector<float> w_max(k, 0.f);
  for (const WeightSlot& slot : group.slots) {
    const Tensor* w = graph.FindInitializer(slot.initializer);
    if (w == nullptr || w->rank() != 2 || w->dim(slot.input_axis) != k) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight of '", slot.node, "' does not have ", k, " input channels"));
    }
    const float* d = w->data<float>();
    const int64_t cols = w->dim(1);
    for (int64_t i = 0; i < w->num_elements(); ++i) {
      const int64_t j = slot.input_axis == 0 ? i / cols : i % cols;
      w_max[j] = std::max(w_max[j], std::fabs(d[i]));
    }
  }
  std::vector<float> s(k, 1.f);
  for (int64_t j = 0; j < k; ++j) {
    if (activation_abs_max[j] > 0 && w_max[j] > 0) {
      const double v = std::pow(activation_abs_max[j], alpha) /
                       std::pow(w_max[j], 1 - alpha);
      // Bounded so that a dead channel cannot produce 0 or inf.
      s[j] = static_cast<float>(std::clamp(v, 1e-5, 1e5));
    }
  }
  return s;
}

absl::StatusOr<std::string> ApplyInputChannelScaling(
    Graph& graph, const ScalingGroup& group, const std::vector<float>& scales) {
  if (group.slots.empty()) {
    return absl::InvalidArgumentError(
        "an input-channel scaling group is empty");
  }
  const absl::flat_hash_map<std::string, int> uses = ConsumerCounts(graph);
  std::vector<float> inverse(scales.size());
  for (size_t j = 0; j < scales.size(); ++j) inverse[j] = 1.f / scales[j];

  // Weights first: if one fails nothing in the graph has changed.
  std::map<std::string, Tensor> scaled;
  for (const WeightSlot& slot : group.slots) {
    const Tensor* w = graph.FindInitializer(slot.initializer);
    if (w == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("'", slot.node, "' has no constant weight"));
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor t,
                            ScaleWeightInputChannels(*w, slot, scales));
    scaled[slot.node] = std::move(t);
  }
  for (Node& n : graph.nodes) {
    auto it = scaled.find(n.name);
    if (it == scaled.end()) continue;
    const std::string name = graph.UniqueName(absl::StrCat(n.input(1), "_s"));
    graph.initializers[name] = std::move(it->second);
    n.inputs[1] = name;
  }
  // Old weights nobody reads any more are dropped.
  const absl::flat_hash_map<std::string, int> after = ConsumerCounts(graph);
  for (const WeightSlot& slot : group.slots) {
    if (!after.contains(slot.initializer)) {
      graph.initializers.erase(slot.initializer);
    }
  }

  if (std::optional<std::string> how =
          DivideInLayerNorm(graph, group, inverse, uses)) {
    return *how;
  }
  Node mul;
  mul.op_type = "Mul";
  mul.name = graph.UniqueName(absl::StrCat(group.input, "_channel_scale"));
  const std::string factor =
      graph.UniqueName(absl::StrCat(mul.name, "_factor"));
  graph.initializers[factor] = Tensor::FromVector<float>(
      {static_cast<int64_t>(inverse.size())}, inverse);
  const std::string out =
      graph.UniqueName(absl::StrCat(group.input, "_scaled"));
  mul.inputs = {group.input, factor};
  mul.outputs = {out};
  std::set<std::string> members;
  for (const WeightSlot& slot : group.slots) members.insert(slot.node);
  size_t first = graph.nodes.size();
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (members.contains(graph.nodes[i].name)) {
      graph.nodes[i].inputs[0] = out;
      first = std::min(first, i);
    }
  }
  const std::string how = absl::StrCat("Mul node '", mul.name, "'");
  graph.nodes.insert(graph.nodes.begin() + first, std::move(mul));
  return how;
}

}  // namespace quantd
