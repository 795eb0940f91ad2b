#include "engine/ir/graph.h"

#include <functional>
#include <queue>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace quantd {

const Attribute* AttributeMap::Find(absl::string_view name) const {
  auto it = map_.find(name);
  return it == map_.end() ? nullptr : &it->second;
}

int64_t AttributeMap::GetInt(absl::string_view name,
                             int64_t default_value) const {
  const Attribute* a = Find(name);
  return a != nullptr && a->type == Attribute::Type::kInt ? a->i
                                                          : default_value;
}

float AttributeMap::GetFloat(absl::string_view name,
                             float default_value) const {
  const Attribute* a = Find(name);
  if (a == nullptr) return default_value;
  if (a->type == Attribute::Type::kFloat) return a->f;
  if (a->type == Attribute::Type::kInt) return static_cast<float>(a->i);
  return default_value;
}

std::string AttributeMap::GetString(absl::string_view name,
                                    absl::string_view default_value) const {
  const Attribute* a = Find(name);
  return a != nullptr && a->type == Attribute::Type::kString
             ? a->s
             : std::string(default_value);
}

std::vector<int64_t> AttributeMap::GetInts(
    absl::string_view name, std::vector<int64_t> default_value) const {
  const Attribute* a = Find(name);
  return a != nullptr && a->type == Attribute::Type::kInts ? a->ints
                                                           : default_value;
}

std::vector<float> AttributeMap::GetFloats(
    absl::string_view name, std::vector<float> default_value) const {
  const Attribute* a = Find(name);
  return a != nullptr && a->type == Attribute::Type::kFloats ? a->floats
                                                             : default_value;
}

const Tensor* AttributeMap::GetTensor(absl::string_view name) const {
  const Attribute* a = Find(name);
  return a != nullptr && a->type == Attribute::Type::kTensor ? &a->t : nullptr;
}

const std::string& Node::input(size_t i) const {
  static const std::string* kEmpty = new std::string();
  return i < inputs.size() ? inputs[i] : *kEmpty;
}

const Tensor* Graph::FindInitializer(absl::string_view name) const {
  auto it = initializers.find(name);
  return it == initializers.end() ? nullptr : &it->second;
}

const ValueInfo* Graph::FindInput(absl::string_view name) const {
  for (const ValueInfo& v : inputs) {
    if (v.name == name) return &v;
  }
  return nullptr;
}

const ValueInfo* Graph::FindValueInfo(absl::string_view name) const {
  if (const ValueInfo* v = FindInput(name)) return v;
  for (const ValueInfo& v : outputs) {
    if (v.name == name) return &v;
  }
  auto it = value_info.find(name);
  return it == value_info.end() ? nullptr : &it->second;
}

std::string Graph::UniqueName(absl::string_view base) const {
  absl::flat_hash_set<std::string> used;
  for (const ValueInfo& v : inputs) used.insert(v.name);
  for (const auto& [name, t] : initializers) used.insert(name);
  for (const Node& n : nodes) {
    used.insert(n.name);
    for (const std::string& o : n.outputs) used.insert(o);
  }
  std::string candidate(base);
  for (int i = 1; used.contains(candidate); ++i) {
    candidate = absl::StrCat(base, "_", i);
  }
  return candidate;
}

absl::Status TopologicalSort(Graph& graph) {
  absl::flat_hash_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& out : graph.nodes[i].outputs) {
      if (out.empty()) continue;
      if (!producer.emplace(out, i).second) {
        return absl::InvalidArgumentError(absl::StrCat(
            "value '", out, "' is produced by more than one node"));
      }
    }
  }
  absl::flat_hash_set<std::string> available;
  for (const ValueInfo& v : graph.inputs) available.insert(v.name);
  for (const auto& [name, t] : graph.initializers) available.insert(name);

  const size_t n = graph.nodes.size();
  std::vector<int> pending(n, 0);
  std::vector<std::vector<size_t>> dependents(n);
  for (size_t i = 0; i < n; ++i) {
    absl::flat_hash_set<size_t> deps;
    for (const std::string& in : graph.nodes[i].inputs) {
      if (in.empty() || available.contains(in)) continue;
      auto it = producer.find(in);
      if (it == producer.end()) {
        return absl::InvalidArgumentError(absl::StrCat(
            "node '", graph.nodes[i].name, "' (", graph.nodes[i].op_type,
            ") reads '", in,
            "', which is neither a graph input, an initializer nor the output "
            "of any node"));
      }
      if (deps.insert(it->second).second) dependents[it->second].push_back(i);
    }
    pending[i] = static_cast<int>(deps.size());
  }
  // Kahn's algorithm taking the earliest ready node in the given order, so
  // an order that is already valid stays as it is. (A FIFO of ready nodes
  // moved every node that reads only initializers, such as a weight's
  // DequantizeLinear, to the front: the executor then held every
  // dequantized weight at once, 3 GB more for a 1.1B decoder.)
  std::priority_queue<size_t, std::vector<size_t>, std::greater<size_t>> ready;
  for (size_t i = 0; i < n; ++i) {
    if (pending[i] == 0) ready.push(i);
  }
  std::vector<Node> sorted;
  sorted.reserve(n);
  while (!ready.empty()) {
    const size_t i = ready.top();
    ready.pop();
    for (size_t d : dependents[i]) {
      if (--pending[d] == 0) ready.push(d);
    }
    sorted.push_back(std::move(graph.nodes[i]));
  }
  if (sorted.size() != n) {
    std::vector<std::string> stuck;
    for (size_t i = 0; i < n && stuck.size() < 5; ++i) {
      if (pending[i] > 0) stuck.push_back(graph.nodes[i].name);
    }
    return absl::InvalidArgumentError(absl::StrCat(
        "the graph has a cycle through nodes ", absl::StrJoin(stuck, ", ")));
  }
  graph.nodes = std::move(sorted);
  for (const ValueInfo& out : graph.outputs) {
    if (!available.contains(out.name) && !producer.contains(out.name)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "graph output '", out.name, "' is not produced by any node"));
    }
  }
  return absl::OkStatus();
}

absl::flat_hash_map<std::string, size_t> ProducerIndex(const Graph& graph) {
  absl::flat_hash_map<std::string, size_t> producer;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& out : graph.nodes[i].outputs) {
      if (!out.empty()) producer[out] = i;
    }
  }
  return producer;
}

absl::flat_hash_map<std::string, int> ConsumerCounts(const Graph& graph) {
  absl::flat_hash_map<std::string, int> counts;
  for (const Node& node : graph.nodes) {
    for (const std::string& in : node.inputs) {
      if (!in.empty()) ++counts[in];
    }
  }
  for (const ValueInfo& out : graph.outputs) ++counts[out.name];
  return counts;
}

}  // namespace quantd
