#include "engine/runtime/executor.h"

#include <algorithm>

#include "absl/container/flat_hash_set.h"
#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/layout.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::unique_ptr<Executor>> Executor::Create(
    Graph graph, const OpRegistry& registry) {
  QUANTD_RETURN_IF_ERROR(CheckOpsSupported(graph, registry));
  QUANTD_RETURN_IF_ERROR(TopologicalSort(graph));
  std::vector<std::unique_ptr<OpKernel>> kernels;
  kernels.reserve(graph.nodes.size());
  for (const Node& node : graph.nodes) {
    OpKernelInfo info{node, graph.opset, &graph};
    absl::StatusOr<std::unique_ptr<OpKernel>> kernel =
        (*registry.Find(OpKey(node)))(info);
    if (!kernel.ok()) {
      return absl::Status(kernel.status().code(),
                          absl::StrCat(node.op_type, " node '", node.name,
                                       "': ", kernel.status().message()));
    }
    kernels.push_back(std::move(*kernel));
  }
  return std::unique_ptr<Executor>(
      new Executor(std::move(graph), std::move(kernels)));
}

Executor::Executor(Graph graph, std::vector<std::unique_ptr<OpKernel>> kernels)
    : graph_(std::move(graph)), kernels_(std::move(kernels)) {
  // A value dies after the last node that reads it, unless it is a graph
  // output or an initializer.
  absl::flat_hash_set<std::string> keep;
  for (const ValueInfo& out : graph_.outputs) keep.insert(out.name);
  absl::flat_hash_map<std::string, size_t> last_reader;
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    for (const std::string& in : graph_.nodes[i].inputs) {
      if (!in.empty()) last_reader[in] = i;
    }
  }
  fusions_ = PlanFusions(graph_, {"Conv", "quantd.QuantizedConv"});
  last_use_.resize(graph_.nodes.size());
  for (const auto& [name, index] : last_reader) {
    if (keep.contains(name) || graph_.initializers.contains(name)) continue;
    last_use_[index].push_back(name);
  }
}

absl::Status Executor::ReplaceInitializer(const std::string& name,
                                          Tensor value) {
  auto it = graph_.initializers.find(name);
  if (it == graph_.initializers.end()) {
    return absl::NotFoundError(
        absl::StrCat("the model has no initializer named '", name, "'"));
  }
  if (it->second.dtype() != value.dtype() ||
      it->second.shape() != value.shape()) {
    return absl::InvalidArgumentError(
        absl::StrCat("initializer '", name, "' is ", it->second.DebugString(),
                     "; the replacement is ", value.DebugString()));
  }
  it->second = std::move(value);
  return absl::OkStatus();
}

absl::Status Executor::CheckFeeds(const TensorMap& feeds) const {
  for (const auto& [name, t] : feeds) {
    if (graph_.FindInput(name) == nullptr) {
      std::vector<std::string> expected;
      for (const ValueInfo& v : graph_.inputs) expected.push_back(v.name);
      return absl::InvalidArgumentError(
          absl::StrCat("the model has no input named '", name,
                       "'; its inputs are: ", absl::StrJoin(expected, ", ")));
    }
  }
  for (const ValueInfo& in : graph_.inputs) {
    auto it = feeds.find(in.name);
    if (it == feeds.end()) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name, "' was not provided"));
    }
    const Tensor& t = it->second;
    if (in.dtype != DataType::kUndefined && t.dtype() != in.dtype) {
      return absl::InvalidArgumentError(absl::StrCat(
          "input '", in.name, "' expects element type ", DataTypeName(in.dtype),
          ", got ", DataTypeName(t.dtype())));
    }
    if (!in.has_shape) continue;
    if (t.rank() != static_cast<int>(in.shape.size())) {
      return absl::InvalidArgumentError(
          absl::StrCat("input '", in.name, "' expects ", in.shape.size(),
                       " dims ", ShapeToString(in.shape), ", got ", t.rank(),
                       " dims ", ShapeToString(t.shape())));
    }
    for (int d = 0; d < t.rank(); ++d) {
      if (in.shape[d] >= 0 && in.shape[d] != t.dim(d)) {
        return absl::InvalidArgumentError(
            absl::StrCat("input '", in.name, "' expects dim ", d, " to be ",
                         in.shape[d], " (shape ", ShapeToString(in.shape),
                         "), got ", ShapeToString(t.shape())));
      }
    }
  }
  return absl::OkStatus();
}

namespace {

// What `node` reads: computed values first, then initializers; null for an
// omitted optional input.
std::vector<const Tensor*> NodeInputs(const Graph& graph, const Node& node,
                                      const TensorMap& values) {
  std::vector<const Tensor*> inputs;
  inputs.reserve(node.inputs.size());
  for (const std::string& name : node.inputs) {
    if (name.empty()) {
      inputs.push_back(nullptr);
      continue;
    }
    auto it = values.find(name);
    if (it != values.end()) {
      inputs.push_back(&it->second);
    } else {
      inputs.push_back(graph.FindInitializer(name));
    }
  }
  return inputs;
}

void FreeDeadValues(const std::vector<std::string>& dead,
                    const absl::flat_hash_set<std::string>& keep,
                    TensorMap& values) {
  for (const std::string& name : dead) {
    if (!keep.contains(name)) values.erase(name);
  }
}

// True when a fusion would leave out a value the caller asked for.
bool HidesAny(const Fusion& f, const absl::flat_hash_set<std::string>& wanted) {
  for (const std::string& v : f.hidden) {
    if (wanted.contains(v)) return true;
  }
  return false;
}

// Converts the channels-last inputs `kernel` cannot read to plain, in
// `values` too, so later readers reuse the conversion.
absl::Status ConvertInputsForKernel(const Node& node, const OpKernel& kernel,
                                    std::vector<const Tensor*>& inputs,
                                    TensorMap& values) {
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor* t = inputs[i];
    if (t == nullptr || !t->channels_last() ||
        kernel.AcceptsChannelsLast(static_cast<int>(i), inputs)) {
      continue;
    }
    QUANTD_ASSIGN_OR_RETURN(Tensor plain, ToLayout(*t, Layout::kPlain));
    // Channels-last tensors are only ever computed values, never
    // initializers, so `values` holds this one.
    Tensor& slot = values.at(node.inputs[i]);
    slot = std::move(plain);
    for (const Tensor*& same : inputs) {
      if (same == t) same = &slot;
    }
  }
  return absl::OkStatus();
}

// Moves what `node` computed into `values`, showing each to the hook.
absl::Status StoreOutputs(const Node& node, std::vector<Tensor>& outputs,
                          const RunOptions& options, TensorMap& values) {
  for (size_t o = 0; o < node.outputs.size(); ++o) {
    const std::string& name = node.outputs[o];
    if (name.empty()) continue;
    if (!outputs[o].defined()) {
      return absl::InternalError(
          absl::StrCat(node.op_type, " node '", node.name,
                       "' did not produce its output '", name, "'"));
    }
    Tensor& v = values[name] = std::move(outputs[o]);
    if (options.tensor_hook) {
      QUANTD_RETURN_IF_ERROR(options.tensor_hook(&node, name, v));
    }
  }
  return absl::OkStatus();
}

// The graph's outputs (an output may be an initializer) and the values the
// options asked to keep.
absl::StatusOr<RunResult> CollectResult(const Graph& graph,
                                        const RunOptions& options,
                                        TensorMap& values) {
  RunResult result;
  for (const ValueInfo& out : graph.outputs) {
    auto it = values.find(out.name);
    if (it != values.end()) {
      QUANTD_ASSIGN_OR_RETURN(Tensor plain,
                              ToLayout(it->second, Layout::kPlain));
      result.outputs.push_back(std::move(plain));
    } else if (const Tensor* t = graph.FindInitializer(out.name)) {
      result.outputs.push_back(*t);
    } else {
      return absl::InternalError(
          absl::StrCat("graph output '", out.name, "' was not computed"));
    }
  }
  if (options.keep_all_values) {
    result.values = std::move(values);
  } else {
    for (const std::string& name : options.extra_outputs) {
      auto it = values.find(name);
      if (it == values.end()) {
        return absl::InvalidArgumentError(
            absl::StrCat("requested value '", name, "' is not in the graph"));
      }
      QUANTD_ASSIGN_OR_RETURN(result.values[name],
                              ToLayout(it->second, Layout::kPlain));
    }
  }
  return result;
}

}  // namespace

absl::StatusOr<bool> Executor::RunFused(
    size_t i, std::vector<const Tensor*>& inputs,
    const absl::flat_hash_set<std::string>& extra, TensorMap& values,
    std::vector<char>& done) {
  const Fusion& f = *fusions_[i];
  const Node& node = graph_.nodes[i];
  FusedTail tail;
  tail.relu = f.relu;
  auto addend_it = values.end();
  if (!f.addend.empty()) {
    addend_it = values.find(f.addend);
    tail.addend = addend_it != values.end() ? &addend_it->second
                                            : graph_.FindInitializer(f.addend);
    if (tail.addend == nullptr) return false;
  }
  if (!kernels_[i]->SupportsTail(inputs, tail)) return false;
  std::vector<Tensor> outputs(1);
  if (tail.addend != nullptr) {
    // The kernel adds into its output: a private buffer holding the addend.
    const bool steal =
        f.steal_addend && addend_it != values.end() &&
        !extra.contains(f.addend) && addend_it->second.storage_unique() &&
        std::find(inputs.begin(), inputs.end(), tail.addend) == inputs.end();
    if (steal) {
      outputs[0] = std::move(addend_it->second);
      values.erase(addend_it);
      tail.addend = &outputs[0];
    } else {
      outputs[0] = tail.addend->Clone();
    }
  }
  OpKernelContext ctx(node, inputs, &outputs, /*channels_last_outputs=*/true);
  ctx.set_tail(&tail);
  absl::Status status = kernels_[i]->Compute(ctx);
  if (!status.ok()) {
    return absl::Status(
        status.code(),
        absl::StrCat(node.op_type, " node '", node.name,
                     "' (fused with what follows): ", status.message()));
  }
  if (!outputs[0].defined()) {
    return absl::InternalError(absl::StrCat(node.op_type, " node '", node.name,
                                            "' did not produce its output"));
  }
  values[f.output] = std::move(outputs[0]);
  for (size_t folded : f.folded) done[folded] = 1;
  return true;
}

absl::StatusOr<RunResult> Executor::Run(const TensorMap& feeds,
                                        const RunOptions& options) {
  QUANTD_RETURN_IF_ERROR(CheckFeeds(feeds));
  TensorMap values;
  values.reserve(graph_.nodes.size() + feeds.size());
  for (const auto& [name, t] : feeds) {
    Tensor& v = values[name] = t;
    if (options.tensor_hook) {
      QUANTD_RETURN_IF_ERROR(options.tensor_hook(nullptr, name, v));
    }
  }
  absl::flat_hash_set<std::string> extra(options.extra_outputs.begin(),
                                         options.extra_outputs.end());
  const bool plan_layouts =
      options.plan_layouts && !options.tensor_hook && !options.keep_all_values;
  const bool fuse = plan_layouts && options.fuse;
  std::vector<char> done(graph_.nodes.size(), 0);  // folded into a fusion
  for (size_t i = 0; i < graph_.nodes.size(); ++i) {
    if (options.cancelled != nullptr &&
        options.cancelled->load(std::memory_order_relaxed)) {
      return absl::CancelledError("the run was cancelled");
    }
    const Node& node = graph_.nodes[i];
    if (done[i]) {
      FreeDeadValues(last_use_[i], extra, values);
      continue;
    }
    std::vector<Tensor> outputs(node.outputs.size());
    std::vector<const Tensor*> inputs = NodeInputs(graph_, node, values);
    if (plan_layouts) {
      QUANTD_RETURN_IF_ERROR(
          ConvertInputsForKernel(node, *kernels_[i], inputs, values));
    }
    if (fuse && fusions_[i] && !HidesAny(*fusions_[i], extra)) {
      QUANTD_ASSIGN_OR_RETURN(bool fused,
                              RunFused(i, inputs, extra, values, done));
      if (fused) {
        FreeDeadValues(last_use_[i], extra, values);
        continue;
      }
    }
    OpKernelContext ctx(node, std::move(inputs), &outputs, plan_layouts);
    absl::Status status = kernels_[i]->Compute(ctx);
    if (!status.ok()) {
      return absl::Status(status.code(),
                          absl::StrCat(node.op_type, " node '", node.name,
                                       "': ", status.message()));
    }
    QUANTD_RETURN_IF_ERROR(StoreOutputs(node, outputs, options, values));
    if (!options.keep_all_values) FreeDeadValues(last_use_[i], extra, values);
  }
  return CollectResult(graph_, options, values);
}

absl::StatusOr<std::vector<Tensor>> Executor::RunOutputs(
    const TensorMap& feeds) {
  QUANTD_ASSIGN_OR_RETURN(RunResult r, Run(feeds));
  return std::move(r.outputs);
}

}  // namespace quantd
