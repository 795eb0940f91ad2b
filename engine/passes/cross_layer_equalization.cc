#include "engine/passes/cross_layer_equalization.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

// A Conv whose weight (and bias) this pass may rewrite.
bool IsEqualizableConv(const Graph& graph, const Node& n) {
  if (n.op_type != "Conv" || !n.domain.empty() || n.inputs.size() < 2) {
    return false;
  }
  const Tensor* w = graph.FindInitializer(n.input(1));
  if (w == nullptr || w->dtype() != DataType::kFloat32 || w->rank() < 3) {
    return false;
  }
  if (n.has_input(2)) {
    const Tensor* b = graph.FindInitializer(n.input(2));
    if (b == nullptr || b->dtype() != DataType::kFloat32 ||
        b->num_elements() != w->dim(0)) {
      return false;
    }
  }
  return true;
}

// Per channel, f(x / s) = f(x) / s for s > 0: positively homogeneous
// activations, and pooling (a max or mean within each channel).
bool IsHomogeneous(const Graph& graph, const Node& n) {
  if (n.op_type == "Relu" || n.op_type == "LeakyRelu" ||
      n.op_type == "MaxPool" || n.op_type == "AveragePool") {
    return true;
  }
  if (n.op_type != "Clip") return false;
  // Clip(min = 0, no max) is a Relu; an opset-11 Clip takes min/max inputs.
  const Tensor* lo =
      n.has_input(1) ? graph.FindInitializer(n.input(1)) : nullptr;
  const float min = lo != nullptr && lo->num_elements() == 1
                        ? lo->data<float>()[0]
                        : n.attributes.GetFloat("min", -INFINITY);
  const bool has_max = n.has_input(2) || n.attributes.Has("max");
  return min == 0.f && !has_max;
}

struct Pair {
  size_t first, second;  // node indices
};

// The node reading `value`, when exactly one node (and no graph output)
// reads it.
const Node* OnlyReader(const Graph& graph, const std::string& value,
                       const absl::flat_hash_map<std::string, int>& uses,
                       size_t* index) {
  auto u = uses.find(value);
  if (u == uses.end() || u->second != 1) return nullptr;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const std::string& in : graph.nodes[i].inputs) {
      if (in == value) {
        *index = i;
        return &graph.nodes[i];
      }
    }
  }
  return nullptr;  // a graph output
}

std::vector<Pair> FindPairs(const Graph& graph,
                            std::vector<std::string>* skipped) {
  const absl::flat_hash_map<std::string, int> uses = ConsumerCounts(graph);
  std::vector<Pair> pairs;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& a = graph.nodes[i];
    if (!IsEqualizableConv(graph, a)) continue;
    size_t j = 0;
    const Node* next = OnlyReader(graph, a.outputs[0], uses, &j);
    if (next == nullptr) continue;
    // Up to four single-output ops between the two convolutions (Relu,
    // then MaxPool), each read only by the next.
    std::string refused;
    for (int hops = 0; next != nullptr && next->op_type != "Conv" && hops < 4;
         ++hops) {
      if (!IsHomogeneous(graph, *next) && refused.empty()) {
        refused = next->op_type;
      }
      next = next->outputs.size() == 1
                 ? OnlyReader(graph, next->outputs[0], uses, &j)
                 : nullptr;
    }
    if (next == nullptr || next->op_type != "Conv") continue;
    if (!refused.empty()) {
      skipped->push_back(absl::StrCat(
          "skipped '", a.name, "' -> '", next->name, "': ", refused,
          " between them is not positively homogeneous, so rescaling the "
          "channels would change the model"));
      continue;
    }
    if (!IsEqualizableConv(graph, *next)) continue;
    const Tensor* w2 = graph.FindInitializer(next->input(1));
    const int64_t group = next->attributes.GetInt("group", 1);
    const int64_t channels = graph.FindInitializer(a.input(1))->dim(0);
    if (w2->dim(1) * group != channels || w2->dim(0) % group != 0) continue;
    pairs.push_back({i, j});
  }
  return pairs;
}

// Max |w| of each output channel (axis 0).
std::vector<float> OutputRanges(const Tensor& w) {
  const int64_t oc = w.dim(0), per = w.num_elements() / oc;
  std::vector<float> r(oc, 0.f);
  for (int64_t c = 0; c < oc; ++c) {
    for (int64_t k = 0; k < per; ++k) {
      r[c] = std::max(r[c], std::fabs(w.data<float>()[c * per + k]));
    }
  }
  return r;
}

// Calls f(index into w's data, input channel) for every element of a
// grouped Conv weight [OC, C / group, k...].
template <typename F>
void ForEachInputChannel(const Tensor& w, int64_t group, F f) {
  const int64_t oc = w.dim(0), cin = w.dim(1);
  const int64_t spatial = w.num_elements() / (oc * cin);
  const int64_t oc_per_group = oc / group;
  for (int64_t o = 0; o < oc; ++o) {
    const int64_t base = (o / oc_per_group) * cin;
    for (int64_t j = 0; j < cin; ++j) {
      for (int64_t k = 0; k < spatial; ++k) {
        f((o * cin + j) * spatial + k, base + j);
      }
    }
  }
}

std::string Spread(const std::vector<float>& r) {
  float lo = INFINITY, hi = 0.f;
  for (float v : r) {
    if (v > 0.f) lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.3g-%.3g", lo == INFINITY ? 0.f : lo, hi);
  return buf;
}

// Gives every node of a pair its own copy of its weight and bias, so that
// rewriting them in place touches no other reader (nor a graph sharing the
// tensors' storage); originals nothing reads any more are dropped.
void OwnWeights(Graph& graph, const std::vector<Pair>& pairs) {
  std::set<size_t> nodes;
  for (const Pair& p : pairs) nodes.insert({p.first, p.second});
  std::set<std::string> replaced;
  for (size_t i : nodes) {
    Node& n = graph.nodes[i];
    for (size_t slot = 1; slot < 3 && slot < n.inputs.size(); ++slot) {
      if (n.inputs[slot].empty()) continue;
      const std::string name =
          graph.UniqueName(absl::StrCat(n.inputs[slot], "_cle"));
      graph.initializers[name] = graph.FindInitializer(n.inputs[slot])->Clone();
      replaced.insert(n.inputs[slot]);
      n.inputs[slot] = name;
    }
  }
  const absl::flat_hash_map<std::string, int> uses = ConsumerCounts(graph);
  for (const std::string& old : replaced) {
    if (!uses.contains(old)) graph.initializers.erase(old);
  }
}

}  // namespace

absl::StatusOr<EqualizationOutcome> EqualizeCrossLayerRanges(Graph& graph,
                                                             int iterations) {
  EqualizationOutcome out;
  const std::vector<Pair> pairs = FindPairs(graph, &out.skipped);
  if (pairs.empty()) return out;
  OwnWeights(graph, pairs);
  std::vector<std::string> before(pairs.size());
  for (int it = 0; it < iterations; ++it) {
    for (size_t p = 0; p < pairs.size(); ++p) {
      Node& a = graph.nodes[pairs[p].first];
      Node& b = graph.nodes[pairs[p].second];
      Tensor& w1 = graph.initializers[a.input(1)];
      Tensor& w2 = graph.initializers[b.input(1)];
      const int64_t group = b.attributes.GetInt("group", 1);
      const std::vector<float> r1 = OutputRanges(w1);
      std::vector<float> r2(r1.size(), 0.f);
      ForEachInputChannel(w2, group, [&](int64_t e, int64_t c) {
        r2[c] = std::max(r2[c], std::fabs(w2.data<float>()[e]));
      });
      if (it == 0) before[p] = Spread(r1);
      std::vector<float> s(r1.size(), 1.f);
      for (size_t c = 0; c < s.size(); ++c) {
        if (r1[c] > 0.f && r2[c] > 0.f) s[c] = std::sqrt(r1[c] / r2[c]);
      }
      const int64_t per = w1.num_elements() / w1.dim(0);
      float* d1 = w1.mutable_data<float>();
      for (int64_t c = 0; c < w1.dim(0); ++c) {
        for (int64_t k = 0; k < per; ++k) d1[c * per + k] /= s[c];
      }
      if (a.has_input(2)) {
        float* bias = graph.initializers[a.input(2)].mutable_data<float>();
        for (size_t c = 0; c < s.size(); ++c) bias[c] /= s[c];
      }
      float* d2 = w2.mutable_data<float>();
      ForEachInputChannel(w2, group,
                          [&](int64_t e, int64_t c) { d2[e] *= s[c]; });
    }
  }
  for (size_t p = 0; p < pairs.size(); ++p) {
    const Node& a = graph.nodes[pairs[p].first];
    const Node& b = graph.nodes[pairs[p].second];
    out.equalized.push_back(
        {a.name, b.name,
         absl::StrCat(
             "equalized '", a.name, "' -> '", b.name,
             "': output channel ranges ", before[p], " -> ",
             Spread(OutputRanges(*graph.FindInitializer(a.input(1)))))});
  }
  return out;
}

}  // namespace quantd
