#include "kernels/post_ops.h"

#include <cassert>
#include <cmath>

#include "kernels/buffer_pool.h"
#include "kernels/dnnl_context.h"
#include "kernels/parallel_for.h"

namespace quantd {

int32_t MaxExactInt8WeightMagnitude() {
  // oneDNN's effective ISA, not CPUID: what matters is the code it runs, and
  // DNNL_MAX_CPU_ISA can hold it below what the CPU has. With VNNI, vpdpbusd
  // accumulates u8*s8 products in 32 bits. Without, vpmaddubsw adds pairs of
  // u8*s8 products into a saturating int16: 255 * (|w1| + |w2|) <= 32767
  // holds for every pair when |w| <= 64.
  switch (dnnl::get_effective_cpu_isa()) {
    case dnnl::cpu_isa::avx512_core_vnni:
    case dnnl::cpu_isa::avx512_core_bf16:
    case dnnl::cpu_isa::avx512_core_amx:
      return 127;
    default:
      return 64;
  }
}

absl::Status ValidateQuantizedOpParams(const QuantizedOpParams& q,
                                       DataType src_type,
                                       int64_t output_channels) {
  if (src_type != DataType::kUInt8 && src_type != DataType::kInt8) {
    return absl::InvalidArgumentError(absl::StrCat(
        "int8 kernel src is ", DataTypeName(src_type), ", expected u8 or s8"));
  }
  auto good_scale = [](float s) { return std::isfinite(s) && s > 0; };
  if (!good_scale(q.src_scale)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "src_scale is ", q.src_scale, ", expected a positive finite number"));
  }
  if (q.src_zero_point < QuantTypeMin(src_type) ||
      q.src_zero_point > QuantTypeMax(src_type)) {
    return absl::InvalidArgumentError(
        absl::StrCat("src_zero_point ", q.src_zero_point, " is outside the ",
                     DataTypeName(src_type), " range"));
  }
  if (q.weight_scales.size() != 1 &&
      static_cast<int64_t>(q.weight_scales.size()) != output_channels) {
    return absl::InvalidArgumentError(
        absl::StrCat("weight_scales has ", q.weight_scales.size(),
                     " entries, expected 1 or ", output_channels,
                     " (one per output channel)"));
  }
  for (size_t i = 0; i < q.weight_scales.size(); ++i) {
    float s = q.weight_scales[i];
    float product = q.src_scale * s;
    if (!good_scale(s) || !std::isnormal(product)) {
      return absl::InvalidArgumentError(
          absl::StrCat("weight_scales[", i, "] is ", s,
                       "; expected a positive finite number whose product "
                       "with src_scale is a normal float"));
    }
  }
  switch (q.dst_type) {
    case DataType::kFloat32:
      break;
    case DataType::kUInt8:
    case DataType::kInt8:
      if (!good_scale(q.dst_scale)) {
        return absl::InvalidArgumentError(
            absl::StrCat("dst_scale is ", q.dst_scale,
                         ", expected a positive finite number"));
      }
      if (q.dst_zero_point < QuantTypeMin(q.dst_type) ||
          q.dst_zero_point > QuantTypeMax(q.dst_type)) {
        return absl::InvalidArgumentError(absl::StrCat(
            "dst_zero_point ", q.dst_zero_point, " is outside the ",
            DataTypeName(q.dst_type), " range"));
      }
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("int8 kernel dst_type is ", DataTypeName(q.dst_type),
                       ", expected f32, u8 or s8"));
  }
  if (!std::isfinite(q.post_ops.sum_scale) ||
      !std::isfinite(q.post_ops.relu_alpha)) {
    return absl::InvalidArgumentError(
        "post-op sum_scale and relu_alpha must be finite");
  }
  return absl::OkStatus();
}

namespace post_ops_internal {

dnnl::primitive_attr MakeAttr(const PostOps& post, int32_t sum_zero_point) {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  dnnl::post_ops ops;
  if (post.sum) ops.append_sum(post.sum_scale, sum_zero_point);
  if (post.relu) {
    ops.append_eltwise(1.f, dnnl::algorithm::eltwise_relu, post.relu_alpha,
                       0.f);
  }
  attr.set_post_ops(ops);
  return attr;
}

dnnl::primitive_attr MakeInt8Attr(const QuantizedOpParams& q, int channel_dim,
                                  int32_t src_zero_point) {
  const bool int_dst = q.dst_type != DataType::kFloat32;
  dnnl::primitive_attr attr =
      MakeAttr(q.post_ops, int_dst ? q.dst_zero_point : 0);
  std::vector<float> scales = Int8OutputScales(q);
  attr.set_output_scales(scales.size() == 1 ? 0 : 1 << channel_dim, scales);
  if (src_zero_point != 0) {
    attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
  }
  if (int_dst && q.dst_zero_point != 0) {
    attr.set_zero_points(DNNL_ARG_DST, 0, {DNNL_RUNTIME_S32_VAL});
  }
  return attr;
}

void AddZeroPointArgs(const QuantizedOpParams& q, int32_t src_zero_point,
                      int32_t storage[2],
                      std::unordered_map<int, dnnl::memory>& args) {
  const dnnl::memory::desc scalar({1}, dnnl::memory::data_type::s32,
                                  dnnl::memory::format_tag::x);
  if (src_zero_point != 0) {
    storage[0] = src_zero_point;
    args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] =
        dnnl::memory(scalar, CpuEngine(), &storage[0]);
  }
  if (q.dst_type != DataType::kFloat32 && q.dst_zero_point != 0) {
    storage[1] = q.dst_zero_point;
    args[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_DST] =
        dnnl::memory(scalar, CpuEngine(), &storage[1]);
  }
}

std::vector<float> Int8OutputScales(const QuantizedOpParams& q) {
  const bool int_dst = q.dst_type != DataType::kFloat32;
  std::vector<float> scales(q.weight_scales.size());
  for (size_t i = 0; i < scales.size(); ++i) {
    // In double so that the only rounding is the final one to float.
    double s = static_cast<double>(q.src_scale) * q.weight_scales[i];
    if (int_dst) s /= q.dst_scale;
    scales[i] = static_cast<float>(s);
  }
  return scales;
}

std::vector<float> Int8DnnlBias(const QuantizedOpParams& q, const float* bias,
                                int64_t channels) {
  std::vector<float> out(channels);
  for (int64_t c = 0; c < channels; ++c) {
    double w =
        q.weight_scales.size() == 1 ? q.weight_scales[0] : q.weight_scales[c];
    out[c] =
        static_cast<float>(bias[c] / (static_cast<double>(q.src_scale) * w));
  }
  return out;
}

void RunPrimitive(const dnnl::primitive& prim,
                  const dnnl::memory::desc& scratchpad_desc,
                  std::unordered_map<int, dnnl::memory>& args) {
  // From the buffer pool, not oneDNN's allocator: a fresh large block is a
  // fresh mmap whose pages the kernel faults in and zeroes on every run.
  std::shared_ptr<void> scratch;
  if (scratchpad_desc.get_size() > 0) {
    scratch = BufferPool::Default().Allocate(scratchpad_desc.get_size());
    args[DNNL_ARG_SCRATCHPAD] =
        dnnl::memory(scratchpad_desc, CpuEngine(), scratch.get());
  }
  prim.execute(ThreadStream(), args);
  ThreadStream().wait();
}

Tensor FlipSignBit(const Tensor& t) {
  Tensor out(t.dtype() == DataType::kInt8 ? DataType::kUInt8 : DataType::kInt8,
             t.shape());
  const uint8_t* in = static_cast<const uint8_t*>(t.raw_data());
  uint8_t* o = static_cast<uint8_t*>(out.mutable_raw_data());
  const int64_t n = t.num_elements();
  ParallelFor(n, n > (1 << 16), [&](int64_t i) { o[i] = in[i] ^ 0x80; });
  // Elementwise, so the layout carries over (rank >= 3 when channels-last).
  absl::Status relabeled = out.set_layout(t.layout());
  assert(relabeled.ok());
  return out;
}

}  // namespace post_ops_internal
void StoreQuantizedResultReference(const QuantizedOpParams& q,
                                   const Tensor* bias, int64_t channel,
                                   double acc, int64_t i, Tensor* dst) {
  const double w_scale = q.weight_scales.size() == 1 ? q.weight_scales[0]
                                                     : q.weight_scales[channel];
  double real = double{q.src_scale} * w_scale * acc +
                (bias ? bias->data<float>()[channel] : 0.0);
  if (q.dst_type == DataType::kFloat32) {
    float* out = dst->mutable_data<float>();
    out[i] = static_cast<float>(
        ApplyPostOpsReal(real, q.post_ops, q.post_ops.sum ? out[i] : 0.0));
    return;
  }
  const double on_entry =
      q.post_ops.sum ? q.dst_scale * (ReadQuantized(*dst, i) - q.dst_zero_point)
                     : 0.0;
  real = ApplyPostOpsReal(real, q.post_ops, on_entry);
  const int32_t v =
      QuantizeReal(real, q.dst_scale, q.dst_zero_point,
                   QuantTypeMin(q.dst_type), QuantTypeMax(q.dst_type));
  if (q.dst_type == DataType::kUInt8) {
    dst->mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v);
  } else {
    dst->mutable_data<int8_t>()[i] = static_cast<int8_t>(v);
  }
}

}  // namespace quantd
