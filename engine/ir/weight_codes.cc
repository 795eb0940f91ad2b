#include "engine/ir/weight_codes.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace quantd {
namespace {

// Low nibbles of src[0, n) two per byte into dst[0, ceil(n / 2)).
void PackNibbles(const uint8_t* src, int64_t n, uint8_t* dst) {
  for (int64_t i = 0; i + 1 < n; i += 2) {
    dst[i / 2] = static_cast<uint8_t>((src[i] & 0x0F) | (src[i + 1] << 4));
  }
  if (n % 2 == 1) dst[n / 2] = src[n - 1] & 0x0F;
}

bool FourBitRange(const Tensor& values) {
  const int64_t n = values.num_elements();
  if (values.dtype() == DataType::kInt8) {
    const int8_t* v = values.data<int8_t>();
    for (int64_t i = 0; i < n; ++i) {
      if (v[i] < -8 || v[i] > 7) return false;
    }
    return true;
  }
  const uint8_t* v = values.data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    if (v[i] > 15) return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<WeightCodes> WeightCodes::FromValues(const Tensor& values,
                                                    int bits) {
  if (values.dtype() != DataType::kInt8 && values.dtype() != DataType::kUInt8) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight codes are held in int8 or uint8 tensors, got ",
                     values.DebugString()));
  }
  if (bits != 4 && bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight codes are 4 or 8 bits, got ", bits));
  }
  WeightCodes c;
  c.dtype_ = values.dtype();
  c.shape_ = values.shape();
  c.bits_ = bits;
  if (bits == 8) {
    c.storage_ = values;
    return c;
  }
  if (!FourBitRange(values)) {
    return absl::InvalidArgumentError(
        absl::StrCat("4-bit weight codes must lie in ",
                     values.dtype() == DataType::kInt8 ? "[-8, 7]" : "[0, 15]",
                     "; some of ", values.DebugString(), " do not"));
  }
  const int64_t n = values.num_elements();
  c.storage_ = Tensor(DataType::kUInt8, {(n + 1) / 2});
  PackNibbles(static_cast<const uint8_t*>(values.raw_data()), n,
              c.storage_.mutable_data<uint8_t>());
  return c;
}

absl::StatusOr<WeightCodes> WeightCodes::FromStorage(Tensor storage,
                                                     DataType dtype,
                                                     Shape shape, int bits) {
  absl::StatusOr<int64_t> n = CheckedNumElements(shape);
  if (!n.ok()) return n.status();
  if (dtype != DataType::kInt8 && dtype != DataType::kUInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight codes are held as int8 or uint8, not ", DataTypeName(dtype)));
  }
  if (bits == 8) {
    if (storage.dtype() != dtype || storage.shape() != shape) {
      return absl::InvalidArgumentError(absl::StrCat(
          "8-bit codes of ", DataTypeName(dtype), ShapeToString(shape),
          " cannot be held in ", storage.DebugString()));
    }
  } else if (bits == 4) {
    if (storage.dtype() != DataType::kUInt8 || storage.rank() != 1 ||
        storage.dim(0) != (*n + 1) / 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("4-bit codes of shape ", ShapeToString(shape),
                       " are packed in uint8[", (*n + 1) / 2, "], got ",
                       storage.DebugString()));
    }
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("weight codes are 4 or 8 bits, got ", bits));
  }
  WeightCodes c;
  c.storage_ = std::move(storage);
  c.dtype_ = dtype;
  c.shape_ = std::move(shape);
  c.bits_ = bits;
  return c;
}

Tensor WeightCodes::Values() const {
  if (bits_ == 8) return storage_;
  Tensor out(dtype_, shape_);
  ValuesInto(0, num_elements(), out.mutable_raw_data());
  return out;
}

void WeightCodes::ValuesInto(int64_t begin, int64_t count, void* out) const {
  if (bits_ == 8) {
    std::memcpy(out, static_cast<const uint8_t*>(storage_.raw_data()) + begin,
                static_cast<size_t>(count));
    return;
  }
  const uint8_t* packed = storage_.data<uint8_t>();
  const bool is_signed = dtype_ == DataType::kInt8;
  uint8_t* dst = static_cast<uint8_t*>(out);
  for (int64_t i = 0; i < count; ++i) {
    const int64_t e = begin + i;
    const uint8_t nibble = (packed[e / 2] >> ((e % 2) * 4)) & 0x0F;
    // Sign-extend int4: 8..15 stand for -8..-1.
    dst[i] =
        is_signed && nibble >= 8 ? static_cast<uint8_t>(nibble | 0xF0) : nibble;
  }
}

std::string WeightCodes::DebugString() const {
  if (!defined()) return "undefined weight codes";
  const bool is_signed = dtype_ == DataType::kInt8;
  return absl::StrCat(bits_ == 4 ? (is_signed ? "int4" : "uint4")
                                 : (is_signed ? "int8" : "uint8"),
                      " ", ShapeToString(shape_));
}

std::string PackFourBit(const Tensor& values) {
  const int64_t n = values.num_elements();
  std::string packed(static_cast<size_t>((n + 1) / 2), '\0');
  PackNibbles(static_cast<const uint8_t*>(values.raw_data()), n,
              reinterpret_cast<uint8_t*>(packed.data()));
  return packed;
}

}  // namespace quantd
