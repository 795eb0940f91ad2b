// Convolution backward: oneDNN convolution_backward_data and
// convolution_backward_weights, plus a plain-loop reference.
#include <array>
#include <memory>
#include <string>
#include <unordered_map>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/backward.h"
#include "kernels/convolution.h"
#include "kernels/dnnl_context.h"
#include "kernels/post_ops.h"
#include "kernels/primitive_cache.h"
#include "oneapi/dnnl/dnnl.hpp"
#include "util/status_macros.h"

namespace quantd {
namespace {

using conv_internal::ConvGeometry;
using dnnl::memory;
using post_ops_internal::RunPrimitive;
using Args = std::unordered_map<int, memory>;

absl::Status CheckInputs(const ConvParams& params, const Tensor& x,
                         const Tensor& w, const Tensor& dy, ConvGeometry* g) {
  for (const Tensor* t : {&x, &w, &dy}) {
    if (t->dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "convolution backward takes f32 tensors, got ", t->DebugString()));
    }
  }
  QUANTD_ASSIGN_OR_RETURN(
      ConvGeometry geometry,
      conv_internal::ResolveConvGeometry(params, x.shape(), w.shape(),
                                         /*transposed=*/false));
  if (dy.shape() != geometry.dst_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "convolution backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(geometry.dst_shape)));
  }
  *g = std::move(geometry);
  return absl::OkStatus();
}

memory::dims Dims(std::initializer_list<int64_t> head,
                  const std::vector<int64_t>& tail) {
  memory::dims d(head);
  d.insert(d.end(), tail.begin(), tail.end());
  return d;
}

memory::desc Plain(const memory::dims& dims) {
  return memory::desc(dims, memory::data_type::f32, DenseStrides(dims));
}

struct ConvBackwardEntry {
  dnnl::convolution_forward forward;  // ConvTranspose's data gradient
  dnnl::convolution_backward_data data;
  dnnl::convolution_backward_weights weights;
  memory::desc src_md, weights_md, dst_md, bias_md;
  // User-managed scratchpads: each execution allocates its own, so one
  // cached primitive can run on several threads at once.
  memory::desc forward_scratch, data_scratch, weights_scratch;
};

std::string Key(const ConvGeometry& g) {
  return absl::StrCat(
      g.batch, ",", g.in_channels, ",", g.out_channels, ",", g.groups, "|",
      absl::StrJoin(g.in, ","), "|", absl::StrJoin(g.kernel, ","), "|",
      absl::StrJoin(g.strides, ","), "|", absl::StrJoin(g.dilations, ","), "|",
      absl::StrJoin(g.pads_begin, ","), "|", absl::StrJoin(g.pads_end, ","));
}

absl::StatusOr<ConvBackwardEntry> Build(const ConvGeometry& g) {
  ConvBackwardEntry e;
  absl::Status s = CatchDnnl("convolution backward creation", [&] {
    e.src_md = Plain(Dims({g.batch, g.in_channels}, g.in));
    e.dst_md = Plain(Dims({g.batch, g.out_channels}, g.out));
    const int64_t ocg = g.out_channels / g.groups;
    const int64_t icg = g.in_channels / g.groups;
    e.weights_md = Plain(g.groups > 1 ? Dims({g.groups, ocg, icg}, g.kernel)
                                      : Dims({ocg, icg}, g.kernel));
    e.bias_md = Plain({g.out_channels});
    memory::dims dilates(g.dilations.begin(), g.dilations.end());
    for (auto& d : dilates) d -= 1;  // oneDNN: 0 is dense
    const memory::dims strides(g.strides.begin(), g.strides.end());
    const memory::dims pl(g.pads_begin.begin(), g.pads_begin.end());
    const memory::dims pr(g.pads_end.begin(), g.pads_end.end());
    const auto alg = dnnl::algorithm::convolution_direct;
    dnnl::convolution_forward::desc fwd(dnnl::prop_kind::forward_training, alg,
                                        e.src_md, e.weights_md, e.bias_md,
                                        e.dst_md, strides, dilates, pl, pr);
    dnnl::primitive_attr attr;
    attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
    dnnl::convolution_forward::primitive_desc fwd_pd(fwd, attr, CpuEngine());
    e.forward = dnnl::convolution_forward(fwd_pd);
    e.forward_scratch = fwd_pd.scratchpad_desc();
    dnnl::convolution_backward_data::desc bwd_data(
        alg, e.src_md, e.weights_md, e.dst_md, strides, dilates, pl, pr);
    dnnl::convolution_backward_data::primitive_desc data_pd(
        bwd_data, attr, CpuEngine(), fwd_pd);
    e.data = dnnl::convolution_backward_data(data_pd);
    e.data_scratch = data_pd.scratchpad_desc();
    dnnl::convolution_backward_weights::desc bwd_weights(
        alg, e.src_md, e.weights_md, e.bias_md, e.dst_md, strides, dilates, pl,
        pr);
    dnnl::convolution_backward_weights::primitive_desc weights_pd(
        bwd_weights, attr, CpuEngine(), fwd_pd);
    e.weights = dnnl::convolution_backward_weights(weights_pd);
    e.weights_scratch = weights_pd.scratchpad_desc();
  });
  if (!s.ok()) return s;
  return e;
}

PrimitiveCache<ConvBackwardEntry>& Cache() {
  static auto* cache = new PrimitiveCache<ConvBackwardEntry>();
  return *cache;
}

absl::StatusOr<std::shared_ptr<ConvBackwardEntry>> GetEntry(
    const ConvGeometry& g) {
  return Cache().GetOrCreate(Key(g), [&] { return Build(g); });
}

}  // namespace

absl::Status ConvolutionBackward(const ConvParams& params, const Tensor& x,
                                 const Tensor& w, const Tensor& dy, Tensor* dx,
                                 Tensor* dw, Tensor* db) {
  ConvGeometry g;
  QUANTD_RETURN_IF_ERROR(CheckInputs(params, x, w, dy, &g));
  QUANTD_ASSIGN_OR_RETURN(std::shared_ptr<ConvBackwardEntry> entry,
                          GetEntry(g));
  const ConvBackwardEntry& e = *entry;
  if (dx != nullptr) *dx = Tensor(DataType::kFloat32, x.shape());
  if (dw != nullptr) *dw = Tensor(DataType::kFloat32, w.shape());
  Tensor bias_grad(DataType::kFloat32, {g.out_channels});
  return CatchDnnl("convolution backward", [&] {
    memory dy_mem = WrapTensor(dy, e.dst_md);
    if (dx != nullptr) {
      Args args = {{DNNL_ARG_DIFF_DST, dy_mem},
                   {DNNL_ARG_WEIGHTS, WrapTensor(w, e.weights_md)},
                   {DNNL_ARG_DIFF_SRC, WrapTensor(*dx, e.src_md)}};
      RunPrimitive(e.data, e.data_scratch, args);
    }
    if (dw != nullptr || db != nullptr) {
      Tensor weights_grad =
          dw != nullptr ? *dw : Tensor(DataType::kFloat32, w.shape());
      Args args = {
          {DNNL_ARG_DIFF_DST, dy_mem},
          {DNNL_ARG_SRC, WrapTensor(x, e.src_md)},
          {DNNL_ARG_DIFF_WEIGHTS, WrapTensor(weights_grad, e.weights_md)},
          {DNNL_ARG_DIFF_BIAS, WrapTensor(bias_grad, e.bias_md)}};
      RunPrimitive(e.weights, e.weights_scratch, args);
    }
    if (db != nullptr) *db = bias_grad;
  });
}

// ConvTranspose(x, w) is the data gradient of Conv(., w) taken from the
// deconvolution's output space [N, OC, out] to its input space [N, C, in]
// (ONNX ConvTranspose weights [C, OC/groups, k...] are exactly that Conv's
// weights). So its gradients are Conv primitives of that Conv:
//   dx = Conv(dy, w)                     (forward)
//   dw = Conv weight gradient with src dy and output gradient x
//   db = sum of dy over all but channels.
absl::Status DeconvolutionBackward(const ConvParams& params, const Tensor& x,
                                   const Tensor& w, const Tensor& dy,
                                   Tensor* dx, Tensor* dw, Tensor* db) {
  for (const Tensor* t : {&x, &w, &dy}) {
    if (t->dtype() != DataType::kFloat32) {
      return absl::InvalidArgumentError(absl::StrCat(
          "ConvTranspose backward takes f32 tensors, got ", t->DebugString()));
    }
  }
  QUANTD_ASSIGN_OR_RETURN(
      ConvGeometry deconv,
      conv_internal::ResolveConvGeometry(params, x.shape(), w.shape(),
                                         /*transposed=*/true));
  if (dy.shape() != deconv.dst_shape) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ConvTranspose backward: dy has shape ", ShapeToString(dy.shape()),
        ", the forward output is ", ShapeToString(deconv.dst_shape)));
  }
  ConvParams conv_params = params;
  conv_params.output_padding.clear();  // absorbed by the floor in Conv
  QUANTD_ASSIGN_OR_RETURN(ConvGeometry g, conv_internal::ResolveConvGeometry(
                                              conv_params, dy.shape(),
                                              w.shape(), /*transposed=*/false));
  if (g.dst_shape != x.shape()) {
    return absl::InternalError(absl::StrCat(
        "ConvTranspose backward: the adjoint Conv maps ",
        ShapeToString(dy.shape()), " to ", ShapeToString(g.dst_shape),
        ", not to the input shape ", ShapeToString(x.shape())));
  }
  QUANTD_ASSIGN_OR_RETURN(std::shared_ptr<ConvBackwardEntry> entry,
                          GetEntry(g));
  const ConvBackwardEntry& e = *entry;
  if (dx != nullptr) *dx = Tensor(DataType::kFloat32, x.shape());
  if (dw != nullptr) *dw = Tensor(DataType::kFloat32, w.shape());
  absl::Status s = CatchDnnl("ConvTranspose backward", [&] {
    if (dx != nullptr) {
      Tensor zero_bias = Tensor::Zeros(DataType::kFloat32, {g.out_channels});
      Args args = {{DNNL_ARG_SRC, WrapTensor(dy, e.src_md)},
                   {DNNL_ARG_WEIGHTS, WrapTensor(w, e.weights_md)},
                   {DNNL_ARG_BIAS, WrapTensor(zero_bias, e.bias_md)},
                   {DNNL_ARG_DST, WrapTensor(*dx, e.dst_md)}};
      RunPrimitive(e.forward, e.forward_scratch, args);
    }
    if (dw != nullptr) {
      Tensor unused_bias(DataType::kFloat32, {g.out_channels});
      Args args = {{DNNL_ARG_DIFF_DST, WrapTensor(x, e.dst_md)},
                   {DNNL_ARG_SRC, WrapTensor(dy, e.src_md)},
                   {DNNL_ARG_DIFF_WEIGHTS, WrapTensor(*dw, e.weights_md)},
                   {DNNL_ARG_DIFF_BIAS, WrapTensor(unused_bias, e.bias_md)}};
      RunPrimitive(e.weights, e.weights_scratch, args);
    }
  });
  if (!s.ok()) return s;
  if (db != nullptr) return BiasGradient(dy, 1, db);
  return absl::OkStatus();
}

absl::Status ConvolutionBackwardReference(const ConvParams& params,
                                          const Tensor& x, const Tensor& w,
                                          const Tensor& dy, Tensor* dx,
                                          Tensor* dw, Tensor* db) {
  ConvGeometry g;
  QUANTD_RETURN_IF_ERROR(CheckInputs(params, x, w, dy, &g));
  // Pad the geometry to 3 spatial dims (leading dims of size 1).
  std::array<int64_t, 3> in{1, 1, 1}, k{1, 1, 1}, out{1, 1, 1}, st{1, 1, 1},
      dil{1, 1, 1}, pad{0, 0, 0};
  for (int i = 0; i < g.spatial; ++i) {
    const int j = 3 - g.spatial + i;
    in[j] = g.in[i];
    k[j] = g.kernel[i];
    out[j] = g.out[i];
    st[j] = g.strides[i];
    dil[j] = g.dilations[i];
    pad[j] = g.pads_begin[i];
  }
  const int64_t ocg = g.out_channels / g.groups;
  const int64_t icg = g.in_channels / g.groups;
  const int64_t in_size = in[0] * in[1] * in[2];
  const int64_t k_size = k[0] * k[1] * k[2];
  const int64_t out_size = out[0] * out[1] * out[2];
  std::vector<double> gx(x.num_elements()), gw(w.num_elements()),
      gb(g.out_channels);
  const float* px = x.data<float>();
  const float* pw = w.data<float>();
  const float* pdy = dy.data<float>();
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t oc = 0; oc < g.out_channels; ++oc) {
      const int64_t group = oc / ocg;
      const float* dy_plane = pdy + (n * g.out_channels + oc) * out_size;
      for (int64_t o = 0; o < out_size; ++o) {
        const double d = dy_plane[o];
        gb[oc] += d;
        const int64_t o0 = o / (out[1] * out[2]), o1 = o / out[2] % out[1],
                      o2 = o % out[2];
        for (int64_t ic = 0; ic < icg; ++ic) {
          const int64_t c = group * icg + ic;
          const int64_t x_base = (n * g.in_channels + c) * in_size;
          const int64_t w_base = (oc * icg + ic) * k_size;
          for (int64_t k0 = 0; k0 < k[0]; ++k0) {
            const int64_t i0 = o0 * st[0] - pad[0] + k0 * dil[0];
            if (i0 < 0 || i0 >= in[0]) continue;
            for (int64_t k1 = 0; k1 < k[1]; ++k1) {
              const int64_t i1 = o1 * st[1] - pad[1] + k1 * dil[1];
              if (i1 < 0 || i1 >= in[1]) continue;
              for (int64_t k2 = 0; k2 < k[2]; ++k2) {
                const int64_t i2 = o2 * st[2] - pad[2] + k2 * dil[2];
                if (i2 < 0 || i2 >= in[2]) continue;
                const int64_t xi = x_base + (i0 * in[1] + i1) * in[2] + i2;
                const int64_t wi = w_base + (k0 * k[1] + k1) * k[2] + k2;
                gx[xi] += d * pw[wi];
                gw[wi] += d * px[xi];
              }
            }
          }
        }
      }
    }
  }
  auto emit = [](const std::vector<double>& v, const Shape& shape, Tensor* t) {
    if (t == nullptr) return;
    *t = Tensor(DataType::kFloat32, shape);
    for (size_t i = 0; i < v.size(); ++i) {
      t->mutable_data<float>()[i] = static_cast<float>(v[i]);
    }
  };
  emit(gx, x.shape(), dx);
  emit(gw, w.shape(), dw);
  emit(gb, {g.out_channels}, db);
  return absl::OkStatus();
}

}  // namespace quantd
