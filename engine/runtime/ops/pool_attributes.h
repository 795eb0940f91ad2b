// ONNX MaxPool / AveragePool attributes as kernel parameters. Shared by the
// pooling ops and their backward pass (engine/qat/autograd.cc).
#ifndef QUANTD_ENGINE_RUNTIME_OPS_POOL_ATTRIBUTES_H_
#define QUANTD_ENGINE_RUNTIME_OPS_POOL_ATTRIBUTES_H_

#include "absl/status/statusor.h"
#include "engine/ir/graph.h"
#include "kernels/pooling.h"

namespace quantd {

// MaxPool/AveragePool attributes; the Global* ops take GlobalPoolParams.
// MaxPool's Indices output and storage_order = 1 are Unimplemented.
absl::StatusOr<PoolParams> ReadPoolParams(const Node& node, PoolKind kind);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_POOL_ATTRIBUTES_H_
