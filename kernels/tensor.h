// Tensor: a dense n-d array with an element type and 64-byte aligned storage,
// row-major unless its layout says channels-last. Copies are shallow (they
// share storage); values produced by the executor are treated as immutable,
// so sharing is safe. Use Clone() for a private copy.
//
//   Tensor t(DataType::kFloat32, {2, 3});
//   float* p = t.mutable_data<float>();
//   Tensor v = t.Reshaped({3, 2});  // same storage, new shape
//
// Layout: the shape is always logical ([N, C, spatial...] for activations).
// A kChannelsLast tensor of rank >= 3 stores it as [N, spatial..., C]
// (oneDNN's nwc/nhwc/ndhwc), the order oneDNN's convolutions prefer, so a
// chain of convolutions, eltwise ops and pooling needs no reorders between
// them. Only layout-aware kernels create or read such tensors; the executor
// (engine/runtime/executor.h) converts them to plain before any other kernel,
// hook or caller sees them (kernels/layout.h converts).
#ifndef QUANTD_KERNELS_TENSOR_H_
#define QUANTD_KERNELS_TENSOR_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace quantd {

enum class DataType : uint8_t {
  kUndefined = 0,
  kFloat32,
  kFloat16,
  kInt8,
  kUInt8,
  kInt32,
  kInt64,
  kBool,
};

using Shape = std::vector<int64_t>;

// Size in bytes of one element; 0 for kUndefined.
size_t DataTypeSize(DataType type);
const char* DataTypeName(DataType type);
std::string ShapeToString(absl::Span<const int64_t> shape);
// Product of dims; 1 for a scalar (empty shape).
int64_t NumElements(absl::Span<const int64_t> shape);
// Product of dims with overflow checking; fails on negative dims or overflow.
absl::StatusOr<int64_t> CheckedNumElements(absl::Span<const int64_t> shape);

template <typename T>
struct DataTypeOf;
template <>
struct DataTypeOf<float> {
  static constexpr DataType value = DataType::kFloat32;
};
template <>
struct DataTypeOf<int8_t> {
  static constexpr DataType value = DataType::kInt8;
};
template <>
struct DataTypeOf<uint8_t> {
  static constexpr DataType value = DataType::kUInt8;
};
template <>
struct DataTypeOf<int32_t> {
  static constexpr DataType value = DataType::kInt32;
};
template <>
struct DataTypeOf<int64_t> {
  static constexpr DataType value = DataType::kInt64;
};
template <>
struct DataTypeOf<bool> {
  static constexpr DataType value = DataType::kBool;
};

enum class Layout : uint8_t { kPlain, kChannelsLast };

class Tensor {
 public:
  static constexpr size_t kAlignment = 64;

  // An undefined tensor (no dtype, no storage).
  Tensor() = default;
  // Allocates uninitialized storage. Aborts only if allocation itself fails;
  // callers that take sizes from outside must validate them first (see
  // CheckedNumElements / Tensor::Create).
  Tensor(DataType type, Shape shape);
  // Validating constructor for shapes that come from untrusted input.
  static absl::StatusOr<Tensor> Create(DataType type, Shape shape,
                                       int64_t max_elements);
  // A tensor filled with zeros.
  static Tensor Zeros(DataType type, Shape shape);
  template <typename T>
  static Tensor FromVector(Shape shape, const std::vector<T>& values);
  template <typename T>
  static Tensor Scalar(T value) {
    return FromVector<T>({}, {value});
  }

  bool defined() const { return type_ != DataType::kUndefined; }
  DataType dtype() const { return type_; }
  const Shape& shape() const { return shape_; }
  int rank() const { return static_cast<int>(shape_.size()); }
  int64_t dim(int i) const { return shape_[i < 0 ? i + rank() : i]; }
  int64_t num_elements() const { return num_elements_; }
  size_t byte_size() const { return num_elements_ * DataTypeSize(type_); }
  Layout layout() const { return layout_; }
  bool channels_last() const { return layout_ == Layout::kChannelsLast; }
  // Relabels the storage (no data moves): for kernels that wrote their
  // output in `layout`. kChannelsLast needs rank >= 3 (checked).
  absl::Status set_layout(Layout layout);

  // True when no other Tensor shares this storage, so writing it in place
  // cannot be observed elsewhere.
  bool storage_unique() const { return storage_.use_count() == 1; }
  const void* raw_data() const { return data_; }
  void* mutable_raw_data() { return data_; }
  template <typename T>
  const T* data() const {
    return static_cast<const T*>(data_);
  }
  template <typename T>
  T* mutable_data() {
    return static_cast<T*>(data_);
  }
  template <typename T>
  absl::Span<const T> span() const {
    return absl::Span<const T>(data<T>(), num_elements_);
  }
  template <typename T>
  absl::Span<T> mutable_span() {
    return absl::Span<T>(mutable_data<T>(), num_elements_);
  }
  template <typename T>
  std::vector<T> ToVector() const {
    return std::vector<T>(data<T>(), data<T>() + num_elements_);
  }

  // Same storage, different shape; element counts must match (checked).
  // Plain tensors only: a channels-last tensor's elements are not in the
  // order a reshape assumes (FailedPrecondition).
  absl::StatusOr<Tensor> Reshaped(Shape new_shape) const;
  // Deep copy, same layout.
  Tensor Clone() const;
  std::string DebugString() const;  // dtype and shape, e.g. "f32[2,3]"

 private:
  DataType type_ = DataType::kUndefined;
  Shape shape_;
  int64_t num_elements_ = 0;
  Layout layout_ = Layout::kPlain;
  std::shared_ptr<void> storage_;
  void* data_ = nullptr;
};

template <typename T>
Tensor Tensor::FromVector(Shape shape, const std::vector<T>& values) {
  Tensor t(DataTypeOf<T>::value, std::move(shape));
  T* out = t.mutable_data<T>();
  for (size_t i = 0; i < values.size() && i < size_t(t.num_elements()); ++i)
    out[i] = values[i];
  return t;
}

}  // namespace quantd

#endif  // QUANTD_KERNELS_TENSOR_H_
