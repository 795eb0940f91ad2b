// Plain-loop reference for pooling.h: visits every tap of every window.
// PoolingForward also runs it for shapes oneDNN cannot take (more than three
// spatial dims, or an empty input with a non-empty output).
#include <algorithm>
#include <limits>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/pooling.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

template <typename T>
void PoolLoop(const PoolParams& params, const PoolGeometry& g, const Tensor& x,
              Tensor* y) {
  const int n = static_cast<int>(g.kernel.size());
  const Shape in(x.shape().begin() + 2, x.shape().end());
  const Shape out(g.output_shape.begin() + 2, g.output_shape.end());
  const int64_t in_size = NumElements(in), out_size = NumElements(out);
  const int64_t taps = NumElements(g.kernel);
  const T* src = x.data<T>();
  T* dst = y->mutable_data<T>();
  for (int64_t nc = 0; nc < x.dim(0) * x.dim(1); ++nc) {
    std::vector<int64_t> o(n, 0);
    for (int64_t oi = 0; oi < out_size; ++oi) {
      double sum = 0;
      T best = std::numeric_limits<T>::lowest();
      int64_t inside = 0, in_padded = 0;
      std::vector<int64_t> j(n, 0);
      for (int64_t t = 0; t < taps; ++t) {
        bool is_inside = true, is_padded = true;
        int64_t offset = 0;
        for (int d = 0; d < n; ++d) {
          const int64_t pos =
              o[d] * g.strides[d] - g.pad_begin[d] + j[d] * g.dilations[d];
          is_inside &= pos >= 0 && pos < in[d];
          is_padded &= pos >= -g.pad_begin[d] && pos < in[d] + g.pad_end[d];
          offset = offset * in[d] + pos;
        }
        if (is_inside) {
          const T v = src[nc * in_size + offset];
          sum += v;
          best = std::max(best, v);
          ++inside;
        }
        in_padded += is_padded;
        for (int d = n - 1; d >= 0; --d) {
          if (++j[d] < g.kernel[d]) break;
          j[d] = 0;
        }
      }
      if (params.kind == PoolKind::kMax) {
        dst[nc * out_size + oi] = best;
      } else {
        const int64_t count = params.count_include_pad ? in_padded : inside;
        dst[nc * out_size + oi] = static_cast<T>(sum / count);  // 0/0: NaN
      }
      for (int d = n - 1; d >= 0; --d) {
        if (++o[d] < out[d]) break;
        o[d] = 0;
      }
    }
  }
}

}  // namespace

absl::Status PoolReference(const PoolParams& params, const Tensor& x,
                           Tensor* y) {
  QUANTD_ASSIGN_OR_RETURN(PoolGeometry g,
                          ResolvePoolGeometry(params, x.shape()));
  Tensor out(x.dtype(), g.output_shape);
  switch (x.dtype()) {
    case DataType::kFloat32:
      PoolLoop<float>(params, g, x, &out);
      break;
    case DataType::kInt8:
      PoolLoop<int8_t>(params, g, x, &out);
      break;
    case DataType::kUInt8:
      PoolLoop<uint8_t>(params, g, x, &out);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("reference pooling does not take ", x.DebugString()));
  }
  *y = out;
  return absl::OkStatus();
}

}  // namespace quantd
