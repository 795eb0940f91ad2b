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
    // Pads depend on the input shape only with auto_pad or output_shape;
    // kernels are kept per shape so each keeps its own primitive cache.
    std::string key = ShapeKey((x)->shape(), (w)->shape());
    auto it = kernels_.find(key);
    if (it == kernels_.end()) {
      QUANTD_ASSIGN_OR_RETURN(
          ConvParams p,
          ResolveConvParams(attrs_, (x)->shape(), (w)->shape(), transposed_));
      if (kernels_.size() >= 16) kernels_.clear();
      it = kernels_.emplace(key, std::make_unique<Kernel>(p)).first;
    }
    return it->second->Forward(*x, *w, bias, ctx.output(0),
                               ctx.preferred_layout());
  }

  bool AcceptsChannelsLast(int input,
                           absl::Span<const Tensor* const>) const override {
    return input == 0;
  }

 private:
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
