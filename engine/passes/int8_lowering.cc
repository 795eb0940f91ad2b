#include "engine/passes/int8_lowering.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/passes/int8_chaining.h"
#include "engine/passes/int8_regions.h"
#include "engine/runtime/op_registry.h"
#include "kernels/post_ops.h"
#include "kernels/quantize.h"

namespace quantd {

void TensorRange::Update(const Tensor& t) {
  if (t.dtype() != DataType::kFloat32) return;
  float lo = min, hi = max;
  const float* p = t.data<float>();
  const int64_t n = t.num_elements();
#pragma omp parallel for reduction(min : lo) reduction(max : hi) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    // NaN compares false both ways and so is skipped.
    if (p[i] < lo) lo = p[i];
    if (p[i] > hi) hi = p[i];
  }
  min = lo;
  max = hi;
}

namespace {

const Tensor* ConstF32(const Graph& g, const std::string& name, int rank) {
  const Tensor* t = g.FindInitializer(name);
  if (t == nullptr || t->dtype() != DataType::kFloat32) return nullptr;
  if (rank >= 0 && t->rank() != rank) return nullptr;
  return t;
}

}  // namespace

bool IsInt8Quantizable(const Graph& g, const Node& node) {
  if (!node.domain.empty() || node.outputs.size() != 1) return false;
  if (node.op_type == "Conv") {
    const Tensor* w = ConstF32(g, node.input(1), -1);
    return w != nullptr && w->rank() >= 3 &&
           (!node.has_input(2) || ConstF32(g, node.input(2), 1) != nullptr);
  }
  if (node.op_type == "Gemm") {
    const auto& a = node.attributes;
    if (a.GetInt("transA", 0) != 0 || a.GetFloat("alpha", 1.f) != 1.f ||
        (node.has_input(2) && a.GetFloat("beta", 1.f) != 1.f)) {
      return false;
    }
    return ConstF32(g, node.input(1), 2) != nullptr &&
           (!node.has_input(2) || ConstF32(g, node.input(2), 1) != nullptr);
  }
  if (node.op_type == "MatMul") {
    return ConstF32(g, node.input(1), 2) != nullptr;
  }
  return false;
}

ActivationRangeRecorder::ActivationRangeRecorder(const Graph& graph)
    : graph_(graph) {
  for (const Node& node : graph.nodes) {
    if (IsInt8Quantizable(graph, node)) {
      layers_.insert(node.name);
      watched_.insert(node.input(0));
    }
  }
  for (const std::string& v : Int8RegionCandidates(graph, IsLayer())) {
    watched_.insert(v);
  }
}

NodePredicate ActivationRangeRecorder::IsLayer() const {
  return [this](const Node& n) { return layers_.contains(n.name); };
}

RangeMap ActivationRangeRecorder::ranges() const {
  RangeMap out;
  std::set<std::string> inputs;
  for (const Node& node : graph_.nodes) {
    if (!layers_.contains(node.name)) continue;
    auto r = ranges_.find(node.input(0));
    if (r == ranges_.end()) continue;
    out[r->first] = r->second;
    inputs.insert(r->first);
  }
  auto calibrated = [this](const std::string& v) {
    return ranges_.contains(v);
  };
  for (const Int8RegionValue& v :
       ExtendInt8Regions(graph_, IsLayer(), calibrated, inputs)) {
    out[v.name] = v.same_as.empty() ? ranges_.at(v.name) : out.at(v.same_as);
  }
  return out;
}

TensorHook ActivationRangeRecorder::Hook() {
  return [this](const Node*, const std::string& name, Tensor& value) {
    if (watched_.contains(name)) ranges_[name].Update(value);
    return absl::OkStatus();
  };
}

void ChooseU8Params(const TensorRange& range, float* scale,
                    int32_t* zero_point) {
  const float lo = std::min(range.min, 0.f);
  const float hi = std::max(range.max, 0.f);
  *scale = hi > lo ? std::max((hi - lo) / 255.f, kMinQuantScale) : 1.f;
  *zero_point = static_cast<int32_t>(
      std::clamp(std::nearbyint(-lo / *scale), 0.f, 255.f));
}

RangeMap PlanRanges(const std::map<std::string, QuantParams>& activations) {
  RangeMap ranges;
  for (const auto& [name, p] : activations) {
    const float s = p.scales.empty() ? 1.f : p.scales[0];
    const int32_t zp = p.zero_points.empty() ? 0 : p.zero_points[0];
    ranges[name] = TensorRange{(p.qmin - zp) * s, (p.qmax - zp) * s};
  }
  return ranges;
}

namespace {

// Symmetric per-channel quantization of weights along `axis` (0: rows are
// channels, as in Conv [OC, ...] and Gemm transB [N, K]; 1: columns, as in
// MatMul [K, N]).
void QuantizeWeights(const Tensor& w, int axis, int32_t qmax, Tensor* q,
                     Tensor* scales) {
  const int64_t channels = w.dim(axis);
  const int64_t inner =
      axis == 0 ? w.num_elements() / std::max<int64_t>(channels, 1) : 1;
  std::vector<float> max_abs(channels, 0.f);
  const float* src = w.data<float>();
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t c = axis == 0 ? i / inner : i % channels;
    max_abs[c] = std::max(max_abs[c], std::fabs(src[i]));
  }
  *scales = Tensor(DataType::kFloat32, {channels});
  float* s = scales->mutable_data<float>();
  for (int64_t c = 0; c < channels; ++c) {
    s[c] = max_abs[c] > 0 ? std::max(max_abs[c] / qmax, kMinQuantScale) : 1.f;
  }
  *q = Tensor(DataType::kInt8, w.shape());
  int8_t* dst = q->mutable_data<int8_t>();
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t c = axis == 0 ? i / inner : i % channels;
    const float v = std::nearbyint(src[i] / s[c]);
    dst[i] = static_cast<int8_t>(std::clamp<float>(v, -qmax, qmax));
  }
}

// `prefix`_scale and `prefix`_zero_point, the attributes quantd's int8 ops
// read an activation's u8 parameters from (x: input, y: chained output).
void SetQuantParams(Node& node, const std::string& prefix, float scale,
                    int64_t zero_point) {
  Attribute scale_attr;
  scale_attr.type = Attribute::Type::kFloat;
  scale_attr.f = scale;
  node.attributes.Set(prefix + "_scale", scale_attr);
  Attribute zp_attr;
  zp_attr.i = zero_point;
  node.attributes.Set(prefix + "_zero_point", zp_attr);
}

// Replaces the float weight of `node` with per-channel int8 values and
// scales; returns the quantized node that reads them, with the input's u8
// parameters (or dynamic_x) as attributes.
Node QuantizedNode(Graph& graph, const Node& node, int32_t qmax,
                   bool dynamic_activations, float x_scale, int32_t x_zp) {
  const Tensor& w = *graph.FindInitializer(node.input(1));
  const bool is_conv = node.op_type == "Conv";
  const bool trans_b =
      node.op_type == "Gemm" && node.attributes.GetInt("transB", 0) != 0;
  Tensor wq, w_scale;
  QuantizeWeights(w, is_conv || trans_b ? 0 : 1, qmax, &wq, &w_scale);
  const std::string wq_name =
      graph.UniqueName(absl::StrCat(node.input(1), "_s8"));
  graph.initializers[wq_name] = std::move(wq);
  const std::string ws_name =
      graph.UniqueName(absl::StrCat(node.input(1), "_scale"));
  graph.initializers[ws_name] = std::move(w_scale);

  Node q;
  q.name = node.name;
  q.domain = kQuantdDomain;
  q.op_type = is_conv ? "QuantizedConv" : "QuantizedMatMul";
  q.inputs = {node.input(0), wq_name, ws_name};
  if (node.has_input(2)) q.inputs.push_back(node.input(2));
  q.outputs = node.outputs;
  if (is_conv) {
    q.attributes = node.attributes;
  } else {
    Attribute tb;
    tb.i = trans_b ? 1 : 0;
    q.attributes.Set("trans_b", tb);
  }
  if (dynamic_activations) {
    Attribute dynamic;
    dynamic.i = 1;
    q.attributes.Set("dynamic_x", dynamic);
  } else {
    SetQuantParams(q, "x", x_scale, x_zp);
  }
  return q;
}

// Relu nodes that fold into the quantized node producing their input, when
// that node is the input's only reader and the input is not a graph output.
class ReluFusion {
 public:
  explicit ReluFusion(const Graph& graph) : consumers_(ConsumerCounts(graph)) {
    for (const ValueInfo& o : graph.outputs) graph_outputs_.insert(o.name);
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      const Node& n = graph.nodes[i];
      if (n.op_type == "Relu" && n.domain.empty()) relu_of_[n.input(0)] = i;
    }
  }

  // Makes `q`, which writes `out`, apply the Relu that reads `out` and write
  // the Relu's output instead; returns whether it did.
  bool Fuse(const Graph& graph, const std::string& out, Node& q) {
    auto relu = relu_of_.find(out);
    if (relu == relu_of_.end() || consumers_[out] != 1 ||
        graph_outputs_.contains(out)) {
      return false;
    }
    Attribute fuse;
    fuse.i = 1;
    q.attributes.Set("fused_relu", fuse);
    q.outputs[0] = graph.nodes[relu->second].outputs[0];
    fused_.insert(relu->second);
    return true;
  }

  void RemoveFused(Graph& graph) const {
    if (fused_.empty()) return;
    std::vector<Node> kept;
    for (size_t i = 0; i < graph.nodes.size(); ++i) {
      if (!fused_.contains(i)) kept.push_back(std::move(graph.nodes[i]));
    }
    graph.nodes = std::move(kept);
  }

 private:
  absl::flat_hash_map<std::string, int> consumers_;
  absl::flat_hash_set<std::string> graph_outputs_;
  absl::flat_hash_map<std::string, size_t> relu_of_;  // input name -> relu
  absl::flat_hash_set<size_t> fused_;  // Relu nodes to drop, by index
};

}  // namespace

absl::Status LowerToInt8(Graph& graph, const RangeMap& ranges,
                         const Int8LoweringOptions& options,
                         Int8LoweringStats* stats) {
  Int8LoweringStats local;
  const int32_t qmax = options.weight_qmax > 0 ? options.weight_qmax
                                               : MaxExactInt8WeightMagnitude();
  if (qmax < 1 || qmax > 127) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_qmax must be in [1, 127], got ", qmax));
  }
  ReluFusion relus(graph);
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    Node& node = graph.nodes[i];
    if (!IsInt8Quantizable(graph, node) ||
        options.excluded_nodes.contains(node.name)) {
      continue;
    }
    float x_scale = 1.f;
    int32_t x_zp = 0;
    if (!options.dynamic_activations) {
      auto range = ranges.find(node.input(0));
      if (range == ranges.end() || !range->second.valid()) {
        ++local.skipped_without_range;
        continue;
      }
      ChooseU8Params(range->second, &x_scale, &x_zp);
    }
    Node q = QuantizedNode(graph, node, qmax, options.dynamic_activations,
                           x_scale, x_zp);
    if (node.op_type == "Conv") {
      ++local.convs;
    } else {
      ++local.matmuls;
    }
    if (options.fuse_relu && relus.Fuse(graph, node.outputs[0], q)) {
      ++local.relus_fused;
    }
    node = std::move(q);
  }
  relus.RemoveFused(graph);
  if (options.chain_quantized_outputs) {
    LowerInt8Regions(graph, ranges, local);
  }
  RemoveDeadNodes(graph);  // drops the float weights nothing reads any more
  if (stats != nullptr) *stats = local;
  return absl::OkStatus();
}

}  // namespace quantd
