#include "engine/testing/op_test_util.h"

#include <algorithm>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/executor.h"

namespace quantd {

absl::StatusOr<std::vector<Tensor>> RunSingleOp(
    absl::string_view op_type, const std::vector<Tensor>& inputs,
    const AttributeMap& attributes, const SingleOpOptions& options) {
  Graph graph;
  graph.name = absl::StrCat("test_", op_type);
  graph.opset = options.opset;
  Node node;
  node.name = absl::StrCat("test_", op_type);
  node.op_type = std::string(op_type);
  node.domain = options.domain;
  node.attributes = attributes;
  TensorMap feeds;
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      node.inputs.push_back("");
      continue;
    }
    const std::string name = absl::StrCat("x", i);
    node.inputs.push_back(name);
    const bool initializer =
        std::find(options.initializer_inputs.begin(),
                  options.initializer_inputs.end(),
                  static_cast<int>(i)) != options.initializer_inputs.end();
    if (initializer) {
      graph.initializers[name] = inputs[i];
    } else {
      ValueInfo info;
      info.name = name;
      info.dtype = inputs[i].dtype();
      graph.inputs.push_back(std::move(info));
      feeds[name] = inputs[i];
    }
  }
  for (int i = 0; i < options.num_outputs; ++i) {
    const std::string name = absl::StrCat("y", i);
    node.outputs.push_back(name);
    ValueInfo info;
    info.name = name;
    graph.outputs.push_back(std::move(info));
  }
  graph.nodes.push_back(std::move(node));
  const OpRegistry& registry =
      options.registry != nullptr ? *options.registry : DefaultOpRegistry();
  absl::StatusOr<std::unique_ptr<Executor>> executor =
      Executor::Create(std::move(graph), registry);
  if (!executor.ok()) return executor.status();
  return (*executor)->RunOutputs(feeds);
}

absl::StatusOr<std::vector<Tensor>> RunSingleOp(
    absl::string_view op_type, const std::vector<Tensor>& inputs,
    const AttributeMap& attributes, int64_t opset, int num_outputs) {
  SingleOpOptions options;
  options.opset = opset;
  options.num_outputs = num_outputs;
  return RunSingleOp(op_type, inputs, attributes, options);
}

Attribute IntAttr(int64_t v) {
  Attribute a;
  a.type = Attribute::Type::kInt;
  a.i = v;
  return a;
}

Attribute FloatAttr(float v) {
  Attribute a;
  a.type = Attribute::Type::kFloat;
  a.f = v;
  return a;
}

Attribute StringAttr(std::string v) {
  Attribute a;
  a.type = Attribute::Type::kString;
  a.s = std::move(v);
  return a;
}

Attribute IntsAttr(std::vector<int64_t> v) {
  Attribute a;
  a.type = Attribute::Type::kInts;
  a.ints = std::move(v);
  return a;
}

Attribute FloatsAttr(std::vector<float> v) {
  Attribute a;
  a.type = Attribute::Type::kFloats;
  a.floats = std::move(v);
  return a;
}

Attribute TensorAttr(Tensor v) {
  Attribute a;
  a.type = Attribute::Type::kTensor;
  a.t = std::move(v);
  return a;
}

AttributeMap Attrs(std::vector<std::pair<std::string, Attribute>> attrs) {
  AttributeMap map;
  for (auto& [name, a] : attrs) map.Set(name, std::move(a));
  return map;
}

}  // namespace quantd
