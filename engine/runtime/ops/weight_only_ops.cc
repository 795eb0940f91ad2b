// quantd.WeightOnlyMatMul, produced by LowerWeightOnly
// (engine/quantization/weight_only_lowering.h): f32 activations times packed
// 4- or 8-bit weights on kernels/weight_only_matmul.h. Never in exported
// models, which carry the weights as standard (blocked) DequantizeLinear.
//
// quantd.WeightOnlyMatMul(x f32 [..., K],
//                         codes u8 [ceil(N/16), K, 16 * bits / 8],
//                         scales f32 [ceil(N/16), G, 16],
//                         zero_points s32 [ceil(N/16), G, 16],
//                         bias f32 [N]?) -> f32 [..., N]
// Attributes: n (columns), group_size (rows per group; K when per column),
// bits (4 or 8). The packed layout is the kernel's (weight_only_matmul.h);
// ValidateWeightOnlyPacked checks every shape against the attributes, so a
// hand-made graph with inconsistent tensors gets an error, not a wild read;
// scale and zero-point values are checked once per weight tensor.
#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/weight_only_matmul.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

class WeightOnlyMatMulOp : public OpKernel {
 public:
  explicit WeightOnlyMatMulOp(const OpKernelInfo& info)
      : n_(info.node.attributes.GetInt("n", 0)),
        group_size_(info.node.attributes.GetInt("group_size", 0)),
        bits_(info.node.attributes.GetInt("bits", 0)) {}

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* codes, ctx.required_input(1));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* scales, ctx.required_input(2));
    QUANTD_ASSIGN_OR_RETURN(const Tensor* zero_points, ctx.required_input(3));
    if (bits_ != 4 && bits_ != 8) {
      return absl::InvalidArgumentError(
          absl::StrCat("attribute bits must be 4 or 8, got ", bits_));
    }
    // Tensors share storage: this copies handles, not weights.
    WeightOnlyPacked w;
    w.codes = *codes;
    w.scales = *scales;
    w.zero_points = *zero_points;
    w.n = n_;
    w.group_size = group_size_;
    w.bits = static_cast<int>(bits_);
    if (w.zero_points.raw_data() != checked_) {
      QUANTD_RETURN_IF_ERROR(ValidateWeightOnlyValues(w));
      checked_ = w.zero_points.raw_data();
    }
    const Tensor* bias = ctx.input(4);
    if (bias != nullptr && !bias->defined()) bias = nullptr;
    return WeightOnlyMatMul(*x, w, bias, ctx.output(0));
  }

 private:
  // The zero-point tensor whose values (and its scales') passed the check.
  // Initializers do not change between runs; a new tensor is re-checked.
  const void* checked_ = nullptr;
  int64_t n_;
  int64_t group_size_;
  int64_t bits_;
};

}  // namespace

void RegisterWeightOnlyOps(OpRegistry& r) {
  r.Register(absl::StrCat(kQuantdDomain, ".WeightOnlyMatMul"),
             MakeFactory<WeightOnlyMatMulOp>());
}

}  // namespace quantd
