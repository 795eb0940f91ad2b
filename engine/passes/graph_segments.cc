#include "engine/passes/graph_segments.h"

#include <algorithm>
#include <limits>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

// Where each value lives, as cut positions: a cut p sits before node p.
struct Lifetimes {
  // p after which the value exists: producer index + 1, 0 for graph inputs.
  absl::flat_hash_map<std::string, size_t> defined;
  // Index of the last node reading it; nodes.size() for graph outputs.
  absl::flat_hash_map<std::string, size_t> last_read;

  bool LiveAt(const std::string& v, size_t p) const {
    auto d = defined.find(v);
    auto r = last_read.find(v);
    return d != defined.end() && r != last_read.end() && d->second <= p &&
           p <= r->second;
  }
};

Lifetimes ComputeLifetimes(const Graph& g) {
  Lifetimes t;
  for (const ValueInfo& in : g.inputs) t.defined[in.name] = 0;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const std::string& out : g.nodes[i].outputs) {
      if (!out.empty()) t.defined[out] = i + 1;
    }
    for (const std::string& in : g.nodes[i].inputs) {
      if (in.empty() || g.initializers.contains(in)) continue;
      size_t& last = t.last_read[in];
      last = std::max(last, i);
    }
  }
  for (const ValueInfo& out : g.outputs) t.last_read[out.name] = g.nodes.size();
  return t;
}

// Number of live values at every cut position 0..n.
std::vector<int> LiveCounts(const Lifetimes& t, size_t n) {
  std::vector<int> diff(n + 2, 0);
  for (const auto& [v, last] : t.last_read) {
    auto d = t.defined.find(v);
    if (d == t.defined.end() || d->second > last) continue;
    ++diff[d->second];
    --diff[last + 1];
  }
  std::vector<int> live(n + 1, 0);
  int running = 0;
  for (size_t p = 0; p <= n; ++p) live[p] = running += diff[p];
  return live;
}

// Cut positions, without 0 and n.
std::vector<size_t> ChooseCuts(
    const Graph& g, const std::vector<int>& live,
    const std::function<bool(const Node&)>& is_layer) {
  std::vector<size_t> layers;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (is_layer(g.nodes[i])) layers.push_back(i);
  }
  if (layers.size() < 2) return {};
  const size_t first = layers.front(), last = layers.back();
  int narrowest = std::numeric_limits<int>::max();
  for (size_t p = first + 1; p <= last; ++p) {
    narrowest = std::min(narrowest, live[p]);
  }
  std::vector<size_t> cuts;
  bool layer_since_cut = false;
  for (size_t i = 0; i + 1 <= last; ++i) {
    layer_since_cut |= is_layer(g.nodes[i]);
    const size_t p = i + 1;
    if (p > first && layer_since_cut && live[p] == narrowest) {
      cuts.push_back(p);
      layer_since_cut = false;
    }
  }
  return cuts;
}

ValueInfo InfoOf(const Graph& g, const std::string& name) {
  ValueInfo info;
  if (const ValueInfo* known = g.FindValueInfo(name); known != nullptr) {
    info.dtype = known->dtype;
  }
  info.name = name;  // shapes unchecked: a cut's values come from a run
  return info;
}

GraphSegment MakeSegment(const Graph& g, const Lifetimes& t, size_t begin,
                         size_t end, size_t index) {
  GraphSegment s;
  Graph& out = s.graph;
  out.name = absl::StrCat(g.name, "_segment", index);
  out.opset = g.opset;
  absl::flat_hash_set<std::string> produced, seen_inputs;
  for (size_t i = begin; i < end; ++i) {
    const Node& node = g.nodes[i];
    for (const std::string& in : node.inputs) {
      if (in.empty() || produced.contains(in)) continue;
      if (const Tensor* w = g.FindInitializer(in); w != nullptr) {
        out.initializers.emplace(in, *w);
      } else if (seen_inputs.insert(in).second) {
        out.inputs.push_back(InfoOf(g, in));
      }
    }
    for (const std::string& o : node.outputs) {
      if (o.empty()) continue;
      produced.insert(o);
      auto info = g.value_info.find(o);
      if (info != g.value_info.end()) out.value_info.insert(*info);
      if (t.LiveAt(o, end)) out.outputs.push_back(InfoOf(g, o));
    }
    out.nodes.push_back(node);
  }
  for (const auto& [v, last] : t.last_read) {
    if (t.LiveAt(v, end)) s.live_after.push_back(v);
  }
  std::sort(s.live_after.begin(), s.live_after.end());
  return s;
}

}  // namespace

std::vector<GraphSegment> SplitAtNarrowestCuts(
    const Graph& graph, const std::function<bool(const Node&)>& is_layer) {
  const Lifetimes t = ComputeLifetimes(graph);
  const std::vector<int> live = LiveCounts(t, graph.nodes.size());
  std::vector<size_t> bounds = {0};
  for (size_t cut : ChooseCuts(graph, live, is_layer)) bounds.push_back(cut);
  bounds.push_back(graph.nodes.size());
  std::vector<GraphSegment> segments;
  for (size_t k = 0; k + 1 < bounds.size(); ++k) {
    segments.push_back(MakeSegment(graph, t, bounds[k], bounds[k + 1], k));
  }
  return segments;
}

void CarryLiveValues(const GraphSegment& segment, std::vector<Tensor> outputs,
                     TensorMap* live) {
  TensorMap next;
  for (size_t i = 0; i < outputs.size() && i < segment.graph.outputs.size();
       ++i) {
    next[segment.graph.outputs[i].name] = std::move(outputs[i]);
  }
  for (const std::string& v : segment.live_after) {
    if (next.contains(v)) continue;
    auto it = live->find(v);
    if (it != live->end()) next[v] = std::move(it->second);
  }
  *live = std::move(next);
}

TensorMap SegmentFeeds(const GraphSegment& segment, const TensorMap& live) {
  TensorMap feeds;
  for (const ValueInfo& in : segment.graph.inputs) {
    auto it = live.find(in.name);
    if (it != live.end()) feeds[in.name] = it->second;
  }
  return feeds;
}

}  // namespace quantd
