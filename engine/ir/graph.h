// The engine's graph IR: what a loaded ONNX model becomes. Deliberately close
// to ONNX (nodes name their inputs and outputs by string), so that export back
// to ONNX is lossless, but free of protobuf so passes and the executor work on
// plain structs.
//
//   Graph g = ...;                       // from LoadModel
//   (engine/onnx/model_loader.h) for (const Node& n : g.nodes) ...    //
//   topologically ordered const Tensor* w = g.FindInitializer(n.inputs[1]);
#ifndef QUANTD_ENGINE_IR_GRAPH_H_
#define QUANTD_ENGINE_IR_GRAPH_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/tensor.h"

namespace quantd {

struct Attribute {
  enum class Type { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings };
  Type type = Type::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;
};

// Attributes of one node with typed, defaulted accessors. Accessors that
// return StatusOr fail with a message naming the node and attribute.
class AttributeMap {
 public:
  void Set(const std::string& name, Attribute a) { map_[name] = std::move(a); }
  bool Has(absl::string_view name) const { return map_.contains(name); }
  const Attribute* Find(absl::string_view name) const;
  void Erase(absl::string_view name) { map_.erase(std::string(name)); }

  int64_t GetInt(absl::string_view name, int64_t default_value) const;
  float GetFloat(absl::string_view name, float default_value) const;
  std::string GetString(absl::string_view name,
                        absl::string_view default_value) const;
  std::vector<int64_t> GetInts(absl::string_view name,
                               std::vector<int64_t> default_value = {}) const;
  std::vector<float> GetFloats(absl::string_view name,
                               std::vector<float> default_value = {}) const;
  const Tensor* GetTensor(absl::string_view name) const;

  const std::map<std::string, Attribute, std::less<>>& all() const {
    return map_;
  }

 private:
  // Ordered so that export writes attributes deterministically.
  std::map<std::string, Attribute, std::less<>> map_;
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;               // "" for the default ONNX domain
  std::vector<std::string> inputs;  // "" marks an omitted optional input
  std::vector<std::string> outputs;
  AttributeMap attributes;

  // The i-th input name, or "" when absent.
  const std::string& input(size_t i) const;
  bool has_input(size_t i) const { return !input(i).empty(); }
};

// A tensor's declared type and shape. Dims are -1 where unknown (symbolic or
// missing); `dim_names` keeps symbolic names ("batch") for export.
struct ValueInfo {
  std::string name;
  DataType dtype = DataType::kUndefined;
  bool has_shape = false;
  Shape shape;
  std::vector<std::string> dim_names;
};

struct Graph {
  std::string name;
  std::vector<ValueInfo> inputs;  // graph inputs that are not initializers
  std::vector<ValueInfo> outputs;
  std::vector<Node> nodes;  // topologically ordered (see TopologicalSort)
  absl::flat_hash_map<std::string, Tensor> initializers;
  // Shapes and types ONNX shape inference found for intermediate values.
  absl::flat_hash_map<std::string, ValueInfo> value_info;
  int64_t opset = 0;  // version of the default ("ai.onnx") domain

  const Tensor* FindInitializer(absl::string_view name) const;
  const ValueInfo* FindInput(absl::string_view name) const;
  // Declared or inferred info for any value (input, output or intermediate).
  const ValueInfo* FindValueInfo(absl::string_view name) const;
  // A name not yet used by any value or node, built from `base`.
  std::string UniqueName(absl::string_view base) const;
};

// Orders `graph.nodes` so that every node comes after the producers of its
// inputs, otherwise keeping the given order (a valid order is unchanged; a
// node moves only as far as its producers force it). Fails on cycles and on
// inputs that nothing produces, naming them.
absl::Status TopologicalSort(Graph& graph);

// Map from value name to the index of the node that produces it.
absl::flat_hash_map<std::string, size_t> ProducerIndex(const Graph& graph);
// Map from value name to the number of node inputs and graph outputs that
// read it.
absl::flat_hash_map<std::string, int> ConsumerCounts(const Graph& graph);

}  // namespace quantd

#endif  // QUANTD_ENGINE_IR_GRAPH_H_
