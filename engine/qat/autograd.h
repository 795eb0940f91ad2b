// Reverse-mode differentiation over the engine's graph, for quantization-
// aware training. The forward pass is the ordinary executor run with every
// value kept (RunOptions::keep_all_values); Backward walks the nodes in
// reverse, calling each op's backward kernel (kernels/backward.h,
// kernels/fake_quant.h), and accumulates gradients of the requested
// initializers.
//
//   RunOptions opts;
//   opts.keep_all_values = true;
//   absl::StatusOr<RunResult> fwd = executor->Run(feeds, opts);
//   TensorMap values = fwd->values;            // plus feeds and initializers
//   absl::StatusOr<Gradients> g = Backward(graph, values,
//       {{"logits", dlogits}}, {"conv1.w", "conv1.b"});
//
// Differentiable ops: Conv, Gemm (alpha = beta = 1, transA = 0), MatMul,
// the eltwise activations the backward kernels have (Relu, Sigmoid, Tanh,
// Erf, Gelu, HardSigmoid, HardSwish, Clip, ...), Add/Sub/Mul/Div with
// broadcasting, MaxPool/AveragePool/GlobalAveragePool/GlobalMaxPool,
// Softmax/LogSoftmax, LayerNormalization, Reshape/Flatten/Squeeze/
// Unsqueeze/Identity/Dropout (inference), Transpose, Gather, and
// quantd.FakeQuant (straight-through estimator; LSQ scale gradients). Nodes
// whose outputs do not lead to the loss, or whose inputs need no gradient,
// are skipped. CheckDifferentiable lists what a graph lacks.
#ifndef QUANTD_ENGINE_QAT_AUTOGRAD_H_
#define QUANTD_ENGINE_QAT_AUTOGRAD_H_

#include <map>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "engine/runtime/executor.h"

namespace quantd {

using Gradients = std::map<std::string, Tensor>;

// Ok, or FailedPrecondition naming each op type (with counts) on a path
// from a `wrt` initializer to an output that has no backward.
absl::Status CheckDifferentiable(const Graph& graph,
                                 const std::set<std::string>& wrt);

// `values` holds every value of the forward run (inputs, initializers,
// node outputs); `output_grads` the loss gradient of graph outputs. Returns
// the gradient of each `wrt` initializer (zeros if the loss does not depend
// on it).
absl::StatusOr<Gradients> Backward(const Graph& graph, const TensorMap& values,
                                   const TensorMap& output_grads,
                                   const std::set<std::string>& wrt);

}  // namespace quantd

#endif  // QUANTD_ENGINE_QAT_AUTOGRAD_H_
