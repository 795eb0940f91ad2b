// Small helpers shared by op kernels: reading shape-like inputs, normalizing
// axes, checking element types. All failures name the offending input.
#ifndef QUANTD_ENGINE_RUNTIME_OPS_OP_UTIL_H_
#define QUANTD_ENGINE_RUNTIME_OPS_OP_UTIL_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "kernels/tensor.h"

namespace quantd {

// Reads an int64 or int32 tensor (any rank) as a vector of int64.
absl::StatusOr<std::vector<int64_t>> ReadInt64s(const Tensor& t,
                                                absl::string_view what);
// Reads a scalar or 1-element tensor of any numeric type as float / int64.
absl::StatusOr<float> ReadScalarFloat(const Tensor& t, absl::string_view what);
absl::StatusOr<int64_t> ReadScalarInt(const Tensor& t, absl::string_view what);

// Maps axis in [-rank, rank) to [0, rank).
absl::StatusOr<int> NormalizeAxis(int64_t axis, int rank,
                                  absl::string_view what);

absl::Status ExpectDtype(const Tensor& t, DataType type,
                         absl::string_view what);

// Builds an int64 1-D tensor.
Tensor Int64Vector(const std::vector<int64_t>& values);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_OP_UTIL_H_
