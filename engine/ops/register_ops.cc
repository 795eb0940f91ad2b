#include "engine/ops/register_ops.h"

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
  RegisterFakeQuantOps(registry);
}

}  // namespace quantd
