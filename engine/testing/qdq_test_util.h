// Test helpers shared by qdq_export_test.cc and qdq_ort_test.cc: an
// independent fake-quant reference (plain loops, not kernels/quantize.h),
// the plans the tests export, and fixture loading. Header-only so that the
// library never links it.
#ifndef QUANTD_ENGINE_TESTING_QDQ_TEST_UTIL_H_
#define QUANTD_ENGINE_TESTING_QDQ_TEST_UTIL_H_

#include <algorithm>
#include <cmath>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "engine/data/array_file.h"
#include "engine/ir/graph.h"
#include "engine/ir/quantization_plan.h"
#include "engine/onnx/model_loader.h"
#include "engine/passes/graph_cleanup.h"
#include "engine/passes/int8_lowering.h"
#include "engine/runtime/executor.h"

namespace quantd {
namespace qdq_test {

inline std::string TestdataPath(const std::string& rel) {
  return std::string(QUANTD_TESTDATA_DIR) + "/" + rel;
}

// Index of the scale that element `i` of a tensor of `shape` uses.
inline int64_t ReferenceParamIndex(const QuantParams& p, const Shape& shape,
                                   int64_t i) {
  if (p.axis < 0) return 0;
  int64_t inner = 1;
  for (size_t d = p.axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t dim = shape[p.axis];
  const int64_t outer = i / (inner * dim);
  const int64_t a = (i / inner) % dim;
  const int64_t in = i % inner;
  if (p.group_size == 0) return a;
  const int64_t groups = dim / p.group_size;
  return (outer * groups + a / p.group_size) * inner + in;
}

// quantize-then-dequantize, ties to even (std::nearbyint in the default
// rounding mode).
inline Tensor FakeQuantize(const Tensor& x, const QuantParams& p) {
  Tensor y(DataType::kFloat32, x.shape());
  const float* src = x.data<float>();
  float* dst = y.mutable_data<float>();
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    const int64_t k = ReferenceParamIndex(p, x.shape(), i);
    const float s = p.scales[k];
    const int32_t z = p.zero_points.empty() ? 0 : p.zero_points[k];
    float q = std::nearbyint(src[i] / s) + static_cast<float>(z);
    q = std::clamp(q, static_cast<float>(p.qmin), static_cast<float>(p.qmax));
    dst[i] = (q - static_cast<float>(z)) * s;
  }
  return y;
}

// Runs the float graph as the plan simulates it: weights (or their updated
// values) fake-quantized, activations fake-quantized as they are produced.
// Nodes in plan.float_nodes read float weights.
inline absl::StatusOr<std::vector<Tensor>> RunFakeQuant(
    const Graph& float_graph, const QuantizationPlan& plan,
    const TensorMap& feeds) {
  Graph g = float_graph;
  for (const auto& [name, t] : plan.updated_initializers) {
    g.initializers[name] = t;
  }
  for (const auto& [name, p] : plan.weights) {
    const std::string fq = g.UniqueName(absl::StrCat(name, "_fq"));
    g.initializers[fq] = FakeQuantize(g.initializers.at(name), p);
    for (Node& n : g.nodes) {
      if (plan.float_nodes.contains(n.name)) continue;
      for (size_t s = 0; s < n.inputs.size(); ++s) {
        const bool bias =
            s == 2 && (n.op_type == "Conv" || n.op_type == "Gemm");
        if (n.inputs[s] == name && !bias) n.inputs[s] = fq;
      }
    }
  }
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(g);
  if (!ex.ok()) return ex.status();
  RunOptions opts;
  opts.tensor_hook = [&plan](const Node*, const std::string& name,
                             Tensor& value) {
    auto it = plan.activations.find(name);
    if (it != plan.activations.end()) value = FakeQuantize(value, it->second);
    return absl::OkStatus();
  };
  absl::StatusOr<RunResult> r = (*ex)->Run(feeds, opts);
  if (!r.ok()) return r.status();
  return std::move(r->outputs);
}

// uint8 per-tensor parameters with the given scale and zero point.
inline QuantParams U8(float scale, int32_t zp) {
  QuantParams p;
  p.type = QuantType::kUInt8;
  p.qmin = 0;
  p.qmax = 255;
  p.scales = {scale};
  p.zero_points = {zp};
  return p;
}

inline QuantParams U8PerTensor(const TensorRange& range) {
  QuantParams p;
  p.type = QuantType::kUInt8;
  p.qmin = 0;
  p.qmax = 255;
  float scale;
  int32_t zp;
  ChooseU8Params(range, &scale, &zp);
  p.scales = {scale};
  p.zero_points = {zp};
  return p;
}

// Symmetric per-channel int8 parameters for w along `axis`, as
// engine/passes/int8_lowering.cc chooses them, with |q| <= qmax.
inline QuantParams S8PerChannel(const Tensor& w, int64_t axis, int32_t qmax) {
  QuantParams p;
  p.type = QuantType::kInt8;
  p.axis = axis;
  p.qmin = -qmax;
  p.qmax = qmax;
  std::vector<float> max_abs(w.dim(axis), 0.f);
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t c = ReferenceParamIndex(p, w.shape(), i);
    max_abs[c] = std::max(max_abs[c], std::fabs(w.data<float>()[i]));
  }
  for (float m : max_abs) p.scales.push_back(m > 0 ? m / qmax : 1.f);
  return p;
}

// Symmetric int4 groups of `group` along `axis`.
inline QuantParams S4PerGroup(const Tensor& w, int64_t axis, int64_t group) {
  QuantParams p;
  p.type = QuantType::kInt4;
  p.axis = axis;
  p.group_size = group;
  p.qmin = -8;
  p.qmax = 7;
  p.scales_shape = w.shape();
  p.scales_shape[axis] /= group;
  int64_t count = 1;
  for (int64_t d : p.scales_shape) count *= d;
  std::vector<float> max_abs(count, 0.f);
  for (int64_t i = 0; i < w.num_elements(); ++i) {
    const int64_t k = ReferenceParamIndex(p, w.shape(), i);
    max_abs[k] = std::max(max_abs[k], std::fabs(w.data<float>()[i]));
  }
  for (float m : max_abs) p.scales.push_back(m > 0 ? m / 7.f : 1.f);
  return p;
}

// A fixture model, prepared (BN folded), and its calibration input.
struct PreparedFixture {
  Graph graph;
  Tensor calib;  // [N, 1, 28, 28]
};

inline absl::StatusOr<PreparedFixture> LoadFixture(const std::string& model) {
  absl::StatusOr<LoadedModel> m = LoadModelFromFile(TestdataPath(model));
  if (!m.ok()) return m.status();
  PreparedFixture f;
  f.graph = std::move(m->graph);
  absl::Status s = PrepareGraph(f.graph, DefaultOpRegistry());
  if (!s.ok()) return s;
  absl::StatusOr<std::unique_ptr<ArrayFile>> calib =
      ArrayFile::Open(TestdataPath("fmnist/calib.npz"));
  if (!calib.ok()) return calib.status();
  absl::StatusOr<Tensor> x = (*calib)->ReadArray("input");
  if (!x.ok()) return x.status();
  f.calib = std::move(*x);
  return f;
}

// The plan the int8 lowering would make: u8 per-tensor activations (min-max
// over the calibration set) on the inputs of Conv/Gemm/MatMul, s8
// per-channel symmetric weights with |q| <= weight_qmax.
inline absl::StatusOr<QuantizationPlan> Int8FixturePlan(
    const Graph& graph, const Tensor& calib, const std::string& input_name,
    int32_t weight_qmax = 127) {
  absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(graph);
  if (!ex.ok()) return ex.status();
  ActivationRangeRecorder recorder(graph);
  RunOptions opts;
  opts.tensor_hook = recorder.Hook();
  absl::StatusOr<RunResult> r = (*ex)->Run({{input_name, calib}}, opts);
  if (!r.ok()) return r.status();
  QuantizationPlan plan;
  for (const auto& [name, range] : recorder.ranges()) {
    plan.activations[name] = U8PerTensor(range);
  }
  for (const Node& n : graph.nodes) {
    if (!IsInt8Quantizable(graph, n)) continue;
    const Tensor& w = *graph.FindInitializer(n.input(1));
    const bool rows =
        n.op_type == "Conv" ||
        (n.op_type == "Gemm" && n.attributes.GetInt("transB", 0) != 0);
    plan.weights[n.input(1)] = S8PerChannel(w, rows ? 0 : 1, weight_qmax);
  }
  return plan;
}

inline int64_t ArgMax(const float* row, int64_t n) {
  return std::max_element(row, row + n) - row;
}

// Fraction of rows of two [N, C] tensors whose argmax agrees.
inline double Top1Agreement(const Tensor& a, const Tensor& b) {
  const int64_t n = a.dim(0), c = a.dim(1);
  int64_t same = 0;
  for (int64_t i = 0; i < n; ++i) {
    same += ArgMax(a.data<float>() + i * c, c) ==
            ArgMax(b.data<float>() + i * c, c);
  }
  return n == 0 ? 1.0 : static_cast<double>(same) / n;
}

inline float MaxAbsDiff(const Tensor& a, const Tensor& b) {
  float m = 0;
  for (int64_t i = 0; i < a.num_elements(); ++i) {
    m = std::max(m, std::fabs(a.data<float>()[i] - b.data<float>()[i]));
  }
  return m;
}

}  // namespace qdq_test
}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_QDQ_TEST_UTIL_H_
