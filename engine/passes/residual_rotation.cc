#include "engine/passes/residual_rotation.h"

#include <deque>
#include <map>
#include <set>

#include "absl/strings/str_cat.h"
#include "engine/passes/layer_norm_folding.h"
#include "engine/passes/mean_preserving_rotation.h"
#include "kernels/matmul.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// How a constant changes: Q^T W (its rows are stream channels, a reader's
// weight) and/or W Q (its last dimension is, a writer's).
enum Side : int { kRows = 1, kColumns = 2 };

struct Stream {
  int64_t d = 0;
  std::set<std::string> values;
  std::set<std::string> norms;
  std::map<std::pair<size_t, int>, int> edits;  // (node, input) -> sides
};

class StreamTracer {
 public:
  StreamTracer(const Graph& graph, const std::set<std::string>& folded)
      : graph_(graph), folded_(folded), readers_(FindValueReaders(graph)) {
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      for (const std::string& o : graph.nodes[i].outputs) producer_[o] = i;
    }
    for (const ValueInfo& o : graph.outputs) outputs_.insert(o.name);
  }

  // Fills `s` with the stream through `seed`; returns why it cannot be
  // rotated ("" when it can). On failure `s` holds the part traced so far.
  std::string Trace(const std::string& seed, Stream& s) {
    std::deque<std::string> queue = {seed};
    while (!queue.empty()) {
      const std::string v = queue.front();
      queue.pop_front();
      if (!s.values.insert(v).second) continue;
      std::string why = VisitProducer(v, s, queue);
      if (why.empty()) why = VisitReaders(v, s, queue);
      if (!why.empty()) return why;
    }
    return "";
  }

 private:
  const Tensor* Constant(const std::string& name) const {
    const Tensor* t = graph_.FindInitializer(name);
    return t != nullptr && t->dtype() == DataType::kFloat32 ? t : nullptr;
  }

  // An Add's constant operand: rotatable when its last dimension is the
  // stream's (a bias, a position table).
  std::string AddConstant(size_t node, int input, Stream& s) {
    const Tensor* c = Constant(graph_.nodes[node].input(input));
    if (c == nullptr || c->rank() < 1 || c->dim(-1) != s.d) {
      return absl::StrCat("'", graph_.nodes[node].name,
                          "' adds a constant that is not one value per "
                          "channel of the stream");
    }
    s.edits[{node, input}] |= kColumns;
    return "";
  }

  std::string VisitProducer(const std::string& v, Stream& s,
                            std::deque<std::string>& queue) {
    if (graph_.FindInput(v) != nullptr) {
      return absl::StrCat("'", v, "' is a graph input");
    }
    auto p = producer_.find(v);
    if (p == producer_.end()) return absl::StrCat("'", v, "' is a constant");
    const size_t i = p->second;
    const Node& n = graph_.nodes[i];
    if (!n.domain.empty()) return Unfoldable(n, v, "comes from");
    if (n.op_type == "Add" && n.inputs.size() == 2) {
      for (int k = 0; k < 2; ++k) {
        if (graph_.FindInitializer(n.input(k)) != nullptr) {
          const std::string why = AddConstant(i, k, s);
          if (!why.empty()) return why;
        } else {
          queue.push_back(n.input(k));
        }
      }
      return "";
    }
    const Tensor* w = nullptr;
    int weight_input = 0;
    if (n.op_type == "MatMul") {
      w = Constant(n.input(1));
      weight_input = 1;
    } else if (n.op_type == "Gather" && n.attributes.GetInt("axis", 0) == 0) {
      w = Constant(n.input(0));
    }
    if (w == nullptr || w->rank() != 2 || w->dim(1) != s.d) {
      return Unfoldable(n, v, "comes from");
    }
    s.edits[{i, weight_input}] |= kColumns;
    return "";
  }

  std::string VisitReaders(const std::string& v, Stream& s,
                           std::deque<std::string>& queue) {
    if (outputs_.contains(v)) {
      return absl::StrCat("'", v, "' is a graph output");
    }
    auto r = readers_.find(v);
    if (r == readers_.end()) return "";
    for (const auto& [i, input] : r->second) {
      const Node& n = graph_.nodes[i];
      std::string why;
      if (!n.domain.empty()) {
        why = Unfoldable(n, v, "is read by");
      } else if (n.op_type == "Shape") {
        continue;
      } else if (n.op_type == "LayerNormalization" && input == 0) {
        why = VisitNorm(n, s);
      } else if (n.op_type == "Add" && n.inputs.size() == 2) {
        if (graph_.FindInitializer(n.input(1 - input)) != nullptr) {
          why = AddConstant(i, 1 - input, s);
        } else {
          queue.push_back(n.input(1 - input));
        }
        queue.push_back(n.outputs[0]);
      } else if (n.op_type == "MatMul" && input == 0) {
        why = ReaderWeight(i, s);
      } else {
        why = Unfoldable(n, v, "is read by");
      }
      if (!why.empty()) return why;
    }
    return "";
  }

  // A folded LayerNorm passes the rotation through to its readers.
  std::string VisitNorm(const Node& ln, Stream& s) {
    if (!folded_.contains(ln.name)) {
      return absl::StrCat("LayerNorm '", ln.name,
                          "' reads it and could not be folded");
    }
    if (graph_.FindInitializer(ln.input(1))->dim(0) != s.d) {
      return absl::StrCat("LayerNorm '", ln.name, "' has another width");
    }
    s.norms.insert(ln.name);
    auto r = readers_.find(ln.outputs[0]);
    if (r == readers_.end()) return "";
    for (const auto& [i, input] : r->second) {
      if (graph_.nodes[i].op_type == "Shape") continue;
      const std::string why = ReaderWeight(i, s);  // MatMul, as folded
      if (!why.empty()) return why;
    }
    return "";
  }

  std::string ReaderWeight(size_t i, Stream& s) {
    const Tensor* w = Constant(graph_.nodes[i].input(1));
    if (w == nullptr || w->rank() != 2 || w->dim(0) != s.d) {
      return Unfoldable(graph_.nodes[i], graph_.nodes[i].input(0),
                        "is read by");
    }
    s.edits[{i, 1}] |= kRows;
    return "";
  }

  std::string Unfoldable(const Node& n, const std::string& v,
                         const char* relation) const {
    return absl::StrCat("'", v, "' ", relation, " '", n.name, "' (", n.op_type,
                        "), which has no constant weight to "
                        "absorb the rotation");
  }

  const Graph& graph_;
  const std::set<std::string>& folded_;
  const ValueReaders readers_;
  absl::flat_hash_map<std::string, size_t> producer_;
  std::set<std::string> outputs_;
};

// t as [rows, d] times q ([d, d]), same shape as t.
absl::StatusOr<Tensor> TimesOnRight(const Tensor& t, const Tensor& q) {
  const int64_t d = q.dim(0);
  QUANTD_ASSIGN_OR_RETURN(Tensor flat, t.Reshaped({t.num_elements() / d, d}));
  MatMulKernel gemm;
  Tensor out;
  QUANTD_RETURN_IF_ERROR(gemm.Forward(flat, q, nullptr, &out));
  return out.Reshaped(t.shape());
}

absl::Status ApplyStream(Graph& graph, const Stream& s, uint64_t seed,
                         absl::flat_hash_map<std::string, int>& uses,
                         RotationOutcome& outcome) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor q, MeanPreservingRotation(s.d, seed));
  Tensor qt(DataType::kFloat32, {s.d, s.d});
  for (int64_t i = 0; i < s.d; ++i) {
    for (int64_t j = 0; j < s.d; ++j) {
      qt.mutable_data<float>()[j * s.d + i] = q.data<float>()[i * s.d + j];
    }
  }
  int writers = 0, readers = 0;
  for (const auto& [where, sides] : s.edits) {
    Tensor& t = PrivateInitializer(graph, where.first, where.second, uses);
    Tensor rotated = t;
    if (sides & kRows) {
      MatMulKernel gemm;
      Tensor out;
      QUANTD_RETURN_IF_ERROR(gemm.Forward(qt, rotated, nullptr, &out));
      rotated = std::move(out);
      ++readers;
    }
    if (sides & kColumns) {
      QUANTD_ASSIGN_OR_RETURN(rotated, TimesOnRight(rotated, q));
      ++writers;
    }
    t = std::move(rotated);
    const char* how = sides == kRows      ? "reads it, W -> Q^T W"
                      : sides == kColumns ? "writes it, W -> W Q"
                                          : "reads and writes it, W -> Q^T W Q";
    outcome.changed_nodes.emplace_back(
        graph.nodes[where.first].name,
        absl::StrCat("rotation: residual stream d=", s.d, " (",
                     RotationName(s.d), ") ", how));
  }
  outcome.notes.push_back(absl::StrCat(
      "residual stream d=", s.d, " (", RotationName(s.d), "): ", writers,
      " writer constants rotated (W Q), ", readers, " reader weights (Q^T W), ",
      s.norms.size(), " LayerNorms pass it through; no op added"));
  return absl::OkStatus();
}

}  // namespace

absl::StatusOr<RotationOutcome> RotateResidualStreams(Graph& graph,
                                                      uint64_t seed) {
  QUANTD_ASSIGN_OR_RETURN(LayerNormFoldOutcome fold,
                          FoldLayerNormAffine(graph));
  RotationOutcome outcome;
  outcome.skipped = fold.skipped;
  if (fold.folded.empty() && fold.skipped.empty()) {
    outcome.skipped.push_back(
        "the graph has no LayerNormalization node (an RMSNorm written out "
        "as Pow/ReduceMean/Div is not recognized), so there is no stream "
        "to rotate through");
  }
  for (const std::string& layer : fold.layers) {
    outcome.changed_nodes.emplace_back(
        layer, "rotation: its LayerNorm's gain and bias folded into it");
  }
  const std::set<std::string> folded(fold.folded.begin(), fold.folded.end());
  std::vector<Stream> streams;
  {
    StreamTracer tracer(graph, folded);
    std::set<std::string> seen;
    for (const Node& n : graph.nodes) {
      if (!folded.contains(n.name) || seen.contains(n.input(0))) continue;
      Stream s;
      s.d = graph.FindInitializer(n.input(1))->dim(0);
      // Q is dense: past kMaxRotationDim it would take gigabytes.
      const std::string why =
          s.d > kMaxRotationDim
              ? absl::StrCat("its width ", s.d, " is above ", kMaxRotationDim)
              : tracer.Trace(n.input(0), s);
      // A stream is reported once, not once per LayerNorm on it.
      seen.insert(s.values.begin(), s.values.end());
      if (!why.empty()) {
        outcome.skipped.push_back(
            absl::StrCat("residual stream into LayerNorm '", n.name,
                         "' not rotated: ", why));
        continue;
      }
      streams.push_back(std::move(s));
    }
  }
  absl::flat_hash_map<std::string, int> uses = ConsumerCounts(graph);
  for (const Stream& s : streams) {
    QUANTD_RETURN_IF_ERROR(ApplyStream(graph, s, seed, uses, outcome));
  }
  return outcome;
}

}  // namespace quantd
