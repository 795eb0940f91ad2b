#include "engine/runtime/ops/op_util.h"

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {

absl::StatusOr<std::vector<int64_t>> ReadInt64s(const Tensor& t,
                                                absl::string_view what) {
  if (t.dtype() == DataType::kInt64) return t.ToVector<int64_t>();
  if (t.dtype() == DataType::kInt32) {
    std::vector<int64_t> v(t.data<int32_t>(),
                           t.data<int32_t>() + t.num_elements());
    return v;
  }
  return absl::InvalidArgumentError(absl::StrCat(
      what, " must be int64 or int32, got ", DataTypeName(t.dtype())));
}

absl::StatusOr<float> ReadScalarFloat(const Tensor& t, absl::string_view what) {
  if (t.num_elements() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must hold one value, got shape ", ShapeToString(t.shape())));
  }
  switch (t.dtype()) {
    case DataType::kFloat32:
      return t.data<float>()[0];
    case DataType::kInt64:
      return static_cast<float>(t.data<int64_t>()[0]);
    case DataType::kInt32:
      return static_cast<float>(t.data<int32_t>()[0]);
    case DataType::kInt8:
      return static_cast<float>(t.data<int8_t>()[0]);
    case DataType::kUInt8:
    case DataType::kBool:
      return static_cast<float>(t.data<uint8_t>()[0]);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          what, " has unsupported type ", DataTypeName(t.dtype())));
  }
}

absl::StatusOr<int64_t> ReadScalarInt(const Tensor& t, absl::string_view what) {
  if (t.dtype() == DataType::kFloat32) {
    QUANTD_ASSIGN_OR_RETURN(float f, ReadScalarFloat(t, what));
    return static_cast<int64_t>(f);
  }
  QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> v, ReadInt64s(t, what));
  if (v.size() != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " must hold one value, got shape ", ShapeToString(t.shape())));
  }
  return (v)[0];
}

absl::StatusOr<int> NormalizeAxis(int64_t axis, int rank,
                                  absl::string_view what) {
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", axis, " is out of range for rank ", rank,
                     " (valid: [", -rank, ", ", rank - 1, "])"));
  }
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

absl::Status ExpectDtype(const Tensor& t, DataType type,
                         absl::string_view what) {
  if (t.dtype() == type) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat(what, " must be ",
                                                 DataTypeName(type), ", got ",
                                                 DataTypeName(t.dtype())));
}

Tensor Int64Vector(const std::vector<int64_t>& values) {
  return Tensor::FromVector<int64_t>({static_cast<int64_t>(values.size())},
                                     values);
}

}  // namespace quantd
