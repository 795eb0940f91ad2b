#include "engine/passes/int8_chaining.h"

#include <map>
#include <optional>

#include "absl/strings/str_cat.h"
#include "engine/runtime/op_registry.h"

namespace quantd {
namespace {

struct U8 {
  float scale = 1.f;
  int32_t zero_point = 0;
  bool operator==(const U8& o) const {
    return scale == o.scale && zero_point == o.zero_point;
  }
};

void SetU8Attributes(Node& node, const std::string& prefix, const U8& p) {
  Attribute scale;
  scale.type = Attribute::Type::kFloat;
  scale.f = p.scale;
  node.attributes.Set(prefix + "_scale", scale);
  Attribute zp;
  zp.i = p.zero_point;
  node.attributes.Set(prefix + "_zero_point", zp);
}

bool IsQuantd(const Node& n, const char* op) {
  return n.domain == kQuantdDomain && n.op_type == op;
}

bool IsStatic(const Node& n) {
  return n.attributes.GetInt("dynamic_x", 0) == 0;
}

U8 XParams(const Node& n) {
  return {n.attributes.GetFloat("x_scale", 0.f),
          static_cast<int32_t>(n.attributes.GetInt("x_zero_point", -1))};
}

class RegionLowering {
 public:
  RegionLowering(Graph& g, const RangeMap& ranges) : g_(g), ranges_(ranges) {
    for (const ValueInfo& o : g.outputs) outputs_.insert(o.name);
  }

  void Run(Int8LoweringStats& stats) {
    absl::flat_hash_map<std::string, int> readers = ConsumerCounts(g_);
    std::vector<bool> drop(g_.nodes.size(), false);
    inserts_.assign(g_.nodes.size(), {});
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      Node& n = g_.nodes[i];
      for (std::string& in : n.inputs) {
        auto r = renamed_.find(in);
        if (r != renamed_.end()) in = r->second;
      }
      if ((IsQuantd(n, "QuantizedConv") || IsQuantd(n, "QuantizedMatMul")) &&
          IsStatic(n) && n.outputs.size() == 1) {
        if (MakeU8(n.outputs[0])) {
          SetU8Attributes(n, "y", u8_.at(n.outputs[0]));
          ++stats.outputs_chained;
        }
      } else if (n.domain.empty() && n.op_type == "Add" &&
                 n.inputs.size() == 2 && n.outputs.size() == 1 &&
                 CanBeU8(n.inputs[0]) && CanBeU8(n.inputs[1])) {
        for (size_t k = 0; k < 2; ++k) StartRegion(i, n.inputs[k], stats);
        LowerAdd(i, readers, drop);
        ++stats.adds_quantized;
      } else if (n.domain.empty() && n.op_type == "MaxPool" &&
                 n.outputs.size() == 1 && CanBeU8(n.input(0))) {
        auto in = Params(n.input(0));
        auto out = Params(n.outputs[0]);
        if (out.has_value() &&
            (u8_.contains(n.input(0)) ? u8_.at(n.input(0)) : *in) == *out &&
            !outputs_.contains(n.outputs[0])) {
          StartRegion(i, n.inputs[0], stats);
          u8_[n.outputs[0]] = *out;
          ++stats.pools_u8;
        }
      }
    }
    std::vector<Node> kept;
    for (size_t i = 0; i < g_.nodes.size(); ++i) {
      for (Node& q : inserts_[i]) kept.push_back(std::move(q));
      if (!drop[i]) kept.push_back(std::move(g_.nodes[i]));
    }
    g_.nodes = std::move(kept);
    stats.dequantized = InsertDequantizers();
  }

 private:
  std::optional<U8> Params(const std::string& v) const {
    auto r = ranges_.find(v);
    if (r == ranges_.end() || !r->second.valid()) return std::nullopt;
    U8 p;
    ChooseU8Params(r->second, &p.scale, &p.zero_point);
    return p;
  }

  // u8 already, or a value with a range that no int8 op produced (a graph
  // input, a float node's output), which StartRegion can quantize.
  bool CanBeU8(const std::string& v) const {
    return u8_.contains(v) || (!outputs_.contains(v) && Params(v).has_value());
  }

  // Where an int8 region begins at a value no int8 op produced: one
  // QuantizeLinear before node `i` (the first int8 reader), and every
  // reader from there on reads its u8 output, as every reader in the QDQ
  // graph reads Q -> DQ of the value. (Float readers before node `i` still
  // read the value itself.)
  void StartRegion(size_t i, std::string& v, Int8LoweringStats& stats) {
    auto done = renamed_.find(v);  // Add(v, v): the second operand
    if (done != renamed_.end()) v = done->second;
    if (u8_.contains(v)) return;
    const U8 p = *Params(v);
    const std::string scale = Fresh(absl::StrCat(v, "_scale"));
    g_.initializers[scale] = Tensor::Scalar<float>(p.scale);
    const std::string zp = Fresh(absl::StrCat(v, "_zero_point"));
    g_.initializers[zp] =
        Tensor::Scalar<uint8_t>(static_cast<uint8_t>(p.zero_point));
    Node q;
    q.name = Fresh(absl::StrCat(v, "_QuantizeLinear"));
    q.op_type = "QuantizeLinear";
    q.inputs = {v, scale, zp};
    q.outputs = {Fresh(absl::StrCat(v, "_quantized"))};
    renamed_[v] = q.outputs[0];
    u8_[q.outputs[0]] = p;
    v = q.outputs[0];
    inserts_[i].push_back(std::move(q));
    ++stats.regions_started;
  }

  // Marks `v` u8 when it has a range and is not a graph output.
  bool MakeU8(const std::string& v) {
    auto p = Params(v);
    if (!p.has_value() || outputs_.contains(v)) return false;
    u8_[v] = *p;
    return true;
  }

  // Add(u8, u8) [-> Relu] -> quantd.QuantizedAdd.
  void LowerAdd(size_t i, const absl::flat_hash_map<std::string, int>& readers,
                std::vector<bool>& drop) {
    Node& n = g_.nodes[i];
    Node q;
    q.name = n.name;
    q.domain = kQuantdDomain;
    q.op_type = "QuantizedAdd";
    q.inputs = n.inputs;
    q.outputs = n.outputs;
    SetU8Attributes(q, "a", u8_.at(n.inputs[0]));
    SetU8Attributes(q, "b", u8_.at(n.inputs[1]));
    const std::string& out = n.outputs[0];
    auto count = readers.find(out);
    if (count != readers.end() && count->second == 1 &&
        !outputs_.contains(out)) {
      for (size_t j = i + 1; j < g_.nodes.size(); ++j) {
        const Node& r = g_.nodes[j];
        if (r.domain.empty() && r.op_type == "Relu" && r.input(0) == out) {
          Attribute relu;
          relu.i = 1;
          q.attributes.Set("fused_relu", relu);
          q.outputs = r.outputs;
          drop[j] = true;
          break;
        }
      }
    }
    if (MakeU8(q.outputs[0])) SetU8Attributes(q, "y", u8_.at(q.outputs[0]));
    n = std::move(q);
  }

  // Whether node `n` takes u8 value `v` at input `slot` as it is.
  bool TakesU8(const Node& n, size_t slot, const std::string& v) const {
    const U8& p = u8_.at(v);
    if ((IsQuantd(n, "QuantizedConv") || IsQuantd(n, "QuantizedMatMul")) &&
        IsStatic(n)) {
      return slot == 0 && XParams(n) == p;
    }
    if (IsQuantd(n, "QuantizedAdd")) {
      const char* prefix = slot == 0 ? "a" : "b";
      const U8 expected = {
          n.attributes.GetFloat(absl::StrCat(prefix, "_scale"), 0.f),
          static_cast<int32_t>(
              n.attributes.GetInt(absl::StrCat(prefix, "_zero_point"), -1))};
      return slot < 2 && expected == p;
    }
    if (n.domain.empty() && n.op_type == "MaxPool") {
      return slot == 0 && u8_.contains(n.outputs[0]);
    }
    return false;
  }

  // One DequantizeLinear per u8 value that some reader needs in f32, placed
  // before its first such reader; returns how many.
  int InsertDequantizers() {
    std::map<std::string, std::string> f32_name;
    std::vector<Node> nodes;
    // Copies, so that UniqueName still sees every original value.
    for (Node n : g_.nodes) {
      for (size_t s = 0; s < n.inputs.size(); ++s) {
        const std::string v = n.inputs[s];
        if (!u8_.contains(v) || TakesU8(n, s, v)) continue;
        auto it = f32_name.find(v);
        if (it == f32_name.end()) {
          it = f32_name.emplace(v, Dequantizer(v, nodes)).first;
        }
        n.inputs[s] = it->second;
      }
      nodes.push_back(std::move(n));
    }
    g_.nodes = std::move(nodes);
    return static_cast<int>(f32_name.size());
  }

  // A name unused in the graph and by the names made so far (the new
  // nodes join the graph only at the end).
  std::string Fresh(const std::string& base) {
    std::string name = g_.UniqueName(base);
    for (int k = 1; made_.contains(name); ++k) {
      name = g_.UniqueName(absl::StrCat(base, "_", k));
    }
    made_.insert(name);
    return name;
  }

  std::string Dequantizer(const std::string& v, std::vector<Node>& nodes) {
    const U8& p = u8_.at(v);
    const std::string scale = Fresh(absl::StrCat(v, "_scale"));
    g_.initializers[scale] = Tensor::Scalar<float>(p.scale);
    const std::string zp = Fresh(absl::StrCat(v, "_zero_point"));
    g_.initializers[zp] =
        Tensor::Scalar<uint8_t>(static_cast<uint8_t>(p.zero_point));
    Node dq;
    dq.name = Fresh(absl::StrCat(v, "_DequantizeLinear"));
    dq.op_type = "DequantizeLinear";
    dq.inputs = {v, scale, zp};
    dq.outputs = {Fresh(absl::StrCat(v, "_dequantized"))};
    const std::string out = dq.outputs[0];
    nodes.push_back(std::move(dq));
    return out;
  }

  Graph& g_;
  const RangeMap& ranges_;
  absl::flat_hash_set<std::string> outputs_;
  absl::flat_hash_map<std::string, U8> u8_;
  absl::flat_hash_set<std::string> made_;
  absl::flat_hash_map<std::string, std::string> renamed_;  // v -> quantized
  std::vector<std::vector<Node>> inserts_;  // QuantizeLinears before node i
};

}  // namespace

void LowerInt8Regions(Graph& graph, const RangeMap& ranges,
                      Int8LoweringStats& stats) {
  RegionLowering(graph, ranges).Run(stats);
}

}  // namespace quantd
