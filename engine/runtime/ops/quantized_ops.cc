// quantd's own int8 ops (domain "quantd"), produced by LowerToInt8
// (engine/passes/int8_lowering.h) to run a quantized model on oneDNN's int8
// kernels. They never appear in exported models, which use standard QDQ.
//
// quantd.QuantizedConv(x f32, w s8 [OC, C/g, k...], w_scale f32 [OC] or [1],
//                      bias f32 [OC]?) -> f32
// quantd.QuantizedMatMul(x f32 [..., K], w s8 [K, N] (trans_b: [N, K]),
//                        w_scale f32 [N] or [1], bias f32 [N]?) -> f32
// Attributes: x_scale, x_zero_point (x is quantized to u8 with them),
// fused_relu, plus Conv's attributes / trans_b.
// Both also take y_scale, y_zero_point: then their output is u8,
// requantized with them (LowerToInt8's chaining, int8_lowering.h). In both
// ops a static x that arrives as u8 is taken as already quantized with
// x_scale and x_zero_point (the lowering guarantees the producer used them).
// dynamic_x (default 0): when 1, x_scale and x_zero_point are ignored and x
// is quantized per run with parameters from its own range, exactly as ONNX's
// DynamicQuantizeLinear (kernels/quantize.h) computes them, so that these ops
// and a QDQ graph with DynamicQuantizeLinear see the same u8 values.
//
// How dynamic_x runs without rebuilding primitives: the int8 kernels bake
// src_scale into the oneDNN primitive's output scales and take the src zero
// point from their construction-time parameters, so a kernel built per
// batch's (scale, zero point) would JIT a primitive and reorder the weights
// on every run (and a cache keyed by them would grow per batch). Instead the
// kernel is built once with src_scale 1, src_zero_point 0, no bias and no
// relu; it returns acc = w_scale[c] * sum(q * w). With the run's scale s and
// zero point z the result is
//   y = s * (acc - z * ones_acc) + bias[c], then relu
// where ones_acc is the same kernel run on one sample of all-1 u8 values:
// w_scale[c] * sum of the weights that meet real input, which at a Conv's
// borders excludes the padding (padding is real 0, i.e. q = z, and
// contributes nothing). ones_acc is computed once per input shape. The only
// extra cost is one f32 pass over the output; the primitive cache holds one
// entry per input shape (plus one for the all-ones sample), as with static
// parameters, and never grows with the number of batches. Numerically acc
// and ones_acc are f32-rounded before the subtraction, so results agree
// with the static path (given the same parameters) to f32 rounding, not
// bit for bit (engine/passes/int8_lowering_test.cc measures both).
#include <algorithm>
#include <cmath>
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/conv_attributes.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/convolution.h"
#include "kernels/matmul.h"
#include "kernels/parallel_for.h"
#include "kernels/quantize.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// The per-tensor activation quantization every quantized op starts with.
class ActivationQuantizer {
 public:
  explicit ActivationQuantizer(const Node& node)
      : scale_(node.attributes.GetFloat("x_scale", 1.f)),
        zero_point_(
            static_cast<int32_t>(node.attributes.GetInt("x_zero_point", 0))),
        dynamic_(node.attributes.GetInt("dynamic_x", 0) != 0) {}

  absl::Status Validate() const {
    if (dynamic_) return absl::OkStatus();  // x_scale, x_zero_point unused
    if (!(scale_ > 0.f) || !std::isfinite(scale_)) {
      return absl::InvalidArgumentError(
          absl::StrCat("x_scale must be positive and finite, got ", scale_));
    }
    if (zero_point_ < 0 || zero_point_ > 255) {
      return absl::InvalidArgumentError(
          absl::StrCat("x_zero_point must be in [0, 255], got ", zero_point_));
    }
    return absl::OkStatus();
  }

  // Static parameters only.
  absl::Status Quantize(const Tensor& x, Tensor* q) const {
    QUANTD_RETURN_IF_ERROR(ExpectDtype(x, DataType::kFloat32, "input"));
    Tensor scale = Tensor::Scalar<float>(scale_);
    Tensor zp = Tensor::Scalar<uint8_t>(static_cast<uint8_t>(zero_point_));
    QuantizeOptions options;
    options.output_type = DataType::kUInt8;
    QUANTD_RETURN_IF_ERROR(QuantizeLinear(x, scale, &zp, options, q));
    // Per-tensor parameters: elementwise, so x's layout carries over.
    return q->set_layout(x.layout());
  }

  bool dynamic() const { return dynamic_; }
  // The parameters the kernel is built with: dynamic ops build it with 1
  // and 0 and apply the run's parameters afterwards (see the top).
  float kernel_scale() const { return dynamic_ ? 1.f : scale_; }
  int32_t kernel_zero_point() const { return dynamic_ ? 0 : zero_point_; }

 private:
  float scale_;
  int32_t zero_point_;
  bool dynamic_;
};

absl::StatusOr<QuantizedOpParams> ReadQuantParams(
    const OpKernelContext& ctx, const ActivationQuantizer& act,
    int64_t channels, bool fused_relu) {
  QUANTD_ASSIGN_OR_RETURN(const Tensor* w_scale, ctx.required_input(2));
  QUANTD_RETURN_IF_ERROR(ExpectDtype(*w_scale, DataType::kFloat32, "w_scale"));
  QuantizedOpParams q;
  q.src_scale = act.kernel_scale();
  q.src_zero_point = act.kernel_zero_point();
  q.weight_scales = (w_scale)->ToVector<float>();
  q.dst_type = DataType::kFloat32;
  // Dynamic ops apply relu after their own epilogue.
  q.post_ops.relu = fused_relu && !act.dynamic();
  QUANTD_RETURN_IF_ERROR(
      ValidateQuantizedOpParams(q, DataType::kUInt8, channels));
  return q;
}

// y_scale / y_zero_point, when the lowering keeps the output u8.
class OutputQuantization {
 public:
  explicit OutputQuantization(const Node& node)
      : chained_(node.attributes.Has("y_scale")),
        scale_(node.attributes.GetFloat("y_scale", 0.f)),
        zero_point_(node.attributes.GetInt("y_zero_point", 0)) {}

  bool chained() const { return chained_; }

  absl::Status Apply(bool dynamic, QuantizedOpParams& q) const {
    if (!chained_) return absl::OkStatus();
    if (dynamic || !(scale_ > 0.f) || !std::isfinite(scale_) ||
        zero_point_ < 0 || zero_point_ > 255) {
      return absl::InvalidArgumentError(absl::StrCat(
          "y_scale must be positive and finite and y_zero_point in [0, 255] "
          "on a static quantized op, got ",
          scale_, " and ", zero_point_));
    }
    q.dst_type = DataType::kUInt8;
    q.dst_scale = scale_;
    q.dst_zero_point = static_cast<int32_t>(zero_point_);
    return absl::OkStatus();
  }

 private:
  bool chained_;
  float scale_;
  int64_t zero_point_;
};

const Tensor* OptionalInput(const OpKernelContext& ctx, int i) {
  const Tensor* t = ctx.input(i);
  return t != nullptr && t->defined() ? t : nullptr;
}

// What dynamic_x adds to an op: the all-ones accumulations per input shape
// and the epilogue described at the top of the file.
class DynamicActivation {
 public:
  // `run(src, dst)` runs the op's int8 kernel (src_scale 1, zero point 0, no
  // bias, no relu) on a u8 tensor. `ones_shape` is one sample of x's shape
  // (the run on it gives one sample of the output). The output has
  // `channels` channels: dim 1 of [N, C, spatial...] when channels_first
  // (Conv), else the last dim (MatMul).
  template <typename Run>
  absl::Status Forward(const Tensor& x, const Shape& ones_shape,
                       int64_t channels, bool channels_first,
                       const Tensor* bias, bool relu, Run&& run, Tensor* y) {
    QUANTD_RETURN_IF_ERROR(ExpectDtype(x, DataType::kFloat32, "input"));
    Tensor xq;
    DynamicQuantParams p;
    QUANTD_RETURN_IF_ERROR(DynamicQuantizeLinear(x, &xq, &p));
    QUANTD_RETURN_IF_ERROR(run(xq, y));
    const float* ones_acc = nullptr;
    if (p.zero_point != 0) {
      QUANTD_ASSIGN_OR_RETURN(const Tensor* ones,
                              OnesAccumulation(ones_shape, run));
      ones_acc = (ones)->data<float>();
    }
    if (bias != nullptr && (bias->dtype() != DataType::kFloat32 ||
                            bias->rank() != 1 || bias->dim(0) != channels)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bias is ", bias->DebugString(), ", expected f32[", channels, "]"));
    }
    const float* b = bias != nullptr ? bias->data<float>() : nullptr;
    int64_t inner = 1;  // contiguous elements of one channel in a sample
    if (channels_first) {
      for (int d = 2; d < y->rank(); ++d) inner *= y->dim(d);
    }
    const int64_t per_sample = channels * inner;
    const double s = p.scale;
    const double z = p.zero_point;
    float* out = y->mutable_data<float>();
    const int64_t n = y->num_elements();
    ParallelFor(n, n > (1 << 16), [&](int64_t i) {
      const int64_t j = i % per_sample;
      // In double so that subtracting z * ones_acc cancels nothing but
      // acc's own f32 rounding.
      double acc = out[i];
      if (ones_acc != nullptr) acc -= z * ones_acc[j];
      double v = s * acc + (b != nullptr ? b[j / inner] : 0.0);
      if (relu && v < 0) v = 0;
      out[i] = static_cast<float>(v);
    });
    return absl::OkStatus();
  }

 private:
  template <typename Run>
  absl::StatusOr<const Tensor*> OnesAccumulation(const Shape& shape,
                                                 Run&& run) {
    const std::string key = ShapeToString(shape);
    auto it = ones_acc_.find(key);
    if (it != ones_acc_.end()) return &it->second;
    Tensor ones(DataType::kUInt8, shape);
    for (uint8_t& v : ones.mutable_span<uint8_t>()) v = 1;
    Tensor acc;
    QUANTD_RETURN_IF_ERROR(run(ones, &acc));
    // Bounded like the kernels' own caches (varying shapes).
    if (ones_acc_.size() >= 16) ones_acc_.clear();
    return &ones_acc_.emplace(key, std::move(acc)).first->second;
  }

  std::map<std::string, Tensor> ones_acc_;
};

class QuantizedConvOp : public OpKernel {
 public:
  explicit QuantizedConvOp(const OpKernelInfo& info)
      : act_(info.node),
        attrs_(ReadConvAttributes(info.node)),
        fused_relu_(info.node.attributes.GetInt("fused_relu", 0) != 0),
        output_(info.node) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_RETURN_IF_ERROR(act_.Validate());
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* w, ctx.required_input(1));
    QUANTD_RETURN_IF_ERROR(ExpectDtype(*w, DataType::kInt8, "weights"));
    if (!act_.dynamic()) {
      QUANTD_ASSIGN_OR_RETURN(QuantizedConvolutionKernel * k,
                              Kernel(ctx, (x)->shape(), *w));
      // A u8 x comes quantized from a chained producer (see the top).
      Tensor xq = *x;
      if (x->dtype() != DataType::kUInt8) {
        QUANTD_RETURN_IF_ERROR(act_.Quantize(*x, &xq));
      }
      // A fused tail (executor.h) adds post-ops; fused and unfused runs
      // share the kernel and its packed weights.
      PostOps post;
      post.relu = fused_relu_;
      if (const FusedTail* tail = ctx.tail()) {
        post.sum = tail->addend != nullptr;
        post.relu = post.relu || tail->relu;
      }
      return (k)->ForwardWithPostOps(post, xq, *w, OptionalInput(ctx, 3),
                                     ctx.output(0), ctx.preferred_layout());
    }
    const Shape& xs = (x)->shape();
    if (xs.size() < 3) {
      return absl::InvalidArgumentError(absl::StrCat(
          "Conv input must have rank >= 3, got ", (x)->DebugString()));
    }
    Shape one = xs;
    one[0] = 1;
    auto run = [&](const Tensor& src, Tensor* dst) -> absl::Status {
      QUANTD_ASSIGN_OR_RETURN(QuantizedConvolutionKernel * k,
                              Kernel(ctx, src.shape(), *w));
      return (k)->Forward(src, *w, nullptr, dst);
    };
    return dynamic_.Forward(*x, one, (w)->dim(0), /*channels_first=*/true,
                            OptionalInput(ctx, 3), fused_relu_, run,
                            ctx.output(0));
  }

  // The dynamic path's epilogue indexes plain [N, C, spatial...] outputs.
  bool AcceptsChannelsLast(int input,
                           absl::Span<const Tensor* const>) const override {
    return input == 0 && !act_.dynamic();
  }

  // Static path only. An Add cannot follow a fused Relu in oneDNN's post-op
  // order (sum, then relu), so a node with fused_relu takes only a Relu.
  bool SupportsTail(absl::Span<const Tensor* const> inputs,
                    const FusedTail& tail) const override {
    // A chained (u8) output cannot take f32 post-ops; a u8 input can.
    if (act_.dynamic() || output_.chained() || inputs.size() < 3 ||
        inputs[0] == nullptr || inputs[1] == nullptr ||
        (inputs[0]->dtype() != DataType::kFloat32 &&
         inputs[0]->dtype() != DataType::kUInt8) ||
        inputs[1]->dtype() != DataType::kInt8) {
      return false;
    }
    if (tail.addend == nullptr) return true;
    if (fused_relu_ || tail.addend->dtype() != DataType::kFloat32) return false;
    absl::StatusOr<ConvParams> p = ResolveConvParams(attrs_, inputs[0]->shape(),
                                                     inputs[1]->shape(), false);
    if (!p.ok()) return false;
    absl::StatusOr<Shape> out =
        ConvOutputShape(*p, inputs[0]->shape(), inputs[1]->shape());
    return out.ok() && *out == tail.addend->shape();
  }

 private:
  // One kernel per input shape except the batch dim, which ConvParams do
  // not depend on (the kernel caches a primitive per full shape itself).
  // So batches of any size, and the all-ones sample of the dynamic path,
  // share one kernel and one reordered copy of the weights.
  absl::StatusOr<QuantizedConvolutionKernel*> Kernel(OpKernelContext& ctx,
                                                     const Shape& x,
                                                     const Tensor& w) {
    const Shape per_sample(x.begin() + std::min<size_t>(1, x.size()), x.end());
    std::string key =
        absl::StrCat(ShapeToString(per_sample), ShapeToString(w.shape()));
    auto it = kernels_.find(key);
    if (it == kernels_.end()) {
      QUANTD_ASSIGN_OR_RETURN(ConvParams p,
                              ResolveConvParams(attrs_, x, w.shape(), false));
      QUANTD_ASSIGN_OR_RETURN(
          QuantizedOpParams q,
          ReadQuantParams(ctx, act_, w.dim(0), fused_relu_));
      QUANTD_RETURN_IF_ERROR(output_.Apply(act_.dynamic(), q));
      if (kernels_.size() >= 16) kernels_.clear();
      it = kernels_
               .emplace(key, std::make_unique<QuantizedConvolutionKernel>(
                                 std::move(p), std::move(q)))
               .first;
    }
    return it->second.get();
  }

  ActivationQuantizer act_;
  ConvAttributes attrs_;
  bool fused_relu_;
  OutputQuantization output_;
  std::map<std::string, std::unique_ptr<QuantizedConvolutionKernel>> kernels_;
  DynamicActivation dynamic_;
};

class QuantizedMatMulOp : public OpKernel {
 public:
  explicit QuantizedMatMulOp(const OpKernelInfo& info)
      : act_(info.node),
        trans_b_(info.node.attributes.GetInt("trans_b", 0) != 0),
        fused_relu_(info.node.attributes.GetInt("fused_relu", 0) != 0),
        output_(info.node) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_RETURN_IF_ERROR(act_.Validate());
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* w, ctx.required_input(1));
    QUANTD_RETURN_IF_ERROR(ExpectDtype(*w, DataType::kInt8, "weights"));
    if ((w)->rank() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights must be 2-D, got ", (w)->DebugString()));
    }
    const int64_t n = trans_b_ ? (w)->dim(0) : (w)->dim(1);
    if (kernel_ == nullptr) {
      QUANTD_ASSIGN_OR_RETURN(QuantizedOpParams q,
                              ReadQuantParams(ctx, act_, n, fused_relu_));
      QUANTD_RETURN_IF_ERROR(output_.Apply(act_.dynamic(), q));
      kernel_ = std::make_unique<QuantizedMatMulKernel>(std::move(q), trans_b_);
    }
    if (!act_.dynamic()) {
      // A u8 x comes quantized from an int8 producer (see the top).
      Tensor xq = *x;
      if (x->dtype() != DataType::kUInt8) {
        QUANTD_RETURN_IF_ERROR(act_.Quantize(*x, &xq));
      }
      return kernel_->Forward(xq, *w, OptionalInput(ctx, 3), ctx.output(0));
    }
    if ((x)->rank() < 1) {
      return absl::InvalidArgumentError(absl::StrCat(
          "MatMul input must have rank >= 1, got ", (x)->DebugString()));
    }
    auto run = [&](const Tensor& src, Tensor* dst) {
      return kernel_->Forward(src, *w, nullptr, dst);
    };
    // One row of K ones: its product is one row of the output.
    const Shape one = {1, (x)->dim(-1)};
    return dynamic_.Forward(*x, one, n, /*channels_first=*/false,
                            OptionalInput(ctx, 3), fused_relu_, run,
                            ctx.output(0));
  }

 private:
  ActivationQuantizer act_;
  bool trans_b_;
  bool fused_relu_;
  OutputQuantization output_;
  std::unique_ptr<QuantizedMatMulKernel> kernel_;
  DynamicActivation dynamic_;
};

}  // namespace

void RegisterQuantizedOps(OpRegistry& r) {
  r.Register(absl::StrCat(kQuantdDomain, ".QuantizedConv"),
             MakeFactory<QuantizedConvOp>());
  r.Register(absl::StrCat(kQuantdDomain, ".QuantizedMatMul"),
             MakeFactory<QuantizedMatMulOp>());
}

}  // namespace quantd
