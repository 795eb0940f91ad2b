#include "kernels/layout.h"

#include <algorithm>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/dnnl_context.h"
#include "kernels/reorder.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::Status CheckConvertible(const Tensor& t, Layout layout) {
  if (!t.defined()) {
    return absl::InvalidArgumentError("cannot convert an undefined tensor");
  }
  if (layout == Layout::kChannelsLast && t.rank() < 3) {
    return absl::InvalidArgumentError(absl::StrCat(
        "a channels-last tensor needs rank >= 3, got ", t.DebugString()));
  }
  return absl::OkStatus();
}

// [N, C, s...] -> [N, s..., C] and back, as permutations of a plain tensor.
std::vector<int64_t> ToChannelsLastPerm(int rank) {
  std::vector<int64_t> perm = {0};
  for (int d = 2; d < rank; ++d) perm.push_back(d);
  perm.push_back(1);
  return perm;
}
std::vector<int64_t> ToChannelsFirstPerm(int rank) {
  std::vector<int64_t> perm = {0, rank - 1};
  for (int d = 1; d < rank - 1; ++d) perm.push_back(d);
  return perm;
}

// The physical shape of a channels-last tensor, [N, s..., C].
Shape PhysicalShape(const Shape& logical) {
  Shape s = {logical[0]};
  s.insert(s.end(), logical.begin() + 2, logical.end());
  s.push_back(logical[1]);
  return s;
}

// One transpose kernel per rank and direction, shared by every caller
// (TransposeForward's primitive cache is thread-safe).
TransposeForward& Transposer(int rank, Layout to) {
  static auto* const kernels = [] {
    auto* k = new std::vector<std::unique_ptr<TransposeForward>>();
    for (int r = 0; r <= 8; ++r) {
      const bool valid = r >= 3;
      k->push_back(std::make_unique<TransposeForward>(
          valid ? ToChannelsLastPerm(r) : std::vector<int64_t>{}));
      k->push_back(std::make_unique<TransposeForward>(
          valid ? ToChannelsFirstPerm(r) : std::vector<int64_t>{}));
    }
    return k;
  }();
  return *(*kernels)[2 * rank + (to == Layout::kChannelsLast ? 0 : 1)];
}

// Views `t`'s storage as a plain tensor of `shape` (no data moves).
absl::StatusOr<Tensor> PlainView(Tensor t, const Shape& shape) {
  QUANTD_RETURN_IF_ERROR(t.set_layout(Layout::kPlain));
  return t.Reshaped(shape);
}

// One channel, or one spatial position (e.g. after global pooling): both
// layouts store the elements in the same order.
bool SameBytesInBothLayouts(const Shape& shape) {
  int64_t spatial = 1;
  for (size_t d = 2; d < shape.size(); ++d) spatial *= shape[d];
  return shape[1] == 1 || spatial == 1;
}

}  // namespace

absl::StatusOr<Tensor> ToLayout(const Tensor& t, Layout layout) {
  QUANTD_RETURN_IF_ERROR(CheckConvertible(t, layout));
  if (t.layout() == layout) return t;
  if (SameBytesInBothLayouts(t.shape())) {
    Tensor relabeled = t;
    QUANTD_RETURN_IF_ERROR(relabeled.set_layout(layout));
    return relabeled;
  }
  if (t.rank() > 8) {
    // Rare: conv-like tensors are rank 3-5.
    return ToLayoutReference(t, layout);
  }
  Tensor out;
  if (layout == Layout::kChannelsLast) {
    QUANTD_RETURN_IF_ERROR(
        Transposer(t.rank(), Layout::kChannelsLast).Forward(t, &out));
    QUANTD_ASSIGN_OR_RETURN(out, PlainView(out, t.shape()));
    QUANTD_RETURN_IF_ERROR(out.set_layout(Layout::kChannelsLast));
    return out;
  }
  QUANTD_ASSIGN_OR_RETURN(Tensor physical,
                          PlainView(t, PhysicalShape(t.shape())));
  QUANTD_RETURN_IF_ERROR(
      Transposer(t.rank(), Layout::kPlain).Forward(physical, &out));
  return out;
}

absl::StatusOr<Tensor> ToLayoutReference(const Tensor& t, Layout layout) {
  QUANTD_RETURN_IF_ERROR(CheckConvertible(t, layout));
  if (t.layout() == layout) return t;
  Tensor out(t.dtype(), t.shape());
  const int64_t n = t.dim(0), c = t.dim(1);
  const int64_t inner = c == 0 || n == 0 ? 0 : t.num_elements() / (n * c);
  const size_t esize = DataTypeSize(t.dtype());
  const auto* src = static_cast<const char*>(t.raw_data());
  auto* dst = static_cast<char*>(out.mutable_raw_data());
  const bool to_last = layout == Layout::kChannelsLast;
  for (int64_t b = 0; b < n; ++b) {
    for (int64_t ch = 0; ch < c; ++ch) {
      for (int64_t s = 0; s < inner; ++s) {
        const int64_t plain = (b * c + ch) * inner + s;
        const int64_t last = (b * inner + s) * c + ch;
        const int64_t from = to_last ? plain : last;
        const int64_t to = to_last ? last : plain;
        std::memcpy(dst + to * esize, src + from * esize, esize);
      }
    }
  }
  QUANTD_RETURN_IF_ERROR(out.set_layout(layout));
  return out;
}

dnnl::memory::dims LayoutStrides(absl::Span<const int64_t> shape,
                                 Layout layout) {
  if (layout == Layout::kPlain || shape.size() < 3) return DenseStrides(shape);
  const int rank = static_cast<int>(shape.size());
  dnnl::memory::dims strides(rank);
  int64_t stride = 1;
  // Zero-sized dims count as 1, as in DenseStrides: oneDNN wants strides > 0.
  strides[1] = stride;
  stride *= std::max<int64_t>(shape[1], 1);
  for (int d = rank - 1; d >= 2; --d) {
    strides[d] = stride;
    stride *= std::max<int64_t>(shape[d], 1);
  }
  strides[0] = stride;
  return strides;
}

dnnl::memory::desc LayoutDesc(DataType type, absl::Span<const int64_t> shape,
                              Layout layout) {
  if (layout == Layout::kPlain || shape.size() < 3) {
    return PlainDesc(type, shape);
  }
  return dnnl::memory::desc(ToDnnlDims(shape), ToDnnlType(type),
                            LayoutStrides(shape, layout));
}

}  // namespace quantd
