// Pooling backward by loops over every output and its window (see
// backward.h for why max pooling recomputes the arg max rather than using
// oneDNN's workspace).
#include <array>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "kernels/backward.h"
#include "kernels/pooling.h"
#include "util/status_macros.h"

namespace quantd {

namespace {

// The geometry padded to 3 spatial dims with leading 1s, so that one loop
// nest serves 1-D, 2-D and 3-D pooling.
struct Pool3d {
  std::array<int64_t, 3> in{1, 1, 1}, out{1, 1, 1}, k{1, 1, 1}, st{1, 1, 1},
      dil{1, 1, 1}, pb{0, 0, 0}, pe{0, 0, 0};
};

Pool3d PadTo3d(const PoolGeometry& g, const Tensor& x) {
  Pool3d p;
  const int spatial = x.rank() - 2;
  for (int i = 0; i < spatial; ++i) {
    const int j = 3 - spatial + i;
    p.in[j] = x.dim(2 + i);
    p.out[j] = g.output_shape[2 + i];
    p.k[j] = g.kernel[i];
    p.st[j] = g.strides[i];
    p.dil[j] = g.dilations[i];
    p.pb[j] = g.pad_begin[i];
    p.pe[j] = g.pad_end[i];
  }
  return p;
}

// Sets *taps to the input positions in output o's window and returns how
// many window positions lie inside the padded input (the divisor with
// count_include_pad).
int64_t WindowTaps(const Pool3d& p, int64_t o, std::vector<int64_t>* taps) {
  const auto& [in, out, k, st, dil, pb, pe] = p;
  const int64_t oi[3] = {o / (out[1] * out[2]), o / out[2] % out[1],
                         o % out[2]};
  taps->clear();
  int64_t counted = 0;
  for (int64_t k0 = 0; k0 < k[0]; ++k0) {
    const int64_t i0 = oi[0] * st[0] - pb[0] + k0 * dil[0];
    const bool pad0 = i0 >= -pb[0] && i0 < in[0] + pe[0];
    for (int64_t k1 = 0; k1 < k[1]; ++k1) {
      const int64_t i1 = oi[1] * st[1] - pb[1] + k1 * dil[1];
      const bool pad1 = i1 >= -pb[1] && i1 < in[1] + pe[1];
      for (int64_t k2 = 0; k2 < k[2]; ++k2) {
        const int64_t i2 = oi[2] * st[2] - pb[2] + k2 * dil[2];
        const bool pad2 = i2 >= -pb[2] && i2 < in[2] + pe[2];
        counted += pad0 && pad1 && pad2;
        if (i0 < 0 || i0 >= in[0] || i1 < 0 || i1 >= in[1] || i2 < 0 ||
            i2 >= in[2]) {
          continue;
        }
        taps->push_back((i0 * in[1] + i1) * in[2] + i2);
      }
    }
  }
  return counted;
}

absl::StatusOr<PoolGeometry> CheckBackwardArgs(const PoolParams& params,
                                               const Tensor& x,
                                               const Tensor& dy) {
  if (x.dtype() != DataType::kFloat32 || dy.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("pooling backward takes f32, got ", x.DebugString(),
                     " and ", dy.DebugString()));
  }
  QUANTD_ASSIGN_OR_RETURN(PoolGeometry geometry,
                          ResolvePoolGeometry(params, x.shape()));
  if (dy.shape() != geometry.output_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pooling backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(geometry.output_shape)));
  }
  const int spatial = x.rank() - 2;
  if (spatial > 3) {
    return absl::UnimplementedError(absl::StrCat(
        "pooling backward supports 1 to 3 spatial dims, got ", spatial));
  }
  return geometry;
}

}  // namespace

absl::Status PoolingBackward(const PoolParams& params, const Tensor& x,
                             const Tensor& dy, Tensor* dx) {
  QUANTD_ASSIGN_OR_RETURN(PoolGeometry geometry,
                          CheckBackwardArgs(params, x, dy));
  const Pool3d p = PadTo3d(geometry, x);
  const bool is_max = params.kind == PoolKind::kMax;
  const bool include_pad = params.count_include_pad && !params.global;
  const int64_t planes = x.dim(0) * x.dim(1);
  const int64_t in_size = p.in[0] * p.in[1] * p.in[2];
  const int64_t out_size = p.out[0] * p.out[1] * p.out[2];
  Tensor result = Tensor::Zeros(DataType::kFloat32, x.shape());
  float* pdx = result.mutable_data<float>();
  const float* px = x.data<float>();
  const float* pdy = dy.data<float>();
#pragma omp parallel for if (planes * out_size > 16384)
  for (int64_t plane = 0; plane < planes; ++plane) {
    const float* xp = px + plane * in_size;
    float* dxp = pdx + plane * in_size;
    std::vector<int64_t> taps;
    for (int64_t o = 0; o < out_size; ++o) {
      const int64_t counted = WindowTaps(p, o, &taps);
      const float d = pdy[plane * out_size + o];
      if (taps.empty()) continue;
      if (is_max) {
        int64_t best = taps[0];
        for (int64_t t : taps) {
          if (xp[t] > xp[best]) best = t;
        }
        dxp[best] += d;
      } else {
        const int64_t divisor =
            include_pad ? counted : static_cast<int64_t>(taps.size());
        const float share = d / static_cast<float>(divisor);
        for (int64_t t : taps) dxp[t] += share;
      }
    }
  }
  *dx = result;
  return absl::OkStatus();
}

}  // namespace quantd
