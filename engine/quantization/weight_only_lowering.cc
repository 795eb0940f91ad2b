#include "engine/quantization/weight_only_lowering.h"

#include <set>

#include "absl/strings/str_cat.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/op_registry.h"
#include "kernels/weight_only_matmul.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

bool IsFourBit(QuantType t) {
  return t == QuantType::kInt4 || t == QuantType::kUInt4;
}

// The weight [K, N] (or [N, K] with trans_b) of a node the kernel can run,
// or null.
const Tensor* KernelWeight(const Graph& g, const Node& node, bool* trans_b) {
  if (!node.domain.empty() || node.outputs.size() != 1) return nullptr;
  *trans_b = false;
  if (node.op_type == "Gemm") {
    const auto& a = node.attributes;
    if (a.GetInt("transA", 0) != 0 || a.GetFloat("alpha", 1.f) != 1.f ||
        (node.has_input(2) && a.GetFloat("beta", 1.f) != 1.f)) {
      return nullptr;
    }
    *trans_b = a.GetInt("transB", 0) != 0;
  } else if (node.op_type != "MatMul") {
    return nullptr;
  }
  const Tensor* w = g.FindInitializer(node.input(1));
  if (w == nullptr || w->dtype() != DataType::kFloat32 || w->rank() != 2) {
    return nullptr;
  }
  if (node.op_type == "Gemm" && node.has_input(2)) {
    // The kernel adds a bias of one value per column; ONNX also allows C
    // of shape [1] or [M, N], which stay on the float path.
    const Tensor* c = g.FindInitializer(node.input(2));
    const int64_t n = *trans_b ? w->dim(0) : w->dim(1);
    if (c == nullptr || c->dtype() != DataType::kFloat32 ||
        c->shape() != Shape{n}) {
      return nullptr;
    }
  }
  return w;
}

// Whether p's scales are constant along K within each group the kernel
// has: per tensor, per output column, or per group along K.
bool KernelLayout(const QuantParams& p, bool trans_b) {
  const int64_t k_axis = trans_b ? 1 : 0;
  if (p.axis < 0) return true;
  return p.group_size > 0 ? p.axis == k_axis : p.axis != k_axis;
}

absl::StatusOr<WeightOnlyPacked> Pack(const Tensor& w, const QuantParams& p,
                                      bool trans_b) {
  QUANTD_ASSIGN_OR_RETURN(std::vector<int32_t> q, QuantizeWeightValues(w, p));
  const int64_t k = trans_b ? w.dim(1) : w.dim(0);
  const int64_t n = trans_b ? w.dim(0) : w.dim(1);
  const int64_t group = p.axis >= 0 && p.group_size > 0 ? p.group_size : 0;
  const int64_t groups = group > 0 ? (k + group - 1) / group : 1;
  const int32_t offset = QuantTypeMin(p.type);  // signed -> unsigned codes
  Tensor codes(DataType::kUInt8, {k, n});
  Tensor scales(DataType::kFloat32, {groups, n});
  Tensor zero_points(DataType::kInt32, {groups, n});
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      const int64_t i = trans_b ? c * k + r : r * n + c;
      codes.mutable_data<uint8_t>()[r * n + c] =
          static_cast<uint8_t>(q[i] - offset);
      const int64_t pi = ParamIndex(p, w.shape(), i);
      const int64_t at = (group > 0 ? r / group : 0) * n + c;
      scales.mutable_data<float>()[at] = p.scales[pi];
      zero_points.mutable_data<int32_t>()[at] =
          (p.zero_points.empty() ? 0 : p.zero_points[pi]) - offset;
    }
  }
  return PackWeightOnly(codes, scales, zero_points, IsFourBit(p.type) ? 4 : 8,
                        group);
}

Node WeightOnlyNode(Graph& graph, const Node& node, WeightOnlyPacked packed) {
  const std::string base = node.input(1);
  const std::string codes = graph.UniqueName(absl::StrCat(base, "_codes"));
  graph.initializers[codes] = std::move(packed.codes);
  const std::string scales = graph.UniqueName(absl::StrCat(base, "_scales"));
  graph.initializers[scales] = std::move(packed.scales);
  const std::string zps = graph.UniqueName(absl::StrCat(base, "_zero_points"));
  graph.initializers[zps] = std::move(packed.zero_points);
  Node q;
  q.name = node.name;
  q.domain = kQuantdDomain;
  q.op_type = "WeightOnlyMatMul";
  q.inputs = {node.input(0), codes, scales, zps};
  if (node.op_type == "Gemm" && node.has_input(2)) {
    q.inputs.push_back(node.input(2));
  }
  q.outputs = node.outputs;
  Attribute n, group, bits;
  n.i = packed.n;
  group.i = packed.group_size;
  bits.i = packed.bits;
  q.attributes.Set("n", n);
  q.attributes.Set("group_size", group);
  q.attributes.Set("bits", bits);
  return q;
}

}  // namespace

int64_t InitializerBytes(const Graph& graph) {
  int64_t bytes = 0;
  for (const auto& [name, t] : graph.initializers) bytes += t.byte_size();
  return bytes;
}

absl::Status LowerWeightOnly(
    Graph& graph, const std::map<std::string, QuantParams>& weights,
    const std::set<std::string>& float_nodes, WeightOnlyLoweringStats* stats,
    const std::map<std::string, WeightCodes>* weight_codes) {
  // The float weights `name` is rounded from: its codes dequantized (one
  // layer's worth at a time; rounding them again gives the same codes) or
  // the graph's own.
  auto source = [&](const std::string& name,
                    const QuantParams& p) -> absl::StatusOr<Tensor> {
    if (weight_codes != nullptr) {
      auto c = weight_codes->find(name);
      if (c != weight_codes->end()) return DequantizeWeightCodes(c->second, p);
    }
    return *graph.FindInitializer(name);
  };
  WeightOnlyLoweringStats local;
  local.float_weight_bytes = InitializerBytes(graph);
  // Fake-quantized copies of weights that a quantized node reads but the
  // kernel cannot run, shared by such readers; float nodes keep reading the
  // original (as in the QDQ export, where only quantized slots get a
  // DequantizeLinear).
  std::map<std::string, std::string> fake_quantized;
  for (Node& node : graph.nodes) {
    if (node.inputs.size() < 2 || float_nodes.contains(node.name)) continue;
    auto p = weights.find(node.input(1));
    if (p == weights.end()) continue;
    bool trans_b = false;
    const Tensor* w = KernelWeight(graph, node, &trans_b);
    if (w != nullptr && KernelLayout(p->second, trans_b)) {
      QUANTD_ASSIGN_OR_RETURN(const Tensor rounded,
                              source(p->first, p->second));
      absl::StatusOr<WeightOnlyPacked> packed =
          Pack(rounded, p->second, trans_b);
      if (!packed.ok()) {
        return absl::Status(
            packed.status().code(),
            absl::StrCat("weight-only lowering of node '", node.name,
                         "': ", packed.status().message()));
      }
      node = WeightOnlyNode(graph, node, *std::move(packed));
      ++local.matmuls;
      continue;
    }
    auto copy = fake_quantized.find(p->first);
    if (copy == fake_quantized.end()) {
      QUANTD_ASSIGN_OR_RETURN(const Tensor rounded,
                              source(p->first, p->second));
      QUANTD_ASSIGN_OR_RETURN(Tensor fq,
                              FakeQuantizeWeights(rounded, p->second));
      const std::string name =
          graph.UniqueName(absl::StrCat(p->first, "_fake_quantized"));
      graph.initializers[name] = std::move(fq);
      copy = fake_quantized.emplace(p->first, name).first;
    }
    node.inputs[1] = copy->second;
    ++local.fake_quantized;
  }
  RemoveDeadNodes(graph);  // drops the f32 weights nothing reads any more
  local.lowered_weight_bytes = InitializerBytes(graph);
  if (stats != nullptr) *stats = local;
  return absl::OkStatus();
}

}  // namespace quantd
