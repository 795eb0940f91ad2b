// QuantizeLinear and DequantizeLinear (per tensor since opset 10, per axis
// since 13), so that quantd can run the QDQ models it exports and models
// that arrive already quantized.
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/ops/op_util.h"
#include "engine/ops/register_ops.h"
#include "kernels/quantize.h"

namespace quantd {
namespace {

class QuantizeLinearKernel : public OpKernel {
 public:
  explicit QuantizeLinearKernel(const OpKernelInfo& info)
      : axis_(info.node.attributes.GetInt("axis", 1)),
        block_size_(info.node.attributes.GetInt("block_size", 0)) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    absl::StatusOr<const Tensor*> x = ctx.required_input(0);
    if (!x.ok()) return x.status();
    absl::StatusOr<const Tensor*> scale = ctx.required_input(1);
    if (!scale.ok()) return scale.status();
    const Tensor* zp = ctx.input(2);
    if (zp != nullptr && !zp->defined()) zp = nullptr;
    QuantizeOptions options;
    options.axis = axis_;
    options.block_size = block_size_;
    // Without a zero point ONNX quantizes to uint8.
    options.output_type = zp != nullptr ? zp->dtype() : DataType::kUInt8;
    return QuantizeLinear(**x, **scale, zp, options, ctx.output(0));
  }

 private:
  int64_t axis_;
  int64_t block_size_;
};

class DequantizeLinearKernel : public OpKernel {
 public:
  explicit DequantizeLinearKernel(const OpKernelInfo& info)
      : axis_(info.node.attributes.GetInt("axis", 1)),
        block_size_(info.node.attributes.GetInt("block_size", 0)) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    absl::StatusOr<const Tensor*> x = ctx.required_input(0);
    if (!x.ok()) return x.status();
    absl::StatusOr<const Tensor*> scale = ctx.required_input(1);
    if (!scale.ok()) return scale.status();
    const Tensor* zp = ctx.input(2);
    if (zp != nullptr && !zp->defined()) zp = nullptr;
    DequantizeOptions options;
    options.axis = axis_;
    options.block_size = block_size_;
    return DequantizeLinear(**x, **scale, zp, options, ctx.output(0));
  }

 private:
  int64_t axis_;
  int64_t block_size_;
};

}  // namespace

void RegisterQuantizeOps(OpRegistry& r) {
  r.Register("QuantizeLinear", MakeFactory<QuantizeLinearKernel>());
  r.Register("DequantizeLinear", MakeFactory<DequantizeLinearKernel>());
}

}  // namespace quantd
