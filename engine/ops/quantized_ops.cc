// quantd's own int8 ops (domain "quantd"), produced by LowerToInt8
// (engine/int8_lowering.h) to run a quantized model on oneDNN's int8 kernels.
// They never appear in exported models, which use standard QDQ.
//
// quantd.QuantizedConv(x f32, w s8 [OC, C/g, k...], w_scale f32 [OC] or [1],
//                      bias f32 [OC]?) -> f32
// quantd.QuantizedMatMul(x f32 [..., K], w s8 [K, N] (trans_b: [N, K]),
//                        w_scale f32 [N] or [1], bias f32 [N]?) -> f32
// Attributes: x_scale, x_zero_point (x is quantized to u8 with them),
// fused_relu, plus Conv's attributes / trans_b.
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/ops/conv_attributes.h"
#include "engine/ops/op_util.h"
#include "engine/ops/register_ops.h"
#include "kernels/convolution.h"
#include "kernels/matmul.h"
#include "kernels/quantize.h"

namespace quantd {
namespace {

// The per-tensor activation quantization every quantized op starts with.
class ActivationQuantizer {
 public:
  explicit ActivationQuantizer(const Node& node)
      : scale_(node.attributes.GetFloat("x_scale", 1.f)),
        zero_point_(
            static_cast<int32_t>(node.attributes.GetInt("x_zero_point", 0))) {}

  absl::Status Validate() const {
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

  absl::Status Quantize(const Tensor& x, Tensor* q) const {
    if (absl::Status s = ExpectDtype(x, DataType::kFloat32, "input"); !s.ok()) {
      return s;
    }
    Tensor scale = Tensor::Scalar<float>(scale_);
    Tensor zp = Tensor::Scalar<uint8_t>(static_cast<uint8_t>(zero_point_));
    QuantizeOptions options;
    options.output_type = DataType::kUInt8;
    return QuantizeLinear(x, scale, &zp, options, q);
  }

  float scale() const { return scale_; }
  int32_t zero_point() const { return zero_point_; }

 private:
  float scale_;
  int32_t zero_point_;
};

absl::StatusOr<QuantizedOpParams> ReadQuantParams(
    const OpKernelContext& ctx, const ActivationQuantizer& act,
    int64_t channels, bool fused_relu) {
  absl::StatusOr<const Tensor*> w_scale = ctx.required_input(2);
  if (!w_scale.ok()) return w_scale.status();
  if (absl::Status s = ExpectDtype(**w_scale, DataType::kFloat32, "w_scale");
      !s.ok()) {
    return s;
  }
  QuantizedOpParams q;
  q.src_scale = act.scale();
  q.src_zero_point = act.zero_point();
  q.weight_scales = (*w_scale)->ToVector<float>();
  q.dst_type = DataType::kFloat32;
  q.post_ops.relu = fused_relu;
  if (absl::Status s = ValidateQuantizedOpParams(q, DataType::kUInt8, channels);
      !s.ok()) {
    return s;
  }
  return q;
}

const Tensor* OptionalInput(const OpKernelContext& ctx, int i) {
  const Tensor* t = ctx.input(i);
  return t != nullptr && t->defined() ? t : nullptr;
}

class QuantizedConvOp : public OpKernel {
 public:
  explicit QuantizedConvOp(const OpKernelInfo& info)
      : act_(info.node),
        attrs_(ReadConvAttributes(info.node)),
        fused_relu_(info.node.attributes.GetInt("fused_relu", 0) != 0) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    if (absl::Status s = act_.Validate(); !s.ok()) return s;
    absl::StatusOr<const Tensor*> x = ctx.required_input(0);
    if (!x.ok()) return x.status();
    absl::StatusOr<const Tensor*> w = ctx.required_input(1);
    if (!w.ok()) return w.status();
    if (absl::Status s = ExpectDtype(**w, DataType::kInt8, "weights");
        !s.ok()) {
      return s;
    }
    std::string key = absl::StrCat(ShapeToString((*x)->shape()),
                                   ShapeToString((*w)->shape()));
    auto it = kernels_.find(key);
    if (it == kernels_.end()) {
      absl::StatusOr<ConvParams> p =
          ResolveConvParams(attrs_, (*x)->shape(), (*w)->shape(), false);
      if (!p.ok()) return p.status();
      absl::StatusOr<QuantizedOpParams> q =
          ReadQuantParams(ctx, act_, (*w)->dim(0), fused_relu_);
      if (!q.ok()) return q.status();
      if (kernels_.size() >= 16) kernels_.clear();
      it = kernels_
               .emplace(key, std::make_unique<QuantizedConvolutionKernel>(
                                 std::move(*p), std::move(*q)))
               .first;
    }
    Tensor xq;
    if (absl::Status s = act_.Quantize(**x, &xq); !s.ok()) return s;
    return it->second->Forward(xq, **w, OptionalInput(ctx, 3), ctx.output(0));
  }

 private:
  ActivationQuantizer act_;
  ConvAttributes attrs_;
  bool fused_relu_;
  std::map<std::string, std::unique_ptr<QuantizedConvolutionKernel>> kernels_;
};

class QuantizedMatMulOp : public OpKernel {
 public:
  explicit QuantizedMatMulOp(const OpKernelInfo& info)
      : act_(info.node),
        trans_b_(info.node.attributes.GetInt("trans_b", 0) != 0),
        fused_relu_(info.node.attributes.GetInt("fused_relu", 0) != 0) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    if (absl::Status s = act_.Validate(); !s.ok()) return s;
    absl::StatusOr<const Tensor*> x = ctx.required_input(0);
    if (!x.ok()) return x.status();
    absl::StatusOr<const Tensor*> w = ctx.required_input(1);
    if (!w.ok()) return w.status();
    if (absl::Status s = ExpectDtype(**w, DataType::kInt8, "weights");
        !s.ok()) {
      return s;
    }
    if ((*w)->rank() != 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("weights must be 2-D, got ", (*w)->DebugString()));
    }
    if (kernel_ == nullptr) {
      const int64_t n = trans_b_ ? (*w)->dim(0) : (*w)->dim(1);
      absl::StatusOr<QuantizedOpParams> q =
          ReadQuantParams(ctx, act_, n, fused_relu_);
      if (!q.ok()) return q.status();
      kernel_ =
          std::make_unique<QuantizedMatMulKernel>(std::move(*q), trans_b_);
    }
    Tensor xq;
    if (absl::Status s = act_.Quantize(**x, &xq); !s.ok()) return s;
    return kernel_->Forward(xq, **w, OptionalInput(ctx, 3), ctx.output(0));
  }

 private:
  ActivationQuantizer act_;
  bool trans_b_;
  bool fused_relu_;
  std::unique_ptr<QuantizedMatMulKernel> kernel_;
};

}  // namespace

void RegisterQuantizedOps(OpRegistry& r) {
  r.Register(absl::StrCat(kQuantdDomain, ".QuantizedConv"),
             MakeFactory<QuantizedConvOp>());
  r.Register(absl::StrCat(kQuantdDomain, ".QuantizedMatMul"),
             MakeFactory<QuantizedMatMulOp>());
}

}  // namespace quantd
