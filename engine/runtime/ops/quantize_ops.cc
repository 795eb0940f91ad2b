// QuantizeLinear and DequantizeLinear (per tensor since opset 10, per axis
// since 13), so that quantd can run the QDQ models it exports and models
// that arrive already quantized; DynamicQuantizeLinear (opset 11), which
// dynamic-activation QDQ exports put in front of DequantizeLinear; and
// quantd.DequantizePackedCodes, DequantizeLinear over 4-bit codes held two
// per byte (engine/ir/weight_codes.h), which evaluation graphs use for
// weights a plan holds as int4 codes.
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/ir/weight_codes.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/quantize.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

class QuantizeLinearKernel : public OpKernel {
 public:
  explicit QuantizeLinearKernel(const OpKernelInfo& info)
      : axis_(info.node.attributes.GetInt("axis", 1)),
        block_size_(info.node.attributes.GetInt("block_size", 0)) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* scale, ctx.required_input(1));
    const Tensor* zp = ctx.input(2);
    if (zp != nullptr && !zp->defined()) zp = nullptr;
    QuantizeOptions options;
    options.axis = axis_;
    options.block_size = block_size_;
    // Without a zero point ONNX quantizes to uint8.
    options.output_type = zp != nullptr ? zp->dtype() : DataType::kUInt8;
    return QuantizeLinear(*x, *scale, zp, options, ctx.output(0));
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
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* scale, ctx.required_input(1));
    const Tensor* zp = ctx.input(2);
    if (zp != nullptr && !zp->defined()) zp = nullptr;
    DequantizeOptions options;
    options.axis = axis_;
    options.block_size = block_size_;
    return DequantizeLinear(*x, *scale, zp, options, ctx.output(0));
  }

 private:
  int64_t axis_;
  int64_t block_size_;
};

// The codes unpacked one per byte (a layer's worth, while the node runs),
// then DequantizeLinear's arithmetic.
class DequantizePackedCodesKernel : public OpKernel {
 public:
  explicit DequantizePackedCodesKernel(const OpKernelInfo& info)
      : axis_(info.node.attributes.GetInt("axis", 1)),
        block_size_(info.node.attributes.GetInt("block_size", 0)),
        shape_(info.node.attributes.GetInts("shape", {})) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* codes, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* scale, ctx.required_input(1));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* zp, ctx.required_input(2));
    QUANTD_ASSIGN_OR_RETURN(
        WeightCodes unpacker,
        WeightCodes::FromStorage(*codes, zp->dtype(), shape_, /*bits=*/4));
    DequantizeOptions options;
    options.axis = axis_;
    options.block_size = block_size_;
    return DequantizeLinear(unpacker.Values(), *scale, zp, options,
                            ctx.output(0));
  }

 private:
  int64_t axis_;
  int64_t block_size_;
  Shape shape_;
};

// DynamicQuantizeLinear(x f32) -> (y u8, y_scale f32 scalar,
// y_zero_point u8 scalar); parameters from x's range per run
// (kernels/quantize.h).
class DynamicQuantizeLinearKernel : public OpKernel {
 public:
  explicit DynamicQuantizeLinearKernel(const OpKernelInfo&) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    DynamicQuantParams params;
    QUANTD_RETURN_IF_ERROR(DynamicQuantizeLinear(*x, ctx.output(0), &params));
    // Unused trailing outputs may have no slot.
    if (ctx.num_outputs() > 1) {
      ctx.set_output(1, Tensor::Scalar<float>(params.scale));
    }
    if (ctx.num_outputs() > 2) {
      ctx.set_output(
          2, Tensor::Scalar<uint8_t>(static_cast<uint8_t>(params.zero_point)));
    }
    return absl::OkStatus();
  }
};

}  // namespace

void RegisterQuantizeOps(OpRegistry& r) {
  r.Register("QuantizeLinear", MakeFactory<QuantizeLinearKernel>());
  r.Register("DequantizeLinear", MakeFactory<DequantizeLinearKernel>());
  r.Register("DynamicQuantizeLinear",
             MakeFactory<DynamicQuantizeLinearKernel>());
  r.Register(absl::StrCat(kPackedCodesDomain, ".", kDequantizePackedCodesOp),
             MakeFactory<DequantizePackedCodesKernel>());
}

}  // namespace quantd
