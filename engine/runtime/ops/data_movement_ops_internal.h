// Internal to the data-movement op family, which spans two files.
#ifndef QUANTD_ENGINE_RUNTIME_OPS_DATA_MOVEMENT_OPS_INTERNAL_H_
#define QUANTD_ENGINE_RUNTIME_OPS_DATA_MOVEMENT_OPS_INTERNAL_H_

#include "engine/runtime/op_registry.h"

namespace quantd {

// Pad, Tile, Trilu and Where (data_movement_ops_fill.cc); called by
// RegisterDataMovementOps.
void RegisterPadTileTriluWhereOps(OpRegistry& registry);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_DATA_MOVEMENT_OPS_INTERNAL_H_
