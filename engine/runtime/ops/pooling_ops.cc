// MaxPool, AveragePool, GlobalMaxPool, GlobalAveragePool on oneDNN pooling.
#include <memory>

#include "absl/strings/str_cat.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/pool_attributes.h"
#include "engine/runtime/ops/register_ops.h"
#include "kernels/pooling.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

class PoolKernel : public OpKernel {
 public:
  explicit PoolKernel(PoolParams params) : pool_(std::move(params)) {}

  static absl::StatusOr<std::unique_ptr<OpKernel>> Create(
      const OpKernelInfo& info, PoolKind kind, bool global) {
    if (global) {
      return std::make_unique<PoolKernel>(GlobalPoolParams(kind));
    }
    QUANTD_ASSIGN_OR_RETURN(PoolParams p, ReadPoolParams(info.node, kind));
    return std::make_unique<PoolKernel>(std::move(p));
  }

  absl::Status Compute(OpKernelContext& ctx) override {
    QUANTD_ASSIGN_OR_RETURN(const Tensor* x, ctx.required_input(0));
    return pool_.Forward(*x, ctx.output(0));
  }

  // The output keeps the input's layout (kernels/pooling.h).
  bool AcceptsChannelsLast(int input,
                           absl::Span<const Tensor* const>) const override {
    return input == 0;
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
