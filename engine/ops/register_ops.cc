#include "engine/ops/register_ops.h"

namespace quantd {

void RegisterAllOps(OpRegistry& registry) {
  RegisterShapeOps(registry);
  RegisterDataMovementOps(registry);
  RegisterResizeOps(registry);
}

}  // namespace quantd
