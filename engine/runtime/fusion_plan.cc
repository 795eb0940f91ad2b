#include "engine/runtime/fusion_plan.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "engine/runtime/op_registry.h"

namespace quantd {
namespace {

struct Readers {
  // Value -> indices of the nodes that read it (each node once).
  absl::flat_hash_map<std::string, std::vector<size_t>> of;
  absl::flat_hash_set<std::string> graph_outputs;
  absl::flat_hash_map<std::string, size_t> producer;

  explicit Readers(const Graph& graph) {
    for (const ValueInfo& out : graph.outputs) graph_outputs.insert(out.name);
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      const Node& node = graph.nodes[i];
      for (const std::string& out : node.outputs) {
        if (!out.empty()) producer[out] = i;
      }
      absl::flat_hash_set<std::string> seen;
      for (const std::string& in : node.inputs) {
        if (!in.empty() && seen.insert(in).second) of[in].push_back(i);
      }
    }
  }

  // The only node reading `value`, if exactly one does and `value` is not a
  // graph output (a folded value is never written).
  std::optional<size_t> SoleReader(const std::string& value) const {
    if (graph_outputs.contains(value)) return std::nullopt;
    auto it = of.find(value);
    if (it == of.end() || it->second.size() != 1) return std::nullopt;
    return it->second[0];
  }
};

bool IsPlain(const Node& node, const char* op, size_t inputs) {
  return node.domain.empty() && node.op_type == op &&
         node.inputs.size() == inputs && node.outputs.size() == 1;
}

// Adds `relu_node` to `f` when it is a Relu reading only `value`.
void FoldRelu(const Graph& graph, const Readers& readers,
              const std::string& value, Fusion& f) {
  std::optional<size_t> r = readers.SoleReader(value);
  if (!r || !IsPlain(graph.nodes[*r], "Relu", 1)) return;
  f.relu = true;
  f.folded.push_back(*r);
  f.hidden.push_back(value);
  f.output = graph.nodes[*r].outputs[0];
}

std::optional<Fusion> PlanNode(const Graph& graph, const Readers& readers,
                               size_t i) {
  const Node& node = graph.nodes[i];
  if (node.outputs.size() != 1 || node.outputs[0].empty()) return std::nullopt;
  const std::string& out = node.outputs[0];
  std::optional<size_t> reader = readers.SoleReader(out);
  if (!reader) return std::nullopt;
  const Node& next = graph.nodes[*reader];
  Fusion f;
  f.output = out;
  if (IsPlain(next, "Relu", 1)) {
    FoldRelu(graph, readers, out, f);
    return f;
  }
  if (!IsPlain(next, "Add", 2) || next.inputs[0] == next.inputs[1]) {
    return std::nullopt;
  }
  const std::string& other =
      next.inputs[0] == out ? next.inputs[1] : next.inputs[0];
  // A malformed Add (an omitted operand) is left to its kernel's error.
  if (other.empty()) return std::nullopt;
  // The addend must exist when this node runs.
  auto producer = readers.producer.find(other);
  if (producer != readers.producer.end() && producer->second >= i) {
    return std::nullopt;
  }
  f.addend = other;
  f.folded.push_back(*reader);
  f.hidden.push_back(out);
  f.output = next.outputs[0];
  // Stealing the addend's buffer is safe when no node after this one but
  // the Add reads it, and it is not a graph output (or an initializer,
  // which the executor never hands out as a private buffer).
  auto other_readers = readers.of.find(other);  // the Add at least
  f.steal_addend =
      other_readers != readers.of.end() &&
      !readers.graph_outputs.contains(other) &&
      !graph.initializers.contains(other) &&
      std::all_of(other_readers->second.begin(), other_readers->second.end(),
                  [&](size_t r) { return r == *reader || r < i; });
  FoldRelu(graph, readers, f.output, f);
  return f;
}

}  // namespace

std::vector<std::optional<Fusion>> PlanFusions(
    const Graph& graph, const std::vector<std::string>& fusable_ops) {
  const Readers readers(graph);
  std::vector<std::optional<Fusion>> plan(graph.nodes.size());
  absl::flat_hash_set<size_t> folded;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    if (folded.contains(i)) continue;
    const std::string key = OpKey(graph.nodes[i]);
    if (std::find(fusable_ops.begin(), fusable_ops.end(), key) ==
        fusable_ops.end()) {
      continue;
    }
    plan[i] = PlanNode(graph, readers, i);
    if (plan[i]) folded.insert(plan[i]->folded.begin(), plan[i]->folded.end());
  }
  return plan;
}

}  // namespace quantd
