#include "engine/runtime/ops/register_ops.h"

namespace quantd {

void RegisterAllOps(OpRegistry& registry) {
  RegisterShapeOps(registry);
  RegisterDataMovementOps(registry);
  RegisterResizeOps(registry);
  RegisterElementwiseOps(registry);
  RegisterNormalizationOps(registry);
  RegisterConvOps(registry);
  RegisterPoolingOps(registry);
  RegisterMatMulOps(registry);
  RegisterQuantizeOps(registry);
  RegisterQuantizedOps(registry);
  RegisterQuantizedAddOp(registry);
  RegisterWeightOnlyOps(registry);
  RegisterFakeQuantOps(registry);
}

// Defined here rather than in op_registry.cc: the registry knows no op
// family; the families are registered from ops/.
const OpRegistry& DefaultOpRegistry() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterAllOps(*r);
    return r;
  }();
  return *registry;
}

}  // namespace quantd
