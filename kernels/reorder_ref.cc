// Plain-loop references for reorder.h: one element at a time, no oneDNN, no
// dim merging, so the tests have something independent to compare against.
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/str_cat.h"
#include "kernels/reorder.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Reads element i as a double (floats) or int64 (integers and bool).
struct Value {
  bool is_float = false;
  double f = 0;
  int64_t i = 0;
};

Value Read(const Tensor& t, int64_t i) {
  Value v;
  switch (t.dtype()) {
    case DataType::kFloat32:
      v.is_float = true;
      v.f = t.data<float>()[i];
      break;
    case DataType::kFloat16:
      v.is_float = true;
      v.f = FloatFromHalfBits(static_cast<const uint16_t*>(t.raw_data())[i]);
      break;
    case DataType::kInt8:
      v.i = t.data<int8_t>()[i];
      break;
    case DataType::kUInt8:
      v.i = t.data<uint8_t>()[i];
      break;
    case DataType::kBool:
      v.i = t.data<uint8_t>()[i] != 0;
      break;
    case DataType::kInt32:
      v.i = t.data<int32_t>()[i];
      break;
    case DataType::kInt64:
      v.i = t.data<int64_t>()[i];
      break;
    default:
      break;
  }
  return v;
}

template <typename D>
D ToInt(const Value& v) {
  if (!v.is_float) return static_cast<D>(v.i);  // wraps
  if (std::isnan(v.f)) return 0;
  double t = std::trunc(v.f);
  if (t >= static_cast<double>(std::numeric_limits<D>::max())) {
    return std::numeric_limits<D>::max();
  }
  if (t <= static_cast<double>(std::numeric_limits<D>::min())) {
    return std::numeric_limits<D>::min();
  }
  return static_cast<D>(t);
}

float ToFloat(const Value& v) {
  return v.is_float ? static_cast<float>(v.f) : static_cast<float>(v.i);
}

void Write(Tensor* t, int64_t i, const Value& v) {
  switch (t->dtype()) {
    case DataType::kFloat32:
      t->mutable_data<float>()[i] = ToFloat(v);
      break;
    case DataType::kFloat16:
      static_cast<uint16_t*>(t->mutable_raw_data())[i] =
          HalfBitsFromFloat(ToFloat(v));
      break;
    case DataType::kInt8:
      t->mutable_data<int8_t>()[i] = ToInt<int8_t>(v);
      break;
    case DataType::kUInt8:
      t->mutable_data<uint8_t>()[i] = ToInt<uint8_t>(v);
      break;
    case DataType::kBool:
      t->mutable_data<uint8_t>()[i] = v.is_float ? v.f != 0 : v.i != 0;
      break;
    case DataType::kInt32:
      t->mutable_data<int32_t>()[i] = ToInt<int32_t>(v);
      break;
    case DataType::kInt64:
      t->mutable_data<int64_t>()[i] = ToInt<int64_t>(v);
      break;
    default:
      break;
  }
}

}  // namespace

absl::Status TransposeReference(const Tensor& x, absl::Span<const int64_t> perm,
                                Tensor* y) {
  QUANTD_ASSIGN_OR_RETURN(Shape out_shape,
                          TransposeOutputShape(x.shape(), perm));
  const int rank = x.rank();
  std::vector<int64_t> p(perm.begin(), perm.end());
  if (p.empty()) {
    for (int i = rank - 1; i >= 0; --i) p.push_back(i);
  }
  Tensor out(x.dtype(), out_shape);
  std::vector<int64_t> in_strides(rank, 1);
  for (int i = rank - 2; i >= 0; --i) {
    in_strides[i] = in_strides[i + 1] * x.shape()[i + 1];
  }
  const size_t size = DataTypeSize(x.dtype());
  const char* src = static_cast<const char*>(x.raw_data());
  char* dst = static_cast<char*>(out.mutable_raw_data());
  std::vector<int64_t> index(rank, 0);  // output coordinates
  for (int64_t o = 0; o < out.num_elements(); ++o) {
    int64_t offset = 0;
    for (int i = 0; i < rank; ++i) offset += index[i] * in_strides[p[i]];
    std::memcpy(dst + o * size, src + offset * size, size);
    for (int i = rank - 1; i >= 0; --i) {
      if (++index[i] < (out_shape)[i]) break;
      index[i] = 0;
    }
  }
  *y = out;
  return absl::OkStatus();
}

absl::Status CastReference(const Tensor& x, DataType to, Tensor* y) {
  if (to == DataType::kUndefined || !x.defined()) {
    return absl::InvalidArgumentError("cast with an undefined type");
  }
  Tensor out(to, x.shape());
  if (to == x.dtype()) {
    std::memcpy(out.mutable_raw_data(), x.raw_data(), x.byte_size());
  } else {
    for (int64_t i = 0; i < x.num_elements(); ++i) Write(&out, i, Read(x, i));
  }
  *y = out;
  return absl::OkStatus();
}

}  // namespace quantd
