// Helpers for the shape and data-movement op kernels: bounded output
// allocation, stride arithmetic and a dtype-generic strided copy that moves
// elements as raw bytes, so one loop serves every element type.
//
//   absl::StatusOr<Tensor> y = AllocateOutput(x.dtype(), out_shape);
//   std::vector<int64_t> strides = BroadcastStrides(x.shape(), out_shape);
//   StridedCopy(x.raw_data(), y->mutable_raw_data(),
//               DataTypeSize(x.dtype()), out_shape, strides);  // Expand
#ifndef QUANTD_ENGINE_RUNTIME_OPS_SHAPE_UTIL_H_
#define QUANTD_ENGINE_RUNTIME_OPS_SHAPE_UTIL_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "engine/runtime/op_registry.h"
#include "kernels/tensor.h"

namespace quantd {

// Shapes of op outputs come from model data (Reshape targets, Expand shapes,
// Tile repeats, ...). No output may exceed this many elements, the same
// bound the loader puts on a constant tensor.
inline constexpr int64_t kMaxOpOutputElements = int64_t{1} << 31;

// Allocates an uninitialized output: InvalidArgument on negative dims,
// ResourceExhausted above kMaxOpOutputElements.
absl::StatusOr<Tensor> AllocateOutput(DataType type, Shape shape);

// Row-major element strides of a dense tensor of this shape.
std::vector<int64_t> RowMajorStrides(absl::Span<const int64_t> shape);

// Element strides that read a tensor of shape `in` as if broadcast (numpy
// rules, right-aligned) to `out`: 0 along broadcast dims. `in` must
// broadcast to `out` (check with BroadcastShapes first).
std::vector<int64_t> BroadcastStrides(absl::Span<const int64_t> in,
                                      absl::Span<const int64_t> out);

// Writes the dense row-major tensor of shape `shape` whose element at index
// (i0, i1, ...) is the element at src + sum(ik * src_strides[k]) (strides in
// elements; negative and zero strides are allowed). Runs of contiguous
// source elements move with memcpy.
void StridedCopy(const void* src, void* dst, size_t elem_size,
                 absl::Span<const int64_t> shape,
                 absl::Span<const int64_t> src_strides);

// Writes `n` copies of the element at `value` (elem_size bytes) to dst.
void FillElements(void* dst, const void* value, size_t elem_size, int64_t n);

// Maps each axis in [-rank, rank) to [0, rank); fails on out-of-range or
// repeated axes, naming `what`.
absl::StatusOr<std::vector<int>> NormalizeAxes(absl::Span<const int64_t> axes,
                                               int rank,
                                               absl::string_view what);

// A kernel from a closure, for ops that parse attributes once at creation
// and capture them.
std::unique_ptr<OpKernel> MakeFunctionKernel(OpFunction fn);

}  // namespace quantd

#endif  // QUANTD_ENGINE_RUNTIME_OPS_SHAPE_UTIL_H_
