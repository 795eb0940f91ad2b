// Small hand-built graphs shared by engine tests (include only from
// *_test.cc).
//
//   Graph g = ReluAddGraph();   // y = Relu(x) + x, x: f32[N, 3]
#ifndef QUANTD_ENGINE_TEST_GRAPHS_H_
#define QUANTD_ENGINE_TEST_GRAPHS_H_

#include "engine/graph.h"

namespace quantd {

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

}  // namespace quantd

#endif  // QUANTD_ENGINE_TEST_GRAPHS_H_
