// quantd.QuantizedAdd, produced by LowerToInt8 (engine/passes/int8_lowering.h)
// where both operands of an Add arrive as u8: the residual Adds of ResNet
// blocks, which then never leave u8. Runs kernels/quantized_add.h.
//
// quantd.QuantizedAdd(a u8, b u8) -> u8 (with y_scale) or f32
// Attributes: a_scale, a_zero_point, b_scale, b_zero_point; fused_relu;
// y_scale, y_zero_point (optional: the output is quantized with them).
// Parameters are checked at creation, so a hand-made node with a zero scale
// or a zero point outside [0, 255] is refused before it runs.
#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/quantized_add.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

U8Params ReadU8(const Node& node, const std::string& prefix) {
  U8Params p;
  p.scale = node.attributes.GetFloat(prefix + "_scale", 0.f);
  // Clamped into int32 range here; out-of-range values fail validation.
  const int64_t zp = node.attributes.GetInt(prefix + "_zero_point", 0);
  p.zero_point = static_cast<int32_t>(std::clamp<int64_t>(zp, -1, 256));
  return p;
}

class QuantizedAddOp : public OpKernel {
 public:
  explicit QuantizedAddOp(QuantizedAddParams p) : params_(std::move(p)) {}

  static absl::StatusOr<std::unique_ptr<OpKernel>> Create(
      const OpKernelInfo& info) {
    const Node& node = info.node;
    QuantizedAddParams p;
    p.a = ReadU8(node, "a");
    p.b = ReadU8(node, "b");
    p.relu = node.attributes.GetInt("fused_relu", 0) != 0;
    if (node.attributes.Has("y_scale")) p.y = ReadU8(node, "y");
    absl::Status valid = ValidateQuantizedAddParams(p);
    if (!valid.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("node '", node.name, "': ", valid.message()));
    }
    return std::make_unique<QuantizedAddOp>(std::move(p));
  }

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* a, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* b, ctx.required_input(1));
    return QuantizedAdd(*a, *b, params_, ctx.output(0));
  }

  // Elementwise: the output takes the inputs' layout (mixed layouts are
  // handled by the kernel on plain copies).
  bool AcceptsChannelsLast(int,
                           absl::Span<const Tensor* const>) const override {
    return true;
  }

 private:
  QuantizedAddParams params_;
};

}  // namespace

void RegisterQuantizedAddOp(OpRegistry& r) {
  r.Register(absl::StrCat(kQuantdDomain, ".QuantizedAdd"),
             QuantizedAddOp::Create);
}

}  // namespace quantd
