#include "engine/pipeline/layer_local_error.h"

#include <cmath>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "engine/evaluation/pipeline_evaluation.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

struct ErrorSums {
  double signal = 0;  // sum of float output^2
  double noise = 0;   // sum of (float - quantized)^2
};

// The layer alone: `input` fed, its other inputs its initializers.
absl::StatusOr<Graph> OneNodeGraph(const Graph& graph, const Node& node,
                                   const std::string& input) {
  Graph g;
  g.name = node.name;
  g.opset = graph.opset;
  ValueInfo in;
  in.name = input;
  in.dtype = DataType::kFloat32;
  g.inputs = {in};
  for (const std::string& name : node.inputs) {
    if (name.empty() || name == input) continue;
    const Tensor* t = graph.FindInitializer(name);
    if (t == nullptr) {
      return absl::InternalError(absl::StrCat("layer '", node.name, "' reads '",
                                              name, "', not a constant"));
    }
    g.initializers[name] = *t;
  }
  ValueInfo out;
  out.name = node.outputs[0];
  g.outputs = {out};
  g.nodes = {node};
  return g;
}

absl::StatusOr<Tensor> RunOne(Graph g, const std::string& input,
                              const Tensor& x) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> ex,
                          Executor::Create(std::move(g)));
  QUANTD_ASSIGN_OR_RETURN(std::vector<Tensor> out,
                          ex->RunOutputs({{input, x}}));
  return std::move(out[0]);
}

// What the layer computes with once quantized.
absl::StatusOr<Graph> QuantizedLayer(Graph g, const Graph& graph,
                                     const WeightSlot& slot,
                                     const RoundedLayer& r) {
  if (r.codes.has_value()) {
    QUANTD_ASSIGN_OR_RETURN(g.initializers[slot.initializer],
                            DequantizeWeightCodes(*r.codes, r.params));
  } else {
    QUANTD_ASSIGN_OR_RETURN(
        g.initializers[slot.initializer],
        FakeQuantizeWeights(*graph.FindInitializer(slot.initializer),
                            r.params));
  }
  if (r.bias.has_value()) g.initializers[r.bias_name] = *r.bias;
  return g;
}

}  // namespace

absl::StatusOr<std::map<std::string, double>> LocalLayerSqnr(
    const Graph& graph, LayerRounder& rounder, LayerPrecision precision,
    const std::map<std::string, QuantParams>& activation_params, Dataset& data,
    const std::atomic<bool>* cancelled) {
  std::map<std::string, const Node*> node_of;
  for (const Node& n : graph.nodes) node_of[n.name] = &n;
  std::map<std::string, std::vector<const WeightSlot*>> readers;
  for (const WeightSlot& s : rounder.slots()) {
    readers[rounder.InputOf(s)].push_back(&s);
  }
  std::map<std::string, ErrorSums> sums;
  auto compare = [&](const WeightSlot& slot, const std::string& input,
                     const Tensor& x) -> absl::Status {
    QUANTD_ASSIGN_OR_RETURN(const RoundedLayer* r,
                            rounder.Round(slot, precision));
    QUANTD_ASSIGN_OR_RETURN(Graph layer,
                            OneNodeGraph(graph, *node_of.at(slot.node), input));
    QUANTD_ASSIGN_OR_RETURN(Graph quantized,
                            QuantizedLayer(layer, graph, slot, *r));
    Tensor xq = x;
    if (auto a = activation_params.find(input); a != activation_params.end()) {
      QUANTD_ASSIGN_OR_RETURN(xq, FakeQuantizeWeights(x, a->second));
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor f, RunOne(std::move(layer), input, x));
    QUANTD_ASSIGN_OR_RETURN(Tensor q, RunOne(std::move(quantized), input, xq));
    ErrorSums& s = sums[slot.node];
    const float* fp = f.data<float>();
    const float* qp = q.data<float>();
    for (int64_t i = 0; i < f.num_elements(); ++i) {
      s.signal += double(fp[i]) * fp[i];
      s.noise += double(fp[i] - qp[i]) * (fp[i] - qp[i]);
    }
    return absl::OkStatus();
  };
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<Executor> model,
                          Executor::Create(graph));
  RunOptions run;
  run.cancelled = cancelled;
  run.tensor_hook = [&](const Node*, const std::string& name,
                        Tensor& value) -> absl::Status {
    auto it = readers.find(name);
    if (it == readers.end() || value.dtype() != DataType::kFloat32) {
      return absl::OkStatus();
    }
    for (const WeightSlot* s : it->second) {
      QUANTD_RETURN_IF_ERROR(compare(*s, name, value));
    }
    return absl::OkStatus();
  };
  QUANTD_RETURN_IF_ERROR(
      ForEachBatch(data, "sensitivity", nullptr, cancelled,
                   [&](const DataBatch& batch) {
                     return model->Run(batch.feeds, run).status();
                   })
          .status());
  std::map<std::string, double> out;
  for (const auto& [node, s] : sums) {
    out[node] = s.noise > 0 ? 10 * std::log10(s.signal / s.noise)
                            : std::numeric_limits<double>::infinity();
  }
  return out;
}

}  // namespace quantd
