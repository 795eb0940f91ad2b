#include "kernels/weight_only_matmul.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using weight_only_internal::Isa;

Isa BestIsa() { return BestCpuIsa(); }

absl::Status ExpectTensor(const Tensor& t, DataType type, const Shape& shape,
                          const char* what) {
  if (t.dtype() != type || t.shape() != shape) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only ", what, " is ", t.DebugString(),
                     ", expected ", DataTypeName(type), ShapeToString(shape)));
  }
  return absl::OkStatus();
}

int64_t Groups(int64_t k, int64_t group_size) {
  return group_size > 0 ? (k + group_size - 1) / group_size : 1;
}

}  // namespace

int64_t WeightOnlyPacked::byte_size() const {
  return static_cast<int64_t>(codes.byte_size() + scales.byte_size() +
                              zero_points.byte_size());
}

absl::Status ValidateWeightOnlyPacked(const WeightOnlyPacked& w) {
  if (w.bits != 4 && w.bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only bits must be 4 or 8, got ", w.bits));
  }
  if (w.codes.dtype() != DataType::kUInt8 || w.codes.rank() != 3 ||
      w.codes.dim(2) != kWeightOnlyBlock * w.bits / 8 || w.codes.dim(1) < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight-only codes are ", w.codes.DebugString(), ", expected u8[",
        "blocks, K, ", kWeightOnlyBlock * w.bits / 8, "] for ", w.bits,
        "-bit codes"));
  }
  const int64_t blocks = w.codes.dim(0);
  if (w.n < 1 || w.n > (int64_t{1} << 40) ||
      (w.n + kWeightOnlyBlock - 1) / kWeightOnlyBlock != blocks) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only n = ", w.n, " does not match ", blocks,
                     " packed blocks of ", kWeightOnlyBlock, " columns"));
  }
  if (w.group_size < 1 || w.group_size > w.k()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only group_size must be in [1, K = ", w.k(),
                     "], got ", w.group_size));
  }
  const Shape params = {blocks, Groups(w.k(), w.group_size), kWeightOnlyBlock};
  QUANTD_RETURN_IF_ERROR(
      ExpectTensor(w.scales, DataType::kFloat32, params, "scales"));
  return ExpectTensor(w.zero_points, DataType::kInt32, params, "zero points");
}

absl::Status ValidateWeightOnlyValues(const WeightOnlyPacked& w) {
  QUANTD_RETURN_IF_ERROR(ValidateWeightOnlyPacked(w));
  const int32_t code_max = (1 << w.bits) - 1;
  const float* s = w.scales.data<float>();
  const int32_t* z = w.zero_points.data<int32_t>();
  for (int64_t i = 0; i < w.scales.num_elements(); ++i) {
    if (!std::isfinite(s[i]) || s[i] < 0 || z[i] < 0 || z[i] > code_max) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight-only packed parameter ", i, " (scale ", s[i],
                       ", zero point ", z[i],
                       ") is out of range: scales finite and >= 0, "
                       "zero points in [0, ",
                       code_max, "]"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<WeightOnlyPacked> PackWeightOnly(const Tensor& codes,
                                                const Tensor& scales,
                                                const Tensor& zero_points,
                                                int bits, int64_t group_size) {
  if (bits != 4 && bits != 8) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only bits must be 4 or 8, got ", bits));
  }
  if (codes.dtype() != DataType::kUInt8 || codes.rank() != 2 ||
      codes.num_elements() == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "weight-only codes must be u8 [K, N], got ", codes.DebugString()));
  }
  const int64_t k = codes.dim(0);
  const int64_t n = codes.dim(1);
  if (group_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("group_size must be >= 0, got ", group_size));
  }
  const int64_t g = Groups(k, group_size);
  QUANTD_RETURN_IF_ERROR(
      ExpectTensor(scales, DataType::kFloat32, {g, n}, "scales"));
  QUANTD_RETURN_IF_ERROR(
      ExpectTensor(zero_points, DataType::kInt32, {g, n}, "zero points"));
  const int32_t code_max = (1 << bits) - 1;
  for (uint8_t c : codes.span<uint8_t>()) {
    if (c > code_max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight-only code ", int{c}, " does not fit in ", bits, " bits"));
    }
  }
  for (int64_t i = 0; i < g * n; ++i) {
    const float s = scales.data<float>()[i];
    const int32_t z = zero_points.data<int32_t>()[i];
    if (!std::isfinite(s) || s < 0 || z < 0 || z > code_max) {
      return absl::InvalidArgumentError(absl::StrCat(
          "weight-only group parameter ", i, " (scale ", s, ", zero point ", z,
          ") is out of range: scales must be finite and >= 0, zero points in "
          "[0, ",
          code_max, "]"));
    }
  }
  const int64_t blocks = (n + kWeightOnlyBlock - 1) / kWeightOnlyBlock;
  const int64_t row_bytes = kWeightOnlyBlock * bits / 8;
  WeightOnlyPacked w;
  w.n = n;
  w.bits = bits;
  // A group longer than K is one group (ONNX blocked quantization allows it,
  // and allow_partial_groups plans make it for small layers).
  w.group_size = group_size > 0 ? std::min(group_size, k) : k;
  w.codes = Tensor::Zeros(DataType::kUInt8, {blocks, k, row_bytes});
  w.scales = Tensor::Zeros(DataType::kFloat32, {blocks, g, kWeightOnlyBlock});
  w.zero_points =
      Tensor::Zeros(DataType::kInt32, {blocks, g, kWeightOnlyBlock});
  const uint8_t* src = codes.data<uint8_t>();
  uint8_t* dst = w.codes.mutable_data<uint8_t>();
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t j = 0; j < kWeightOnlyBlock; ++j) {
      const int64_t col = b * kWeightOnlyBlock + j;
      // Padded columns: code 0, zero point 0, scale 0 -> weight 0.
      if (col >= n) continue;
      for (int64_t gi = 0; gi < g; ++gi) {
        const int64_t at = (b * g + gi) * kWeightOnlyBlock + j;
        w.scales.mutable_data<float>()[at] = scales.data<float>()[gi * n + col];
        w.zero_points.mutable_data<int32_t>()[at] =
            zero_points.data<int32_t>()[gi * n + col];
      }
      for (int64_t r = 0; r < k; ++r) {
        const uint8_t c = src[r * n + col];
        uint8_t* row = dst + (b * k + r) * row_bytes;
        if (bits == 8) {
          row[j] = c;
        } else if (j < 8) {
          row[j] |= c;
        } else {
          row[j - 8] |= static_cast<uint8_t>(c << 4);
        }
      }
    }
  }
  return w;
}

absl::Status DequantizeWeightOnly(const WeightOnlyPacked& w, Tensor* out) {
  QUANTD_RETURN_IF_ERROR(ValidateWeightOnlyPacked(w));
  *out = Tensor(DataType::kFloat32, {w.k(), w.n});
  weight_only_internal::Dequantize(w, out->mutable_data<float>());
  return absl::OkStatus();
}

const char* WeightOnlyIsa() { return CpuIsaName(BestIsa()); }

absl::Status WeightOnlyMatMul(const Tensor& x, const WeightOnlyPacked& w,
                              const Tensor* bias, Tensor* y) {
  QUANTD_RETURN_IF_ERROR(ValidateWeightOnlyPacked(w));
  if (x.dtype() != DataType::kFloat32 || x.rank() < 1 || x.dim(-1) != w.k()) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only MatMul input is ", x.DebugString(),
                     ", expected f32[..., ", w.k(), "]"));
  }
  if (bias != nullptr &&
      (bias->dtype() != DataType::kFloat32 || bias->shape() != Shape{w.n})) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight-only MatMul bias is ", bias->DebugString(),
                     ", expected f32[", w.n, "]"));
  }
  Shape out_shape = x.shape();
  out_shape.back() = w.n;
  // Checked allocation: n and x's rows come from the graph and its feeds
  // (the bound is the executor's for any op output, 2^31 elements).
  QUANTD_ASSIGN_OR_RETURN(
      *y, Tensor::Create(DataType::kFloat32, out_shape, int64_t{1} << 31));
  const int64_t m = x.num_elements() / w.k();
  if (m == 0) return absl::OkStatus();
  weight_only_internal::DirectKernel(
      BestIsa(), x.data<float>(), m, w,
      bias != nullptr ? bias->data<float>() : nullptr,
      y->mutable_data<float>());
  return absl::OkStatus();
}

}  // namespace quantd
