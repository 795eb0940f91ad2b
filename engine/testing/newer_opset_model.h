// ONNX models at opsets ONNX 1.12 does not know (18 and later), written
// proto by proto as a newer exporter would write them, for the tests of
// quantd's own lowering (engine/onnx/opset_adapters.h). Header-only, tests
// only.
//
//   onnx::ModelProto m = newer_opset::MlpBlock(20);
//   std::string bytes = newer_opset::Serialize(m);
#ifndef QUANTD_ENGINE_TESTING_NEWER_OPSET_MODEL_H_
#define QUANTD_ENGINE_TESTING_NEWER_OPSET_MODEL_H_

#include <random>
#include <string>
#include <vector>

#include "onnx/onnx_pb.h"

namespace quantd {
namespace newer_opset {

inline onnx::NodeProto* AddNode(onnx::GraphProto& g, const std::string& op,
                                const std::vector<std::string>& inputs,
                                const std::vector<std::string>& outputs) {
  onnx::NodeProto* n = g.add_node();
  n->set_op_type(op);
  n->set_name(outputs[0] + "_node");
  for (const std::string& in : inputs) n->add_input(in);
  for (const std::string& out : outputs) n->add_output(out);
  return n;
}

inline void AddIntAttr(onnx::NodeProto* n, const std::string& name, int64_t v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::INT);
  a->set_i(v);
}

inline void AddStringAttr(onnx::NodeProto* n, const std::string& name,
                          const std::string& v) {
  onnx::AttributeProto* a = n->add_attribute();
  a->set_name(name);
  a->set_type(onnx::AttributeProto::STRING);
  a->set_s(v);
}

inline void AddInts(onnx::GraphProto& g, const std::string& name,
                    const std::vector<int64_t>& v) {
  onnx::TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::INT64);
  t->add_dims(static_cast<int64_t>(v.size()));
  for (int64_t x : v) t->add_int64_data(x);
}

// f32 initializer of `shape` with values N(0, std), seeded.
inline void AddRandom(onnx::GraphProto& g, const std::string& name,
                      const std::vector<int64_t>& shape, float std,
                      uint32_t seed) {
  onnx::TensorProto* t = g.add_initializer();
  t->set_name(name);
  t->set_data_type(onnx::TensorProto::FLOAT);
  int64_t n = 1;
  for (int64_t d : shape) {
    t->add_dims(d);
    n *= d;
  }
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.f, std);
  for (int64_t i = 0; i < n; ++i) t->add_float_data(dist(rng));
}

inline void AddFloatInfo(onnx::ValueInfoProto* v, const std::string& name,
                         const std::vector<int64_t>& shape) {
  v->set_name(name);
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(onnx::TensorProto::FLOAT);
  for (int64_t d : shape) {
    auto* dim = tt->mutable_shape()->add_dim();
    if (d < 0) {
      dim->set_dim_param("N");
    } else {
      dim->set_dim_value(d);
    }
  }
}

// A transformer MLP block at `opset` (>= 18; >= 20 for Gelu):
//   h = Gelu(x W1 + b1) W2 + x                         x: f32[N, 16]
//   n = (h - mean(h)) / sqrt(mean((h - mean)^2) + 1e-5)  ReduceMean, axes
//                                                          as an input
//   a, b = Split(n, axis 1, num_outputs 2)
//   y = Softmax(Concat(b, a) W3)                       y: f32[N, 10]
// With opset < 20 the activation is Relu instead of Gelu.
inline onnx::ModelProto MlpBlock(int64_t opset) {
  onnx::ModelProto m;
  m.set_ir_version(opset >= 21 ? 10 : 8);
  m.set_producer_name("quantd-test");
  onnx::OperatorSetIdProto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  onnx::GraphProto& g = *m.mutable_graph();
  g.set_name("mlp_block");
  AddFloatInfo(g.add_input(), "x", {-1, 16});
  AddFloatInfo(g.add_output(), "y", {-1, 10});
  AddRandom(g, "w1", {16, 32}, 0.3f, 1);
  AddRandom(g, "b1", {32}, 0.1f, 2);
  AddRandom(g, "w2", {32, 16}, 0.2f, 3);
  AddRandom(g, "w3", {16, 10}, 0.4f, 4);
  AddInts(g, "last_axis", {-1});
  onnx::TensorProto* eps = g.add_initializer();
  eps->set_name("eps");
  eps->set_data_type(onnx::TensorProto::FLOAT);
  eps->add_float_data(1e-5f);
  AddNode(g, "MatMul", {"x", "w1"}, {"xw1"});
  AddNode(g, "Add", {"xw1", "b1"}, {"pre"});
  if (opset >= 20) {
    AddStringAttr(AddNode(g, "Gelu", {"pre"}, {"act"}), "approximate", "none");
  } else {
    AddNode(g, "Relu", {"pre"}, {"act"});
  }
  AddNode(g, "MatMul", {"act", "w2"}, {"proj"});
  AddNode(g, "Add", {"proj", "x"}, {"h"});
  AddIntAttr(AddNode(g, "ReduceMean", {"h", "last_axis"}, {"mean"}), "keepdims",
             1);
  AddNode(g, "Sub", {"h", "mean"}, {"centered"});
  AddNode(g, "Mul", {"centered", "centered"}, {"sq"});
  AddIntAttr(AddNode(g, "ReduceMean", {"sq", "last_axis"}, {"var"}), "keepdims",
             1);
  AddNode(g, "Add", {"var", "eps"}, {"var_eps"});
  AddNode(g, "Sqrt", {"var_eps"}, {"std"});
  AddNode(g, "Div", {"centered", "std"}, {"normed"});
  onnx::NodeProto* split = AddNode(g, "Split", {"normed"}, {"a", "b"});
  AddIntAttr(split, "axis", 1);
  AddIntAttr(split, "num_outputs", 2);
  AddIntAttr(AddNode(g, "Concat", {"b", "a"}, {"swapped"}), "axis", 1);
  AddNode(g, "MatMul", {"swapped", "w3"}, {"logits"});
  AddIntAttr(AddNode(g, "Softmax", {"logits"}, {"y"}), "axis", -1);
  return m;
}

inline std::string Serialize(const onnx::ModelProto& m) {
  std::string s;
  m.SerializeToString(&s);
  return s;
}

}  // namespace newer_opset
}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_NEWER_OPSET_MODEL_H_
