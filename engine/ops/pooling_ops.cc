// MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool on oneDNN pooling.
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/ops/op_util.h"
#include "engine/ops/register_ops.h"
#include "kernels/pooling.h"

namespace quantd {
namespace {

absl::StatusOr<AutoPad> ParseAutoPad(const std::string& s) {
  if (s == "NOTSET" || s.empty()) return AutoPad::kNotSet;
  if (s == "VALID") return AutoPad::kValid;
  if (s == "SAME_UPPER") return AutoPad::kSameUpper;
  if (s == "SAME_LOWER") return AutoPad::kSameLower;
  return absl::InvalidArgumentError(
      absl::StrCat("auto_pad '", s,
                   "' is not one of NOTSET, VALID, SAME_UPPER, SAME_LOWER"));
}

class PoolKernel : public OpKernel {
 public:
  explicit PoolKernel(PoolParams params) : pool_(std::move(params)) {}

  static absl::StatusOr<std::unique_ptr<OpKernel>> Create(
      const OpKernelInfo& info, PoolKind kind, bool global) {
    if (global) {
      return std::make_unique<PoolKernel>(GlobalPoolParams(kind));
    }
    const AttributeMap& a = info.node.attributes;
    if (kind == PoolKind::kMax && info.node.outputs.size() > 1 &&
        !info.node.outputs[1].empty()) {
      return absl::UnimplementedError(
          "MaxPool's Indices output is not supported");
    }
    if (a.GetInt("storage_order", 0) != 0) {
      return absl::UnimplementedError(
          "MaxPool with storage_order = 1 (column major) is not supported");
    }
    PoolParams p;
    p.kind = kind;
    p.kernel = a.GetInts("kernel_shape");
    if (p.kernel.empty()) {
      return absl::InvalidArgumentError("kernel_shape is required");
    }
    p.strides = a.GetInts("strides");
    p.dilations = a.GetInts("dilations");
    p.pads = a.GetInts("pads");
    absl::StatusOr<AutoPad> auto_pad =
        ParseAutoPad(a.GetString("auto_pad", "NOTSET"));
    if (!auto_pad.ok()) return auto_pad.status();
    p.auto_pad = *auto_pad;
    p.ceil_mode = a.GetInt("ceil_mode", 0) != 0;
    p.count_include_pad = a.GetInt("count_include_pad", 0) != 0;
    return std::make_unique<PoolKernel>(std::move(p));
  }

  absl::Status Compute(OpKernelContext& ctx) override {
    absl::StatusOr<const Tensor*> x = ctx.required_input(0);
    if (!x.ok()) return x.status();
    return pool_.Forward(**x, ctx.output(0));
  }

 private:
  PoolingForward pool_;
};

OpKernelFactory Pool(PoolKind kind, bool global) {
  return [kind, global](const OpKernelInfo& info) {
    return PoolKernel::Create(info, kind, global);
  };
}

}  // namespace

void RegisterPoolingOps(OpRegistry& r) {
  r.Register("MaxPool", Pool(PoolKind::kMax, false));
  r.Register("AveragePool", Pool(PoolKind::kAverage, false));
  r.Register("GlobalMaxPool", Pool(PoolKind::kMax, true));
  r.Register("GlobalAveragePool", Pool(PoolKind::kAverage, true));
}

}  // namespace quantd
