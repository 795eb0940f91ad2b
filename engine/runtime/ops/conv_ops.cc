// Conv and ConvTranspose on the oneDNN kernels, with ONNX's auto_pad and
// (ConvTranspose) output_shape resolved to explicit pads per input shape.
#include <map>
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/conv_attributes.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/convolution.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

std::string ShapeKey(const Shape& a, const Shape& b) {
  return absl::StrCat(ShapeToString(a), ShapeToString(b));
}

template <typename Kernel>
class ConvLikeKernel : public OpKernel {
 public:
  ConvLikeKernel(const OpKernelInfo& info, bool transposed)
      : attrs_(ReadConvAttributes(info.node)), transposed_(transposed) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* w, ctx.required_input(1));
    const Tensor* bias = ctx.input(2);
    if (bias != nullptr && !bias->defined()) bias = nullptr;
    for (const Tensor* t : {x, w, bias}) {
      if (t == nullptr) continue;
      QUANTD_RETURN_IF_ERROR(ExpectDtype(*t, DataType::kFloat32, "operand"));
    }
    // A fused tail (executor.h) becomes post-ops: sum adds into output(0),
    // which holds the addend on entry.
    PostOps post;
    if (const FusedTail* tail = ctx.tail()) {
      post.sum = tail->addend != nullptr;
      post.relu = tail->relu;
    }
    // Pads depend on the input shape only with auto_pad or output_shape;
    // kernels are kept per shape so each keeps its own primitive cache.
    // Fused and unfused runs share one kernel, and so its packed weights.
    std::string key = ShapeKey((x)->shape(), (w)->shape());
    auto it = kernels_.find(key);
    if (it == kernels_.end()) {
      QUANTD_ASSIGN_OR_RETURN(
          ConvParams p,
          ResolveConvParams(attrs_, (x)->shape(), (w)->shape(), transposed_));
      if (kernels_.size() >= 16) kernels_.clear();
      it = kernels_.emplace(key, std::make_unique<Kernel>(p)).first;
    }
    return it->second->ForwardWithPostOps(post, *x, *w, bias, ctx.output(0),
                                          ctx.preferred_layout());
  }

  // Relu always; an Add when the addend is f32 of the output's shape.
  bool SupportsTail(absl::Span<const Tensor* const> inputs,
                    const FusedTail& tail) const override {
    if (inputs.size() < 2 || inputs[0] == nullptr || inputs[1] == nullptr ||
        inputs[0]->dtype() != DataType::kFloat32) {
      return false;
    }
    if (tail.addend == nullptr) return true;
    return tail.addend->dtype() == DataType::kFloat32 &&
           ConvOutputShapeFor(*inputs[0], *inputs[1]) == tail.addend->shape();
  }

  bool AcceptsChannelsLast(int input,
                           absl::Span<const Tensor* const>) const override {
    return input == 0;
  }

 private:
  // Empty when the shapes do not make a valid conv.
  Shape ConvOutputShapeFor(const Tensor& x, const Tensor& w) const {
    absl::StatusOr<ConvParams> p =
        ResolveConvParams(attrs_, x.shape(), w.shape(), transposed_);
    if (!p.ok()) return {};
    absl::StatusOr<Shape> out =
        transposed_ ? DeconvOutputShape(*p, x.shape(), w.shape())
                    : ConvOutputShape(*p, x.shape(), w.shape());
    return out.ok() ? *out : Shape{};
  }

  ConvAttributes attrs_;
  bool transposed_;
  std::map<std::string, std::unique_ptr<Kernel>> kernels_;
};

}  // namespace

void RegisterConvOps(OpRegistry& r) {
  r.Register("Conv",
             [](const OpKernelInfo& info)
                 -> absl::StatusOr<std::unique_ptr<OpKernel>> {
               return std::make_unique<ConvLikeKernel<ConvolutionKernel>>(
                   info, false);
             });
  r.Register("ConvTranspose",
             [](const OpKernelInfo& info)
                 -> absl::StatusOr<std::unique_ptr<OpKernel>> {
               return std::make_unique<ConvLikeKernel<DeconvolutionKernel>>(
                   info, true);
             });
}

}  // namespace quantd
