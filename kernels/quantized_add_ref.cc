// QuantizedAddReference: one output element at a time, each input's element
// found through numpy broadcasting, in the ONNX ops' arithmetic (see the
// header). Also the path QuantizedAdd takes for broadcast shapes.
#include <algorithm>
#include <cmath>
#include <new>

#include "absl/strings/str_cat.h"
#include "kernels/binary.h"
#include "kernels/quantized_add.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Element strides of `shape` right-aligned to an output of rank `rank`, 0
// along broadcast dims.
std::vector<int64_t> BroadcastStrides(const Shape& shape, size_t rank) {
  std::vector<int64_t> strides(rank, 0);
  int64_t stride = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    const size_t d = shape.size() - 1 - i;
    if (shape[d] != 1) strides[rank - 1 - i] = stride;
    stride *= shape[d];
  }
  return strides;
}

float Dequantize(uint8_t q, const U8Params& p) {
  return static_cast<float>(static_cast<int64_t>(q) - p.zero_point) * p.scale;
}

}  // namespace

absl::Status QuantizedAddReference(const Tensor& a, const Tensor& b,
                                   const QuantizedAddParams& p, Tensor* y) {
  if (a.dtype() != DataType::kUInt8 || b.dtype() != DataType::kUInt8 ||
      a.channels_last() || b.channels_last()) {
    return absl::InvalidArgumentError(
        absl::StrCat("QuantizedAddReference takes two plain u8 tensors, got ",
                     a.DebugString(), " and ", b.DebugString()));
  }
  QUANTD_RETURN_IF_ERROR(ValidateQuantizedAddParams(p));
  QUANTD_ASSIGN_OR_RETURN(Shape shape, BroadcastShapes(a.shape(), b.shape()));
  // Broadcasting can make the output far larger than both inputs (a
  // hostile [46341, 1] + [1, 46341]): bounded, and allocation failures are
  // errors, not aborts.
  absl::StatusOr<Tensor> created;
  try {
    created =
        Tensor::Create(p.y.has_value() ? DataType::kUInt8 : DataType::kFloat32,
                       shape, int64_t{1} << 28);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate the QuantizedAdd output ", ShapeToString(shape)));
  }
  QUANTD_RETURN_IF_ERROR(created.status());
  Tensor out = std::move(*created);
  const std::vector<int64_t> sa = BroadcastStrides(a.shape(), shape.size());
  const std::vector<int64_t> sb = BroadcastStrides(b.shape(), shape.size());
  std::vector<int64_t> index(shape.size(), 0);
  for (int64_t i = 0; i < out.num_elements(); ++i) {
    int64_t ia = 0, ib = 0;
    for (size_t d = 0; d < shape.size(); ++d) {
      ia += index[d] * sa[d];
      ib += index[d] * sb[d];
    }
    float v = Dequantize(a.data<uint8_t>()[ia], p.a) +
              Dequantize(b.data<uint8_t>()[ib], p.b);
    if (p.relu) v = std::max(v, 0.f);
    if (p.y.has_value()) {
      const float q = std::nearbyint(v / p.y->scale) + p.y->zero_point;
      out.mutable_data<uint8_t>()[i] =
          static_cast<uint8_t>(std::clamp(q, 0.f, 255.f));
    } else {
      out.mutable_data<float>()[i] = v;
    }
    for (size_t d = shape.size(); d-- > 0;) {  // next output index
      if (++index[d] < shape[d]) break;
      index[d] = 0;
    }
  }
  *y = std::move(out);
  return absl::OkStatus();
}

}  // namespace quantd
