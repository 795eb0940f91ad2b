#include "kernels/tensor.h"

#include <cstdlib>
#include <cstring>
#include <limits>
#include <new>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/buffer_pool.h"
#include "util/status_macros.h"

namespace quantd {

size_t DataTypeSize(DataType type) {
  switch (type) {
    case DataType::kFloat32:
    case DataType::kInt32:
      return 4;
    case DataType::kFloat16:
      return 2;
    case DataType::kInt8:
    case DataType::kUInt8:
    case DataType::kBool:
      return 1;
    case DataType::kInt64:
      return 8;
    case DataType::kUndefined:
      return 0;
  }
  return 0;
}

const char* DataTypeName(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return "f32";
    case DataType::kFloat16:
      return "f16";
    case DataType::kInt8:
      return "s8";
    case DataType::kUInt8:
      return "u8";
    case DataType::kInt32:
      return "s32";
    case DataType::kInt64:
      return "s64";
    case DataType::kBool:
      return "bool";
    case DataType::kUndefined:
      return "undefined";
  }
  return "invalid";
}

std::string ShapeToString(absl::Span<const int64_t> shape) {
  return absl::StrCat("[", absl::StrJoin(shape, ","), "]");
}

int64_t NumElements(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

absl::StatusOr<int64_t> CheckedNumElements(absl::Span<const int64_t> shape) {
  int64_t n = 1;
  for (int64_t d : shape) {
    if (d < 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeToString(shape), " has a negative dim"));
    }
    if (d != 0 && n > std::numeric_limits<int64_t>::max() / d) {
      return absl::InvalidArgumentError(
          absl::StrCat("shape ", ShapeToString(shape), " overflows int64"));
    }
    n *= d;
  }
  return n;
}

Tensor::Tensor(DataType type, Shape shape)
    : type_(type),
      shape_(std::move(shape)),
      num_elements_(NumElements(shape_)) {
  storage_ = BufferPool::Default().Allocate(byte_size());
  data_ = storage_.get();
}

absl::StatusOr<Tensor> Tensor::Create(DataType type, Shape shape,
                                      int64_t max_elements) {
  QUANTD_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(shape));
  if (n > max_elements) {
    return absl::ResourceExhaustedError(
        absl::StrCat("tensor of shape ", ShapeToString(shape), " has ", n,
                     " elements, more than the limit of ", max_elements));
  }
  if (type == DataType::kUndefined) {
    return absl::InvalidArgumentError("tensor has an undefined element type");
  }
  return Tensor(type, std::move(shape));
}

Tensor Tensor::Zeros(DataType type, Shape shape) {
  Tensor t(type, std::move(shape));
  std::memset(t.data_, 0, t.byte_size());
  return t;
}

absl::Status Tensor::set_layout(Layout layout) {
  if (layout == Layout::kChannelsLast && rank() < 3) {
    return absl::InternalError(absl::StrCat(
        "a channels-last tensor needs rank >= 3, got ", DebugString()));
  }
  layout_ = layout;
  return absl::OkStatus();
}

absl::StatusOr<Tensor> Tensor::Reshaped(Shape new_shape) const {
  if (channels_last()) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot reshape the channels-last tensor ", DebugString(),
                     "; convert it to plain first (kernels/layout.h)"));
  }
  QUANTD_ASSIGN_OR_RETURN(int64_t n, CheckedNumElements(new_shape));
  if (n != num_elements_) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot reshape ", DebugString(), " to ",
                     ShapeToString(new_shape), ": element counts differ"));
  }
  Tensor t = *this;
  t.shape_ = std::move(new_shape);
  return t;
}

Tensor Tensor::Clone() const {
  if (!defined()) return Tensor();
  Tensor t(type_, shape_);
  std::memcpy(t.data_, data_, byte_size());
  t.layout_ = layout_;
  return t;
}

std::string Tensor::DebugString() const {
  return absl::StrCat(DataTypeName(type_), ShapeToString(shape_),
                      channels_last() ? " channels-last" : "");
}

}  // namespace quantd
