#include "kernels/reorder.h"

#include <algorithm>
#include <cstring>
#include <limits>
#include <new>
#include <numeric>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "kernels/dnnl_context.h"
#include "kernels/parallel_for.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

using dt = dnnl::memory::data_type;

// Below this many elements a loop is not worth waking the OpenMP team.
constexpr int64_t kParallelThreshold = 1 << 15;

// Allocates *y unless it already has this dtype and shape. A y that shares
// storage with the input is replaced, since transposes cannot run in place.
absl::Status PrepareOutput(const Tensor& x, DataType type, const Shape& shape,
                           Tensor* y) {
  if (y == nullptr) return absl::InvalidArgumentError("output is null");
  if (y->defined() && y->dtype() == type && y->shape() == shape &&
      (y->raw_data() != x.raw_data() || x.num_elements() == 0)) {
    return absl::OkStatus();
  }
  try {
    *y = Tensor(type, shape);
  } catch (const std::bad_alloc&) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "cannot allocate ", DataTypeName(type), ShapeToString(shape)));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<int64_t>> ResolvePerm(
    int rank, absl::Span<const int64_t> perm) {
  std::vector<int64_t> p(perm.begin(), perm.end());
  if (p.empty()) {
    p.resize(rank);
    for (int i = 0; i < rank; ++i) p[i] = rank - 1 - i;
  }
  if (static_cast<int>(p.size()) != rank) {
    return absl::InvalidArgumentError(
        absl::StrCat("transpose perm [", absl::StrJoin(p, ","), "] has ",
                     p.size(), " entries but the input has rank ", rank));
  }
  std::vector<bool> seen(rank, false);
  for (int64_t a : p) {
    if (a < 0 || a >= rank || seen[a]) {
      return absl::InvalidArgumentError(
          absl::StrCat("transpose perm [", absl::StrJoin(p, ","),
                       "] is not a permutation of 0..", rank - 1));
    }
    seen[a] = true;
  }
  return p;
}

// Drops size-1 dims and merges input dims that stay adjacent in the output,
// so that e.g. NCHW->NHWC becomes the 3-d [N, C, HW] -> [N, HW, C].
void CollapseTranspose(const Shape& in, const std::vector<int64_t>& perm,
                       Shape* dims, std::vector<int>* cperm) {
  const int rank = static_cast<int>(in.size());
  std::vector<int> compact(rank, -1);
  Shape kept;
  for (int a = 0; a < rank; ++a) {
    if (in[a] != 1) {
      compact[a] = static_cast<int>(kept.size());
      kept.push_back(in[a]);
    }
  }
  std::vector<std::pair<int, int>> groups;  // [first, last] compact axes
  for (int64_t a : perm) {
    int c = compact[a];
    if (c < 0) continue;
    if (!groups.empty() && groups.back().second + 1 == c) {
      groups.back().second = c;
    } else {
      groups.push_back({c, c});
    }
  }
  std::vector<int> order(groups.size());
  std::iota(order.begin(), order.end(), 0);
  std::sort(order.begin(), order.end(),
            [&](int a, int b) { return groups[a].first < groups[b].first; });
  dims->assign(groups.size(), 1);
  cperm->assign(groups.size(), 0);
  for (size_t j = 0; j < order.size(); ++j) {
    const auto& g = groups[order[j]];
    for (int c = g.first; c <= g.second; ++c) (*dims)[j] *= kept[c];
    (*cperm)[order[j]] = static_cast<int>(j);
  }
}

// How oneDNN moves elements of `type`: f32 as f32 (exact, -0.0 included;
// NaN stays NaN), everything else bit for bit as `bytes` trailing u8s.
// oneDNN 2.6 reorders corrupt other types: its JIT transpose (jit:uni, 8x8
// tiles) passes s32 through f32, rounding values above 2^24, and f16 -> f16
// reorders turn -0.0 into +0.0.
struct Mover {
  dt type;
  int64_t bytes;  // > 1: each element moves as this many u8s
};

Mover MoverFor(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return {dt::f32, 1};
    default:
      return {dt::u8, static_cast<int64_t>(DataTypeSize(type))};
  }
}

// Saturating, truncating float -> integer conversion; NaN -> 0.
template <typename D>
inline D FloatToInt(float v) {
  using L = std::numeric_limits<D>;
  // max()+1 is a power of two, exact in float (for 32/64-bit types the cast
  // of max() already rounds up to it).
  constexpr float kUpper = static_cast<float>(L::max()) + 1.0f;
  constexpr float kLower = static_cast<float>(L::min());
  if (v != v) return 0;
  if (v >= kUpper) return L::max();
  if (v <= kLower) return L::min();
  return static_cast<D>(v);
}

template <typename S, typename D, bool kSrcBool, bool kDstBool>
void ConvertLoop(const S* s, D* d, int64_t n) {
  ParallelForSimd(n, n >= kParallelThreshold, [&](int64_t i) {
    if constexpr (kDstBool) {
      d[i] = s[i] != S(0) ? 1 : 0;
    } else if constexpr (kSrcBool) {
      d[i] = s[i] != 0 ? D(1) : D(0);
    } else if constexpr (std::is_floating_point_v<S> && std::is_integral_v<D>) {
      d[i] = FloatToInt<D>(s[i]);
    } else {
      d[i] = static_cast<D>(s[i]);
    }
  });
}

template <typename S, bool kSrcBool>
absl::Status ConvertFrom(const S* s, DataType to, void* out, int64_t n) {
  switch (to) {
    case DataType::kFloat32:
      ConvertLoop<S, float, kSrcBool, false>(s, static_cast<float*>(out), n);
      break;
    case DataType::kInt8:
      ConvertLoop<S, int8_t, kSrcBool, false>(s, static_cast<int8_t*>(out), n);
      break;
    case DataType::kUInt8:
      ConvertLoop<S, uint8_t, kSrcBool, false>(s, static_cast<uint8_t*>(out),
                                               n);
      break;
    case DataType::kInt32:
      ConvertLoop<S, int32_t, kSrcBool, false>(s, static_cast<int32_t*>(out),
                                               n);
      break;
    case DataType::kInt64:
      ConvertLoop<S, int64_t, kSrcBool, false>(s, static_cast<int64_t*>(out),
                                               n);
      break;
    case DataType::kBool:
      ConvertLoop<S, uint8_t, false, true>(s, static_cast<uint8_t*>(out), n);
      break;
    default:
      return absl::InvalidArgumentError(
          absl::StrCat("cast to ", DataTypeName(to), " is not supported"));
  }
  return absl::OkStatus();
}

// Converts between every pair of non-f16 types.
absl::Status ConvertPlain(const Tensor& x, DataType to, void* out) {
  const int64_t n = x.num_elements();
  switch (x.dtype()) {
    case DataType::kFloat32:
      return ConvertFrom<float, false>(x.data<float>(), to, out, n);
    case DataType::kInt8:
      return ConvertFrom<int8_t, false>(x.data<int8_t>(), to, out, n);
    case DataType::kUInt8:
      return ConvertFrom<uint8_t, false>(x.data<uint8_t>(), to, out, n);
    case DataType::kInt32:
      return ConvertFrom<int32_t, false>(x.data<int32_t>(), to, out, n);
    case DataType::kInt64:
      return ConvertFrom<int64_t, false>(x.data<int64_t>(), to, out, n);
    case DataType::kBool:
      return ConvertFrom<uint8_t, true>(x.data<uint8_t>(), to, out, n);
    default:
      return absl::InvalidArgumentError(absl::StrCat(
          "cast from ", DataTypeName(x.dtype()), " is not supported"));
  }
}

}  // namespace

absl::StatusOr<Shape> TransposeOutputShape(absl::Span<const int64_t> input,
                                           absl::Span<const int64_t> perm) {
  QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> p,
                          ResolvePerm(static_cast<int>(input.size()), perm));
  Shape out(input.size());
  for (size_t i = 0; i < out.size(); ++i) out[i] = input[(p)[i]];
  return out;
}

TransposeForward::TransposeForward(std::vector<int64_t> perm)
    : perm_(std::move(perm)) {}

absl::Status TransposeForward::Forward(const Tensor& x, Tensor* y) {
  if (!x.defined())
    return absl::InvalidArgumentError("transpose input is undefined");
  QUANTD_ASSIGN_OR_RETURN(std::vector<int64_t> perm,
                          ResolvePerm(x.rank(), perm_));
  Shape out_shape(x.rank());
  for (int i = 0; i < x.rank(); ++i) out_shape[i] = x.shape()[(perm)[i]];
  absl::Status s = PrepareOutput(x, x.dtype(), out_shape, y);
  if (!s.ok() || x.num_elements() == 0) return s;

  Shape dims;
  std::vector<int> cperm;
  CollapseTranspose(x.shape(), perm, &dims, &cperm);
  const Mover mover = MoverFor(x.dtype());
  if (dims.size() + (mover.bytes > 1 ? 1 : 0) > DNNL_MAX_NDIMS) {
    return TransposeReference(x, perm, y);
  }
  std::string key = absl::StrCat(DataTypeName(x.dtype()), ShapeToString(dims),
                                 absl::StrJoin(cperm, ","));
  absl::StatusOr<std::shared_ptr<Entry>> entry =
      cache_.GetOrCreate(key, [&]() -> absl::StatusOr<Entry> {
        Entry e;
        bool identity = true;
        for (size_t i = 0; i < cperm.size(); ++i)
          identity &= cperm[i] == int(i);
        if (identity) {
          e.copy_only = true;
          return e;
        }
        dnnl::memory::dims in_strides = DenseStrides(dims);
        dnnl::memory::dims out_dims, src_strides;
        for (int a : cperm) {
          out_dims.push_back(dims[a]);
          src_strides.push_back(in_strides[a]);
        }
        dnnl::memory::dims dst_strides = DenseStrides(out_dims);
        if (mover.bytes > 1) {
          for (auto& st : src_strides) st *= mover.bytes;
          for (auto& st : dst_strides) st *= mover.bytes;
          out_dims.push_back(mover.bytes);
          src_strides.push_back(1);
          dst_strides.push_back(1);
        }
        absl::Status st = CatchDnnl("transpose reorder creation", [&] {
          e.src_md = dnnl::memory::desc(out_dims, mover.type, src_strides);
          e.dst_md = dnnl::memory::desc(out_dims, mover.type, dst_strides);
          e.prim = dnnl::reorder(dnnl::reorder::primitive_desc(
              CpuEngine(), e.src_md, CpuEngine(), e.dst_md));
        });
        if (!st.ok()) return st;
        return e;
      });
  if (!entry.ok()) return entry.status();
  std::shared_ptr<Entry> e = *entry;
  if (e->copy_only) {
    std::memcpy(y->mutable_raw_data(), x.raw_data(), x.byte_size());
    return absl::OkStatus();
  }
  SerialIfSmall serial(x.num_elements());
  return CatchDnnl("transpose", [&] {
    dnnl::memory src = WrapTensor(x, e->src_md);
    dnnl::memory dst = WrapTensor(*y, e->dst_md);
    e->prim.execute(ThreadStream(), src, dst);
    ThreadStream().wait();
  });
}

CastForward::CastForward(DataType to) : to_(to) {}

absl::Status CastForward::Forward(const Tensor& x, Tensor* y) {
  if (!x.defined())
    return absl::InvalidArgumentError("cast input is undefined");
  if (to_ == DataType::kUndefined) {
    return absl::InvalidArgumentError("cast target type is undefined");
  }
  absl::Status s = PrepareOutput(x, to_, x.shape(), y);
  if (!s.ok() || x.num_elements() == 0) return s;
  const DataType from = x.dtype();
  if (from == to_) {
    std::memcpy(y->mutable_raw_data(), x.raw_data(), x.byte_size());
    return absl::OkStatus();
  }
  if (from != DataType::kFloat16 && to_ != DataType::kFloat16) {
    return ConvertPlain(x, to_, y->mutable_raw_data());
  }
  // f16 on either side goes through f32, converted here rather than by
  // oneDNN: its 2.6 f16 <-> f32 reorders turn -0.0 into +0.0.
  const int64_t n = x.num_elements();
  if (from == DataType::kFloat16) {
    Tensor f32 =
        to_ == DataType::kFloat32 ? *y : Tensor(DataType::kFloat32, x.shape());
    const uint16_t* src = static_cast<const uint16_t*>(x.raw_data());
    float* dst = f32.mutable_data<float>();
    ParallelFor(n, n >= kParallelThreshold,
                [&](int64_t i) { dst[i] = FloatFromHalfBits(src[i]); });
    if (to_ == DataType::kFloat32) return absl::OkStatus();
    return ConvertPlain(f32, to_, y->mutable_raw_data());
  }
  Tensor f32 = x;
  if (from != DataType::kFloat32) {
    f32 = Tensor(DataType::kFloat32, x.shape());
    s = ConvertPlain(x, DataType::kFloat32, f32.mutable_raw_data());
    if (!s.ok()) return s;
  }
  const float* src = f32.data<float>();
  uint16_t* dst = static_cast<uint16_t*>(y->mutable_raw_data());
  ParallelFor(n, n >= kParallelThreshold,
              [&](int64_t i) { dst[i] = HalfBitsFromFloat(src[i]); });
  return absl::OkStatus();
}

uint16_t HalfBitsFromFloat(float f) {
  // Round to nearest even with integer arithmetic (after F. Giesen's
  // float_to_half_fast3_rtne), so it does not depend on F16C.
  uint32_t u;
  std::memcpy(&u, &f, 4);
  const uint32_t sign = u & 0x80000000u;
  u ^= sign;
  uint16_t out;
  if (u >= (127u + 16u) << 23) {  // >= 65536: inf, or NaN (made quiet)
    out = u > (255u << 23) ? 0x7e00 : 0x7c00;
  } else if (u < (113u << 23)) {  // result is subnormal or zero
    // Adding 0.5f aligns the 10 mantissa bits at the bottom of the float;
    // the FPU's round-to-nearest-even does the rounding.
    float g;
    std::memcpy(&g, &u, 4);
    g += 0.5f;
    uint32_t v;
    std::memcpy(&v, &g, 4);
    out = static_cast<uint16_t>(v - 0x3f000000u);
  } else {
    const uint32_t mant_odd = (u >> 13) & 1;
    u += (static_cast<uint32_t>(15 - 127) << 23) + 0xfff + mant_odd;
    out = static_cast<uint16_t>(u >> 13);
  }
  return static_cast<uint16_t>(out | (sign >> 16));
}

float FloatFromHalfBits(uint16_t h) {
  const uint32_t shifted_exp = 0x7c00u << 13;
  uint32_t u = (static_cast<uint32_t>(h) & 0x7fffu) << 13;
  const uint32_t exp = shifted_exp & u;
  u += static_cast<uint32_t>(127 - 15) << 23;
  float f;
  if (exp == shifted_exp) {  // inf or NaN
    u += static_cast<uint32_t>(128 - 16) << 23;
    std::memcpy(&f, &u, 4);
  } else if (exp == 0) {  // zero or subnormal: renormalize
    u += 1u << 23;
    std::memcpy(&f, &u, 4);
    const uint32_t magic_bits = 113u << 23;
    float magic;
    std::memcpy(&magic, &magic_bits, 4);
    f -= magic;
  } else {
    std::memcpy(&f, &u, 4);
  }
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  bits |= (static_cast<uint32_t>(h) & 0x8000u) << 16;
  std::memcpy(&f, &bits, 4);
  return f;
}

}  // namespace quantd
