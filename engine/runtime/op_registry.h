// The op registry: maps an ONNX op type to a factory that builds one OpKernel
// per graph node. Kernels parse and validate their attributes once, at
// creation, and cache oneDNN primitives per input shape across runs.
//
//   OpRegistry& r = ...;
//   r.Register("Relu", [](const OpKernelInfo& info)
//       -> absl::StatusOr<std::unique_ptr<OpKernel>> { ... });
//   const OpRegistry& all = DefaultOpRegistry();  // every built-in op
#ifndef QUANTD_ENGINE_RUNTIME_OP_REGISTRY_H_
#define QUANTD_ENGINE_RUNTIME_OP_REGISTRY_H_

#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/ir/graph.h"
#include "kernels/tensor.h"

namespace quantd {

// Consumers the executor folds into a node (executor.h, "Fusion"): output
// = relu?(op(inputs) + addend?). With an addend, output(0) holds a private
// copy of it on entry (in the addend's layout) and the kernel adds into it.
struct FusedTail {
  const Tensor* addend = nullptr;
  bool relu = false;
};

// What a node's kernel sees when it runs: its inputs (nullptr for omitted
// optional inputs) and slots for its outputs.
class OpKernelContext {
 public:
  // `channels_last_outputs`: the executor plans layouts in this run, so
  // layout-aware kernels may write channels-last outputs (executor.h).
  OpKernelContext(const Node& node, std::vector<const Tensor*> inputs,
                  std::vector<Tensor>* outputs,
                  bool channels_last_outputs = false)
      : node_(node),
        inputs_(std::move(inputs)),
        outputs_(outputs),
        channels_last_outputs_(channels_last_outputs) {}

  const Node& node() const { return node_; }
  int num_inputs() const { return static_cast<int>(inputs_.size()); }
  int num_outputs() const { return static_cast<int>(outputs_->size()); }
  // nullptr when the input is omitted or beyond the node's input list.
  const Tensor* input(int i) const {
    return i < num_inputs() ? inputs_[i] : nullptr;
  }
  // Fails with a message naming the node when a required input is missing.
  absl::StatusOr<const Tensor*> required_input(int i) const;
  Tensor* output(int i) { return &(*outputs_)[i]; }
  void set_output(int i, Tensor t) { (*outputs_)[i] = std::move(t); }
  bool channels_last_outputs() const { return channels_last_outputs_; }
  // Set when the executor fused consumers into this node (see FusedTail).
  const FusedTail* tail() const { return tail_; }
  void set_tail(const FusedTail* tail) { tail_ = tail; }
  // The layout a layout-aware kernel writes its activations in.
  Layout preferred_layout() const {
    return channels_last_outputs_ ? Layout::kChannelsLast : Layout::kPlain;
  }

 private:
  const Node& node_;
  std::vector<const Tensor*> inputs_;
  std::vector<Tensor>* outputs_;
  bool channels_last_outputs_;
  const FusedTail* tail_ = nullptr;
};

class OpKernel {
 public:
  virtual ~OpKernel() = default;
  virtual absl::Status Compute(OpKernelContext& ctx) = 0;
  // Layout planning (executor.h): whether Compute reads input `input`
  // correctly when it is channels-last (tensor.h), given all the node's
  // inputs. The executor converts every other channels-last input to plain
  // before Compute, so kernels that never override this only see plain
  // tensors.
  virtual bool AcceptsChannelsLast(
      int input, absl::Span<const Tensor* const> inputs) const {
    return false;
  }
  // Fusion (executor.h): whether Compute, given these inputs, can also apply
  // `tail` to its single output. Kernels that never override this are never
  // given a tail.
  virtual bool SupportsTail(absl::Span<const Tensor* const> inputs,
                            const FusedTail& tail) const {
    return false;
  }
};

// What a factory gets to build a kernel: the node (attributes, names) and
// the model's opset, so one kernel can implement older semantics of its op.
// Initializers are visible so kernels can pre-pack constant weights.
struct OpKernelInfo {
  const Node& node;
  int64_t opset;
  const Graph* graph = nullptr;
};

using OpKernelFactory = std::function<absl::StatusOr<std::unique_ptr<OpKernel>>(
    const OpKernelInfo&)>;

class OpRegistry {
 public:
  // `op_type` is an OpKey: "Conv", or "quantd.QuantizedConv".
  void Register(const std::string& op_type, OpKernelFactory factory);
  const OpKernelFactory* Find(absl::string_view op_type) const;
  bool Contains(absl::string_view op_type) const {
    return Find(op_type) != nullptr;
  }
  std::vector<std::string> OpTypes() const;

 private:
  std::map<std::string, OpKernelFactory, std::less<>> factories_;
};

// The registry key of a node's op: the op type for the default ONNX domain,
// "domain.OpType" otherwise (quantd's own int8 ops live in domain "quantd").
std::string OpKey(const Node& node);
inline constexpr char kQuantdDomain[] = "quantd";

// The registry of every built-in op, built once on first use.
const OpRegistry& DefaultOpRegistry();

// Factory for a kernel type constructed from OpKernelInfo (attributes that
// need validating are checked in Compute, or use a custom factory).
template <typename Kernel>
OpKernelFactory MakeFactory() {
  return [](const OpKernelInfo& info)
             -> absl::StatusOr<std::unique_ptr<OpKernel>> {
    return std::make_unique<Kernel>(info);
  };
}

// A kernel given as a plain function, for stateless ops.
using OpFunction = std::function<absl::Status(OpKernelContext&)>;
OpKernelFactory FunctionFactory(OpFunction fn);

// Fails if the model uses ops this registry lacks, listing each missing op
// type once with its count: "unsupported ops: Loop (x2), NonZero (x1)".
absl::Status CheckOpsSupported(const Graph& graph, const OpRegistry& registry);
// The same for registry keys (OpKey's form) gathered elsewhere, e.g. from an
// ONNX proto before it becomes a Graph.
absl::Status CheckOpKeysSupported(const std::vector<std::string>& keys,
                                  const OpRegistry& registry);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OP_REGISTRY_H_
