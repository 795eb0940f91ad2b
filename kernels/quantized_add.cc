#include "kernels/quantized_add.h"

// GCC 12's AVX-512 intrinsics start from deliberately undefined registers,
// which -Wmaybe-uninitialized reports (see weight_only_matmul_direct.cc).
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "kernels/layout.h"
#include "kernels/parallel_for.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

absl::Status ValidateU8(const U8Params& p, const char* what) {
  if (!(p.scale > 0.f) || !std::isfinite(p.scale) || p.zero_point < 0 ||
      p.zero_point > 255) {
    return absl::InvalidArgumentError(absl::StrCat(
        what,
        " needs a positive finite scale and a zero point in [0, 255], "
        "got ",
        p.scale, " and ", p.zero_point));
  }
  return absl::OkStatus();
}

// The u8 loops, one per ISA; the same arithmetic as the reference element
// for element: (q - z) converted exactly, one product and one sum per input
// (this file is compiled without FMA contraction), relu, a true division,
// round half to even (the default rounding mode), saturation.
struct SpanArgs {
  float sa, sb, sy, floor, lo, hi;
  int32_t za, zb, zy;
};

SpanArgs MakeSpanArgs(const QuantizedAddParams& p) {
  return {p.a.scale,
          p.b.scale,
          p.y->scale,
          p.relu ? 0.f : -INFINITY,
          static_cast<float>(0 - p.y->zero_point),
          static_cast<float>(255 - p.y->zero_point),
          p.a.zero_point,
          p.b.zero_point,
          p.y->zero_point};
}

void AddSpanU8Portable(const uint8_t* a, const uint8_t* b, int64_t n,
                       const SpanArgs& s, uint8_t* y) {
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(int32_t{a[i]} - s.za) * s.sa +
                    static_cast<float>(int32_t{b[i]} - s.zb) * s.sb;
    const float t = std::min(std::max(std::max(v, s.floor) / s.sy, s.lo), s.hi);
    y[i] = static_cast<uint8_t>(static_cast<int32_t>(std::nearbyint(t)) + s.zy);
  }
}

QUANTD_AVX512 void AddSpanU8Avx512(const uint8_t* a, const uint8_t* b,
                                   int64_t n, const SpanArgs& s, uint8_t* y) {
  const __m512 sa = _mm512_set1_ps(s.sa), sb = _mm512_set1_ps(s.sb);
  const __m512 sy = _mm512_set1_ps(s.sy), floor = _mm512_set1_ps(s.floor);
  const __m512 lo = _mm512_set1_ps(s.lo), hi = _mm512_set1_ps(s.hi);
  const __m512i za = _mm512_set1_epi32(s.za), zb = _mm512_set1_epi32(s.zb);
  const __m512i zy = _mm512_set1_epi32(s.zy);
  int64_t i = 0;
  for (; i + 16 <= n; i += 16) {
    const __m512i qa = _mm512_cvtepu8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(a + i)));
    const __m512i qb = _mm512_cvtepu8_epi32(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(b + i)));
    const __m512 va =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(qa, za)), sa);
    const __m512 vb =
        _mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(qb, zb)), sb);
    __m512 t = _mm512_div_ps(_mm512_max_ps(_mm512_add_ps(va, vb), floor), sy);
    t = _mm512_min_ps(_mm512_max_ps(t, lo), hi);
    const __m512i q = _mm512_add_epi32(_mm512_cvtps_epi32(t), zy);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(y + i),
                     _mm512_cvtusepi32_epi8(q));
  }
  AddSpanU8Portable(a + i, b + i, n - i, s, y + i);
}

QUANTD_AVX2 void AddSpanU8Avx2(const uint8_t* a, const uint8_t* b, int64_t n,
                               const SpanArgs& s, uint8_t* y) {
  const __m256 sa = _mm256_set1_ps(s.sa), sb = _mm256_set1_ps(s.sb);
  const __m256 sy = _mm256_set1_ps(s.sy), floor = _mm256_set1_ps(s.floor);
  const __m256 lo = _mm256_set1_ps(s.lo), hi = _mm256_set1_ps(s.hi);
  const __m256i za = _mm256_set1_epi32(s.za), zb = _mm256_set1_epi32(s.zb);
  const __m256i zy = _mm256_set1_epi32(s.zy);
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const __m256i qa = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(a + i)));
    const __m256i qb = _mm256_cvtepu8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(b + i)));
    const __m256 va =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(qa, za)), sa);
    const __m256 vb =
        _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_sub_epi32(qb, zb)), sb);
    __m256 t = _mm256_div_ps(_mm256_max_ps(_mm256_add_ps(va, vb), floor), sy);
    t = _mm256_min_ps(_mm256_max_ps(t, lo), hi);
    // In [0, 255] after adding zy: the two packs cannot saturate.
    const __m256i q = _mm256_add_epi32(_mm256_cvtps_epi32(t), zy);
    const __m128i w = _mm_packus_epi32(_mm256_castsi256_si128(q),
                                       _mm256_extracti128_si256(q, 1));
    _mm_storel_epi64(reinterpret_cast<__m128i*>(y + i), _mm_packus_epi16(w, w));
  }
  AddSpanU8Portable(a + i, b + i, n - i, s, y + i);
}

__attribute__((target_clones("avx512f", "avx2", "default"))) void AddSpanF32(
    const uint8_t* a, const uint8_t* b, int64_t n, float sa, int32_t za,
    float sb, int32_t zb, bool relu, float* y) {
  const float floor = relu ? 0.f : -INFINITY;
#pragma omp simd
  for (int64_t i = 0; i < n; ++i) {
    const float v = static_cast<float>(int32_t{a[i]} - za) * sa +
                    static_cast<float>(int32_t{b[i]} - zb) * sb;
    y[i] = std::max(v, floor);
  }
}

}  // namespace

namespace quantized_add_internal {

void AddSpanU8(CpuIsa isa, const uint8_t* a, const uint8_t* b, int64_t n,
               const QuantizedAddParams& p, uint8_t* y) {
  const SpanArgs s = MakeSpanArgs(p);
  switch (isa) {
    case CpuIsa::kAvx512:
      return AddSpanU8Avx512(a, b, n, s, y);
    case CpuIsa::kAvx2:
      return AddSpanU8Avx2(a, b, n, s, y);
    case CpuIsa::kPortable:
      return AddSpanU8Portable(a, b, n, s, y);
  }
}

}  // namespace quantized_add_internal

absl::Status ValidateQuantizedAddParams(const QuantizedAddParams& p) {
  QUANTD_RETURN_IF_ERROR(ValidateU8(p.a, "QuantizedAdd input a"));
  QUANTD_RETURN_IF_ERROR(ValidateU8(p.b, "QuantizedAdd input b"));
  // Every dequantized sum is then finite (no inf - inf = NaN to round).
  if (!std::isfinite(255.f * p.a.scale + 255.f * p.b.scale)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "QuantizedAdd input scales ", p.a.scale, " and ", p.b.scale,
        " are too large: 255 * (a_scale + b_scale) must be finite"));
  }
  if (p.y.has_value()) QUANTD_RETURN_IF_ERROR(ValidateU8(*p.y, "its output"));
  return absl::OkStatus();
}

absl::Status QuantizedAdd(const Tensor& a, const Tensor& b,
                          const QuantizedAddParams& p, Tensor* y) {
  if (a.dtype() != DataType::kUInt8 || b.dtype() != DataType::kUInt8) {
    return absl::InvalidArgumentError(
        absl::StrCat("QuantizedAdd takes two u8 tensors, got ", a.DebugString(),
                     " and ", b.DebugString()));
  }
  QUANTD_RETURN_IF_ERROR(ValidateQuantizedAddParams(p));
  if (a.shape() != b.shape() || a.layout() != b.layout()) {
    // Broadcasting or mixed layouts: rare in the graphs the lowering makes
    // (residual Adds have equal shapes), so they take the plain loop.
    QUANTD_ASSIGN_OR_RETURN(Tensor pa, ToLayout(a, Layout::kPlain));
    QUANTD_ASSIGN_OR_RETURN(Tensor pb, ToLayout(b, Layout::kPlain));
    return QuantizedAddReference(pa, pb, p, y);
  }
  // As many elements as `a`, which exists: no size check needed.
  Tensor out(p.y.has_value() ? DataType::kUInt8 : DataType::kFloat32,
             a.shape());
  QUANTD_RETURN_IF_ERROR(out.set_layout(a.layout()));
  const int64_t n = a.num_elements();
  const uint8_t* pa = a.data<uint8_t>();
  const uint8_t* pb = b.data<uint8_t>();
  constexpr int64_t kChunk = 1 << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  ParallelFor(chunks, chunks > 1, [&](int64_t c) {
    const int64_t begin = c * kChunk;
    const int64_t len = std::min(kChunk, n - begin);
    if (p.y.has_value()) {
      quantized_add_internal::AddSpanU8(BestCpuIsa(), pa + begin, pb + begin,
                                        len, p,
                                        out.mutable_data<uint8_t>() + begin);
    } else {
      AddSpanF32(pa + begin, pb + begin, len, p.a.scale, p.a.zero_point,
                 p.b.scale, p.b.zero_point, p.relu,
                 out.mutable_data<float>() + begin);
    }
  });
  *y = std::move(out);
  return absl::OkStatus();
}

}  // namespace quantd
