#include "engine/calibration/conv_patch_hessian.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "kernels/matmul.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// A 2-D Conv's geometry; a 1-D Conv is one with height 1.
struct Geometry {
  int64_t n, c, h, w;  // input
  int64_t groups, cg;  // cg = c / groups
  int64_t kh, kw, sh, sw, dh, dw, ph, pw;
  int64_t oh, ow;  // output positions
  int64_t k;       // patch size cg * kh * kw

  // Input value of patch element `e` of output position (oy, ox), group g,
  // image i; 0 where the window is over the padding.
  float At(const float* x, int64_t i, int64_t g, int64_t e, int64_t oy,
           int64_t ox) const {
    const int64_t kx = e % kw, ky = (e / kw) % kh, cl = e / (kw * kh);
    const int64_t iy = oy * sh - ph + ky * dh, ix = ox * sw - pw + kx * dw;
    if (iy < 0 || iy >= h || ix < 0 || ix >= w) return 0.f;
    return x[((i * c + g * cg + cl) * h + iy) * w + ix];
  }
};

}  // namespace

int64_t ConvPatchHessianFloats(const Shape& weight_shape, int64_t groups) {
  constexpr int64_t kOver = kMaxLayerHessianFloats + 1;
  if (weight_shape.size() != 3 && weight_shape.size() != 4) return -1;
  if (groups < 1) return -1;
  if (groups > kMaxLayerHessianFloats) return kOver;
  int64_t k = 1;
  for (size_t i = 1; i < weight_shape.size(); ++i) {
    if (weight_shape[i] < 1) return -1;
    if (weight_shape[i] > kMaxLayerHessianFloats) return kOver;
    k *= weight_shape[i];
    if (k > kMaxLayerHessianFloats) return kOver;
  }
  return k * k <= kMaxLayerHessianFloats / groups ? groups * k * k : kOver;
}

bool ConvPatchHessianSupported(const Shape& weight_shape, int64_t groups) {
  const int64_t floats = ConvPatchHessianFloats(weight_shape, groups);
  return floats >= 0 && floats <= kMaxLayerHessianFloats;
}

namespace {

absl::StatusOr<Geometry> ReadGeometry(const Tensor& x, const ConvParams& p,
                                      const Shape& ws) {
  const int64_t rank = x.rank();
  if (x.dtype() != DataType::kFloat32 || (rank != 3 && rank != 4) ||
      static_cast<int64_t>(ws.size()) != rank) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conv patch Hessian: needs a float [N, C, H, W] or [N, C, W] input "
        "and weights of the same rank; got ",
        x.DebugString(), " and weights ", ShapeToString(ws)));
  }
  const size_t spatial = rank - 2;
  if (p.strides.size() != spatial || p.dilations.size() != spatial ||
      p.pads_begin.size() != spatial || p.pads_end.size() != spatial ||
      p.groups < 1) {
    return absl::InvalidArgumentError(
        "conv patch Hessian: strides, dilations and pads must have one entry "
        "per spatial dim, groups >= 1");
  }
  Geometry g;
  g.n = x.dim(0);
  g.c = x.dim(1);
  g.groups = p.groups;
  g.cg = ws[1];
  if (g.cg * g.groups != g.c || ws[0] % g.groups != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv patch Hessian: input ", x.DebugString(),
                     " does not match "
                     "weights ",
                     ShapeToString(ws), " with group ", g.groups));
  }
  const size_t last = spatial - 1;  // width index in the spatial vectors
  g.h = rank == 4 ? x.dim(2) : 1;
  g.w = x.dim(-1);
  g.kh = rank == 4 ? ws[2] : 1;
  g.kw = ws.back();
  g.sh = rank == 4 ? p.strides[0] : 1;
  g.sw = p.strides[last];
  g.dh = rank == 4 ? p.dilations[0] : 1;
  g.dw = p.dilations[last];
  g.ph = rank == 4 ? p.pads_begin[0] : 0;
  g.pw = p.pads_begin[last];
  const int64_t pe_h = rank == 4 ? p.pads_end[0] : 0;
  const int64_t pe_w = p.pads_end[last];
  if (g.sh < 1 || g.sw < 1 || g.dh < 1 || g.dw < 1) {
    return absl::InvalidArgumentError(
        "conv patch Hessian: strides and dilations must be >= 1");
  }
  g.oh = (g.h + g.ph + pe_h - ((g.kh - 1) * g.dh + 1)) / g.sh + 1;
  g.ow = (g.w + g.pw + pe_w - ((g.kw - 1) * g.dw + 1)) / g.sw + 1;
  g.k = g.cg * g.kh * g.kw;
  if (g.oh < 1 || g.ow < 1 || g.k < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv patch Hessian: no output positions for input ",
                     x.DebugString(), " and weights ", ShapeToString(ws)));
  }
  if (!ConvPatchHessianSupported(ws, g.groups)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "conv patch Hessian: ", g.groups, " groups of ", g.k,
        "-value patches exceed ", kMaxLayerHessianFloats, " Hessian floats"));
  }
  return g;
}

absl::Status Prepare(const Geometry& g, ConvPatchHessian& h) {
  if (h.groups == 0) {
    h.groups = g.groups;
    h.patch_size = g.k;
    h.hessian.assign(g.groups * g.k * g.k, 0.f);
    return absl::OkStatus();
  }
  if (h.groups != g.groups || h.patch_size != g.k) {
    return absl::InvalidArgumentError(
        absl::StrCat("conv patch Hessian: the layer changed from ", h.groups,
                     " groups of ", h.patch_size, " to ", g.groups,
                     " groups of ", g.k, " between batches"));
  }
  return absl::OkStatus();
}

// Patches of positions [p0, p1) of image i, group g, as rows [p1-p0, K] and
// (unless null) their transpose [K, p1-p0].
void Im2Col(const Geometry& g, const float* x, int64_t i, int64_t group,
            int64_t p0, int64_t p1, float* rows, float* cols) {
  const int64_t n = p1 - p0;
  for (int64_t e = 0; e < g.k; ++e) {
    for (int64_t p = p0; p < p1; ++p) {
      const float v = g.At(x, i, group, e, p / g.ow, p % g.ow);
      if (cols != nullptr) cols[e * n + (p - p0)] = v;
      rows[(p - p0) * g.k + e] = v;
    }
  }
}

}  // namespace

absl::Status AccumulateConvPatchHessian(const Tensor& x,
                                        const ConvParams& params,
                                        const Shape& weight_shape,
                                        ConvPatchHessian& h) {
  QUANTD_ASSIGN_OR_RETURN(const Geometry g,
                          ReadGeometry(x, params, weight_shape));
  QUANTD_RETURN_IF_ERROR(Prepare(g, h));
  const float* data = x.data<float>();
  const int64_t positions = g.oh * g.ow;
  const int64_t slice = std::min(positions, kConvPatchRowsPerSlice);
  const int64_t kk = g.k * g.k;
  Tensor rows(DataType::kFloat32, {slice, g.k});
  Tensor cols(DataType::kFloat32, {g.k, slice});
  std::vector<double> acc(kk);
  MatMulKernel gemm;
  for (int64_t group = 0; group < g.groups; ++group) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t i = 0; i < g.n; ++i) {
      for (int64_t p0 = 0; p0 < positions; p0 += slice) {
        const int64_t p1 = std::min(positions, p0 + slice), n = p1 - p0;
        float* r = rows.mutable_data<float>();
        const bool loops = g.k <= 64;  // a GEMM call costs more here
        Im2Col(g, data, i, group, p0, p1, r,
               loops ? nullptr : cols.mutable_data<float>());
        if (loops) {
          for (int64_t p = 0; p < n; ++p) {
            const float* v = r + p * g.k;
            for (int64_t a = 0; a < g.k; ++a) {
              for (int64_t b = 0; b < g.k; ++b) acc[a * g.k + b] += v[a] * v[b];
            }
          }
          continue;
        }
        Tensor lhs = cols, rhs = rows;
        if (n != slice) {  // the last, shorter slice
          lhs = Tensor(DataType::kFloat32, {g.k, n});
          std::copy_n(cols.data<float>(), g.k * n, lhs.mutable_data<float>());
          rhs = Tensor(DataType::kFloat32, {n, g.k});
          std::copy_n(r, n * g.k, rhs.mutable_data<float>());
        }
        Tensor xtx;
        QUANTD_RETURN_IF_ERROR(gemm.Forward(lhs, rhs, nullptr, &xtx));
        const float* v = xtx.data<float>();
        for (int64_t e = 0; e < kk; ++e) acc[e] += v[e];
      }
    }
    float* out = h.hessian.data() + group * kk;
    for (int64_t e = 0; e < kk; ++e) out[e] += static_cast<float>(acc[e]);
  }
  h.patches += g.n * positions;
  return absl::OkStatus();
}

absl::Status AccumulateConvPatchHessianReference(const Tensor& x,
                                                 const ConvParams& params,
                                                 const Shape& weight_shape,
                                                 ConvPatchHessian& h) {
  QUANTD_ASSIGN_OR_RETURN(const Geometry g,
                          ReadGeometry(x, params, weight_shape));
  QUANTD_RETURN_IF_ERROR(Prepare(g, h));
  const float* data = x.data<float>();
  std::vector<double> patch(g.k), acc(g.k * g.k);
  for (int64_t group = 0; group < g.groups; ++group) {
    std::fill(acc.begin(), acc.end(), 0.0);
    for (int64_t i = 0; i < g.n; ++i) {
      for (int64_t oy = 0; oy < g.oh; ++oy) {
        for (int64_t ox = 0; ox < g.ow; ++ox) {
          for (int64_t e = 0; e < g.k; ++e) {
            patch[e] = g.At(data, i, group, e, oy, ox);
          }
          for (int64_t a = 0; a < g.k; ++a) {
            for (int64_t b = 0; b < g.k; ++b) {
              acc[a * g.k + b] += patch[a] * patch[b];
            }
          }
        }
      }
    }
    float* out = h.hessian.data() + group * g.k * g.k;
    for (int64_t e = 0; e < g.k * g.k; ++e) out[e] += acc[e];
  }
  h.patches += g.n * g.oh * g.ow;
  return absl::OkStatus();
}

}  // namespace quantd
