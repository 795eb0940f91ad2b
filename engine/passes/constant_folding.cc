#include "engine/passes/constant_folding.h"

#include <optional>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// A 1-D int64 vector whose entries may be unknown (kUnknown).
constexpr int64_t kUnknown = INT64_MIN;
using PartialShape = std::vector<int64_t>;

bool FullyKnown(const PartialShape& p) {
  for (int64_t v : p) {
    if (v == kUnknown) return false;
  }
  return true;
}

std::optional<std::vector<int64_t>> ConstInts(const Graph& g,
                                              const std::string& name) {
  const Tensor* t = g.FindInitializer(name);
  if (t == nullptr || t->rank() > 1) return std::nullopt;
  if (t->dtype() == DataType::kInt64) return t->ToVector<int64_t>();
  if (t->dtype() == DataType::kInt32) {
    return std::vector<int64_t>(t->data<int32_t>(),
                                t->data<int32_t>() + t->num_elements());
  }
  return std::nullopt;
}

class Folder {
 public:
  Folder(Graph& graph, const OpRegistry& registry,
         const FoldingOptions& options)
      : graph_(graph), registry_(registry), options_(options) {}

  absl::Status Run(FoldingStats* stats) {
    std::vector<Node> kept;
    kept.reserve(graph_.nodes.size());
    for (Node& node : graph_.nodes) {
      QUANTD_ASSIGN_OR_RETURN(bool folded, TryFold(node));
      if (folded) {
        ++stats_.nodes_folded;
        continue;
      }
      TrackPartial(node);
      MakeReshapeStatic(node);
      kept.push_back(std::move(node));
    }
    graph_.nodes = std::move(kept);
    if (stats != nullptr) *stats = stats_;
    return absl::OkStatus();
  }

 private:
  bool IsConstant(const std::string& name) const {
    return name.empty() || graph_.initializers.contains(name);
  }

  // Evaluates a node whose inputs are all constant with its own kernel.
  absl::StatusOr<bool> TryFold(const Node& node) {
    if (!node.domain.empty()) return false;
    if (options_.keep_node && options_.keep_node(node)) return false;
    for (const std::string& in : node.inputs) {
      if (!IsConstant(in)) {
        return TryFoldFromPartial(node);
      }
    }
    const OpKernelFactory* factory = registry_.Find(OpKey(node));
    if (factory == nullptr) return false;
    OpKernelInfo info{node, graph_.opset, &graph_};
    QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<OpKernel> kernel, (*factory)(info));
    std::vector<const Tensor*> inputs;
    for (const std::string& in : node.inputs) {
      inputs.push_back(in.empty() ? nullptr : graph_.FindInitializer(in));
    }
    std::vector<Tensor> outputs(node.outputs.size());
    OpKernelContext ctx(node, std::move(inputs), &outputs);
    if (absl::Status s = (kernel)->Compute(ctx); !s.ok()) {
      return absl::Status(s.code(),
                          absl::StrCat(node.op_type, " node '", node.name,
                                       "' (constant): ", s.message()));
    }
    for (const Tensor& t : outputs) {
      if (t.num_elements() > options_.max_folded_elements) return false;
    }
    for (size_t i = 0; i < node.outputs.size(); ++i) {
      if (!node.outputs[i].empty()) {
        graph_.initializers[node.outputs[i]] = std::move(outputs[i]);
      }
    }
    return true;
  }

  // A node whose inputs are partially known shapes may still have a fully
  // known output (e.g. Gather of a static dim out of Shape(x)).
  absl::StatusOr<bool> TryFoldFromPartial(const Node& node) {
    std::optional<PartialShape> out = EvaluatePartial(node);
    if (!out.has_value() || !FullyKnown(*out)) return false;
    bool scalar = node.op_type == "Gather" && IsScalarGather(node);
    Tensor t = scalar ? Tensor::Scalar<int64_t>((*out)[0])
                      : Tensor::FromVector<int64_t>(
                            {static_cast<int64_t>(out->size())}, *out);
    graph_.initializers[node.outputs[0]] = std::move(t);
    return true;
  }

  bool IsScalarGather(const Node& node) const {
    const Tensor* idx = graph_.FindInitializer(node.input(1));
    return idx != nullptr && idx->rank() == 0;
  }

  std::optional<PartialShape> Partial(const std::string& name) const {
    auto it = partial_.find(name);
    if (it != partial_.end()) return it->second;
    if (std::optional<std::vector<int64_t>> c = ConstInts(graph_, name)) {
      return *c;
    }
    return std::nullopt;
  }

  std::optional<PartialShape> EvaluatePartial(const Node& node) const {
    const std::string& op = node.op_type;
    if (op == "Shape") {
      const ValueInfo* info = graph_.FindValueInfo(node.input(0));
      if (info == nullptr || !info->has_shape) return std::nullopt;
      PartialShape p;
      for (int64_t d : info->shape) p.push_back(d >= 0 ? d : kUnknown);
      int64_t rank = static_cast<int64_t>(p.size());
      int64_t start = node.attributes.GetInt("start", 0);
      int64_t end = node.attributes.GetInt("end", rank);
      if (start < 0) start += rank;
      if (end < 0) end += rank;
      start = std::clamp<int64_t>(start, 0, rank);
      end = std::clamp<int64_t>(end, start, rank);
      return PartialShape(p.begin() + start, p.begin() + end);
    }
    if (op == "Cast" || op == "Identity") {
      if (op == "Cast" && node.attributes.GetInt("to", 0) != 7) {
        return std::nullopt;  // only int64 casts keep the values exact
      }
      return Partial(node.input(0));
    }
    if (op == "Gather") {
      std::optional<PartialShape> data = Partial(node.input(0));
      std::optional<std::vector<int64_t>> idx =
          ConstInts(graph_, node.input(1));
      if (!data || !idx || node.attributes.GetInt("axis", 0) != 0) {
        return std::nullopt;
      }
      PartialShape out;
      const int64_t n = static_cast<int64_t>(data->size());
      for (int64_t i : *idx) {
        if (i < 0) i += n;
        if (i < 0 || i >= n) return std::nullopt;
        out.push_back((*data)[i]);
      }
      return out;
    }
    if (op == "Slice" && graph_.opset >= 10) {
      std::optional<PartialShape> data = Partial(node.input(0));
      std::optional<std::vector<int64_t>> starts =
          ConstInts(graph_, node.input(1));
      std::optional<std::vector<int64_t>> ends =
          ConstInts(graph_, node.input(2));
      if (!data || !starts || !ends || starts->size() != 1 ||
          ends->size() != 1) {
        return std::nullopt;
      }
      if (node.has_input(4)) {
        std::optional<std::vector<int64_t>> steps =
            ConstInts(graph_, node.input(4));
        if (!steps || steps->size() != 1 || (*steps)[0] != 1) {
          return std::nullopt;
        }
      }
      const int64_t n = static_cast<int64_t>(data->size());
      int64_t s = (*starts)[0], e = (*ends)[0];
      if (s < 0) s += n;
      if (e < 0) e += n;
      s = std::clamp<int64_t>(s, 0, n);
      e = std::clamp<int64_t>(e, s, n);
      return PartialShape(data->begin() + s, data->begin() + e);
    }
    if (op == "Concat") {
      PartialShape out;
      for (const std::string& in : node.inputs) {
        std::optional<PartialShape> p = Partial(in);
        if (!p) return std::nullopt;
        out.insert(out.end(), p->begin(), p->end());
      }
      return out;
    }
    if (op == "Unsqueeze" || op == "Squeeze") {
      // Between a scalar and a 1-element vector the values do not change.
      std::optional<PartialShape> p = Partial(node.input(0));
      if (!p || p->size() != 1) return std::nullopt;
      return p;
    }
    return std::nullopt;
  }

  void TrackPartial(const Node& node) {
    if (node.outputs.size() != 1) return;
    std::optional<PartialShape> p = EvaluatePartial(node);
    if (p.has_value()) partial_[node.outputs[0]] = *p;
  }

  // Reshape(x, shape) where shape is known but for one entry: that entry must
  // be whatever makes the element count match, which is what -1 means.
  void MakeReshapeStatic(Node& node) {
    if (node.op_type != "Reshape" || IsConstant(node.input(1))) return;
    std::optional<PartialShape> p = Partial(node.input(1));
    if (!p) return;
    int unknown = 0;
    for (int64_t v : *p) {
      if (v == kUnknown) ++unknown;
      if (v == -1) return;  // already has a -1; two would be invalid
      if (v == 0 && node.attributes.GetInt("allowzero", 0) == 0) return;
    }
    if (unknown != 1) return;
    for (int64_t& v : *p) {
      if (v == kUnknown) v = -1;
    }
    std::string name = graph_.UniqueName(absl::StrCat(node.name, "_shape"));
    graph_.initializers[name] =
        Tensor::FromVector<int64_t>({static_cast<int64_t>(p->size())}, *p);
    node.inputs[1] = name;
    ++stats_.reshapes_made_static;
  }

  Graph& graph_;
  const OpRegistry& registry_;
  const FoldingOptions& options_;
  absl::flat_hash_map<std::string, PartialShape> partial_;
  FoldingStats stats_;
};

}  // namespace

absl::Status FoldConstants(Graph& graph, const OpRegistry& registry,
                           FoldingStats* stats, const FoldingOptions& options) {
  return Folder(graph, registry, options).Run(stats);
}

}  // namespace quantd
