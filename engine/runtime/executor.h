// Executor: runs a Graph in topological order, one OpKernel per node.
//
//   absl::StatusOr<std::unique_ptr<Executor>> ex = Executor::Create(graph);
//   TensorMap feeds = {{"input", images}};
//   absl::StatusOr<std::vector<Tensor>> out = (*ex)->Run(feeds);
//
// Calibration and fake-quant simulation use the tensor hook, which sees every
// value as it is produced (graph inputs included) and may replace it:
//
//   RunOptions opts;
//   opts.tensor_hook = [&](const Node* producer, const std::string& name,
//                          Tensor& value) { observer.Observe(name, value);
//                                           return absl::OkStatus(); };
//
// Values are freed as soon as their last reader has run, unless
// keep_all_values is set (a backward pass needs them).
//
// Layout planning: oneDNN's convolutions work channels-last (nhwc), while
// ONNX tensors are NCHW; converting in and out around every conv cost ~30%
// of a ResNet-50 run. So in a plain inference run (no hook, no kept values)
// kernels may hand channels-last tensors (kernels/tensor.h) to each other:
// a conv writes channels-last, and Relu, Clip, same-shape Add, pooling and
// the next conv read it so (OpKernel::AcceptsChannelsLast). Before any other
// kernel reads such a value the executor converts it to plain once (the
// plain copy replaces it), and graph outputs and extra_outputs are returned
// plain, so callers never see a channels-last tensor. Runs with a hook or
// keep_all_values, or with plan_layouts off, are plain throughout.
//
// Fusion: in the same planned runs, a Conv or static quantd.QuantizedConv
// whose output only a Relu, an Add, or an Add then a Relu reads computes
// those too, as oneDNN post-ops (sum, eltwise), and the folded nodes are
// skipped (fusion_plan.h). The Add's other operand becomes the conv's
// destination: its buffer is reused when nothing else reads it afterwards,
// else copied. Kernels refuse shapes they cannot fuse (SupportsTail), and
// those runs compute the nodes one by one. Values a fusion never writes
// are not visible, so a run that asks for one in extra_outputs does not
// fuse that node.
#ifndef QUANTD_ENGINE_RUNTIME_EXECUTOR_H_
#define QUANTD_ENGINE_RUNTIME_EXECUTOR_H_

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/runtime/fusion_plan.h"
#include "engine/runtime/op_registry.h"

namespace quantd {

using TensorMap = absl::flat_hash_map<std::string, Tensor>;

// `producer` is nullptr for graph inputs.
using TensorHook = std::function<absl::Status(
    const Node* producer, const std::string& name, Tensor& value)>;

struct RunOptions {
  TensorHook tensor_hook;
  // Keep every intermediate value and return it in RunResult::values.
  bool keep_all_values = false;
  // Values to return besides the graph outputs.
  std::vector<std::string> extra_outputs;
  // Checked between nodes; a set flag ends the run with CANCELLED.
  const std::atomic<bool>* cancelled = nullptr;
  // Let layout-aware kernels pass channels-last values (see the top). Only
  // takes effect without tensor_hook and keep_all_values, which expose every
  // value; off makes every value plain (tests compare the two).
  bool plan_layouts = true;
  // Fold consumers into convolutions (see the top); planned runs only.
  bool fuse = true;
};

struct RunResult {
  std::vector<Tensor> outputs;  // in graph output order
  TensorMap values;             // extra_outputs, or everything if kept
};

class Executor {
 public:
  static absl::StatusOr<std::unique_ptr<Executor>> Create(
      Graph graph, const OpRegistry& registry = DefaultOpRegistry());

  // Runs the graph. Every graph input must be fed, with its declared dtype,
  // rank and static dims; dims declared symbolic may take any size.
  absl::StatusOr<RunResult> Run(const TensorMap& feeds,
                                const RunOptions& options = {});
  // Convenience: the graph outputs only.
  absl::StatusOr<std::vector<Tensor>> RunOutputs(const TensorMap& feeds);

  const Graph& graph() const { return graph_; }
  // Replaces a constant (e.g. fake-quantized weights). Kernels that cached a
  // packed copy key it by data pointer, so they see the new value.
  absl::Status ReplaceInitializer(const std::string& name, Tensor value);

 private:
  Executor(Graph graph, std::vector<std::unique_ptr<OpKernel>> kernels);
  absl::Status CheckFeeds(const TensorMap& feeds) const;
  // Runs node `i` with its planned fusion when the kernel supports it for
  // these inputs; false (nothing run) otherwise. Marks folded nodes done.
  // The addend is never taken over when the caller asked for it (`extra`).
  absl::StatusOr<bool> RunFused(size_t i, std::vector<const Tensor*>& inputs,
                                const absl::flat_hash_set<std::string>& extra,
                                TensorMap& values, std::vector<char>& done);

  Graph graph_;
  std::vector<std::unique_ptr<OpKernel>> kernels_;  // parallel to nodes
  // For each node, the values whose last reader it is (freed after it runs).
  std::vector<std::vector<std::string>> last_use_;
  std::vector<std::optional<Fusion>> fusions_;  // parallel to nodes
};

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_EXECUTOR_H_
