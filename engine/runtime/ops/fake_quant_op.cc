#include "engine/runtime/ops/fake_quant_op.h"

#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<FakeQuantParams> ReadFakeQuantParams(const Node& node,
                                                    const Tensor& scale,
                                                    const Tensor* zero_point) {
  if (scale.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError("FakeQuant scale must be f32");
  }
  FakeQuantParams p;
  p.scales = scale.ToVector<float>();
  if (zero_point != nullptr && zero_point->defined()) {
    if (zero_point->dtype() != DataType::kInt32) {
      return absl::InvalidArgumentError("FakeQuant zero_point must be int32");
    }
    p.zero_points = zero_point->ToVector<int32_t>();
  }
  p.axis = node.attributes.GetInt("axis", -1);
  p.group_size = node.attributes.GetInt("block_size", 0);
  p.qmin = static_cast<int32_t>(node.attributes.GetInt("qmin", -128));
  p.qmax = static_cast<int32_t>(node.attributes.GetInt("qmax", 127));
  return p;
}

namespace {

class FakeQuantKernel : public OpKernel {
 public:
  explicit FakeQuantKernel(const OpKernelInfo&) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* scale, ctx.required_input(1));
    QUANTD_ASSIGN_OR_RETURN(
        FakeQuantParams p,
        ReadFakeQuantParams(ctx.node(), *scale, ctx.input(2)));
    return FakeQuantForward(*x, p, ctx.output(0));
  }
};

}  // namespace

void RegisterFakeQuantOps(OpRegistry& r) {
  r.Register(absl::StrCat(kQuantdDomain, ".", kFakeQuantOp),
             MakeFactory<FakeQuantKernel>());
}

}  // namespace quantd
