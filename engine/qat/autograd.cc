#include "engine/qat/autograd.h"

#include <functional>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "engine/runtime/op_registry.h"
#include "engine/runtime/ops/conv_attributes.h"
#include "engine/runtime/ops/fake_quant_op.h"
#include "engine/runtime/ops/pool_attributes.h"
#include "engine/runtime/ops/slice_geometry.h"
#include "kernels/backward.h"
#include "kernels/binary.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Gradients of a node's inputs from its inputs, outputs and output
// gradients; an undefined Tensor means "no gradient" for that input.
using BackwardFn = std::function<absl::Status(
    const Node& node, const std::vector<const Tensor*>& in,
    const std::vector<const Tensor*>& out, const std::vector<Tensor>& dout,
    std::vector<Tensor>* din)>;

absl::Status NeedInputs(const Node& node, const std::vector<const Tensor*>& in,
                        size_t n) {
  for (size_t i = 0; i < n; ++i) {
    if (i >= in.size() || in[i] == nullptr) {
      return absl::InternalError(absl::StrCat("backward of '", node.name,
                                              "' misses forward input ", i));
    }
  }
  return absl::OkStatus();
}

BackwardFn Eltwise(EltwiseOp op) {
  return [op](const Node& node, const std::vector<const Tensor*>& in,
              const std::vector<const Tensor*>&,
              const std::vector<Tensor>& dout, std::vector<Tensor>* din) {
    QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 1));
    float alpha = 0, beta = 0;
    if (op == EltwiseOp::kHardSigmoid) {
      alpha = node.attributes.GetFloat("alpha", 0.2f);
      beta = node.attributes.GetFloat("beta", 0.5f);
    } else if (op == EltwiseOp::kLeakyRelu) {
      alpha = node.attributes.GetFloat("alpha", 0.01f);
    }
    return EltwiseBackward(op, alpha, beta, *in[0], dout[0], &(*din)[0]);
  };
}

BackwardFn Binary(BinaryOp op) {
  return [op](const Node& node, const std::vector<const Tensor*>& in,
              const std::vector<const Tensor*>&,
              const std::vector<Tensor>& dout, std::vector<Tensor>* din) {
    QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 2));
    return BinaryBackward(op, *in[0], *in[1], dout[0], &(*din)[0], &(*din)[1]);
  };
}

// Reshape-like ops: the gradient is dy in the input's shape.
absl::Status Reshaped(const Node& node, const std::vector<const Tensor*>& in,
                      const std::vector<const Tensor*>&,
                      const std::vector<Tensor>& dout,
                      std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 1));
  QUANTD_ASSIGN_OR_RETURN(Tensor r, dout[0].Reshaped(in[0]->shape()));
  (*din)[0] = std::move(r);
  return absl::OkStatus();
}

absl::Status ConvBackwardFn(const Node& node,
                            const std::vector<const Tensor*>& in,
                            const std::vector<const Tensor*>&,
                            const std::vector<Tensor>& dout,
                            std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 2));
  QUANTD_ASSIGN_OR_RETURN(
      ConvParams p, ResolveConvParams(ReadConvAttributes(node), in[0]->shape(),
                                      in[1]->shape(), false));
  Tensor* db = din->size() > 2 && node.has_input(2) ? &(*din)[2] : nullptr;
  return ConvolutionBackward(p, *in[0], *in[1], dout[0], &(*din)[0], &(*din)[1],
                             db);
}

absl::Status MatMulBackwardFn(const Node& node,
                              const std::vector<const Tensor*>& in,
                              const std::vector<const Tensor*>&,
                              const std::vector<Tensor>& dout,
                              std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 2));
  return MatMulBackward(*in[0], *in[1], dout[0], false, &(*din)[0], &(*din)[1]);
}

absl::Status GemmBackwardFn(const Node& node,
                            const std::vector<const Tensor*>& in,
                            const std::vector<const Tensor*>&,
                            const std::vector<Tensor>& dout,
                            std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 2));
  const AttributeMap& a = node.attributes;
  if (a.GetInt("transA", 0) != 0 || a.GetFloat("alpha", 1.f) != 1.f ||
      a.GetFloat("beta", 1.f) != 1.f) {
    return absl::UnimplementedError(
        absl::StrCat("backward of Gemm '", node.name,
                     "' supports transA = 0 and alpha = beta = 1 only"));
  }
  QUANTD_RETURN_IF_ERROR(MatMulBackward(*in[0], *in[1], dout[0],
                                        a.GetInt("transB", 0) != 0, &(*din)[0],
                                        &(*din)[1]));
  if (din->size() > 2 && node.has_input(2) && in[2] != nullptr) {
    return SumToShape(dout[0], in[2]->shape(), &(*din)[2]);
  }
  return absl::OkStatus();
}

BackwardFn Pool(PoolKind kind, bool global) {
  return [kind, global](const Node& node, const std::vector<const Tensor*>& in,
                        const std::vector<const Tensor*>&,
                        const std::vector<Tensor>& dout,
                        std::vector<Tensor>* din) -> absl::Status {
    QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 1));
    PoolParams p = GlobalPoolParams(kind);
    if (!global) {
      QUANTD_ASSIGN_OR_RETURN(PoolParams r, ReadPoolParams(node, kind));
      p = r;
    }
    return PoolingBackward(p, *in[0], dout[0], &(*din)[0]);
  };
}

BackwardFn SoftmaxFn(bool log) {
  return [log](const Node& node, const std::vector<const Tensor*>&,
               const std::vector<const Tensor*>& out,
               const std::vector<Tensor>& dout,
               std::vector<Tensor>* din) -> absl::Status {
    if (out.empty() || out[0] == nullptr) {
      return absl::InternalError("softmax backward needs its output");
    }
    const int axis = static_cast<int>(node.attributes.GetInt("axis", -1));
    return SoftmaxBackward(*out[0], dout[0], axis, log, &(*din)[0]);
  };
}

absl::Status LayerNormFn(const Node& node, const std::vector<const Tensor*>& in,
                         const std::vector<const Tensor*>&,
                         const std::vector<Tensor>& dout,
                         std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 1));
  const int axis = static_cast<int>(node.attributes.GetInt("axis", -1));
  const float eps = node.attributes.GetFloat("epsilon", 1e-5f);
  const Tensor* scale = in.size() > 1 ? in[1] : nullptr;
  const Tensor* bias = in.size() > 2 ? in[2] : nullptr;
  return LayerNormBackward(*in[0], scale, bias, dout[0], axis, eps, &(*din)[0],
                           din->size() > 1 ? &(*din)[1] : nullptr,
                           din->size() > 2 && bias ? &(*din)[2] : nullptr);
}

absl::Status TransposeFn(const Node& node, const std::vector<const Tensor*>& in,
                         const std::vector<const Tensor*>&,
                         const std::vector<Tensor>& dout,
                         std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 1));
  std::vector<int64_t> perm = node.attributes.GetInts("perm");
  if (perm.empty()) {
    for (int64_t d = in[0]->rank() - 1; d >= 0; --d) perm.push_back(d);
  }
  return TransposeBackward(perm, dout[0], &(*din)[0]);
}

absl::Status GatherFn(const Node& node, const std::vector<const Tensor*>& in,
                      const std::vector<const Tensor*>&,
                      const std::vector<Tensor>& dout,
                      std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 2));
  const int axis = static_cast<int>(node.attributes.GetInt("axis", 0));
  return GatherBackward(in[0]->shape(), *in[1], axis, dout[0], &(*din)[0]);
}

// STE for x; LSQ for the scale (input 1).
absl::Status FakeQuantFn(const Node& node, const std::vector<const Tensor*>& in,
                         const std::vector<const Tensor*>&,
                         const std::vector<Tensor>& dout,
                         std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 2));
  QUANTD_ASSIGN_OR_RETURN(
      FakeQuantParams p,
      ReadFakeQuantParams(node, *in[1], in.size() > 2 ? in[2] : nullptr));
  std::vector<float> dscale;
  QUANTD_RETURN_IF_ERROR(
      FakeQuantBackward(*in[0], p, dout[0], &(*din)[0], &dscale));
  (*din)[1] = Tensor::FromVector<float>(in[1]->shape(), dscale);
  return absl::OkStatus();
}

// Slice (opset >= 10: starts, ends, axes, steps as inputs 1-4).
absl::Status SliceFn(const Node& node, const std::vector<const Tensor*>& in,
                     const std::vector<const Tensor*>&,
                     const std::vector<Tensor>& dout,
                     std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 3));
  SliceArgs args;
  std::vector<int64_t>* dst[] = {&args.starts, &args.ends, &args.axes,
                                 &args.steps};
  for (int i = 0; i < 4; ++i) {
    const Tensor* t =
        static_cast<size_t>(i + 1) < in.size() ? in[i + 1] : nullptr;
    if (t == nullptr || !t->defined()) continue;
    if (t->dtype() == DataType::kInt64) {
      *dst[i] = t->ToVector<int64_t>();
    } else if (t->dtype() == DataType::kInt32) {
      for (int32_t v : t->ToVector<int32_t>()) dst[i]->push_back(v);
    } else {
      return absl::InvalidArgumentError("Slice parameters must be integers");
    }
    if (i == 2) args.has_axes = true;
  }
  QUANTD_ASSIGN_OR_RETURN(SliceGeometry g, ResolveSlice(in[0]->shape(), args));
  return SliceBackward(in[0]->shape(), g.start, g.step, dout[0], &(*din)[0]);
}

absl::Status ConcatFn(const Node& node, const std::vector<const Tensor*>& in,
                      const std::vector<const Tensor*>&,
                      const std::vector<Tensor>& dout,
                      std::vector<Tensor>* din) {
  std::vector<Shape> shapes;
  for (const Tensor* t : in) {
    if (t == nullptr) return absl::InternalError("Concat input missing");
    shapes.push_back(t->shape());
  }
  int axis = static_cast<int>(node.attributes.GetInt("axis", 0));
  if (axis < 0) axis += static_cast<int>(dout[0].rank());
  std::vector<Tensor> parts;
  QUANTD_RETURN_IF_ERROR(ConcatBackward(shapes, axis, dout[0], &parts));
  for (size_t i = 0; i < parts.size() && i < din->size(); ++i) {
    if (in[i]->dtype() == DataType::kFloat32) (*din)[i] = std::move(parts[i]);
  }
  return absl::OkStatus();
}

// Where(cond, x, y): dy goes to x where cond holds, else to y, each summed
// back over broadcast dims.
absl::Status WhereFn(const Node& node, const std::vector<const Tensor*>& in,
                     const std::vector<const Tensor*>&,
                     const std::vector<Tensor>& dout,
                     std::vector<Tensor>* din) {
  QUANTD_RETURN_IF_ERROR(NeedInputs(node, in, 3));
  const Tensor& cond = *in[0];
  const Tensor& dy = dout[0];
  if (cond.dtype() != DataType::kBool) {
    return absl::InvalidArgumentError("Where's condition must be bool");
  }
  absl::StatusOr<Shape> full = BroadcastShapes(cond.shape(), dy.shape());
  if (!full.ok() || *full != dy.shape()) {
    return absl::UnimplementedError(
        "Where backward needs the condition to broadcast to the output");
  }
  // Broadcast the condition to dy's shape by index arithmetic.
  const Shape& cs = cond.shape();
  const int rank = dy.rank(), crank = static_cast<int>(cs.size());
  Tensor to_x(DataType::kFloat32, dy.shape()),
      to_y(DataType::kFloat32, dy.shape());
  const float* g = dy.data<float>();
  const bool* c = cond.data<bool>();
  std::vector<int64_t> idx(rank, 0);
  for (int64_t i = 0; i < dy.num_elements(); ++i) {
    int64_t ci = 0;
    for (int d = 0; d < crank; ++d) {
      const int64_t dim = cs[d];
      const int64_t v = dim == 1 ? 0 : idx[rank - crank + d];
      ci = ci * dim + v;
    }
    const bool take_x = c[ci];
    to_x.mutable_data<float>()[i] = take_x ? g[i] : 0.f;
    to_y.mutable_data<float>()[i] = take_x ? 0.f : g[i];
    for (int d = rank - 1; d >= 0; --d) {
      if (++idx[d] < dy.dim(d)) break;
      idx[d] = 0;
    }
  }
  if (in[1]->dtype() == DataType::kFloat32) {
    QUANTD_RETURN_IF_ERROR(SumToShape(to_x, in[1]->shape(), &(*din)[1]));
  }
  if (in[2]->dtype() == DataType::kFloat32) {
    return SumToShape(to_y, in[2]->shape(), &(*din)[2]);
  }
  return absl::OkStatus();
}

// Ops whose outputs carry no gradient (shapes, comparisons, integer casts):
// what flows out of them is not differentiated, and they need no backward.
bool StopsGradient(const Node& n) {
  static const auto* ops = new std::set<std::string>{
      "Shape",       "Size",           "Equal",  "Less",    "Greater",
      "LessOrEqual", "GreaterOrEqual", "Not",    "And",     "Or",
      "Xor",         "ArgMax",         "ArgMin", "NonZero", "ConstantOfShape",
      "Range"};
  if (!n.domain.empty()) return false;
  if (ops->contains(n.op_type)) return true;
  // Cast to anything but float (TensorProto FLOAT = 1).
  return n.op_type == "Cast" && n.attributes.GetInt("to", 1) != 1;
}

const std::map<std::string, BackwardFn>& Registry() {
  static const auto* r = new std::map<std::string, BackwardFn>{
      {"Conv", ConvBackwardFn},
      {"MatMul", MatMulBackwardFn},
      {"Gemm", GemmBackwardFn},
      {"Relu", Eltwise(EltwiseOp::kRelu)},
      {"LeakyRelu", Eltwise(EltwiseOp::kLeakyRelu)},
      {"Sigmoid", Eltwise(EltwiseOp::kSigmoid)},
      {"HardSigmoid", Eltwise(EltwiseOp::kHardSigmoid)},
      {"HardSwish", Eltwise(EltwiseOp::kHardSwish)},
      {"Tanh", Eltwise(EltwiseOp::kTanh)},
      {"Erf", Eltwise(EltwiseOp::kErf)},
      {"Gelu", Eltwise(EltwiseOp::kGeluErf)},
      {"Add", Binary(BinaryOp::kAdd)},
      {"Sub", Binary(BinaryOp::kSub)},
      {"Mul", Binary(BinaryOp::kMul)},
      {"Div", Binary(BinaryOp::kDiv)},
      {"MaxPool", Pool(PoolKind::kMax, false)},
      {"AveragePool", Pool(PoolKind::kAverage, false)},
      {"GlobalMaxPool", Pool(PoolKind::kMax, true)},
      {"GlobalAveragePool", Pool(PoolKind::kAverage, true)},
      {"Softmax", SoftmaxFn(false)},
      {"LogSoftmax", SoftmaxFn(true)},
      {"LayerNormalization", LayerNormFn},
      {"Reshape", Reshaped},
      {"Flatten", Reshaped},
      {"Squeeze", Reshaped},
      {"Unsqueeze", Reshaped},
      {"Identity", Reshaped},
      {"Dropout", Reshaped},
      {"Transpose", TransposeFn},
      {"Gather", GatherFn},
      {"Slice", SliceFn},
      {"Concat", ConcatFn},
      {"Where", WhereFn},
      {absl::StrCat(kQuantdDomain, ".", kFakeQuantOp), FakeQuantFn},
  };
  return *r;
}

std::string Key(const Node& n) {
  return n.domain.empty() ? n.op_type : absl::StrCat(n.domain, ".", n.op_type);
}

// Values that depend on a `wrt` initializer (forward reachability).
std::set<std::string> DependOnWrt(const Graph& graph,
                                  const std::set<std::string>& wrt) {
  std::set<std::string> live(wrt.begin(), wrt.end());
  for (const Node& n : graph.nodes) {
    if (StopsGradient(n)) continue;
    bool any = false;
    for (const std::string& in : n.inputs) any |= live.contains(in);
    if (any) live.insert(n.outputs.begin(), n.outputs.end());
  }
  return live;
}

}  // namespace

absl::Status CheckDifferentiable(const Graph& graph,
                                 const std::set<std::string>& wrt) {
  const std::set<std::string> live = DependOnWrt(graph, wrt);
  std::map<std::string, int> missing;
  for (const Node& n : graph.nodes) {
    if (StopsGradient(n)) continue;
    bool any = false;
    for (const std::string& in : n.inputs) any |= live.contains(in);
    if (any && !Registry().contains(Key(n))) ++missing[Key(n)];
  }
  if (missing.empty()) return absl::OkStatus();
  std::vector<std::string> parts;
  for (const auto& [op, count] : missing) {
    parts.push_back(absl::StrCat(op, " (", count, ")"));
  }
  return absl::FailedPreconditionError(absl::StrCat(
      "quantization-aware training needs gradients through every op between "
      "the weights and the outputs; these have none: ",
      absl::StrJoin(parts, ", "),
      ". Post-training quantization still works "
      "on this model"));
}

absl::StatusOr<Gradients> Backward(const Graph& graph, const TensorMap& values,
                                   const TensorMap& output_grads,
                                   const std::set<std::string>& wrt) {
  const std::set<std::string> live = DependOnWrt(graph, wrt);
  std::map<std::string, Tensor> grads;  // accumulated, by value name
  auto accumulate = [&](const std::string& name, Tensor g) -> absl::Status {
    auto it = grads.find(name);
    if (it == grads.end()) {
      grads.emplace(name, std::move(g));
      return absl::OkStatus();
    }
    if (it->second.shape() != g.shape()) {
      return absl::InternalError(
          absl::StrCat("gradient shapes disagree for '", name, "'"));
    }
    // The stored tensor may share its buffer with a forward value: sum
    // into a fresh one.
    Tensor sum = it->second.Clone();
    float* d = sum.mutable_data<float>();
    const float* s = g.data<float>();
    for (int64_t i = 0; i < sum.num_elements(); ++i) d[i] += s[i];
    it->second = std::move(sum);
    return absl::OkStatus();
  };
  for (const auto& [name, g] : output_grads) {
    QUANTD_RETURN_IF_ERROR(accumulate(name, g));
  }
  auto find = [&](const std::string& name) -> const Tensor* {
    if (name.empty()) return nullptr;
    auto v = values.find(name);
    if (v != values.end()) return &v->second;
    return graph.FindInitializer(name);
  };
  for (auto it = graph.nodes.rbegin(); it != graph.nodes.rend(); ++it) {
    const Node& node = *it;
    if (StopsGradient(node)) continue;
    bool needed = false;  // some input carries a gradient to a wrt
    for (const std::string& in : node.inputs) needed |= live.contains(in);
    bool has_dout = false;
    for (const std::string& out : node.outputs) has_dout |= grads.contains(out);
    if (!needed || !has_dout) continue;
    auto fn = Registry().find(Key(node));
    if (fn == Registry().end()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "op ", Key(node), " ('", node.name, "') has no backward"));
    }
    std::vector<const Tensor*> in, out;
    for (const std::string& name : node.inputs) in.push_back(find(name));
    for (const std::string& name : node.outputs) out.push_back(find(name));
    std::vector<Tensor> dout;
    for (size_t o = 0; o < node.outputs.size(); ++o) {
      auto g = grads.find(node.outputs[o]);
      if (g != grads.end()) {
        dout.push_back(g->second);
      } else if (out[o] != nullptr) {
        dout.push_back(Tensor::Zeros(DataType::kFloat32, out[o]->shape()));
      } else {
        dout.emplace_back();
      }
    }
    std::vector<Tensor> din(node.inputs.size());
    if (absl::Status s = fn->second(node, in, out, dout, &din); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("backward of '", node.name,
                                                 "': ", s.message()));
    }
    for (size_t i = 0; i < node.inputs.size(); ++i) {
      if (!din[i].defined() || !live.contains(node.inputs[i])) continue;
      QUANTD_RETURN_IF_ERROR(accumulate(node.inputs[i], std::move(din[i])));
    }
  }
  Gradients out;
  for (const std::string& name : wrt) {
    auto g = grads.find(name);
    if (g != grads.end()) {
      out[name] = g->second;
    } else if (const Tensor* t = find(name); t != nullptr) {
      out[name] = Tensor::Zeros(DataType::kFloat32, t->shape());
    }
  }
  return out;
}

}  // namespace quantd
