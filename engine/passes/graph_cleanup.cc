#include "engine/passes/graph_cleanup.h"

#include <cmath>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

bool IsGraphOutput(const Graph& g, const std::string& name) {
  for (const ValueInfo& out : g.outputs) {
    if (out.name == name) return true;
  }
  return false;
}

void RenameInputs(Graph& g, const std::string& from, const std::string& to) {
  for (Node& n : g.nodes) {
    for (std::string& in : n.inputs) {
      if (in == from) in = to;
    }
  }
}

}  // namespace

absl::StatusOr<int> FoldBatchNormIntoConv(Graph& graph) {
  absl::flat_hash_map<std::string, int> consumers = ConsumerCounts(graph);
  absl::flat_hash_map<std::string, size_t> producer = ProducerIndex(graph);
  absl::flat_hash_set<size_t> removed;
  int folded = 0;
  for (size_t bi = 0; bi < graph.nodes.size(); ++bi) {
    Node& bn = graph.nodes[bi];
    if (bn.op_type != "BatchNormalization" || bn.outputs.size() != 1 ||
        bn.attributes.GetInt("training_mode", 0) != 0) {
      continue;
    }
    auto p = producer.find(bn.input(0));
    if (p == producer.end()) continue;
    Node& conv = graph.nodes[p->second];
    if (conv.op_type != "Conv" || consumers[bn.input(0)] != 1 ||
        IsGraphOutput(graph, bn.input(0))) {
      continue;
    }
    const Tensor* w = graph.FindInitializer(conv.input(1));
    const Tensor* scale = graph.FindInitializer(bn.input(1));
    const Tensor* shift = graph.FindInitializer(bn.input(2));
    const Tensor* mean = graph.FindInitializer(bn.input(3));
    const Tensor* var = graph.FindInitializer(bn.input(4));
    const Tensor* bias =
        conv.has_input(2) ? graph.FindInitializer(conv.input(2)) : nullptr;
    if (w == nullptr || scale == nullptr || shift == nullptr ||
        mean == nullptr || var == nullptr ||
        (conv.has_input(2) && bias == nullptr)) {
      continue;
    }
    const int64_t oc = w->rank() > 0 ? w->dim(0) : 0;
    auto ok = [oc](const Tensor* t) {
      return t->dtype() == DataType::kFloat32 && t->num_elements() == oc;
    };
    if (w->dtype() != DataType::kFloat32 || !ok(scale) || !ok(shift) ||
        !ok(mean) || !ok(var) || (bias != nullptr && !ok(bias))) {
      continue;
    }
    const float eps = bn.attributes.GetFloat("epsilon", 1e-5f);
    // w' = w * gamma / sqrt(var + eps);  b' = (b - mean) * that + beta.
    Tensor new_w = w->Clone();
    Tensor new_b(DataType::kFloat32, {oc});
    const int64_t per_oc = oc > 0 ? w->num_elements() / oc : 0;
    for (int64_t c = 0; c < oc; ++c) {
      const float k =
          scale->data<float>()[c] / std::sqrt(var->data<float>()[c] + eps);
      float* wc = new_w.mutable_data<float>() + c * per_oc;
      for (int64_t i = 0; i < per_oc; ++i) wc[i] *= k;
      const float b = bias != nullptr ? bias->data<float>()[c] : 0.f;
      new_b.mutable_data<float>()[c] =
          (b - mean->data<float>()[c]) * k + shift->data<float>()[c];
    }
    // New names: the originals may be shared with other nodes.
    std::string w_name =
        graph.UniqueName(absl::StrCat(conv.input(1), "_bnfold"));
    graph.initializers[w_name] = std::move(new_w);
    std::string b_name =
        graph.UniqueName(absl::StrCat(conv.name, "_bias_bnfold"));
    graph.initializers[b_name] = std::move(new_b);
    conv.inputs.resize(3);
    conv.inputs[1] = w_name;
    conv.inputs[2] = b_name;
    conv.outputs[0] = bn.outputs[0];
    removed.insert(bi);
    ++folded;
  }
  if (folded > 0) {
    std::vector<Node> kept;
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      if (!removed.contains(i)) kept.push_back(std::move(graph.nodes[i]));
    }
    graph.nodes = std::move(kept);
    RemoveDeadNodes(graph);  // drops the now-unread original weights
  }
  return folded;
}

int RemoveIdentities(Graph& graph) {
  int removed = 0;
  std::vector<Node> kept;
  for (Node& node : graph.nodes) {
    bool passthrough =
        node.op_type == "Identity" ||
        (node.op_type == "Dropout" &&
         (node.outputs.size() < 2 || node.outputs[1].empty()) &&
         node.attributes.GetInt("training_mode", 0) == 0 && !node.has_input(2));
    if (passthrough && !node.outputs.empty() &&
        !IsGraphOutput(graph, node.outputs[0]) && node.has_input(0)) {
      RenameInputs(graph, node.outputs[0], node.inputs[0]);
      ++removed;
      continue;
    }
    kept.push_back(std::move(node));
  }
  graph.nodes = std::move(kept);
  return removed;
}

int RemoveDeadNodes(Graph& graph) {
  absl::flat_hash_set<std::string> live;
  for (const ValueInfo& out : graph.outputs) live.insert(out.name);
  std::vector<bool> keep(graph.nodes.size(), false);
  for (size_t i = graph.nodes.size(); i-- > 0;) {
    const Node& node = graph.nodes[i];
    for (const std::string& out : node.outputs) {
      if (live.contains(out)) keep[i] = true;
    }
    if (!keep[i]) continue;
    for (const std::string& in : node.inputs) {
      if (!in.empty()) live.insert(in);
    }
  }
  std::vector<Node> kept;
  int removed = 0;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (keep[i]) {
      kept.push_back(std::move(graph.nodes[i]));
    } else {
      ++removed;
    }
  }
  graph.nodes = std::move(kept);
  for (auto it = graph.initializers.begin(); it != graph.initializers.end();) {
    if (!live.contains(it->first)) {
      graph.initializers.erase(it++);
    } else {
      ++it;
    }
  }
  return removed;
}

absl::Status PrepareGraph(Graph& graph, const OpRegistry& registry,
                          PrepareStats* stats) {
  PrepareStats local;
  QUANTD_RETURN_IF_ERROR(TopologicalSort(graph));
  local.identities_removed = RemoveIdentities(graph);
  QUANTD_RETURN_IF_ERROR(FoldConstants(graph, registry, &local.folding));
  QUANTD_ASSIGN_OR_RETURN(int bn, FoldBatchNormIntoConv(graph));
  local.batchnorms_folded = bn;
  local.dead_nodes_removed = RemoveDeadNodes(graph);
  if (stats != nullptr) *stats = local;
  return absl::OkStatus();
}

}  // namespace quantd
