// WeightCodes: the integers of a quantized weight at their bit width, the
// form QuantizationPlan::weight_codes holds an algorithm's rounding (GPTQ's)
// in for the rest of a job. 8-bit codes take a byte each; 4-bit codes two
// per byte, in ONNX's INT4/UINT4 layout (element 2i in the low nibble of
// byte i, element 2i+1 in the high nibble), which is also what an exported
// file stores. A 1.1B decoder's int4 codes are 0.55 GB this way, where one
// byte per code was 1.1 GB next to the float model for every later stage.
//
//   absl::StatusOr<WeightCodes> c =
//       WeightCodes::FromValues(values /* int8 [K, N] in [-8, 7] */, 4);
//   Tensor v = c->Values();          // int8 [K, N] again (a new tensor)
//   c->ValuesInto(row, 64, buffer);  // or a slice of them, unpacked
//
// Tensors share storage, so copies of a WeightCodes share their bytes.
#ifndef QUANTD_ENGINE_IR_WEIGHT_CODES_H_
#define QUANTD_ENGINE_IR_WEIGHT_CODES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "kernels/tensor.h"

namespace quantd {

// The node that reads 4-bit codes as WeightCodes holds them, in quantd's
// own graphs only (evaluation; never in exported files):
//   quantd.DequantizePackedCodes(codes u8 [ceil(n / 2)], scale, zero_point)
//       -> f32 [shape]
// with DequantizeLinear's axis/block_size attributes plus `shape` (ints);
// the zero point's type (int8/uint8) says whether the codes are int4/uint4.
inline constexpr char kPackedCodesDomain[] = "quantd";
inline constexpr char kDequantizePackedCodesOp[] = "DequantizePackedCodes";

class WeightCodes {
 public:
  WeightCodes() = default;

  // `values`: int8 or uint8 codes of any shape; `bits` 8, or 4 with every
  // value in [-8, 7] (int8) or [0, 15] (uint8). 8-bit values are shared,
  // 4-bit values packed.
  static absl::StatusOr<WeightCodes> FromValues(const Tensor& values, int bits);
  // Codes already packed (`storage` u8 [ceil(n / 2)] for 4 bits, `dtype`
  // [shape] for 8), e.g. an initializer a graph carries; checks sizes.
  static absl::StatusOr<WeightCodes> FromStorage(Tensor storage, DataType dtype,
                                                 Shape shape, int bits);

  bool defined() const { return storage_.defined(); }
  // The holder type of the values: int8 (int8, int4) or uint8 (uint8,
  // uint4).
  DataType dtype() const { return dtype_; }
  const Shape& shape() const { return shape_; }
  int64_t num_elements() const { return NumElements(shape_); }
  int bits() const { return bits_; }
  // The bytes as held: the values themselves for 8 bits; u8 [ceil(n / 2)]
  // packed nibbles for 4.
  const Tensor& storage() const { return storage_; }
  int64_t byte_size() const {
    return static_cast<int64_t>(storage_.byte_size());
  }

  // The values one per byte, as a `dtype()` tensor of `shape()`; for 8 bits
  // the storage itself (shared), for 4 a new tensor.
  Tensor Values() const;
  // Values [begin, begin + count) (flat, row-major) into `out` as bytes of
  // `dtype()` (int8_t or uint8_t); begin + count <= num_elements().
  void ValuesInto(int64_t begin, int64_t count, void* out) const;
  // fn(i, q) for every value in order, q as int32_t, unpacked a chunk at a
  // time (no copy of the whole tensor).
  template <typename Fn>
  void ForEachValue(Fn&& fn) const {
    constexpr int64_t kChunk = 4096;
    uint8_t buffer[kChunk];
    const int64_t n = num_elements();
    const bool is_signed = dtype_ == DataType::kInt8;
    for (int64_t begin = 0; begin < n; begin += kChunk) {
      const int64_t count = n - begin < kChunk ? n - begin : kChunk;
      ValuesInto(begin, count, buffer);
      for (int64_t j = 0; j < count; ++j) {
        fn(begin + j, is_signed ? int32_t{static_cast<int8_t>(buffer[j])}
                                : int32_t{buffer[j]});
      }
    }
  }
  // "int4 [4096,11008]"-style description for messages.
  std::string DebugString() const;

 private:
  Tensor storage_;
  DataType dtype_ = DataType::kUndefined;
  Shape shape_;
  int bits_ = 8;
};

// 4-bit values (the low nibble of each int8/uint8 element) two per byte,
// ONNX's INT4/UINT4 layout; an odd count leaves the last high nibble 0.
std::string PackFourBit(const Tensor& values);

}  // namespace quantd

#endif  // QUANTD_ENGINE_IR_WEIGHT_CODES_H_
