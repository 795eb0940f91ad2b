#include "engine/runtime/ops/shape_util.h"

#include <cstring>
#include <new>
#include <utility>

#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

// Element-wise strided copy of n elements; T is an unsigned integer of the
// element's size, loaded with memcpy so alignment never matters.
template <typename T>
void CopyRun(const char* src, int64_t stride, char* dst, int64_t n) {
  if (stride == 0) {
    T v;
    std::memcpy(&v, src, sizeof(T));
    for (int64_t i = 0; i < n; ++i)
      std::memcpy(dst + i * sizeof(T), &v, sizeof(T));
    return;
  }
  const int64_t step = stride * static_cast<int64_t>(sizeof(T));
  for (int64_t i = 0; i < n; ++i) {
    std::memcpy(dst + i * sizeof(T), src + i * step, sizeof(T));
  }
}

void CopyStridedRun(const char* src, int64_t stride, char* dst, int64_t n,
                    size_t elem) {
  if (stride == 1) {
    std::memcpy(dst, src, n * elem);
    return;
  }
  switch (elem) {
    case 1:
      return CopyRun<uint8_t>(src, stride, dst, n);
    case 2:
      return CopyRun<uint16_t>(src, stride, dst, n);
    case 4:
      return CopyRun<uint32_t>(src, stride, dst, n);
    case 8:
      return CopyRun<uint64_t>(src, stride, dst, n);
    default:
      for (int64_t i = 0; i < n; ++i) {
        std::memcpy(dst + i * elem, src + i * stride * int64_t(elem), elem);
      }
  }
}

class FunctionKernel : public OpKernel {
 public:
  explicit FunctionKernel(OpFunction fn) : fn_(std::move(fn)) {}
  absl::Status Compute(OpKernelContext& ctx) override { return fn_(ctx); }

 private:
  OpFunction fn_;
};

}  // namespace

absl::StatusOr<Tensor> AllocateOutput(DataType type, Shape shape) {
  try {
    return Tensor::Create(type, std::move(shape), kMaxOpOutputElements);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(
        "out of memory allocating an op output");
  }
}

std::vector<int64_t> RowMajorStrides(absl::Span<const int64_t> shape) {
  std::vector<int64_t> strides(shape.size(), 1);
  for (int i = static_cast<int>(shape.size()) - 2; i >= 0; --i) {
    strides[i] = strides[i + 1] * shape[i + 1];
  }
  return strides;
}

std::vector<int64_t> BroadcastStrides(absl::Span<const int64_t> in,
                                      absl::Span<const int64_t> out) {
  std::vector<int64_t> dense = RowMajorStrides(in);
  std::vector<int64_t> strides(out.size(), 0);
  const size_t lead = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) {
    strides[lead + i] = in[i] == 1 && out[lead + i] != 1 ? 0 : dense[i];
  }
  return strides;
}

void StridedCopy(const void* src, void* dst, size_t elem_size,
                 absl::Span<const int64_t> shape,
                 absl::Span<const int64_t> src_strides) {
  // Drop size-1 dims and merge neighbours that step through the source as
  // one dim, so the innermost loop runs as long as possible.
  std::vector<int64_t> dims, strides;
  for (size_t k = 0; k < shape.size(); ++k) {
    if (shape[k] == 0) return;
    if (shape[k] == 1) continue;
    if (!dims.empty() && strides.back() == src_strides[k] * shape[k]) {
      dims.back() *= shape[k];
      strides.back() = src_strides[k];
      continue;
    }
    dims.push_back(shape[k]);
    strides.push_back(src_strides[k]);
  }
  const char* in = static_cast<const char*>(src);
  char* out = static_cast<char*>(dst);
  if (dims.empty()) {
    std::memcpy(out, in, elem_size);
    return;
  }
  const int outer_rank = static_cast<int>(dims.size()) - 1;
  const int64_t run = dims.back();
  const int64_t run_stride = strides.back();
  int64_t rows = 1;
  for (int k = 0; k < outer_rank; ++k) rows *= dims[k];
  std::vector<int64_t> index(outer_rank, 0);
  int64_t offset = 0;  // in elements
  for (int64_t r = 0; r < rows; ++r) {
    CopyStridedRun(in + offset * int64_t(elem_size), run_stride, out, run,
                   elem_size);
    out += run * elem_size;
    for (int k = outer_rank - 1; k >= 0; --k) {
      offset += strides[k];
      if (++index[k] < dims[k]) break;
      offset -= strides[k] * dims[k];
      index[k] = 0;
    }
  }
}

void FillElements(void* dst, const void* value, size_t elem_size, int64_t n) {
  if (n <= 0) return;
  CopyStridedRun(static_cast<const char*>(value), 0, static_cast<char*>(dst), n,
                 elem_size);
}

absl::StatusOr<std::vector<int>> NormalizeAxes(absl::Span<const int64_t> axes,
                                               int rank,
                                               absl::string_view what) {
  std::vector<int> out;
  std::vector<bool> seen(rank, false);
  for (int64_t a : axes) {
    if (a < -rank || a >= rank) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " contains axis ", a, ", out of range for rank ",
                       rank, " (valid: [", -rank, ", ", rank - 1, "])"));
    }
    const int axis = static_cast<int>(a < 0 ? a + rank : a);
    if (seen[axis]) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, " names axis ", axis, " more than once"));
    }
    seen[axis] = true;
    out.push_back(axis);
  }
  return out;
}

std::unique_ptr<OpKernel> MakeFunctionKernel(OpFunction fn) {
  return std::make_unique<FunctionKernel>(std::move(fn));
}

}  // namespace quantd
