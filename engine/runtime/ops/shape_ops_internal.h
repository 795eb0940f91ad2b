// Internal to the shape op family, which spans two files.
#ifndef QUANTD_ENGINE_RUNTIME_OPS_SHAPE_OPS_INTERNAL_H_
#define QUANTD_ENGINE_RUNTIME_OPS_SHAPE_OPS_INTERNAL_H_

#include "engine/runtime/op_registry.h"

namespace quantd {

// Constant and Range (shape_ops_constant.cc); called by RegisterShapeOps.
void RegisterConstantAndRangeOps(OpRegistry& registry);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_SHAPE_OPS_INTERNAL_H_
