#include "kernels/pooling.h"

#include <algorithm>
#include <new>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/dnnl_context.h"
#include "kernels/layout.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

// Bounds every attribute so that products of two never overflow int64.
constexpr int64_t kMaxAttribute = int64_t{1} << 31;

absl::Status CheckList(const char* name, const std::vector<int64_t>& v,
                       size_t want, int64_t min) {
  if (!v.empty() && v.size() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool ", name, " [", absl::StrJoin(v, ","), "] has ",
                     v.size(), " entries, expected ", want));
  }
  for (int64_t e : v) {
    if (e < min || e > kMaxAttribute) {
      return absl::InvalidArgumentError(
          absl::StrCat("pool ", name, " [", absl::StrJoin(v, ","),
                       "] must hold values in ", min, "..", kMaxAttribute));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<PoolGeometry> GlobalPoolGeometry(
    absl::Span<const int64_t> input_shape) {
  const size_t n = input_shape.size() - 2;
  const auto in = input_shape.subspan(2);
  for (int64_t d : in) {
    if (d == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("global pooling over the empty spatial extent of ",
                       ShapeToString(input_shape)));
    }
  }
  PoolGeometry g;
  g.output_shape = {input_shape[0], input_shape[1]};
  g.kernel.assign(in.begin(), in.end());
  g.strides = g.dilations = std::vector<int64_t>(n, 1);
  g.pad_begin = g.pad_end = std::vector<int64_t>(n, 0);
  g.output_shape.resize(input_shape.size(), 1);
  return g;
}

absl::Status CheckPoolParams(const PoolParams& params, size_t n) {
  QUANTD_RETURN_IF_ERROR(CheckList("kernel_shape", params.kernel, n, 1));
  if (params.kernel.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("pool kernel_shape is missing; expected ", n, " dims"));
  }
  QUANTD_RETURN_IF_ERROR(CheckList("strides", params.strides, n, 1));
  QUANTD_RETURN_IF_ERROR(CheckList("dilations", params.dilations, n, 1));
  if (params.auto_pad == AutoPad::kNotSet) {
    return CheckList("pads", params.pads, 2 * n, 0);
  }
  return absl::OkStatus();
}

// SAME_*: ceil(in / stride) outputs, the odd pad element at the end
// (SAME_UPPER) or the beginning (SAME_LOWER).
int64_t SamePadOutput(const PoolParams& params, PoolGeometry* g, size_t i,
                      int64_t in, int64_t extent) {
  const int64_t st = g->strides[i];
  const int64_t out = (in + st - 1) / st;
  const int64_t total = std::max<int64_t>(0, (out - 1) * st + extent - in);
  const int64_t small = total / 2;
  const bool upper = params.auto_pad == AutoPad::kSameUpper;
  g->pad_begin[i] = upper ? small : total - small;
  g->pad_end[i] = upper ? total - small : small;
  return out;
}

// Explicit pads (or VALID, no pads), with floor or ceil_mode rounding.
absl::StatusOr<int64_t> ExplicitPadOutput(const PoolParams& params,
                                          PoolGeometry* g, size_t i, int64_t in,
                                          int64_t extent,
                                          absl::Span<const int64_t> shape) {
  const size_t n = g->kernel.size();
  if (params.auto_pad == AutoPad::kNotSet && !params.pads.empty()) {
    g->pad_begin[i] = params.pads[i];
    g->pad_end[i] = params.pads[i + n];
    if (g->pad_begin[i] >= extent || g->pad_end[i] >= extent) {
      return absl::InvalidArgumentError(absl::StrCat(
          "pool pads [", absl::StrJoin(params.pads, ","),
          "] must be smaller than the kernel extent ", extent, " of dim ", i));
    }
  }
  const int64_t padded = in + g->pad_begin[i] + g->pad_end[i];
  if (padded < extent) {
    return absl::InvalidArgumentError(absl::StrCat(
        "pool kernel extent ", extent, " is larger than spatial dim ", i,
        " of ", ShapeToString(shape), " plus its pads"));
  }
  const int64_t st = g->strides[i];
  const bool ceil = params.ceil_mode && params.auto_pad == AutoPad::kNotSet;
  int64_t out = (padded - extent + (ceil ? st - 1 : 0)) / st + 1;
  if (ceil && (out - 1) * st >= in + g->pad_begin[i]) --out;
  return out;
}

absl::Status CheckPoolType(const PoolParams& params, const Tensor& x) {
  const DataType t = x.dtype();
  const bool is_max = params.kind == PoolKind::kMax;
  if (t != DataType::kFloat32 &&
      !(is_max && (t == DataType::kInt8 || t == DataType::kUInt8))) {
    return absl::InvalidArgumentError(
        absl::StrCat(is_max ? "max" : "average", " pooling does not support ",
                     x.defined() ? x.DebugString() : "an undefined tensor",
                     is_max ? "; use f32, s8 or u8" : "; use f32"));
  }
  return absl::OkStatus();
}

// Whether to leave the shape to PoolReference: no oneDNN primitive for it,
// or nothing to pool.
bool RunsAsLoop(const PoolParams& params, const PoolGeometry& geo,
                const Tensor& x) {
  const size_t n = geo.kernel.size();
  bool loop =
      n > 3 || x.num_elements() == 0 || NumElements(geo.output_shape) == 0;
  // oneDNN 2.6 rejects exclude-padding averages whose dilation gap
  // (dilation - 1) is not smaller than the input dim.
  for (size_t i = 0; i < n && !loop; ++i) {
    loop = params.kind != PoolKind::kMax && !params.count_include_pad &&
           geo.dilations[i] - 1 >= x.dim(2 + i);
  }
  return loop;
}

// Per output position of spatial dim i: kernel / taps counted, the factor
// that turns oneDNN's divisor into ONNX's where ceil_mode windows reach past
// the end padding.
std::vector<float> IncludePadRescale(const PoolGeometry& geo, size_t i,
                                     int64_t in, int64_t out) {
  std::vector<float> f(out, 1.f);
  for (int64_t o = 0; o < out; ++o) {
    int64_t counted = 0;
    for (int64_t j = 0; j < geo.kernel[i]; ++j) {
      const int64_t pos =
          o * geo.strides[i] - geo.pad_begin[i] + j * geo.dilations[i];
      counted += pos < in + geo.pad_end[i];
    }
    f[o] = static_cast<float>(geo.kernel[i]) / counted;
  }
  return f;
}

// oneDNN's view of the geometry: dilation gaps, and end pads consistent
// with the output size (ceil_mode's extra window becomes extra end padding).
// Sets *rescale where that padding would change an include-pad divisor.
void DnnlPoolPads(const PoolParams& params, const PoolGeometry& geo,
                  const Tensor& x, dnnl::memory::dims* dil,
                  dnnl::memory::dims* pad_r,
                  std::vector<std::vector<float>>* rescale) {
  const size_t n = geo.kernel.size();
  dil->resize(n);
  pad_r->resize(n);
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = x.dim(2 + i), out = geo.output_shape[2 + i];
    const int64_t k = (geo.kernel[i] - 1) * geo.dilations[i] + 1;
    (*dil)[i] = geo.dilations[i] - 1;  // oneDNN counts the gaps
    (*pad_r)[i] = std::max(
        geo.pad_end[i], (out - 1) * geo.strides[i] + k - in - geo.pad_begin[i]);
    if (params.kind != PoolKind::kMax && params.count_include_pad &&
        (*pad_r)[i] > geo.pad_end[i]) {
      rescale->resize(n);
      (*rescale)[i] = IncludePadRescale(geo, i, in, out);
    }
  }
}

dnnl::algorithm PoolAlgorithm(const PoolParams& params) {
  if (params.kind == PoolKind::kMax) return dnnl::algorithm::pooling_max;
  return params.count_include_pad
             ? dnnl::algorithm::pooling_avg_include_padding
             : dnnl::algorithm::pooling_avg_exclude_padding;
}

// Fixes the divisor of the windows that ceil_mode pushed past the padding.
void ApplyRescale(const std::vector<std::vector<float>>& rescale,
                  const Shape& out_shape, float* out) {
  const int n = static_cast<int>(rescale.size());
  const int64_t spatial =
      NumElements(Shape(out_shape.begin() + 2, out_shape.end()));
  std::vector<int64_t> index(n, 0);
  for (int64_t o = 0; o < spatial; ++o) {
    float f = 1.f;
    for (int i = 0; i < n; ++i) {
      if (!rescale[i].empty()) f *= rescale[i][index[i]];
    }
    if (f != 1.f) {
      for (int64_t nc = 0; nc < out_shape[0] * out_shape[1]; ++nc) {
        out[nc * spatial + o] *= f;
      }
    }
    for (int i = n - 1; i >= 0; --i) {
      if (++index[i] < out_shape[2 + i]) break;
      index[i] = 0;
    }
  }
}

}  // namespace

PoolParams GlobalPoolParams(PoolKind kind) {
  PoolParams p;
  p.kind = kind;
  p.global = true;
  return p;
}

absl::StatusOr<PoolGeometry> ResolvePoolGeometry(
    const PoolParams& params, absl::Span<const int64_t> input_shape) {
  const int rank = static_cast<int>(input_shape.size());
  if (rank < 3) {
    return absl::InvalidArgumentError(
        absl::StrCat("pooling takes an [N, C, spatial...] tensor, got shape ",
                     ShapeToString(input_shape)));
  }
  if (params.global) return GlobalPoolGeometry(input_shape);
  const size_t n = rank - 2;
  QUANTD_RETURN_IF_ERROR(CheckPoolParams(params, n));
  PoolGeometry g;
  g.output_shape = {input_shape[0], input_shape[1]};
  g.kernel = params.kernel;
  g.strides =
      params.strides.empty() ? std::vector<int64_t>(n, 1) : params.strides;
  g.dilations =
      params.dilations.empty() ? std::vector<int64_t>(n, 1) : params.dilations;
  g.pad_begin.assign(n, 0);
  g.pad_end.assign(n, 0);
  for (size_t i = 0; i < n; ++i) {
    const int64_t in = input_shape[2 + i];
    const int64_t extent = (g.kernel[i] - 1) * g.dilations[i] + 1;
    if (params.auto_pad == AutoPad::kSameUpper ||
        params.auto_pad == AutoPad::kSameLower) {
      g.output_shape.push_back(SamePadOutput(params, &g, i, in, extent));
      continue;
    }
    QUANTD_ASSIGN_OR_RETURN(
        int64_t out, ExplicitPadOutput(params, &g, i, in, extent, input_shape));
    g.output_shape.push_back(out);
  }
  return g;
}

absl::StatusOr<Shape> PoolOutputShape(const PoolParams& params,
                                      absl::Span<const int64_t> input_shape) {
  QUANTD_ASSIGN_OR_RETURN(PoolGeometry g,
                          ResolvePoolGeometry(params, input_shape));
  return g.output_shape;
}

namespace {

// Whether a plain int8 input pools channels-last (see Forward): not the
// inputs the loop runs (empty ones), since the loop path converts
// channels-last inputs back to plain.
bool PlainInt8RunsChannelsLast(const PoolParams& params, const Tensor& x) {
  absl::StatusOr<PoolGeometry> g = ResolvePoolGeometry(params, x.shape());
  return g.ok() && !RunsAsLoop(params, *g, x);
}

}  // namespace

PoolingForward::PoolingForward(PoolParams params)
    : params_(std::move(params)) {}

absl::Status PoolingForward::Forward(const Tensor& x, Tensor* y) {
  if (y == nullptr) return absl::InvalidArgumentError("output is null");
  QUANTD_RETURN_IF_ERROR(CheckPoolType(params_, x));
  const DataType t = x.dtype();
  if (t != DataType::kFloat32 && !x.channels_last() && x.rank() >= 3 &&
      x.rank() <= 5 && PlainInt8RunsChannelsLast(params_, x)) {
    // oneDNN 2.6 pools plain int8 tensors with its reference implementation
    // (738 ms for ResNet-50's stem MaxPool on u8 at batch 32, 2.4 ms
    // channels-last): pool channels-last and convert back.
    QUANTD_ASSIGN_OR_RETURN(Tensor cl, ToLayout(x, Layout::kChannelsLast));
    Tensor out;
    QUANTD_RETURN_IF_ERROR(Forward(cl, &out));
    QUANTD_ASSIGN_OR_RETURN(*y, ToLayout(out, Layout::kPlain));
    return absl::OkStatus();
  }
  absl::StatusOr<std::shared_ptr<Entry>> entry =
      cache_.GetOrCreate(x.DebugString(), [&]() -> absl::StatusOr<Entry> {
        Entry e;
        QUANTD_ASSIGN_OR_RETURN(PoolGeometry g,
                                ResolvePoolGeometry(params_, x.shape()));
        e.geometry = std::move(g);
        const PoolGeometry& geo = e.geometry;
        if (RunsAsLoop(params_, geo, x)) {
          e.use_loop = true;
          return e;
        }
        dnnl::memory::dims dil, pad_r;
        DnnlPoolPads(params_, geo, x, &dil, &pad_r, &e.rescale);
        absl::Status s = CatchDnnl("pooling creation", [&] {
          e.src_md = LayoutDesc(t, x.shape(), x.layout());
          e.dst_md = LayoutDesc(t, geo.output_shape, x.layout());
          e.prim =
              dnnl::pooling_v2_forward(dnnl::pooling_v2_forward::primitive_desc(
                  dnnl::pooling_v2_forward::desc(
                      dnnl::prop_kind::forward_inference,
                      PoolAlgorithm(params_), e.src_md, e.dst_md, geo.strides,
                      geo.kernel, dil, geo.pad_begin, pad_r),
                  CpuEngine()));
        });
        if (!s.ok()) return s;
        return e;
      });
  if (!entry.ok()) return entry.status();
  std::shared_ptr<Entry> e = *entry;
  if (x.channels_last() && (e->use_loop || !e->rescale.empty())) {
    // The loop and the rescale pass index plain tensors.
    QUANTD_ASSIGN_OR_RETURN(Tensor plain, ToLayout(x, Layout::kPlain));
    return Forward(plain, y);
  }
  if (e->use_loop) return PoolReference(params_, x, y);
  const Shape& out_shape = e->geometry.output_shape;
  if (!y->defined() || y->dtype() != t || y->shape() != out_shape ||
      y->raw_data() == x.raw_data()) {
    try {
      *y = Tensor(t, out_shape);
    } catch (const std::bad_alloc&) {
      return absl::ResourceExhaustedError("cannot allocate the pool output");
    }
  }
  QUANTD_RETURN_IF_ERROR(y->set_layout(x.layout()));
  SerialIfSmall serial(x.num_elements());
  absl::Status s = CatchDnnl("pooling", [&] {
    dnnl::memory src = WrapTensor(x, e->src_md);
    dnnl::memory dst = WrapTensor(*y, e->dst_md);
    e->prim.execute(ThreadStream(), {{DNNL_ARG_SRC, src}, {DNNL_ARG_DST, dst}});
    ThreadStream().wait();
  });
  if (!s.ok() || e->rescale.empty()) return s;
  ApplyRescale(e->rescale, out_shape, y->mutable_data<float>());
  return absl::OkStatus();
}

}  // namespace quantd
