// Reference convolutions: the definitions, as direct loops in double
// precision. Slow on purpose; tests compare the oneDNN kernels against them.
#include <array>
#include <cstdint>
#include <vector>

#include "absl/strings/str_cat.h"
#include "kernels/convolution.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using conv_internal::ConvGeometry;

// The geometry with missing leading spatial dims filled in as size 1, so one
// loop nest serves 1-D, 2-D and 3-D.
struct Geometry3 {
  std::array<int64_t, 3> in, kernel, out, stride, dilation, pad;
};

Geometry3 To3(const ConvGeometry& g) {
  Geometry3 r;
  for (int i = 0; i < 3; ++i) {
    const int j = i - (3 - g.spatial);  // index into g's vectors, or < 0
    r.in[i] = j < 0 ? 1 : g.in[j];
    r.kernel[i] = j < 0 ? 1 : g.kernel[j];
    r.out[i] = j < 0 ? 1 : g.out[j];
    r.stride[i] = j < 0 ? 1 : g.strides[j];
    r.dilation[i] = j < 0 ? 1 : g.dilations[j];
    r.pad[i] = j < 0 ? 0 : g.pads_begin[j];
  }
  return r;
}

// Sum over input channels and kernel taps of src(flat index) * w(flat
// index), for every dst element. For a transposed convolution every src
// element is scattered to the outputs it touches instead.
template <typename SrcAt, typename WeightAt>
std::vector<double> Accumulate(const ConvGeometry& g, SrcAt src_at,
                               WeightAt weight_at) {
  const Geometry3 d = To3(g);
  const int64_t icg = g.in_channels / g.groups;
  const int64_t ocg = g.out_channels / g.groups;
  const int64_t in_size = d.in[0] * d.in[1] * d.in[2];
  const int64_t out_size = d.out[0] * d.out[1] * d.out[2];
  const int64_t k_size = d.kernel[0] * d.kernel[1] * d.kernel[2];
  std::vector<double> acc(g.batch * g.out_channels * out_size, 0.0);
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t grp = 0; grp < g.groups; ++grp) {
      for (int64_t o = 0; o < ocg; ++o) {
        for (int64_t i = 0; i < icg; ++i) {
          const int64_t oc = grp * ocg + o;
          const int64_t ic = grp * icg + i;
          // Weights [OC, C/G, k...] for conv, [C, OC/G, k...] transposed.
          const int64_t w_base =
              g.transposed ? (ic * ocg + o) * k_size : (oc * icg + i) * k_size;
          const int64_t src_base = (n * g.in_channels + ic) * in_size;
          const int64_t dst_base = (n * g.out_channels + oc) * out_size;
          for (int64_t kd = 0; kd < d.kernel[0]; ++kd) {
            for (int64_t kh = 0; kh < d.kernel[1]; ++kh) {
              for (int64_t kw = 0; kw < d.kernel[2]; ++kw) {
                const double w = weight_at(
                    w_base + (kd * d.kernel[1] + kh) * d.kernel[2] + kw);
                const std::array<int64_t, 3> k = {kd, kh, kw};
                // For every output position (conv) or input position
                // (transposed), the position on the other side.
                const auto& outer = g.transposed ? d.in : d.out;
                const auto& other = g.transposed ? d.out : d.in;
                for (int64_t a = 0; a < outer[0]; ++a) {
                  for (int64_t b = 0; b < outer[1]; ++b) {
                    for (int64_t c = 0; c < outer[2]; ++c) {
                      const std::array<int64_t, 3> pos = {a, b, c};
                      std::array<int64_t, 3> q;
                      bool inside = true;
                      for (int x = 0; x < 3; ++x) {
                        q[x] = pos[x] * d.stride[x] - d.pad[x] +
                               k[x] * d.dilation[x];
                        inside = inside && q[x] >= 0 && q[x] < other[x];
                      }
                      if (!inside) continue;
                      const int64_t p_flat = (a * outer[1] + b) * outer[2] + c;
                      const int64_t q_flat =
                          (q[0] * other[1] + q[1]) * other[2] + q[2];
                      if (g.transposed) {
                        acc[dst_base + q_flat] += src_at(src_base + p_flat) * w;
                      } else {
                        acc[dst_base + p_flat] += src_at(src_base + q_flat) * w;
                      }
                    }
                  }
                }
              }
            }
          }
        }
      }
    }
  }
  return acc;
}

int64_t OutputSpatialSize(const ConvGeometry& g) {
  int64_t s = 1;
  for (int64_t v : g.out) s *= v;
  return s;
}

absl::Status FloatReference(bool transposed, const ConvParams& params,
                            const PostOps& post, const Tensor& src,
                            const Tensor& weights, const Tensor* bias,
                            Tensor* dst) {
  if (src.dtype() != DataType::kFloat32 ||
      weights.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference conv expects f32 src and weights, got ",
                     src.DebugString(), " and ", weights.DebugString()));
  }
  QUANTD_ASSIGN_OR_RETURN(
      ConvGeometry g, conv_internal::ResolveConvGeometry(
                          params, src.shape(), weights.shape(), transposed));
  absl::Status s =
      conv_internal::PrepareConvOutput(g, post, DataType::kFloat32, bias, dst);
  if (!s.ok()) return s;
  const float* x = src.data<float>();
  const float* w = weights.data<float>();
  std::vector<double> acc = Accumulate(
      g, [x](int64_t i) { return static_cast<double>(x[i]); },
      [w](int64_t i) { return static_cast<double>(w[i]); });
  const int64_t spatial = OutputSpatialSize(g);
  float* out = dst->mutable_data<float>();
  for (int64_t i = 0; i < static_cast<int64_t>(acc.size()); ++i) {
    const int64_t oc = (i / spatial) % g.out_channels;
    double v = acc[i] + (bias ? bias->data<float>()[oc] : 0.0);
    out[i] =
        static_cast<float>(ApplyPostOpsReal(v, post, post.sum ? out[i] : 0.0));
  }
  return absl::OkStatus();
}

}  // namespace

absl::Status ConvolutionReference(const ConvParams& params,
                                  const PostOps& post_ops, const Tensor& src,
                                  const Tensor& weights, const Tensor* bias,
                                  Tensor* dst) {
  return FloatReference(false, params, post_ops, src, weights, bias, dst);
}

absl::Status DeconvolutionReference(const ConvParams& params,
                                    const PostOps& post_ops, const Tensor& src,
                                    const Tensor& weights, const Tensor* bias,
                                    Tensor* dst) {
  return FloatReference(true, params, post_ops, src, weights, bias, dst);
}

absl::Status QuantizedConvolutionReference(const ConvParams& params,
                                           const QuantizedOpParams& q,
                                           const Tensor& src,
                                           const Tensor& weights,
                                           const Tensor* bias, Tensor* dst) {
  if (weights.dtype() != DataType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 conv weights are ", weights.DebugString(), ", expected s8"));
  }
  QUANTD_ASSIGN_OR_RETURN(ConvGeometry g,
                          conv_internal::ResolveConvGeometry(
                              params, src.shape(), weights.shape(), false));
  absl::Status s = ValidateQuantizedOpParams(q, src.dtype(), g.out_channels);
  if (s.ok()) {
    s = conv_internal::PrepareConvOutput(g, q.post_ops, q.dst_type, bias, dst);
  }
  if (!s.ok()) return s;
  const int8_t* w = weights.data<int8_t>();
  const double zp = q.src_zero_point;
  std::vector<double> acc = Accumulate(
      g, [&](int64_t i) { return ReadQuantized(src, i) - zp; },
      [w](int64_t i) { return static_cast<double>(w[i]); });
  const int64_t spatial = OutputSpatialSize(g);
  for (int64_t i = 0; i < static_cast<int64_t>(acc.size()); ++i) {
    const int64_t oc = (i / spatial) % g.out_channels;
    StoreQuantizedResultReference(q, bias, oc, acc[i], i, dst);
  }
  return absl::OkStatus();
}

}  // namespace quantd
