// Small hand-built graphs shared by engine tests (include only from
// *_test.cc).
//
//   Graph g = ReluAddGraph();   // y = Relu(x) + x, x: f32[N, 3]
//   Graph l = LinearLayersGraph();  // LayerNorm -> q, k -> Relu -> out
#ifndef QUANTD_ENGINE_TESTING_TEST_GRAPHS_H_
#define QUANTD_ENGINE_TESTING_TEST_GRAPHS_H_

#include <random>
#include <string>
#include <vector>

#include "engine/ir/graph.h"

namespace quantd {

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

}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_TEST_GRAPHS_H_
