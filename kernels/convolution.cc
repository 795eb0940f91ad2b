#include "kernels/convolution.h"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <functional>
#include <string>
#include <unordered_map>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "kernels/buffer_pool.h"
#include "kernels/dnnl_context.h"
#include "kernels/layout.h"
#include "kernels/primitive_cache.h"
#include "util/status_macros.h"

namespace quantd {
namespace {
using dt = dnnl::memory::data_type;
using dnnl::memory;
}  // namespace

namespace conv_internal {
namespace {

// Weights reordered into the layouts primitives asked for, and the int8
// weights' largest magnitude. Entries hold a reference to the source storage
// (see convolution.h).
class WeightsCache {
 public:
  static constexpr size_t kMaxEntries = 8;

  absl::StatusOr<memory> Get(const Tensor& w, const memory::desc& user,
                             const memory::desc& want) {
    if (user == want) return WrapTensor(w, user);
    absl::MutexLock lock(&mu_);
    for (const Entry& e : entries_) {
      if (SameTensor(e.source, w) && e.desc == want) return e.mem;
    }
    Entry e{w, want, memory()};
    absl::Status s = CatchDnnl("weights reorder", [&] {
      e.mem = memory(want, CpuEngine());
      memory src = WrapTensor(w, user);
      dnnl::primitive_attr attr;
      attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
      dnnl::reorder::primitive_desc pd(CpuEngine(), user, CpuEngine(), want,
                                       attr);
      std::unordered_map<int, memory> args = {{DNNL_ARG_FROM, src},
                                              {DNNL_ARG_TO, e.mem}};
      post_ops_internal::RunPrimitive(dnnl::reorder(pd), pd.scratchpad_desc(),
                                      args);
    });
    if (!s.ok()) return s;
    if (entries_.size() >= kMaxEntries) entries_.pop_front();
    entries_.push_back(e);
    return e.mem;
  }

  int32_t MaxAbsInt8(const Tensor& w) {
    absl::MutexLock lock(&mu_);
    for (const auto& [source, value] : max_abs_) {
      if (SameTensor(source, w)) return value;
    }
    int32_t m = 0;
    for (int8_t v : w.span<int8_t>()) m = std::max(m, std::abs(int32_t{v}));
    if (max_abs_.size() >= kMaxEntries) max_abs_.pop_front();
    max_abs_.emplace_back(w, m);
    return m;
  }

  size_t size() const {
    absl::MutexLock lock(&mu_);
    return entries_.size();
  }

 private:
  struct Entry {
    Tensor source;
    memory::desc desc;
    memory mem;
  };
  static bool SameTensor(const Tensor& a, const Tensor& b) {
    return a.raw_data() == b.raw_data() && a.dtype() == b.dtype() &&
           a.shape() == b.shape();
  }

  mutable absl::Mutex mu_;
  std::deque<Entry> entries_ ABSL_GUARDED_BY(mu_);
  std::deque<std::pair<Tensor, int32_t>> max_abs_ ABSL_GUARDED_BY(mu_);
};

// A primitive for one problem, with the reorders that move plain tensors
// into and out of the layouts it chose.
struct ConvPrimitive {
  dnnl::primitive prim;
  memory::desc scratchpad;
  memory::desc src_md, weights_md, dst_md;  // what the primitive wants
  memory::desc user_src_md, user_weights_md, user_dst_md, bias_md;
  bool reorder_src = false;
  bool reorder_dst = false;
  dnnl::reorder src_in, dst_in, dst_out;
  memory::desc src_in_scratchpad, dst_in_scratchpad, dst_out_scratchpad;
};

// The data types one primitive works on.
struct ConvTypes {
  dt src, weights, dst;
  bool has_bias;
};

memory::dims Dims(std::initializer_list<int64_t> head,
                  const std::vector<int64_t>& tail) {
  memory::dims d(head);
  d.insert(d.end(), tail.begin(), tail.end());
  return d;
}

// The weights as the user stores them, in oneDNN's dims order ([G,] O, I,
// k...) with strides that describe the ONNX layout.
memory::desc UserWeightsDesc(const ConvGeometry& g, dt type) {
  const int64_t k = NumElements(g.kernel);
  const int64_t ocg = g.out_channels / g.groups;
  const int64_t icg = g.in_channels / g.groups;
  memory::dims kstrides = DenseStrides(g.kernel);
  memory::dims dims, strides;
  if (!g.transposed) {
    // ONNX [OC, C/G, k...] is [G, OC/G, C/G, k...] in memory.
    if (g.groups > 1) {
      dims = Dims({g.groups, ocg, icg}, g.kernel);
      strides = Dims({ocg * icg * k, icg * k, k}, kstrides);
    } else {
      dims = Dims({ocg, icg}, g.kernel);
      strides = Dims({icg * k, k}, kstrides);
    }
  } else {
    // ONNX [C, OC/G, k...] is [G, C/G, OC/G, k...]: O and I swapped.
    if (g.groups > 1) {
      dims = Dims({g.groups, ocg, icg}, g.kernel);
      strides = Dims({icg * ocg * k, k, ocg * k}, kstrides);
    } else {
      dims = Dims({ocg, icg}, g.kernel);
      strides = Dims({k, ocg * k}, kstrides);
    }
  }
  return memory::desc(dims, type, strides);
}

void MakeReorder(const memory::desc& from, const memory::desc& to,
                 dnnl::reorder* prim, memory::desc* scratchpad) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::reorder::primitive_desc pd(CpuEngine(), from, CpuEngine(), to, attr);
  *prim = dnnl::reorder(pd);
  *scratchpad = pd.scratchpad_desc();
}

// `src_layout` and `dst_layout` are the caller's tensors' layouts; the
// primitive's own choice (format `any`) decides whether they need reorders.
absl::StatusOr<ConvPrimitive> BuildConvPrimitive(
    const ConvGeometry& g, const ConvTypes& types,
    const std::function<dnnl::primitive_attr()>& make_attr, bool sum,
    Layout src_layout, Layout dst_layout) {
  ConvPrimitive p;
  absl::Status s = CatchDnnl("convolution primitive creation", [&] {
    const memory::dims src_dims = Dims({g.batch, g.in_channels}, g.in);
    const memory::dims dst_dims = Dims({g.batch, g.out_channels}, g.out);
    p.user_src_md =
        memory::desc(src_dims, types.src, LayoutStrides(src_dims, src_layout));
    p.user_dst_md =
        memory::desc(dst_dims, types.dst, LayoutStrides(dst_dims, dst_layout));
    p.user_weights_md = UserWeightsDesc(g, types.weights);
    if (types.has_bias) {
      p.bias_md =
          memory::desc({g.out_channels}, dt::f32, memory::format_tag::x);
    }
    const auto any = memory::format_tag::any;
    const memory::desc src_any(src_dims, types.src, any);
    const memory::desc dst_any(dst_dims, types.dst, any);
    const memory::desc weights_any(p.user_weights_md.dims(), types.weights,
                                   any);
    memory::dims dilates(g.dilations.begin(), g.dilations.end());
    for (auto& d : dilates) d -= 1;  // oneDNN: 0 is dense
    const memory::dims strides(g.strides.begin(), g.strides.end());
    const memory::dims pl(g.pads_begin.begin(), g.pads_begin.end());
    const memory::dims pr(g.pads_end.begin(), g.pads_end.end());
    const dnnl::primitive_attr attr = make_attr();
    const auto prop = dnnl::prop_kind::forward_inference;
    if (g.transposed) {
      dnnl::deconvolution_forward::desc desc(
          prop, dnnl::algorithm::deconvolution_direct, src_any, weights_any,
          p.bias_md, dst_any, strides, dilates, pl, pr);
      dnnl::deconvolution_forward::primitive_desc pd(desc, attr, CpuEngine());
      p.prim = dnnl::deconvolution_forward(pd);
      p.src_md = pd.src_desc();
      p.weights_md = pd.weights_desc();
      p.dst_md = pd.dst_desc();
      p.scratchpad = pd.scratchpad_desc();
    } else {
      dnnl::convolution_forward::desc desc(
          prop, dnnl::algorithm::convolution_direct, src_any, weights_any,
          p.bias_md, dst_any, strides, dilates, pl, pr);
      dnnl::convolution_forward::primitive_desc pd(desc, attr, CpuEngine());
      p.prim = dnnl::convolution_forward(pd);
      p.src_md = pd.src_desc();
      p.weights_md = pd.weights_desc();
      p.dst_md = pd.dst_desc();
      p.scratchpad = pd.scratchpad_desc();
    }
    if (p.src_md != p.user_src_md) {
      p.reorder_src = true;
      MakeReorder(p.user_src_md, p.src_md, &p.src_in, &p.src_in_scratchpad);
    }
    if (p.dst_md != p.user_dst_md) {
      p.reorder_dst = true;
      MakeReorder(p.dst_md, p.user_dst_md, &p.dst_out, &p.dst_out_scratchpad);
      if (sum) {
        MakeReorder(p.user_dst_md, p.dst_md, &p.dst_in, &p.dst_in_scratchpad);
      }
    }
  });
  if (!s.ok()) return s;
  return p;
}

}  // namespace

// The machinery the three kernels share: primitives per shape, cached
// weights, and running a primitive on plain tensors.
class ConvCore {
 public:
  // `src` has types.src; `dst` is written in `dst_layout` (with `sum`, it
  // holds the addend in that layout on entry).
  absl::Status Run(
      const ConvGeometry& g, const ConvTypes& types,
      absl::string_view key_extra,
      const std::function<dnnl::primitive_attr()>& make_attr, bool sum,
      const Tensor& src, const Tensor& weights, const float* bias,
      Layout dst_layout, Tensor* dst,
      const std::function<void(std::unordered_map<int, memory>&)>& extra_args) {
    const std::string key = absl::StrCat(
        ShapeToString(src.shape()), ShapeToString(weights.shape()), "|",
        static_cast<int>(types.src), ",", static_cast<int>(types.dst), ",",
        types.has_bias, "|", static_cast<int>(src.layout()), ",",
        static_cast<int>(dst_layout), "|", key_extra);
    absl::StatusOr<std::shared_ptr<ConvPrimitive>> made =
        primitives.GetOrCreate(key, [&]() -> absl::StatusOr<ConvPrimitive> {
          return BuildConvPrimitive(g, types, make_attr, sum, src.layout(),
                                    dst_layout);
        });
    if (!made.ok()) return made.status();
    std::shared_ptr<ConvPrimitive> held = *made;
    const ConvPrimitive& p = *held;
    QUANTD_ASSIGN_OR_RETURN(
        memory w, weights_cache.Get(weights, p.user_weights_md, p.weights_md));
    QUANTD_RETURN_IF_ERROR(dst->set_layout(dst_layout));
    return CatchDnnl("convolution", [&] {
      using post_ops_internal::RunPrimitive;
      memory src_mem = WrapTensor(src, p.user_src_md);
      // Blocked-layout copies come from the buffer pool (see RunPrimitive).
      std::shared_ptr<void> src_buffer, dst_buffer;
      if (p.reorder_src) {
        memory user = src_mem;
        src_buffer = BufferPool::Default().Allocate(p.src_md.get_size());
        src_mem = memory(p.src_md, CpuEngine(), src_buffer.get());
        std::unordered_map<int, memory> args = {{DNNL_ARG_FROM, user},
                                                {DNNL_ARG_TO, src_mem}};
        RunPrimitive(p.src_in, p.src_in_scratchpad, args);
      }
      memory user_dst = WrapTensor(*dst, p.user_dst_md);
      memory dst_mem = user_dst;
      if (p.reorder_dst) {
        dst_buffer = BufferPool::Default().Allocate(p.dst_md.get_size());
        dst_mem = memory(p.dst_md, CpuEngine(), dst_buffer.get());
        if (sum) {
          std::unordered_map<int, memory> args = {{DNNL_ARG_FROM, user_dst},
                                                  {DNNL_ARG_TO, dst_mem}};
          RunPrimitive(p.dst_in, p.dst_in_scratchpad, args);
        }
      }
      std::unordered_map<int, memory> args = {{DNNL_ARG_SRC, src_mem},
                                              {DNNL_ARG_WEIGHTS, w},
                                              {DNNL_ARG_DST, dst_mem}};
      if (bias != nullptr) {
        args[DNNL_ARG_BIAS] =
            memory(p.bias_md, CpuEngine(), const_cast<float*>(bias));
      }
      if (extra_args) extra_args(args);
      RunPrimitive(p.prim, p.scratchpad, args);
      if (p.reorder_dst) {
        std::unordered_map<int, memory> out = {{DNNL_ARG_FROM, dst_mem},
                                               {DNNL_ARG_TO, user_dst}};
        RunPrimitive(p.dst_out, p.dst_out_scratchpad, out);
      }
    });
  }

  PrimitiveCache<ConvPrimitive> primitives;
  WeightsCache weights_cache;
};

}  // namespace conv_internal

using conv_internal::ConvCore;
using conv_internal::ConvGeometry;
using conv_internal::ConvTypes;
using conv_internal::PrepareConvOutput;
using conv_internal::ResolveConvGeometry;

namespace {

absl::Status CheckF32(const char* op, const Tensor& src,
                      const Tensor& weights) {
  if (src.dtype() != DataType::kFloat32 ||
      weights.dtype() != DataType::kFloat32) {
    return absl::InvalidArgumentError(
        absl::StrCat(op, " expects f32 src and weights, got ",
                     src.DebugString(), " and ", weights.DebugString()));
  }
  return absl::OkStatus();
}

bool HasNoWork(const Tensor& src, const Tensor& weights) {
  return src.num_elements() == 0 || weights.num_elements() == 0;
}

// Post-ops are part of a primitive: its cache key names them.
std::string PostOpsKey(const PostOps& post) {
  return absl::StrCat(post.sum, ",", post.sum_scale, ",", post.relu, ",",
                      post.relu_alpha);
}

// The layout dst is written in: a sum post-op keeps the addend's.
Layout OutputLayout(const PostOps& post, Layout requested, const Tensor& dst) {
  return post.sum ? dst.layout() : requested;
}

// The no-work cases run the plain reference, on plain tensors.
template <typename Reference>
absl::Status RunPlainReference(const Tensor& src, Tensor* dst,
                               Reference&& reference) {
  QUANTD_ASSIGN_OR_RETURN(Tensor plain_src, ToLayout(src, Layout::kPlain));
  QUANTD_ASSIGN_OR_RETURN(*dst, ToLayout(*dst, Layout::kPlain));
  return reference(plain_src, dst);
}

// The f32 kernels' Forward; `transposed` selects ConvTranspose.
absl::Status FloatForward(bool transposed, const ConvParams& params,
                          const PostOps& post, ConvCore& core,
                          const Tensor& src, const Tensor& weights,
                          const Tensor* bias, Layout dst_layout, Tensor* dst) {
  const char* op = transposed ? "ConvTranspose" : "conv";
  QUANTD_RETURN_IF_ERROR(CheckF32(op, src, weights));
  QUANTD_ASSIGN_OR_RETURN(
      ConvGeometry g,
      ResolveConvGeometry(params, src.shape(), weights.shape(), transposed));
  absl::Status s = PrepareConvOutput(g, post, DataType::kFloat32, bias, dst);
  if (!s.ok() || dst->num_elements() == 0) return s;
  if (HasNoWork(src, weights)) {
    // Zero input channels: nothing for oneDNN to do, the result is the bias.
    return RunPlainReference(src, dst, [&](const Tensor& x, Tensor* y) {
      return transposed
                 ? DeconvolutionReference(params, post, x, weights, bias, y)
                 : ConvolutionReference(params, post, x, weights, bias, y);
    });
  }
  const ConvTypes types{dt::f32, dt::f32, dt::f32, bias != nullptr};
  return core.Run(g, types, PostOpsKey(post),
                  [&] { return post_ops_internal::MakeAttr(post); }, post.sum,
                  src, weights, bias ? bias->data<float>() : nullptr,
                  OutputLayout(post, dst_layout, *dst), dst, {});
}

}  // namespace

ConvolutionKernel::ConvolutionKernel(ConvParams params, PostOps post_ops)
    : params_(std::move(params)),
      post_ops_(post_ops),
      core_(std::make_unique<ConvCore>()) {}
ConvolutionKernel::~ConvolutionKernel() = default;

absl::Status ConvolutionKernel::Forward(const Tensor& src,
                                        const Tensor& weights,
                                        const Tensor* bias, Tensor* dst,
                                        Layout dst_layout) {
  return ForwardWithPostOps(post_ops_, src, weights, bias, dst, dst_layout);
}
absl::Status ConvolutionKernel::ForwardWithPostOps(
    const PostOps& post, const Tensor& src, const Tensor& weights,
    const Tensor* bias, Tensor* dst, Layout dst_layout) {
  return FloatForward(false, params_, post, *core_, src, weights, bias,
                      dst_layout, dst);
}
size_t ConvolutionKernel::cached_primitives() const {
  return core_->primitives.size();
}
size_t ConvolutionKernel::cached_weights() const {
  return core_->weights_cache.size();
}

DeconvolutionKernel::DeconvolutionKernel(ConvParams params, PostOps post_ops)
    : params_(std::move(params)),
      post_ops_(post_ops),
      core_(std::make_unique<ConvCore>()) {}
DeconvolutionKernel::~DeconvolutionKernel() = default;

absl::Status DeconvolutionKernel::Forward(const Tensor& src,
                                          const Tensor& weights,
                                          const Tensor* bias, Tensor* dst,
                                          Layout dst_layout) {
  return ForwardWithPostOps(post_ops_, src, weights, bias, dst, dst_layout);
}
absl::Status DeconvolutionKernel::ForwardWithPostOps(
    const PostOps& post, const Tensor& src, const Tensor& weights,
    const Tensor* bias, Tensor* dst, Layout dst_layout) {
  return FloatForward(true, params_, post, *core_, src, weights, bias,
                      dst_layout, dst);
}
size_t DeconvolutionKernel::cached_primitives() const {
  return core_->primitives.size();
}
size_t DeconvolutionKernel::cached_weights() const {
  return core_->weights_cache.size();
}

QuantizedConvolutionKernel::QuantizedConvolutionKernel(ConvParams params,
                                                       QuantizedOpParams quant)
    : params_(std::move(params)),
      quant_(std::move(quant)),
      core_(std::make_unique<ConvCore>()) {}
QuantizedConvolutionKernel::~QuantizedConvolutionKernel() = default;

absl::Status QuantizedConvolutionKernel::Forward(const Tensor& src,
                                                 const Tensor& weights,
                                                 const Tensor* bias,
                                                 Tensor* dst,
                                                 Layout dst_layout) {
  return Run(quant_, src, weights, bias, dst, dst_layout);
}

namespace {

// A 1x1 convolution with strides and no padding: the unit-stride one on
// every stride-th input position.
bool IsStridedPointwise(const ConvGeometry& g) {
  if (g.transposed) return false;
  bool strided = false;
  for (int d = 0; d < g.spatial; ++d) {
    if (g.kernel[d] != 1 || g.pads_begin[d] != 0 || g.pads_end[d] != 0) {
      return false;
    }
    strided |= g.strides[d] > 1;
  }
  return strided;
}

// The input positions a strided pointwise convolution reads, [N, C, out...]
// in src's layout, and the geometry of the unit-stride convolution on them.
absl::StatusOr<Tensor> TakeStridedPositions(const Tensor& src,
                                            ConvGeometry& g) {
  Shape shape = {g.batch, g.in_channels};
  shape.insert(shape.end(), g.out.begin(), g.out.end());
  Tensor out(src.dtype(), shape);
  QUANTD_RETURN_IF_ERROR(out.set_layout(src.layout()));
  const size_t elem = DataTypeSize(src.dtype());
  const int64_t c = g.in_channels;
  int64_t in_positions = 1, out_positions = 1;
  for (int d = 0; d < g.spatial; ++d) {
    in_positions *= g.in[d];
    out_positions *= g.out[d];
  }
  const bool nhwc = src.channels_last();
  const auto* from = static_cast<const uint8_t*>(src.raw_data());
  auto* to = static_cast<uint8_t*>(out.mutable_raw_data());
  for (int64_t n = 0; n < g.batch; ++n) {
    for (int64_t o = 0; o < out_positions; ++o) {
      int64_t rest = o, i = 0, in_stride = 1;
      for (int d = g.spatial - 1; d >= 0; --d) {
        i += (rest % g.out[d]) * g.strides[d] * in_stride;
        rest /= g.out[d];
        in_stride *= g.in[d];
      }
      if (nhwc) {
        std::memcpy(to + ((n * out_positions + o) * c) * elem,
                    from + ((n * in_positions + i) * c) * elem, c * elem);
      } else {
        for (int64_t ch = 0; ch < c; ++ch) {
          std::memcpy(to + ((n * c + ch) * out_positions + o) * elem,
                      from + ((n * c + ch) * in_positions + i) * elem, elem);
        }
      }
    }
  }
  g.in = g.out;
  std::fill(g.strides.begin(), g.strides.end(), 1);
  return out;
}

}  // namespace

absl::Status QuantizedConvolutionKernel::ForwardWithPostOps(
    const PostOps& post, const Tensor& src, const Tensor& weights,
    const Tensor* bias, Tensor* dst, Layout dst_layout) {
  QuantizedOpParams quant = quant_;
  quant.post_ops = post;
  return Run(quant, src, weights, bias, dst, dst_layout);
}

absl::Status QuantizedConvolutionKernel::Run(const QuantizedOpParams& quant,
                                             const Tensor& src,
                                             const Tensor& weights,
                                             const Tensor* bias, Tensor* dst,
                                             Layout dst_layout) {
  if (weights.dtype() != DataType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 conv weights are ", weights.DebugString(), ", expected s8"));
  }
  QUANTD_ASSIGN_OR_RETURN(
      ConvGeometry g,
      ResolveConvGeometry(params_, src.shape(), weights.shape(), false));
  absl::Status s =
      ValidateQuantizedOpParams(quant, src.dtype(), g.out_channels);
  if (s.ok()) {
    s = PrepareConvOutput(g, quant.post_ops, quant.dst_type, bias, dst);
  }
  if (!s.ok() || dst->num_elements() == 0) return s;
  if (HasNoWork(src, weights)) {
    return RunPlainReference(src, dst, [&](const Tensor& x, Tensor* y) {
      return QuantizedConvolutionReference(params_, quant, x, weights, bias, y);
    });
  }

  // See convolution.h for why the path depends on the weights.
  const int32_t max_abs = core_->weights_cache.MaxAbsInt8(weights);
  const DataType path = max_abs <= MaxExactInt8WeightMagnitude()
                            ? DataType::kUInt8
                            : DataType::kInt8;
  // oneDNN 2.7's jit_uni_int8_1x1 on AVX2 computed strided 1x1 convolutions
  // on channels-last input with few channels wrongly, differently from run
  // to run, with two threads (its reduce-to-unit-stride step; a ResNet
  // downsample; quantized_convolution_test). Taking the strided positions
  // here costs one copy of the output-sized input, made before the sign
  // flip so that the flip copies the smaller tensor.
  Tensor strided;
  if (IsStridedPointwise(g)) {
    QUANTD_ASSIGN_OR_RETURN(strided, TakeStridedPositions(src, g));
  }
  const Tensor& src_in = strided.defined() ? strided : src;
  Tensor shifted;
  int32_t src_zp = quant.src_zero_point;
  if (src_in.dtype() != path) {
    shifted = post_ops_internal::FlipSignBit(src_in);
    src_zp += path == DataType::kUInt8 ? 128 : -128;
  }
  const Tensor& src_used = shifted.defined() ? shifted : src_in;

  std::vector<float> dnnl_bias;
  if (bias != nullptr) {
    dnnl_bias = post_ops_internal::Int8DnnlBias(quant, bias->data<float>(),
                                                g.out_channels);
  }
  const ConvTypes types{ToDnnlType(path), dt::s8, ToDnnlType(quant.dst_type),
                        bias != nullptr};
  int32_t zp_storage[2];
  return core_->Run(
      g, types,
      absl::StrCat(src_zp != 0 ? "zp" : "", PostOpsKey(quant.post_ops)),
      [&] { return post_ops_internal::MakeInt8Attr(quant, 1, src_zp); },
      quant.post_ops.sum, src_used, weights, bias ? dnnl_bias.data() : nullptr,
      OutputLayout(quant.post_ops, dst_layout, *dst), dst,
      [&](std::unordered_map<int, memory>& args) {
        post_ops_internal::AddZeroPointArgs(quant, src_zp, zp_storage, args);
      });
}
size_t QuantizedConvolutionKernel::cached_primitives() const {
  return core_->primitives.size();
}
size_t QuantizedConvolutionKernel::cached_weights() const {
  return core_->weights_cache.size();
}

}  // namespace quantd
