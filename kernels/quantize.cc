#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "kernels/parallel_for.h"
#include "kernels/post_ops.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// x viewed as [outer, axis_dim, inner]; rows are (outer, axis) pairs of
// `inner` contiguous elements. A row's parameters start at param_offset and
// advance by param_stride per element (0: one value for the row).
struct QuantLayout {
  int64_t outer = 1;
  int64_t axis_dim = 1;
  int64_t inner = 1;
  int64_t block_size = 0;  // > 0: blocked
  bool per_tensor = false;

  int64_t param_offset(int64_t o, int64_t d) const {
    if (per_tensor) return 0;
    if (block_size == 0) return d;
    int64_t blocks = (axis_dim + block_size - 1) / block_size;
    return (o * blocks + d / block_size) * inner;
  }
  int64_t param_stride() const { return block_size > 0 ? 1 : 0; }
};

absl::StatusOr<QuantLayout> ResolveLayout(const Shape& x, const Shape& scale,
                                          int64_t axis, int64_t block_size) {
  QuantLayout layout;
  const int rank = static_cast<int>(x.size());
  if (block_size < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("block_size is ", block_size, ", expected >= 0"));
  }
  if (block_size == 0 && scale.size() <= 1 && NumElements(scale) == 1) {
    layout.per_tensor = true;
    layout.inner = NumElements(x);
    return layout;
  }
  if (axis < -rank || axis >= rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "axis ", axis, " is out of range for x of shape ", ShapeToString(x)));
  }
  if (axis < 0) axis += rank;
  for (int i = 0; i < axis; ++i) layout.outer *= x[i];
  layout.axis_dim = x[axis];
  for (int i = axis + 1; i < rank; ++i) layout.inner *= x[i];
  if (block_size == 0) {
    if (scale.size() != 1 || scale[0] != x[axis]) {
      return absl::InvalidArgumentError(
          absl::StrCat("scale has shape ", ShapeToString(scale),
                       "; expected one element, "
                       "or [",
                       x[axis], "] for per-axis quantization along axis ", axis,
                       " of x ", ShapeToString(x)));
    }
    return layout;
  }
  layout.block_size = block_size;
  Shape expected = x;
  expected[axis] = (x[axis] + block_size - 1) / block_size;
  if (scale != expected) {
    return absl::InvalidArgumentError(
        absl::StrCat("scale has shape ", ShapeToString(scale), ", expected ",
                     ShapeToString(expected), " for blocks of ", block_size,
                     " along axis ", axis, " of x ", ShapeToString(x)));
  }
  return layout;
}

absl::Status CheckZeroPoint(const Tensor* zero_point, const Tensor& scale,
                            DataType expected_type) {
  if (zero_point == nullptr) return absl::OkStatus();
  if (zero_point->dtype() != expected_type) {
    return absl::InvalidArgumentError(
        absl::StrCat("zero_point is ", DataTypeName(zero_point->dtype()),
                     ", expected ", DataTypeName(expected_type)));
  }
  if (zero_point->shape() != scale.shape()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "zero_point has shape ", ShapeToString(zero_point->shape()),
        ", expected scale's shape ", ShapeToString(scale.shape())));
  }
  return absl::OkStatus();
}

std::vector<int32_t> ZeroPointsAsInt32(const Tensor* zero_point, int64_t n) {
  std::vector<int32_t> out(n, 0);
  if (zero_point == nullptr) return out;
  for (int64_t i = 0; i < n; ++i) {
    switch (zero_point->dtype()) {
      case DataType::kUInt8:
        out[i] = zero_point->data<uint8_t>()[i];
        break;
      case DataType::kInt8:
        out[i] = zero_point->data<int8_t>()[i];
        break;
      default:
        out[i] = zero_point->data<int32_t>()[i];
        break;
    }
  }
  return out;
}

void EnsureOutput(DataType type, const Shape& shape, Tensor* y) {
  if (!y->defined() || y->dtype() != type || y->shape() != shape) {
    *y = Tensor(type, shape);
  }
}

// Runs row(o, d) over all rows, on several threads when the tensor is large.
template <typename Row>
void ForEachRow(const QuantLayout& l, Row&& row) {
  const int64_t rows = l.outer * l.axis_dim;
  if (rows == 1) {
    // One long row (per tensor): split it instead.
    constexpr int64_t kChunk = 1 << 14;
    const int64_t chunks = (l.inner + kChunk - 1) / kChunk;
    ParallelFor(chunks, chunks > 4, [&](int64_t c) {
      row(0, 0, c * kChunk, std::min(l.inner, (c + 1) * kChunk));
    });
    return;
  }
  ParallelFor(rows, rows * l.inner > (1 << 16), [&](int64_t r) {
    row(r / l.axis_dim, r % l.axis_dim, 0, l.inner);
  });
}

// One element: x / s, NaN to 0, clamped to [qmin - z, qmax - z], rounded
// half to even, plus z. Clamping to integer bounds commutes with rounding;
// after it |t| is far below 2^22, where adding and subtracting 1.5 * 2^23
// rounds to the nearest integer, ties to even (the FPU's default mode).
inline int32_t QuantizeOne(float x, float s, int32_t z, int32_t qmin,
                           int32_t qmax) {
  float t = x / s;
  t = t == t ? t : 0.f;  // NaN
  t = std::min(std::max(t, static_cast<float>(qmin - z)),
               static_cast<float>(qmax - z));
  constexpr float kMagic = 12582912.f;  // 1.5 * 2^23
  t = (t + kMagic) - kMagic;
  return static_cast<int32_t>(t) + z;
}

// A run of elements sharing one scale and zero point (per-tensor, or one
// channel's row): the hot loop of every int8 Conv/MatMul's input, so it is
// compiled for AVX-512 and AVX2 as well and picked at load time. The same
// arithmetic as QuantizeOne, element for element (QuantizeTest compares it
// with the reference).
template <typename Q>
inline __attribute__((always_inline)) void QuantizeSpanBody(
    const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax,
    Q* y) {
  const float lo = static_cast<float>(qmin - z);
  const float hi = static_cast<float>(qmax - z);
  constexpr float kMagic = 12582912.f;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    float t = x[i] / s;
    t = t == t ? t : 0.f;
    t = std::min(std::max(t, lo), hi);
    t = (t + kMagic) - kMagic;
    y[i] = static_cast<Q>(static_cast<int32_t>(t) + z);
  }
}

// One function per type: clang does not multiversion templates.
__attribute__((target_clones("avx512f", "avx2", "default"))) void QuantizeSpan(
    const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax,
    uint8_t* y) {
  QuantizeSpanBody(x, n, s, z, qmin, qmax, y);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void QuantizeSpan(
    const float* x, int64_t n, float s, int32_t z, int32_t qmin, int32_t qmax,
    int8_t* y) {
  QuantizeSpanBody(x, n, s, z, qmin, qmax, y);
}

template <typename Q>
void QuantizeRows(const QuantLayout& l, const float* x, const float* scale,
                  const int32_t* zp, int32_t qmin, int32_t qmax, Q* y) {
  const int64_t stride = l.param_stride();
  ForEachRow(l, [&](int64_t o, int64_t d, int64_t begin, int64_t end) {
    const int64_t base = (o * l.axis_dim + d) * l.inner;
    const int64_t p = l.param_offset(o, d);
    if (stride == 0) {
      QuantizeSpan(x + base + begin, end - begin, scale[p], zp[p], qmin, qmax,
                   y + base + begin);
      return;
    }
    for (int64_t i = begin; i < end; ++i) {
      y[base + i] = static_cast<Q>(QuantizeOne(
          x[base + i], scale[p + i * stride], zp[p + i * stride], qmin, qmax));
    }
  });
}

template <typename Q>
void DequantizeRows(const QuantLayout& l, const Q* x, const float* scale,
                    const int32_t* zp, float* y) {
  const int64_t stride = l.param_stride();
  ForEachRow(l, [&](int64_t o, int64_t d, int64_t begin, int64_t end) {
    const int64_t base = (o * l.axis_dim + d) * l.inner;
    const int64_t p = l.param_offset(o, d);
    for (int64_t i = begin; i < end; ++i) {
      const int64_t diff =
          static_cast<int64_t>(x[base + i]) - zp[p + i * stride];
      y[base + i] = static_cast<float>(diff) * scale[p + i * stride];
    }
  });
}

}  // namespace

absl::Status QuantizeLinear(const Tensor& x, const Tensor& scale,
                            const Tensor* zero_point,
                            const QuantizeOptions& options, Tensor* y) {
  if (x.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QuantizeLinear input is ", x.DebugString(), ", expected f32"));
  }
  if (scale.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QuantizeLinear scale is ", scale.DebugString(), ", expected f32"));
  }
  const DataType out = options.output_type;
  if (out != DataType::kUInt8 && out != DataType::kInt8) {
    return absl::InvalidArgumentError(
        absl::StrCat("QuantizeLinear output type is ", DataTypeName(out),
                     ", expected u8 or s8"));
  }
  const int32_t qmin = options.qmin.value_or(QuantTypeMin(out));
  const int32_t qmax = options.qmax.value_or(QuantTypeMax(out));
  if (qmin > qmax || qmin < QuantTypeMin(out) || qmax > QuantTypeMax(out)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "quantization range [", qmin, ", ", qmax, "] is empty or outside the ",
        DataTypeName(out), " range"));
  }
  QUANTD_ASSIGN_OR_RETURN(QuantLayout layout,
                          ResolveLayout(x.shape(), scale.shape(), options.axis,
                                        options.block_size));
  QUANTD_RETURN_IF_ERROR(CheckZeroPoint(zero_point, scale, out));
  const float* s = scale.data<float>();
  for (int64_t i = 0; i < scale.num_elements(); ++i) {
    if (!std::isfinite(s[i]) || s[i] <= 0) {
      return absl::InvalidArgumentError(absl::StrCat(
          "scale[", i, "] is ", s[i], ", expected a positive finite number"));
    }
  }
  std::vector<int32_t> zp = ZeroPointsAsInt32(zero_point, scale.num_elements());
  for (size_t i = 0; i < zp.size(); ++i) {
    if (zp[i] < qmin || zp[i] > qmax) {
      return absl::InvalidArgumentError(absl::StrCat("zero_point[", i, "] is ",
                                                     zp[i], ", outside [", qmin,
                                                     ", ", qmax, "]"));
    }
  }
  EnsureOutput(out, x.shape(), y);
  if (out == DataType::kUInt8) {
    QuantizeRows(layout, x.data<float>(), s, zp.data(), qmin, qmax,
                 y->mutable_data<uint8_t>());
  } else {
    QuantizeRows(layout, x.data<float>(), s, zp.data(), qmin, qmax,
                 y->mutable_data<int8_t>());
  }
  return absl::OkStatus();
}

absl::Status DequantizeLinear(const Tensor& x, const Tensor& scale,
                              const Tensor* zero_point,
                              const DequantizeOptions& options, Tensor* y) {
  if (x.dtype() != DataType::kUInt8 && x.dtype() != DataType::kInt8 &&
      x.dtype() != DataType::kInt32) {
    return absl::InvalidArgumentError(absl::StrCat("DequantizeLinear input is ",
                                                   x.DebugString(),
                                                   ", expected u8, s8 or s32"));
  }
  if (scale.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DequantizeLinear scale is ", scale.DebugString(), ", expected f32"));
  }
  QUANTD_ASSIGN_OR_RETURN(QuantLayout layout,
                          ResolveLayout(x.shape(), scale.shape(), options.axis,
                                        options.block_size));
  QUANTD_RETURN_IF_ERROR(CheckZeroPoint(zero_point, scale, x.dtype()));
  std::vector<int32_t> zp = ZeroPointsAsInt32(zero_point, scale.num_elements());
  EnsureOutput(DataType::kFloat32, x.shape(), y);
  const float* s = scale.data<float>();
  float* out = y->mutable_data<float>();
  switch (x.dtype()) {
    case DataType::kUInt8:
      DequantizeRows(layout, x.data<uint8_t>(), s, zp.data(), out);
      break;
    case DataType::kInt8:
      DequantizeRows(layout, x.data<int8_t>(), s, zp.data(), out);
      break;
    default:
      DequantizeRows(layout, x.data<int32_t>(), s, zp.data(), out);
      break;
  }
  return absl::OkStatus();
}

namespace {

// Scale and zero point for the range [lo, hi] (NaN-free; lo <= 0 <= hi),
// by DynamicQuantizeLinear's formulas in f32.
absl::StatusOr<DynamicQuantParams> DynamicParamsFromRange(float lo, float hi) {
  if (!std::isfinite(lo) || !std::isfinite(hi)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DynamicQuantizeLinear input has range [", lo, ", ", hi,
                     "]; it needs finite values to choose a scale"));
  }
  DynamicQuantParams p;
  const float width = hi - lo;
  if (!std::isfinite(width)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DynamicQuantizeLinear input range [", lo, ", ", hi,
                     "] is wider than the largest float"));
  }
  p.scale = width / 255.f;
  // All zeros (or a range so small that the scale underflows): ONNX
  // Runtime's scale 1, so zero_point is 0 and nothing divides by zero.
  if (p.scale == 0.f) p.scale = 1.f;
  const float zp = 0.f - lo / p.scale;
  p.zero_point =
      static_cast<int32_t>(std::nearbyint(std::clamp(zp, 0.f, 255.f)));
  return p;
}

}  // namespace

absl::StatusOr<DynamicQuantParams> ComputeDynamicQuantParams(const Tensor& x) {
  if (x.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DynamicQuantizeLinear input is ", x.DebugString(), ", expected f32"));
  }
  // Starting from 0 includes 0 in the range, as the spec's min(0, min(x)).
  float lo = 0.f, hi = 0.f;
  const float* p = x.data<float>();
  const int64_t n = x.num_elements();
#pragma omp parallel for reduction(min : lo) reduction(max : hi) if (n > 65536)
  for (int64_t i = 0; i < n; ++i) {
    // NaN compares false both ways and so is skipped.
    if (p[i] < lo) lo = p[i];
    if (p[i] > hi) hi = p[i];
  }
  return DynamicParamsFromRange(lo, hi);
}

absl::Status DynamicQuantizeLinear(const Tensor& x, Tensor* y,
                                   DynamicQuantParams* params) {
  QUANTD_ASSIGN_OR_RETURN(DynamicQuantParams p, ComputeDynamicQuantParams(x));
  Tensor scale = Tensor::Scalar<float>(p.scale);
  Tensor zp = Tensor::Scalar<uint8_t>(static_cast<uint8_t>(p.zero_point));
  QuantizeOptions options;
  options.output_type = DataType::kUInt8;
  QUANTD_RETURN_IF_ERROR(QuantizeLinear(x, scale, &zp, options, y));
  if (params != nullptr) *params = p;
  return absl::OkStatus();
}

absl::Status DynamicQuantizeLinearReference(const Tensor& x, Tensor* y,
                                            DynamicQuantParams* params) {
  if (x.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "DynamicQuantizeLinear input is ", x.DebugString(), ", expected f32"));
  }
  const float* in = x.data<float>();
  const int64_t n = x.num_elements();
  float x_min = 0.f, x_max = 0.f;
  for (int64_t i = 0; i < n; ++i) {
    if (std::isnan(in[i])) continue;
    x_min = std::min(x_min, in[i]);
    x_max = std::max(x_max, in[i]);
  }
  if (std::isinf(x_min) || std::isinf(x_max) || std::isinf(x_max - x_min)) {
    return absl::InvalidArgumentError(
        absl::StrCat("DynamicQuantizeLinear input has range [", x_min, ", ",
                     x_max, "]; it needs a finite scale"));
  }
  float scale = (x_max - x_min) / 255.f;
  if (scale == 0.f) scale = 1.f;
  float zp =
      std::nearbyint(std::min(std::max(0.f - x_min / scale, 0.f), 255.f));
  *y = Tensor(DataType::kUInt8, x.shape());
  uint8_t* out = y->mutable_data<uint8_t>();
  for (int64_t i = 0; i < n; ++i) {
    float v = std::isnan(in[i]) ? zp : std::nearbyint(in[i] / scale) + zp;
    out[i] = static_cast<uint8_t>(std::min(std::max(v, 0.f), 255.f));
  }
  if (params != nullptr) {
    params->scale = scale;
    params->zero_point = static_cast<int32_t>(zp);
  }
  return absl::OkStatus();
}

}  // namespace quantd
