#include "engine/passes/int8_regions.h"

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace quantd {
namespace {

bool IsOp(const Node& n, const char* op) {
  return n.domain.empty() && n.op_type == op;
}

bool IsBinaryAdd(const Node& n) {
  return IsOp(n, "Add") && n.inputs.size() == 2 && n.outputs.size() == 1;
}

// MaxPool without the optional Indices output.
bool IsMaxPool(const Node& n) {
  return IsOp(n, "MaxPool") &&
         (n.outputs.size() == 1 ||
          (n.outputs.size() == 2 && n.outputs[1].empty()));
}

class RegionGraph {
 public:
  explicit RegionGraph(const Graph& g) : g_(g) {
    for (const ValueInfo& o : g.outputs) outputs_.insert(o.name);
    for (const Node& n : g.nodes) {
      for (size_t s = 0; s < n.inputs.size(); ++s) {
        if (!n.inputs[s].empty()) readers_[n.inputs[s]].push_back({&n, s});
      }
    }
  }

  bool IsGraphOutput(const std::string& v) const {
    return outputs_.contains(v);
  }

  // The node's output, or that of the Relu that alone reads it ("" for a
  // node without outputs, which a hostile model may have).
  const std::string& Tail(const Node& n) const {
    static const std::string kNone;
    if (n.outputs.empty()) return kNone;
    const std::string& out = n.outputs[0];
    auto it = readers_.find(out);
    if (it == readers_.end() || it->second.size() != 1 || IsGraphOutput(out)) {
      return out;
    }
    const Node& r = *it->second[0].node;
    return IsOp(r, "Relu") ? r.outputs[0] : out;
  }

  // Every reader of `v` can take it as u8, given the values in `potential`.
  bool AllInt8Readers(const std::string& v, const NodePredicate& layer,
                      const std::set<std::string>& potential) const {
    auto it = readers_.find(v);
    if (it == readers_.end() || IsGraphOutput(v)) return false;
    for (const Reader& r : it->second) {
      const Node& n = *r.node;
      const bool ok = (r.slot == 0 && layer(n)) ||
                      (r.slot == 0 && IsMaxPool(n)) ||
                      (IsBinaryAdd(n) && potential.contains(n.inputs[0]) &&
                       potential.contains(n.inputs[1]));
      if (!ok) return false;
    }
    return true;
  }

 private:
  struct Reader {
    const Node* node;
    size_t slot;
  };
  const Graph& g_;
  absl::flat_hash_set<std::string> outputs_;
  absl::flat_hash_map<std::string, std::vector<Reader>> readers_;
};

// Layer inputs and every value the rules could reach from them, MaxPool
// outputs included.
std::set<std::string> Potential(const Graph& g, const RegionGraph& rg,
                                const NodePredicate& layer) {
  std::set<std::string> p;
  for (const Node& n : g.nodes) {
    if (layer(n) && !n.outputs.empty()) {
      p.insert(n.input(0));
      p.insert(rg.Tail(n));
    }
  }
  for (const Node& n : g.nodes) {  // graph order: operands come first
    if (IsMaxPool(n) && p.contains(n.input(0))) p.insert(n.outputs[0]);
    if (IsBinaryAdd(n) && p.contains(n.inputs[0]) && p.contains(n.inputs[1])) {
      p.insert(rg.Tail(n));
    }
  }
  return p;
}

}  // namespace

std::set<std::string> Int8RegionCandidates(
    const Graph& graph, const NodePredicate& quantized_layer) {
  RegionGraph rg(graph);
  std::set<std::string> p = Potential(graph, rg, quantized_layer);
  for (const Node& n : graph.nodes) {
    if (quantized_layer(n)) p.erase(n.input(0));
  }
  for (const Node& n : graph.nodes) {
    if (IsMaxPool(n)) p.erase(n.outputs[0]);
  }
  for (auto it = p.begin(); it != p.end();) {
    it = rg.IsGraphOutput(*it) || it->empty() ? p.erase(it) : std::next(it);
  }
  return p;
}

std::vector<Int8RegionValue> ExtendInt8Regions(
    const Graph& graph, const NodePredicate& quantized_layer,
    const ValuePredicate& calibrated, const std::set<std::string>& quantized) {
  RegionGraph rg(graph);
  const std::set<std::string> potential = Potential(graph, rg, quantized_layer);
  std::set<std::string> q = quantized;
  std::vector<Int8RegionValue> out;
  auto add_tail = [&](const Node& n) {
    const std::string& t = rg.Tail(n);
    if (t.empty() || q.contains(t) || !calibrated(t) ||
        !rg.AllInt8Readers(t, quantized_layer, potential)) {
      return;
    }
    out.push_back({t, ""});
    q.insert(t);
  };
  for (const Node& n : graph.nodes) {
    if (quantized_layer(n)) {
      add_tail(n);
    } else if (IsBinaryAdd(n) && q.contains(n.inputs[0]) &&
               q.contains(n.inputs[1])) {
      add_tail(n);
    } else if (IsMaxPool(n) && q.contains(n.input(0)) &&
               !rg.IsGraphOutput(n.outputs[0])) {
      out.push_back({n.outputs[0], n.input(0)});
      q.insert(n.outputs[0]);
    }
  }
  return out;
}

}  // namespace quantd
