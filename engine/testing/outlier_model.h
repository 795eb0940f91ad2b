// Gives a transformer activation outlier channels without changing what it
// computes, for the tests and benchmarks of methods aimed at outliers
// (SmoothQuant, rotations). The test fixtures were trained too briefly to
// develop the few large channels real LLMs have (LLM.int8(), SmoothQuant:
// a handful of hidden dimensions 10-100x the rest), so on them those
// methods show no effect.
//
// The injection is SmoothQuant's transform run backwards: for each group of
// MatMul/Gemm layers reading one LayerNormalization's output, `channels`
// of its hidden dimensions get their LayerNorm gain and bias multiplied by
// `factor` and the matching weight rows divided by it. In exact arithmetic
// the model is the same function; in float32 it differs by rounding only.
// Header-only, tests and benchmarks only.
//
//   absl::StatusOr<int> groups = outliers::WriteModelWithOutliers(
//       "testdata/tiny_gpt/model.onnx", "/tmp/outlier_gpt.onnx", 30.f, 4);
#ifndef QUANTD_ENGINE_TESTING_OUTLIER_MODEL_H_
#define QUANTD_ENGINE_TESTING_OUTLIER_MODEL_H_

#include <fstream>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/onnx/model_loader.h"
#include "engine/onnx/onnx_convert.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/passes/head_rotation.h"
#include "engine/quantization/input_channel_scaling.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/op_registry.h"

namespace quantd {
namespace outliers {

// Writes `in` with outlier channels to `out`; returns how many
// LayerNorm-fed groups got them (0 is an error: nothing to inject into).
// Channel j of a group with C channels is an outlier when
// j % (C / channels) == 1, spreading them over the hidden dimension.
inline absl::StatusOr<int> WriteModelWithOutliers(const std::string& in,
                                                  const std::string& out,
                                                  float factor, int channels) {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(in);
  if (!m.ok()) return m.status();
  Graph& graph = m->graph;
  absl::StatusOr<std::vector<WeightSlot>> slots =
      FindQuantizableWeights(graph, {});
  if (!slots.ok()) return slots.status();
  int groups = 0;
  for (const ScalingGroup& g : GroupLinearLayersByInput(graph, *slots)) {
    bool from_layer_norm = false;
    for (const Node& n : graph.nodes) {
      for (const std::string& o : n.outputs) {
        from_layer_norm |= o == g.input && n.op_type == "LayerNormalization";
      }
    }
    if (!from_layer_norm) continue;  // attention output, MLP down: no LN
    const Tensor* w = graph.FindInitializer(g.slots[0].initializer);
    if (w == nullptr) continue;
    const int64_t c = w->shape()[g.slots[0].input_axis];
    if (c < channels * 2) continue;
    std::vector<float> scales(c, 1.f);
    for (int64_t j = 0; j < c; ++j) {
      if (j % (c / channels) == 1) scales[j] = 1.f / factor;
    }
    // ApplyInputChannelScaling multiplies the weights' rows by `scales`
    // and divides the LayerNorm's gain and bias by them.
    absl::StatusOr<std::string> how =
        ApplyInputChannelScaling(graph, g, scales);
    if (!how.ok()) return how.status();
    if (!absl::StartsWith(*how, "folded into LayerNormalization")) {
      return absl::FailedPreconditionError(absl::StrCat(
          "'", g.input, "' is not a LayerNorm output only the group reads (",
          *how, "): the injected model would carry an extra Mul"));
    }
    ++groups;
  }
  if (groups == 0) {
    return absl::FailedPreconditionError(
        "no LayerNorm-fed MatMul group to give outliers to");
  }
  const onnx::ModelProto proto =
      GraphToModelProto(graph, m->ir_version, "quantd outlier injection");
  std::ofstream f(out, std::ios::binary);
  if (!proto.SerializeToOstream(&f)) {
    return absl::InternalError(absl::StrCat("cannot write ", out));
  }
  return groups;
}

// Writes `in` with one outlier channel per attention head in the output
// projections' inputs: for every value/output pair (head_rotation.h),
// channel 1 of each head gets its value-projection column and bias times
// `factor` and its output-projection row divided by it. The same function;
// what the per-head rotation is for. Returns the pairs changed.
inline absl::StatusOr<int> WriteModelWithHeadOutliers(const std::string& in,
                                                      const std::string& out,
                                                      float factor) {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(in);
  if (!m.ok()) return m.status();
  Graph& graph = m->graph;
  // Constant folding turns the exporter's Constant nodes into the
  // initializers the tracer reads the heads' [H, dh] from.
  absl::Status prepared = PrepareGraph(graph, DefaultOpRegistry(), nullptr);
  if (!prepared.ok()) return prepared;
  const HeadPairs found = FindValueOutputPairs(graph);
  if (found.pairs.empty()) {
    return absl::FailedPreconditionError(
        "no attention value/output pair to give outliers to");
  }
  auto scaled = [&](size_t node, int input) -> Tensor& {
    // A fresh tensor: initializers share storage with their copies.
    Tensor& t = graph.initializers.at(graph.nodes[node].input(input));
    t = Tensor::FromVector<float>(t.shape(), t.ToVector<float>());
    return t;
  };
  for (const HeadPair& p : found.pairs) {
    float* wv = scaled(p.value, 1).mutable_data<float>();
    float* wo = scaled(p.output, 1).mutable_data<float>();
    float* bv =
        p.bias.has_value()
            ? scaled(p.bias->first, p.bias->second).mutable_data<float>()
            : nullptr;
    const Tensor& v = *graph.FindInitializer(graph.nodes[p.value].input(1));
    const int64_t d = v.dim(1), rows = v.dim(0);
    const int64_t cols =
        graph.FindInitializer(graph.nodes[p.output].input(1))->dim(1);
    for (int64_t j = 1; j < p.width; j += p.head_dim) {
      const int64_t column = p.column_offset + j;  // of a fused projection
      for (int64_t r = 0; r < rows; ++r) wv[r * d + column] *= factor;
      for (int64_t c = 0; c < cols; ++c) wo[j * cols + c] /= factor;
      if (bv != nullptr) bv[column] *= factor;
    }
  }
  const onnx::ModelProto proto =
      GraphToModelProto(graph, m->ir_version, "quantd head outlier injection");
  std::ofstream f(out, std::ios::binary);
  if (!proto.SerializeToOstream(&f)) {
    return absl::InternalError(absl::StrCat("cannot write ", out));
  }
  return static_cast<int>(found.pairs.size());
}

}  // namespace outliers
}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_OUTLIER_MODEL_H_
