#include "engine/passes/layer_norm_folding.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

bool IsFloatVector(const Tensor* t, int64_t n) {
  return t != nullptr && t->dtype() == DataType::kFloat32 && t->rank() == 1 &&
         t->dim(0) == n;
}

// The MatMul weight a LayerNorm of width d can fold into, or null.
const Tensor* FoldableWeight(const Graph& graph, const Node& n, int input,
                             int64_t d) {
  if (n.op_type != "MatMul" || !n.domain.empty() || input != 0) return nullptr;
  const Tensor* w = graph.FindInitializer(n.input(1));
  if (w == nullptr || w->dtype() != DataType::kFloat32 || w->rank() != 2 ||
      w->dim(0) != d) {
    return nullptr;
  }
  return w;
}

// Why `ln` cannot be folded, or "" when it can.
std::string WhyNotFoldable(const Graph& graph, const Node& ln,
                           const ValueReaders& readers,
                           const absl::flat_hash_map<std::string, int>& uses) {
  const ValueInfo* in = graph.FindValueInfo(ln.input(0));
  const int64_t axis = ln.attributes.GetInt("axis", -1);
  const bool last_axis =
      axis == -1 || (in != nullptr && in->has_shape &&
                     axis == static_cast<int64_t>(in->shape.size()) - 1);
  if (!last_axis) return absl::StrCat("normalizes from axis ", axis);
  const Tensor* g = graph.FindInitializer(ln.input(1));
  if (g == nullptr || g->dtype() != DataType::kFloat32 || g->rank() != 1) {
    return "its gain is not a constant float vector";
  }
  const int64_t d = g->dim(0);
  if (ln.has_input(2) &&
      !IsFloatVector(graph.FindInitializer(ln.input(2)), d)) {
    return "its bias is not a constant float vector";
  }
  for (size_t o = 1; o < ln.outputs.size(); ++o) {
    if (!ln.outputs[o].empty() && uses.contains(ln.outputs[o])) {
      return "its mean or inverse deviation output is read";
    }
  }
  for (const ValueInfo& out : graph.outputs) {
    if (out.name == ln.outputs[0]) return "its output is a graph output";
  }
  auto r = readers.find(ln.outputs[0]);
  if (r == readers.end()) return "nothing reads its output";
  for (const auto& [node, input] : r->second) {
    const Node& n = graph.nodes[node];
    if (n.op_type == "Shape" && n.domain.empty()) continue;
    if (n.op_type == "Add") {
      return absl::StrCat(
          "'", n.name,
          "' (Add) reads its output: a post-LayerNorm block (BERT-style), "
          "whose residual stream is the LayerNorm's output, so its gain "
          "cannot move into the weights");
    }
    if (FoldableWeight(graph, n, input, d) == nullptr) {
      return absl::StrCat("'", n.name, "' (", n.op_type,
                          ") reads its output; only MatMul layers with a "
                          "constant [",
                          d, ", N] weight can absorb the gain");
    }
  }
  return "";
}

bool IsIdentityAffine(const Graph& graph, const Node& ln) {
  for (float v : graph.FindInitializer(ln.input(1))->span<float>()) {
    if (v != 1.f) return false;
  }
  if (!ln.has_input(2)) return true;
  for (float v : graph.FindInitializer(ln.input(2))->span<float>()) {
    if (v != 0.f) return false;
  }
  return true;
}

// The Add that is `matmul`'s bias: its only reader, adding a constant
// float vector of `n` elements. Returns the Add's index and which input
// holds the constant.
bool FindBiasAdd(const Graph& graph, const Node& matmul,
                 const ValueReaders& readers,
                 const absl::flat_hash_map<std::string, int>& uses, int64_t n,
                 size_t* add, int* bias_input) {
  auto r = readers.find(matmul.outputs[0]);
  if (r == readers.end() || r->second.size() != 1 ||
      uses.at(matmul.outputs[0]) != 1) {
    return false;
  }
  const Node& a = graph.nodes[r->second[0].first];
  if (a.op_type != "Add" || !a.domain.empty() || a.inputs.size() != 2) {
    return false;
  }
  const int other = 1 - r->second[0].second;
  if (!IsFloatVector(graph.FindInitializer(a.input(other)), n)) return false;
  *add = r->second[0].first;
  *bias_input = other;
  return true;
}

// diag(g) W into the weight, b W into the bias (inserting an Add when the
// layer has none and b is not zero).
void AbsorbAffine(Graph& graph, size_t layer, const Tensor& g, const Tensor* b,
                  const ValueReaders& readers,
                  absl::flat_hash_map<std::string, int>& uses) {
  const Tensor w = *graph.FindInitializer(graph.nodes[layer].input(1));
  const int64_t d = w.dim(0), n = w.dim(1);
  std::vector<float> shift(n, 0.f);
  bool any_shift = false;
  if (b != nullptr) {
    for (int64_t i = 0; i < d; ++i) {
      const float bi = b->data<float>()[i];
      if (bi == 0.f) continue;
      any_shift = true;
      for (int64_t j = 0; j < n; ++j)
        shift[j] += bi * w.data<float>()[i * n + j];
    }
  }
  Tensor scaled(DataType::kFloat32, {d, n});
  for (int64_t i = 0; i < d; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      scaled.mutable_data<float>()[i * n + j] =
          g.data<float>()[i] * w.data<float>()[i * n + j];
    }
  }
  PrivateInitializer(graph, layer, 1, uses) = std::move(scaled);
  if (!any_shift) return;
  size_t add = 0;
  int bias_input = 0;
  if (FindBiasAdd(graph, graph.nodes[layer], readers, uses, n, &add,
                  &bias_input)) {
    Tensor& bias = PrivateInitializer(graph, add, bias_input, uses);
    Tensor sum = bias.Clone();
    for (int64_t j = 0; j < n; ++j) sum.mutable_data<float>()[j] += shift[j];
    bias = std::move(sum);
    return;
  }
  // No bias: the MatMul writes a new name and an Add restores the old one.
  Node& mm = graph.nodes[layer];
  const std::string out = mm.outputs[0];
  const std::string unbiased = graph.UniqueName(out + "_unbiased");
  const std::string bias_name = graph.UniqueName(mm.name + "_ln_bias");
  mm.outputs[0] = unbiased;
  if (const ValueInfo* vi = graph.FindValueInfo(out)) {
    ValueInfo copy = *vi;
    copy.name = unbiased;
    graph.value_info[unbiased] = copy;
  }
  graph.initializers[bias_name] = Tensor::FromVector<float>({n}, shift);
  Node add_node;
  add_node.name = graph.UniqueName(mm.name + "_ln_bias_add");
  add_node.op_type = "Add";
  add_node.inputs = {unbiased, bias_name};
  add_node.outputs = {out};
  // Appended, so no node index moves; the final sort puts it in place.
  graph.nodes.push_back(std::move(add_node));
}

}  // namespace

ValueReaders FindValueReaders(const Graph& graph) {
  ValueReaders readers;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    for (size_t k = 0; k < n.inputs.size(); ++k) {
      if (!n.inputs[k].empty()) {
        readers[n.inputs[k]].emplace_back(i, static_cast<int>(k));
      }
    }
  }
  return readers;
}

Tensor& PrivateInitializer(Graph& graph, size_t node, int input,
                           absl::flat_hash_map<std::string, int>& uses) {
  std::string& name = graph.nodes[node].inputs[input];
  if (uses[name] > 1) {
    const std::string copy = graph.UniqueName(name + "_private");
    // Copied out first: inserting may rehash the map under a reference.
    Tensor shared = graph.initializers.at(name);
    graph.initializers[copy] = std::move(shared);
    --uses[name];
    uses[copy] = 1;
    name = copy;
  }
  return graph.initializers.at(name);
}

absl::StatusOr<LayerNormFoldOutcome> FoldLayerNormAffine(Graph& graph) {
  LayerNormFoldOutcome outcome;
  std::set<std::string> layers;
  // Each LayerNorm is found again by name: inserted bias Adds (appended)
  // leave indices alone, but readers and use counts change.
  std::vector<std::string> norms;
  for (const Node& n : graph.nodes) {
    if (n.op_type == "LayerNormalization" && n.domain.empty()) {
      norms.push_back(n.name);
    }
  }
  for (const std::string& name : norms) {
    absl::flat_hash_map<std::string, int> uses = ConsumerCounts(graph);
    const ValueReaders readers = FindValueReaders(graph);
    size_t index = 0;
    while (graph.nodes[index].name != name) ++index;
    const std::string why =
        WhyNotFoldable(graph, graph.nodes[index], readers, uses);
    if (!why.empty()) {
      outcome.skipped.push_back(absl::StrCat("LayerNorm '", name, "': ", why));
      continue;
    }
    outcome.folded.push_back(name);
    if (IsIdentityAffine(graph, graph.nodes[index])) continue;
    const Node ln = graph.nodes[index];
    const Tensor g = *graph.FindInitializer(ln.input(1));
    const Tensor* b_ptr = graph.FindInitializer(ln.input(2));
    const Tensor b = b_ptr != nullptr ? *b_ptr : Tensor();
    for (const auto& [reader, input] : readers.at(ln.outputs[0])) {
      if (graph.nodes[reader].op_type != "MatMul") continue;  // Shape
      layers.insert(graph.nodes[reader].name);
      AbsorbAffine(graph, reader, g, b.defined() ? &b : nullptr, readers, uses);
    }
    Tensor& gain = PrivateInitializer(graph, index, 1, uses);
    gain = Tensor::FromVector<float>({g.dim(0)},
                                     std::vector<float>(g.dim(0), 1.f));
    graph.nodes[index].inputs.resize(2);
  }
  outcome.layers.assign(layers.begin(), layers.end());
  QUANTD_RETURN_IF_ERROR(TopologicalSort(graph));
  return outcome;
}

}  // namespace quantd
