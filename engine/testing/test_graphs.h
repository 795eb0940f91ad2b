// Small hand-built graphs shared by engine tests (include only from
// *_test.cc).
//
//   Graph g = ReluAddGraph();   // y = Relu(x) + x, x: f32[N, 3]
//   Graph l = LinearLayersGraph();  // LayerNorm -> q, k -> Relu -> out
//   Tensor w = RandomUniform({8, 8}, /*seed=*/3);
#ifndef QUANTD_ENGINE_TESTING_TEST_GRAPHS_H_
#define QUANTD_ENGINE_TESTING_TEST_GRAPHS_H_

#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "engine/ir/graph.h"

namespace quantd {

// f32 values uniform in [lo, hi), seeded: the same tensor every run.
inline Tensor RandomUniform(Shape shape, uint32_t seed, float lo = -1.f,
                            float hi = 1.f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = dist(rng);
  return t;
}

// A node with one output.
inline Node MakeNode(const std::string& name, const std::string& op,
                     std::vector<std::string> in, std::string out) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = {std::move(out)};
  return n;
}

inline Attribute Ints(std::vector<int64_t> v) {
  Attribute a;
  a.type = Attribute::Type::kInts;
  a.ints = std::move(v);
  return a;
}

inline Attribute Float(float v) {
  Attribute a;
  a.type = Attribute::Type::kFloat;
  a.f = v;
  return a;
}

inline Attribute Int(int64_t v) {
  Attribute a;
  a.i = v;
  return a;
}

// y = Relu(x) + x with x: f32[N, 3] (N symbolic); the Relu's output is "r".
// Nodes are in topological order.
inline Graph ReluAddGraph() {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  x.has_shape = true;
  x.shape = {-1, 3};
  g.inputs = {x};
  ValueInfo y;
  y.name = "y";
  g.outputs = {y};
  Node relu;
  relu.name = "relu";
  relu.op_type = "Relu";
  relu.inputs = {"x"};
  relu.outputs = {"r"};
  Node add;
  add.name = "add";
  add.op_type = "Add";
  add.inputs = {"r", "x"};
  add.outputs = {"y"};
  g.nodes = {relu, add};
  return g;
}

// Linear layers as a transformer has them, x: f32[N, 8] -> y: f32[N, 4]:
//   h = LayerNormalization(x; "ln_gamma", "ln_beta")     node "ln"
//   q = MatMul(h, "wq" [8, 6]), k = MatMul(h, "wk" [8, 6])  nodes "q", "k"
//   r = Relu(q + k)
//   y = MatMul(r, "wo" [6, 4])                          node "out"
// Weights are seeded random normals; input channel 3 of x is given large
// LayerNorm gain so that h has an outlier channel.
inline Graph LinearLayersGraph() {
  Graph g = ReluAddGraph();
  g.inputs[0].shape = {-1, 8};
  g.outputs[0].name = "y";
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.f, 0.5f);
  auto random = [&](Shape shape) {
    Tensor t(DataType::kFloat32, shape);
    for (int64_t i = 0; i < t.num_elements(); ++i) {
      t.mutable_data<float>()[i] = normal(rng);
    }
    return t;
  };
  g.initializers["ln_gamma"] = random({8});
  g.initializers["ln_gamma"].mutable_data<float>()[3] = 12.f;
  g.initializers["ln_beta"] = random({8});
  g.initializers["wq"] = random({8, 6});
  g.initializers["wk"] = random({8, 6});
  g.initializers["wo"] = random({6, 4});
  g.nodes = {
      MakeNode("ln", "LayerNormalization", {"x", "ln_gamma", "ln_beta"}, "h"),
      MakeNode("q", "MatMul", {"h", "wq"}, "qv"),
      MakeNode("k", "MatMul", {"h", "wk"}, "kv"),
      MakeNode("qk", "Add", {"qv", "kv"}, "s"),
      MakeNode("relu", "Relu", {"s"}, "r"),
      MakeNode("out", "MatMul", {"r", "wo"}, "y")};
  return g;
}

// A small ResNet: x f32[N, 3, 16, 16] -> stem Conv -> Relu ("stem") ->
// MaxPool ("pool") -> block 1 (1x1 Conv, Relu, 3x3 Conv "b1c2" + identity
// Add "add1" -> Relu "r1") -> block 2 with a strided 1x1 downsample "down"
// (3x3 stride-2 Conv "b2c1" -> Relu -> 3x3 Conv "b2c2" + "down" -> Add
// "add2" -> Relu "r2") -> GlobalAveragePool -> Flatten -> Gemm -> logits
// [N, 10]. Random He-scaled weights; nodes in topological order.
inline Graph ResidualCnnGraph(uint32_t seed = 5) {
  Graph g;
  g.opset = 17;
  ValueInfo x;
  x.name = "x";
  x.dtype = DataType::kFloat32;
  x.has_shape = true;
  x.shape = {-1, 3, 16, 16};
  x.dim_names = {"N", "", "", ""};
  g.inputs = {x};
  ValueInfo y;
  y.name = "logits";
  y.dtype = DataType::kFloat32;
  g.outputs = {y};
  std::mt19937 rng(seed);
  auto weights = [&](const std::string& name, Shape shape) {
    int64_t fan_in = 1;
    for (size_t d = 1; d < shape.size(); ++d) fan_in *= shape[d];
    std::normal_distribution<float> dist(0.f, std::sqrt(2.f / fan_in));
    Tensor t(DataType::kFloat32, std::move(shape));
    for (float& v : t.mutable_span<float>()) v = dist(rng);
    g.initializers[name] = std::move(t);
    std::normal_distribution<float> bias(0.f, 0.05f);
    Tensor b(DataType::kFloat32, {g.initializers[name].dim(0)});
    for (float& v : b.mutable_span<float>()) v = bias(rng);
    g.initializers[name + "_b"] = std::move(b);
  };
  auto conv = [&](const std::string& name, const std::string& in, int64_t ic,
                  int64_t oc, int64_t k, int64_t stride) {
    weights(name + "_w", {oc, ic, k, k});
    Node n =
        MakeNode(name, "Conv", {in, name + "_w", name + "_w_b"}, name + "_out");
    const int64_t pad = k / 2;
    n.attributes.Set("pads", Ints({pad, pad, pad, pad}));
    n.attributes.Set("strides", Ints({stride, stride}));
    return n;
  };
  Node pool = MakeNode("pool", "MaxPool", {"stem"}, "pooled");
  pool.attributes.Set("kernel_shape", Ints({3, 3}));
  pool.attributes.Set("strides", Ints({2, 2}));
  pool.attributes.Set("pads", Ints({1, 1, 1, 1}));
  Node gemm = MakeNode("fc", "Gemm", {"flat", "fc_w", "fc_w_b"}, "logits");
  gemm.attributes.Set("transB", Int(1));
  weights("fc_w", {10, 16});
  g.nodes = {conv("stem_conv", "x", 3, 8, 3, 1),
             MakeNode("stem_relu", "Relu", {"stem_conv_out"}, "stem"),
             pool,
             conv("b1c1", "pooled", 8, 8, 1, 1),
             MakeNode("b1r", "Relu", {"b1c1_out"}, "b1h"),
             conv("b1c2", "b1h", 8, 8, 3, 1),
             MakeNode("add1", "Add", {"b1c2_out", "pooled"}, "s1"),
             MakeNode("r1_relu", "Relu", {"s1"}, "r1"),
             conv("down", "r1", 8, 16, 1, 2),
             conv("b2c1", "r1", 8, 16, 3, 2),
             MakeNode("b2r", "Relu", {"b2c1_out"}, "b2h"),
             conv("b2c2", "b2h", 16, 16, 3, 1),
             MakeNode("add2", "Add", {"b2c2_out", "down_out"}, "s2"),
             MakeNode("r2_relu", "Relu", {"s2"}, "r2"),
             MakeNode("gap", "GlobalAveragePool", {"r2"}, "g"),
             MakeNode("flatten", "Flatten", {"g"}, "flat"),
             gemm};
  return g;
}

}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_TEST_GRAPHS_H_
