#include "engine/passes/head_rotation.h"

#include <algorithm>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/passes/layer_norm_folding.h"
#include "engine/passes/mean_preserving_rotation.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// What tracing one MatMul found: not a value projection at all (silent), a
// value projection that cannot be rotated (`why`), or a pair.
struct TraceResult {
  bool is_value_projection = false;
  std::string why;
};

class HeadTracer {
 public:
  explicit HeadTracer(const Graph& graph)
      : graph_(graph), readers_(FindValueReaders(graph)) {
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      for (const std::string& o : graph.nodes[i].outputs) producer_[o] = i;
    }
    for (const ValueInfo& o : graph.outputs) outputs_.insert(o.name);
  }

  TraceResult Trace(size_t node, HeadPair& p) const {
    p.value = node;
    const Tensor* w = Weight(graph_.nodes[node]);
    if (w == nullptr) return {};
    const int64_t d = w->dim(1);
    std::string value = graph_.nodes[node].outputs[0];
    size_t reader = 0;
    int input = 0;
    if (!SoleReader(value, reader, input).empty()) return {};
    if (IsBias(reader, input, d)) {
      p.bias = {reader, 1 - input};
      value = graph_.nodes[reader].outputs[0];
      if (!SoleReader(value, reader, input).empty()) return {};
    }
    if (graph_.nodes[reader].op_type == "Split" && input == 0) {
      return TraceSplit(value, reader, d, p);
    }
    p.width = d;
    return TraceHeads(reader, input, p);
  }

 private:
  // From the Reshape into heads (node `reader`, reading the values at
  // `input`) of a p.width-wide value.
  TraceResult TraceHeads(size_t reader, int input, HeadPair& p) const {
    const Node& split = graph_.nodes[reader];
    if (split.op_type != "Reshape" || input != 0) return {};
    std::vector<int64_t> tail;
    if (!TrailingShape(split.input(1), tail) || tail[0] < 1 || tail[1] < 2 ||
        tail[0] * tail[1] != p.width) {
      return {};
    }
    p.heads = tail[0];
    p.head_dim = tail[1];
    return FollowHeads(split.outputs[0], p.width, p);
  }

  // A fused projection's Split (node `at`, splitting `value` of d columns):
  // the part that reaches the attention as values, if any.
  TraceResult TraceSplit(const std::string& value, size_t at, int64_t d,
                         HeadPair& p) const {
    const Node& split = graph_.nodes[at];
    const std::string& name = graph_.nodes[p.value].name;
    const int64_t axis = split.attributes.GetInt("axis", 0);
    const int64_t rank = Rank(value, 0);
    if (axis != -1 && (rank == 0 || axis != rank - 1)) {
      return {true, absl::StrCat("'", name, "' feeds a Split that is not ",
                                 "known to split the last axis")};
    }
    std::vector<int64_t> sizes = split.attributes.GetInts("split");
    if (const Tensor* t = split.has_input(1)
                              ? graph_.FindInitializer(split.input(1))
                              : nullptr;
        t != nullptr && t->dtype() == DataType::kInt64) {
      sizes = t->ToVector<int64_t>();
    }
    const int64_t parts = static_cast<int64_t>(split.outputs.size());
    if (sizes.empty() && parts > 0 && d % parts == 0) {
      sizes.assign(parts, d / parts);
    }
    if (static_cast<int64_t>(sizes.size()) != parts) return {};
    int64_t offset = 0;
    for (int64_t i = 0; i < parts; offset += sizes[i], ++i) {
      size_t reader = 0;
      int input = 0;
      if (!SoleReader(split.outputs[i], reader, input).empty()) continue;
      p.column_offset = offset;
      p.width = sizes[i];
      TraceResult r = TraceHeads(reader, input, p);
      if (r.is_value_projection) return r;
    }
    return {};
  }

  // The rank of `value`, 0 if unknown: from shape inference, else through
  // the ops a transformer's residual stream passes (ONNX's inference gives
  // up after ops it cannot type, e.g. a causal mask's Where).
  int64_t Rank(const std::string& value, int depth) const {
    if (auto v = graph_.value_info.find(value);
        v != graph_.value_info.end() && !v->second.shape.empty()) {
      return static_cast<int64_t>(v->second.shape.size());
    }
    if (const ValueInfo* in = graph_.FindInput(value)) {
      return static_cast<int64_t>(in->shape.size());
    }
    if (const Tensor* t = graph_.FindInitializer(value)) return t->rank();
    auto p = producer_.find(value);
    if (p == producer_.end() || depth > 64) return 0;
    const Node& n = graph_.nodes[p->second];
    static const std::set<std::string>* same =
        new std::set<std::string>{"LayerNormalization",
                                  "Relu",
                                  "Gelu",
                                  "Erf",
                                  "Tanh",
                                  "Sigmoid",
                                  "Softmax",
                                  "Cast",
                                  "Identity"};
    static const std::set<std::string>* broadcast =
        new std::set<std::string>{"Add", "Sub", "Mul", "Div", "Where"};
    if (same->contains(n.op_type)) return Rank(n.input(0), depth + 1);
    if (broadcast->contains(n.op_type)) {
      int64_t r = 0;
      for (const std::string& in : n.inputs) {
        const int64_t ri = Rank(in, depth + 1);
        if (ri == 0 && graph_.FindInitializer(in) == nullptr) return 0;
        r = std::max(r, ri);
      }
      return r;
    }
    if (n.op_type == "MatMul" &&
        graph_.FindInitializer(n.input(1)) != nullptr) {
      return std::max<int64_t>(Rank(n.input(0), depth + 1), 2);
    }
    if (n.op_type == "Gather" && n.attributes.GetInt("axis", 0) == 0) {
      const int64_t data = Rank(n.input(0), depth + 1);
      const int64_t indices = Rank(n.input(1), depth + 1);
      return data > 0 && indices > 0 ? data + indices - 1 : 0;
    }
    return 0;
  }

  // A MatMul's constant 2-D float weight, or nullptr.
  const Tensor* Weight(const Node& n) const {
    if (n.op_type != "MatMul" || !n.domain.empty() || n.inputs.size() != 2) {
      return nullptr;
    }
    const Tensor* w = graph_.FindInitializer(n.input(1));
    return w != nullptr && w->dtype() == DataType::kFloat32 && w->rank() == 2
               ? w
               : nullptr;
  }

  // An Add of a constant with one value per channel of a d-wide value.
  bool IsBias(size_t node, int input, int64_t d) const {
    const Node& n = graph_.nodes[node];
    if (n.op_type != "Add" || n.inputs.size() != 2) return false;
    const Tensor* b = graph_.FindInitializer(n.input(1 - input));
    return b != nullptr && b->dtype() == DataType::kFloat32 &&
           b->num_elements() == d && b->rank() >= 1 && b->dim(-1) == d;
  }

  // The one reader of `v` besides Shape nodes (which a rotation does not
  // affect); why not otherwise.
  std::string SoleReader(const std::string& v, size_t& node, int& input) const {
    if (outputs_.contains(v)) return absl::StrCat("'", v, "' is an output");
    auto r = readers_.find(v);
    int count = 0;
    if (r != readers_.end()) {
      for (const auto& [i, k] : r->second) {
        if (graph_.nodes[i].op_type == "Shape") continue;
        node = i;
        input = k;
        ++count;
      }
    }
    if (count == 1) return "";
    return absl::StrCat("'", v, "' has ", count, " readers");
  }

  // The last two entries of a Reshape's shape when both are constants: an
  // int64 initializer, or a Concat whose trailing pieces are.
  bool TrailingShape(const std::string& shape,
                     std::vector<int64_t>& tail) const {
    std::vector<int64_t> found;  // from the end
    auto take = [&](const Tensor& t) {
      if (t.dtype() != DataType::kInt64 || t.rank() > 1) return false;
      const std::vector<int64_t> v = t.ToVector<int64_t>();
      for (auto it = v.rbegin(); it != v.rend() && found.size() < 2; ++it) {
        found.push_back(*it);
      }
      return true;
    };
    if (const Tensor* t = graph_.FindInitializer(shape)) {
      take(*t);
    } else if (auto p = producer_.find(shape); p != producer_.end()) {
      const Node& concat = graph_.nodes[p->second];
      if (concat.op_type != "Concat") return false;
      for (size_t i = concat.inputs.size(); i-- > 0 && found.size() < 2;) {
        const Tensor* piece = graph_.FindInitializer(concat.input(i));
        if (piece == nullptr || !take(*piece)) return false;
      }
    }
    if (found.size() < 2) return false;
    tail = {found[1], found[0]};
    return true;
  }

  // From the head split to the output projection. Axes are counted from
  // the end (1 = last), which MatMul broadcasting preserves.
  TraceResult FollowHeads(std::string value, int64_t d, HeadPair& p) const {
    int64_t head_axis = 2, dim_axis = 1;
    bool attended = false;  // passed the attention MatMul
    const std::string& name = graph_.nodes[p.value].name;
    for (int step = 0; step < 16; ++step) {
      size_t i = 0;
      int input = 0;
      const std::string why = SoleReader(value, i, input);
      const Node& n = graph_.nodes[i];
      if (!why.empty() && attended) {
        return {true, absl::StrCat("'", name, "': ", why)};
      }
      if (!why.empty()) return {};
      if (n.op_type == "Transpose" && n.attributes.Has("perm")) {
        const std::vector<int64_t> perm = n.attributes.GetInts("perm");
        const int64_t r = static_cast<int64_t>(perm.size());
        if (r < head_axis) return {};
        const int64_t head_from = r - head_axis, dim_from = r - dim_axis;
        for (int64_t j = 0; j < r; ++j) {
          if (perm[j] == head_from) head_axis = r - j;
          if (perm[j] == dim_from) dim_axis = r - j;
        }
      } else if (n.op_type == "MatMul" && input == 1 && !attended) {
        // B's last axis is the output's; its second-to-last is summed.
        if (dim_axis != 1 || head_axis < 3) return {};
        attended = true;
      } else if (n.op_type == "Reshape" && input == 0 && attended) {
        if (dim_axis != 1 || head_axis != 2) {
          return {true, absl::StrCat("'", n.name,
                                     "' does not merge the heads' last two "
                                     "axes")};
        }
        return ReachOutputProjection(n.outputs[0], d, p);
      } else {
        if (!attended) return {};
        return {true, absl::StrCat("'", n.name, "' (", n.op_type,
                                   ") reads the head values of '", name,
                                   "' before an output projection")};
      }
      value = n.outputs[0];
    }
    return {};
  }

  TraceResult ReachOutputProjection(const std::string& merged, int64_t d,
                                    HeadPair& p) const {
    size_t i = 0;
    int input = 0;
    const std::string why = SoleReader(merged, i, input);
    const Tensor* w = why.empty() ? Weight(graph_.nodes[i]) : nullptr;
    if (w == nullptr || input != 0 || w->dim(0) != d) {
      return {true,
              absl::StrCat("the merged heads of '", graph_.nodes[p.value].name,
                           "' are not read by one MatMul with a "
                           "constant weight of ",
                           d, " rows", why.empty() ? "" : ": ", why)};
    }
    p.output = i;
    return {true, ""};
  }

  const Graph& graph_;
  ValueReaders readers_;
  std::map<std::string, size_t> producer_;
  std::set<std::string> outputs_;
};

// Each head's block of dh columns of `t` ([rows, cols]) in the value part
// [p.column_offset, + p.width) times R; the other columns as they were. A
// new tensor: initializers share storage with the graph copies they came
// from.
Tensor RotateColumnBlocks(const Tensor& t, const HeadPair& p, const Tensor& r) {
  const int64_t cols = t.dim(-1), rows = t.num_elements() / cols;
  const int64_t head_dim = p.head_dim;
  const float* q = r.data<float>();
  Tensor out = Tensor::FromVector<float>(t.shape(), t.ToVector<float>());
  for (int64_t row = 0; row < rows; ++row) {
    const float* x = t.data<float>() + row * cols;
    float* y = out.mutable_data<float>() + row * cols;
    for (int64_t h = p.column_offset; h < p.column_offset + p.width;
         h += head_dim) {
      for (int64_t j = 0; j < head_dim; ++j) {
        double s = 0;
        for (int64_t k = 0; k < head_dim; ++k) {
          s += double{x[h + k]} * q[k * head_dim + j];
        }
        y[h + j] = static_cast<float>(s);
      }
    }
  }
  return out;
}

// Each head's block of dh rows of `w` ([H * dh, cols]) as R^T times it.
Tensor RotateRowBlocks(const Tensor& w, int64_t head_dim, const Tensor& r) {
  const int64_t rows = w.dim(0), cols = w.dim(1);
  const float* q = r.data<float>();
  Tensor out(DataType::kFloat32, w.shape());
  std::vector<double> block(head_dim * cols);
  for (int64_t h = 0; h < rows; h += head_dim) {
    const float* x = w.data<float>() + h * cols;
    std::fill(block.begin(), block.end(), 0.0);
    for (int64_t i = 0; i < head_dim; ++i) {
      for (int64_t k = 0; k < head_dim; ++k) {
        const double rki = q[k * head_dim + i];  // (R^T)_ik
        for (int64_t c = 0; c < cols; ++c) {
          block[i * cols + c] += rki * x[k * cols + c];
        }
      }
    }
    float* y = out.mutable_data<float>() + h * cols;
    for (int64_t e = 0; e < head_dim * cols; ++e) y[e] = block[e];
  }
  return out;
}

}  // namespace

HeadPairs FindValueOutputPairs(const Graph& graph) {
  HeadPairs found;
  HeadTracer tracer(graph);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    HeadPair p;
    const TraceResult t = tracer.Trace(i, p);
    if (!t.is_value_projection) continue;
    if (!t.why.empty()) {
      found.skipped.push_back(t.why);
    } else if (p.head_dim > kMaxRotationDim) {
      found.skipped.push_back(absl::StrCat("'", graph.nodes[i].name,
                                           "': head size ", p.head_dim,
                                           " above ", kMaxRotationDim));
    } else {
      found.pairs.push_back(p);
    }
  }
  return found;
}

absl::StatusOr<RotationOutcome> RotateValueOutputHeads(Graph& graph,
                                                       uint64_t seed) {
  RotationOutcome outcome;
  const HeadPairs found = FindValueOutputPairs(graph);
  const std::vector<HeadPair>& pairs = found.pairs;
  for (const std::string& why : found.skipped) {
    outcome.skipped.push_back(
        absl::StrCat("value/output heads not rotated: ", why));
  }
  if (pairs.empty() && outcome.skipped.empty()) {
    outcome.skipped.push_back(
        "no attention value projection found (MatMul -> Reshape into heads "
        "-> attention MatMul -> Reshape -> MatMul)");
  }
  absl::flat_hash_map<std::string, int> uses = ConsumerCounts(graph);
  for (const HeadPair& p : pairs) {
    QUANTD_ASSIGN_OR_RETURN(const Tensor r,
                            RandomizedHadamard(p.head_dim, seed));
    Tensor& wv = PrivateInitializer(graph, p.value, 1, uses);
    wv = RotateColumnBlocks(wv, p, r);
    if (p.bias.has_value()) {
      Tensor& b =
          PrivateInitializer(graph, p.bias->first, p.bias->second, uses);
      b = RotateColumnBlocks(b, p, r);
    }
    Tensor& wo = PrivateInitializer(graph, p.output, 1, uses);
    wo = RotateRowBlocks(wo, p.head_dim, r);
    const std::string how = absl::StrCat(
        p.heads, " heads of ", p.head_dim, " (", RotationName(p.head_dim), ")",
        p.width == wv.dim(1) ? ""
                             : absl::StrCat(", columns ", p.column_offset, "-",
                                            p.column_offset + p.width - 1,
                                            " of a fused projection"));
    const std::string& v = graph.nodes[p.value].name;
    const std::string& o = graph.nodes[p.output].name;
    outcome.changed_nodes.emplace_back(
        v, absl::StrCat("rotation: per-head values, ", how, ", W -> W R"));
    if (p.bias.has_value()) {
      outcome.changed_nodes.emplace_back(
          graph.nodes[p.bias->first].name,
          absl::StrCat("rotation: per-head value bias, ", how, ", b -> b R"));
    }
    outcome.changed_nodes.emplace_back(
        o,
        absl::StrCat("rotation: reads per-head values, ", how, ", W -> R^T W"));
    outcome.notes.push_back(absl::StrCat("value/output heads '", v, "' -> '", o,
                                         "': ", how, "; no op added"));
  }
  return outcome;
}

}  // namespace quantd
