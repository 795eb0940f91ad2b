// Test support for op kernels: runs one node through the real Executor, so a
// test exercises kernel creation (attribute parsing, opset handling) and
// Compute exactly as a loaded model would. Free of GoogleTest so that it can
// live in quantd_engine.
//
//   absl::StatusOr<std::vector<Tensor>> out = RunSingleOp(
//       "Slice", {x, Int64Vector({1}), Int64Vector({3})});
//   ASSERT_TRUE(out.ok()) << out.status();
//   EXPECT_EQ((*out)[0].shape(), Shape({2, 4}));
//
//   // Attributes, an older opset, two outputs:
//   out = RunSingleOp("Split", {x}, Attrs({{"axis", IntAttr(1)},
//                                          {"split", IntsAttr({2, 3})}}),
//                     /*opset=*/11, /*num_outputs=*/2);
//
//   // Omitted optional inputs are undefined tensors (Tensor()); inputs can
//   // be made initializers, and any registry used:
//   SingleOpOptions options;
//   options.initializer_inputs = {1};
//   options.registry = &my_registry;
//   out = RunSingleOp("Conv", {x, w, Tensor(), b}, attrs, options);
#ifndef QUANTD_ENGINE_TESTING_OP_TEST_UTIL_H_
#define QUANTD_ENGINE_TESTING_OP_TEST_UTIL_H_

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "engine/ir/graph.h"
#include "engine/runtime/op_registry.h"
#include "kernels/tensor.h"

namespace quantd {

struct SingleOpOptions {
  int64_t opset = 17;
  int num_outputs = 1;
  // Indices of inputs that become graph initializers (visible to kernel
  // factories through OpKernelInfo::graph) instead of fed graph inputs.
  std::vector<int> initializer_inputs;
  // nullptr: DefaultOpRegistry().
  const OpRegistry* registry = nullptr;
  std::string domain;  // "" for the default ONNX domain
};

// Builds a graph holding one `op_type` node with these inputs (an undefined
// Tensor marks an omitted optional input) and attributes, runs it once and
// returns its outputs. Errors from kernel creation or Compute come back as
// the executor reports them ("Slice node 'test_Slice': ...").
absl::StatusOr<std::vector<Tensor>> RunSingleOp(
    absl::string_view op_type, const std::vector<Tensor>& inputs,
    const AttributeMap& attributes, const SingleOpOptions& options);
absl::StatusOr<std::vector<Tensor>> RunSingleOp(
    absl::string_view op_type, const std::vector<Tensor>& inputs,
    const AttributeMap& attributes = {}, int64_t opset = 17,
    int num_outputs = 1);

// Attribute builders.
Attribute IntAttr(int64_t v);
Attribute FloatAttr(float v);
Attribute StringAttr(std::string v);
Attribute IntsAttr(std::vector<int64_t> v);
Attribute FloatsAttr(std::vector<float> v);
Attribute TensorAttr(Tensor v);
AttributeMap Attrs(std::vector<std::pair<std::string, Attribute>> attrs);

}  // namespace quantd

#endif  // QUANTD_ENGINE_TESTING_OP_TEST_UTIL_H_
