// The direct weight-only kernel (weight_only_matmul.h): one tile is up to 8
// rows of x times one block of 16 packed columns. Each k decodes the
// block's 16 codes once and adds x[r][k] times them into every row's
// accumulators. AVX2 and the portable path dequantize each weight as the
// reference does (code minus zero point, times scale); AVX-512, one block
// per register, applies zero points and scales once per group instead (see
// TileAvx512). The ISA functions are compiled with target attributes and chosen
// at run time, so one binary runs on every x86-64 CPU. GCC 12's AVX-512
// intrinsics initialize their "undefined" operands from themselves
// (avx512fintrin.h: __m512 __Y = __Y), which -Wmaybe-uninitialized reports at
// every inlined use; the values are never read.
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "kernels/parallel_for.h"
#include "kernels/weight_only_matmul.h"

namespace quantd {
namespace weight_only_internal {
namespace {

// -O2 does not unroll loops over a template's row count, and a rolled loop
// keeps the accumulators in memory; unrolled, they stay in registers.
#define QUANTD_UNROLL _Pragma("GCC unroll 16")

struct Tile {
  const float* x;  // row 0 of the tile
  int64_t ldx;     // = K
  int64_t k;
  const uint8_t* codes;  // the block's [K, 16 * bits / 8]
  const float* scales;   // the block's [G, 16]
  const int32_t* zero_points;
  int64_t groups;
  int64_t group_size;
  const float* x_sums;  // [rows, groups]: each group's sum of x (AVX-512)
  const float* bias;    // the block's first column, or null
  float* y;             // row 0, column block * 16
  int64_t ldy;          // = N
  int cols;             // valid columns in the block (16 except at N's end)
};

// ---- portable -------------------------------------------------------------

template <int kBits>
void DecodePortable(const uint8_t* p, const int32_t* z, const float* s,
                    float* w) {
  QUANTD_UNROLL
  for (int j = 0; j < 16; ++j) {
    int32_t code;
    if constexpr (kBits == 4) {
      code = j < 8 ? (p[j] & 0x0F) : (p[j - 8] >> 4);
    } else {
      code = p[j];
    }
    w[j] = s[j] * static_cast<float>(code - z[j]);
  }
}

template <int kRows, int kBits>
void TilePortable(const Tile& t) {
  constexpr int kBytes = 16 * kBits / 8;
  float acc[kRows][16] = {};
  float w[16];
  for (int64_t g = 0; g < t.groups; ++g) {
    const int64_t k1 = std::min(t.k, (g + 1) * t.group_size);
    for (int64_t k = g * t.group_size; k < k1; ++k) {
      DecodePortable<kBits>(t.codes + k * kBytes, t.zero_points + g * 16,
                            t.scales + g * 16, w);
      QUANTD_UNROLL
      for (int r = 0; r < kRows; ++r) {
        const float xv = t.x[r * t.ldx + k];
        QUANTD_UNROLL
        for (int j = 0; j < 16; ++j) acc[r][j] += xv * w[j];
      }
    }
  }
  QUANTD_UNROLL
  for (int r = 0; r < kRows; ++r) {
    for (int j = 0; j < t.cols; ++j) {
      t.y[r * t.ldy + j] = acc[r][j] + (t.bias != nullptr ? t.bias[j] : 0.f);
    }
  }
}

// ---- AVX-512 --------------------------------------------------------------

// The 16 codes of row k as bytes in column order.
template <int kBits>
QUANTD_AVX2 inline __m128i LoadCodes(const uint8_t* p) {
  if constexpr (kBits == 4) {
    const __m128i b = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p));
    const __m128i mask = _mm_set1_epi8(0x0F);
    return _mm_unpacklo_epi64(_mm_and_si128(b, mask),
                              _mm_and_si128(_mm_srli_epi16(b, 4), mask));
  } else {
    return _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
  }
}

// With one or two rows the FMA chain per accumulator is the bottleneck (4
// cycles per k), so small tiles keep kUnroll independent sets of
// accumulators over consecutive k and add them at the end.
template <int kRows>
constexpr int UnrollFor() {
  return kRows == 1 ? 4 : (kRows <= 3 ? 2 : 1);
}

// AVX-512 takes the zero points and scales out of the inner loop, which is
// what bounds it (512-bit operations issue on fewer ports): per group
//   sum_k x[k] * s * (u[k] - z) = s * (sum_k x[k] * u[k] - z * sum_k x[k])
// with sum_k x[k] per row and group computed once for all column blocks
// (Tile::x_sums), so each k costs a widen, a convert and one FMA per row.
// The subtraction cancels at most the codes' offset (u < 2^bits), a few
// bits of f32 at 8-bit codes; weight_only_matmul_test bounds the error.
template <int kRows, int kBits>
QUANTD_AVX512 void TileAvx512(const Tile& t) {
  constexpr int kBytes = 16 * kBits / 8;
  constexpr int kUnroll = UnrollFor<kRows>();
  __m512 total[kRows];
  QUANTD_UNROLL
  for (int r = 0; r < kRows; ++r) total[r] = _mm512_setzero_ps();
  for (int64_t g = 0; g < t.groups; ++g) {
    __m512 acc[kUnroll][kRows];
    QUANTD_UNROLL
    for (int u = 0; u < kUnroll; ++u) {
      QUANTD_UNROLL
      for (int r = 0; r < kRows; ++r) acc[u][r] = _mm512_setzero_ps();
    }
    // Row k's 16 codes (as bytes) into accumulator set u.
    auto step = [&](int u, int64_t k, __m128i bytes) QUANTD_AVX512 {
      const __m512 w = _mm512_cvtepi32_ps(_mm512_cvtepu8_epi32(bytes));
      QUANTD_UNROLL
      for (int r = 0; r < kRows; ++r) {
        acc[u][r] =
            _mm512_fmadd_ps(_mm512_set1_ps(t.x[r * t.ldx + k]), w, acc[u][r]);
      }
    };
    const int64_t k1 = std::min(t.k, (g + 1) * t.group_size);
    int64_t k = g * t.group_size;
    if constexpr (kBits == 4) {
      // Two rows per 16-byte load: one shift and two masks give both rows'
      // low and high nibbles, two unpacks put each row in column order
      // (6 operations for two rows instead of 10).
      constexpr int kStep = kUnroll < 2 ? 2 : kUnroll;
      const __m128i mask = _mm_set1_epi8(0x0F);
      for (; k + kStep <= k1; k += kStep) {
        QUANTD_UNROLL
        for (int u = 0; u < kStep; u += 2) {
          const __m128i b = _mm_loadu_si128(
              reinterpret_cast<const __m128i*>(t.codes + (k + u) * kBytes));
          const __m128i lo = _mm_and_si128(b, mask);
          const __m128i hi = _mm_and_si128(_mm_srli_epi16(b, 4), mask);
          step(u % kUnroll, k + u, _mm_unpacklo_epi64(lo, hi));
          step((u + 1) % kUnroll, k + u + 1, _mm_unpackhi_epi64(lo, hi));
        }
      }
    } else {
      for (; k + kUnroll <= k1; k += kUnroll) {
        QUANTD_UNROLL
        for (int u = 0; u < kUnroll; ++u) {
          step(u, k + u, LoadCodes<kBits>(t.codes + (k + u) * kBytes));
        }
      }
    }
    for (; k < k1; ++k) step(0, k, LoadCodes<kBits>(t.codes + k * kBytes));
    const __m512 s = _mm512_loadu_ps(t.scales + g * 16);
    const __m512 z =
        _mm512_cvtepi32_ps(_mm512_loadu_si512(t.zero_points + g * 16));
    QUANTD_UNROLL
    for (int r = 0; r < kRows; ++r) {
      __m512 sum = acc[0][r];
      QUANTD_UNROLL
      for (int u = 1; u < kUnroll; ++u) sum = _mm512_add_ps(sum, acc[u][r]);
      const __m512 xs = _mm512_set1_ps(t.x_sums[r * t.groups + g]);
      sum = _mm512_fnmadd_ps(z, xs, sum);  // sum - z * x_sum
      total[r] = _mm512_fmadd_ps(s, sum, total[r]);
    }
  }
  const __mmask16 mask = static_cast<__mmask16>((1u << t.cols) - 1);
  const __m512 bias = t.bias != nullptr ? _mm512_maskz_loadu_ps(mask, t.bias)
                                        : _mm512_setzero_ps();
  QUANTD_UNROLL
  for (int r = 0; r < kRows; ++r) {
    _mm512_mask_storeu_ps(t.y + r * t.ldy, mask, _mm512_add_ps(total[r], bias));
  }
}

// ---- AVX2 -----------------------------------------------------------------

template <int kRows, int kBits>
QUANTD_AVX2 void TileAvx2(const Tile& t) {
  constexpr int kBytes = 16 * kBits / 8;
  constexpr int kUnroll = kRows == 1 ? 2 : 1;
  __m256 acc[kUnroll][kRows][2];
  QUANTD_UNROLL
  for (int u = 0; u < kUnroll; ++u) {
    QUANTD_UNROLL
    for (int r = 0; r < kRows; ++r) {
      acc[u][r][0] = acc[u][r][1] = _mm256_setzero_ps();
    }
  }
  for (int64_t g = 0; g < t.groups; ++g) {
    const __m256 s0 = _mm256_loadu_ps(t.scales + g * 16);
    const __m256 s1 = _mm256_loadu_ps(t.scales + g * 16 + 8);
    const __m256i z0 = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(t.zero_points + g * 16));
    const __m256i z1 = _mm256_loadu_si256(
        reinterpret_cast<const __m256i*>(t.zero_points + g * 16 + 8));
    const int64_t k0 = g * t.group_size;
    const int64_t k1 = std::min(t.k, k0 + t.group_size);
    for (int64_t k = k0; k < k1; ++k) {
      const int u = kUnroll == 1 ? 0 : static_cast<int>((k - k0) & 1);
      const __m128i bytes = LoadCodes<kBits>(t.codes + k * kBytes);
      const __m256 w0 = _mm256_mul_ps(
          _mm256_cvtepi32_ps(_mm256_sub_epi32(_mm256_cvtepu8_epi32(bytes), z0)),
          s0);
      const __m256 w1 = _mm256_mul_ps(
          _mm256_cvtepi32_ps(_mm256_sub_epi32(
              _mm256_cvtepu8_epi32(_mm_srli_si128(bytes, 8)), z1)),
          s1);
      QUANTD_UNROLL
      for (int r = 0; r < kRows; ++r) {
        const __m256 xv = _mm256_set1_ps(t.x[r * t.ldx + k]);
        acc[u][r][0] = _mm256_fmadd_ps(xv, w0, acc[u][r][0]);
        acc[u][r][1] = _mm256_fmadd_ps(xv, w1, acc[u][r][1]);
      }
    }
  }
  QUANTD_UNROLL
  for (int r = 0; r < kRows; ++r) {
    alignas(32) float out[16];
    for (int h = 0; h < 2; ++h) {
      __m256 sum = acc[0][r][h];
      QUANTD_UNROLL
      for (int u = 1; u < kUnroll; ++u) sum = _mm256_add_ps(sum, acc[u][r][h]);
      _mm256_store_ps(out + 8 * h, sum);
    }
    for (int j = 0; j < t.cols; ++j) {
      t.y[r * t.ldy + j] = out[j] + (t.bias != nullptr ? t.bias[j] : 0.f);
    }
  }
}

template <int kBits>
void DequantizeBlockPortable(const uint8_t* codes, const float* scales,
                             const int32_t* zero_points, int64_t k,
                             int64_t group_size, int cols, float* out,
                             int64_t ld) {
  float v[16];
  for (int64_t r = 0; r < k; ++r) {
    const int64_t g = r / group_size;
    DecodePortable<kBits>(codes + r * 16 * kBits / 8, zero_points + g * 16,
                          scales + g * 16, v);
    std::copy(v, v + cols, out + r * ld);
  }
}

// ---- dispatch -------------------------------------------------------------

using TileFn = void (*)(const Tile&);

template <int kBits>
TileFn PickTile(Isa isa, int rows) {
  // Tables indexed by rows - 1: AVX-512 and portable up to 8, AVX2 up to 4
  // (16 ymm registers).
  static constexpr TileFn kAvx512[] = {
      TileAvx512<1, kBits>, TileAvx512<2, kBits>, TileAvx512<3, kBits>,
      TileAvx512<4, kBits>, TileAvx512<5, kBits>, TileAvx512<6, kBits>,
      TileAvx512<7, kBits>, TileAvx512<8, kBits>};
  static constexpr TileFn kAvx2[] = {TileAvx2<1, kBits>, TileAvx2<2, kBits>,
                                     TileAvx2<3, kBits>, TileAvx2<4, kBits>};
  static constexpr TileFn kPortable[] = {
      TilePortable<1, kBits>, TilePortable<2, kBits>, TilePortable<3, kBits>,
      TilePortable<4, kBits>, TilePortable<5, kBits>, TilePortable<6, kBits>,
      TilePortable<7, kBits>, TilePortable<8, kBits>};
  switch (isa) {
    case Isa::kAvx512:
      return kAvx512[rows - 1];
    case Isa::kAvx2:
      return kAvx2[rows - 1];
    case Isa::kPortable:
      break;
  }
  return kPortable[rows - 1];
}

int MaxRows(Isa isa) { return isa == Isa::kAvx2 ? 4 : 8; }

}  // namespace

void DirectKernel(Isa isa, const float* x, int64_t m, const WeightOnlyPacked& w,
                  const float* bias, float* y) {
  const int64_t k = w.k();
  const int64_t n = w.n;
  const int64_t blocks = w.codes.dim(0);
  const int64_t row_step = MaxRows(isa);
  const int64_t row_chunks = (m + row_step - 1) / row_step;
  const int64_t block_bytes = k * 16 * w.bits / 8;
  const int64_t groups = w.groups();
  const int64_t tiles = row_chunks * blocks;
  // Each row's sum of x over each group, shared by every column block.
  std::vector<float> x_sums;
  if (isa == Isa::kAvx512) {
    x_sums.resize(m * groups);
    const int64_t gs = w.group_size;
    ParallelFor(m, m * k > (1 << 16), [&](int64_t r) {
      for (int64_t g = 0; g < groups; ++g) {
        const float* row = x + r * k;
        float sum = 0.f;
#pragma omp simd reduction(+ : sum)
        for (int64_t i = g * gs; i < std::min(k, (g + 1) * gs); ++i) {
          sum += row[i];
        }
        x_sums[r * groups + g] = sum;
      }
    });
  }
  const uint8_t* codes = w.codes.data<uint8_t>();
  const float* scales = w.scales.data<float>();
  const int32_t* zero_points = w.zero_points.data<int32_t>();
  ParallelFor(tiles, tiles > 1 && k * n * m > (1 << 14), [&](int64_t i) {
    const int64_t chunk = i / blocks;
    const int64_t b = i % blocks;
    const int64_t r0 = chunk * row_step;
    const int rows = static_cast<int>(std::min(row_step, m - r0));
    Tile t;
    t.x = x + r0 * k;
    t.ldx = k;
    t.k = k;
    t.codes = codes + b * block_bytes;
    t.scales = scales + b * groups * 16;
    t.zero_points = zero_points + b * groups * 16;
    t.groups = groups;
    t.group_size = w.group_size;
    t.x_sums = x_sums.empty() ? nullptr : x_sums.data() + r0 * groups;
    t.bias = bias != nullptr ? bias + b * 16 : nullptr;
    t.y = y + r0 * n + b * 16;
    t.ldy = n;
    t.cols = static_cast<int>(std::min<int64_t>(16, n - b * 16));
    (w.bits == 4 ? PickTile<4>(isa, rows) : PickTile<8>(isa, rows))(t);
  });
}

void Dequantize(const WeightOnlyPacked& w, float* out) {
  const int64_t k = w.k();
  const int64_t g = w.groups();
  const int64_t blocks = w.codes.dim(0);
  for (int64_t b = 0; b < blocks; ++b) {
    const uint8_t* codes = w.codes.data<uint8_t>() + b * k * 16 * w.bits / 8;
    const float* scales = w.scales.data<float>() + b * g * 16;
    const int32_t* zero_points = w.zero_points.data<int32_t>() + b * g * 16;
    const int cols = static_cast<int>(std::min<int64_t>(16, w.n - b * 16));
    (w.bits == 4 ? DequantizeBlockPortable<4>
                 : DequantizeBlockPortable<8>)(codes, scales, zero_points, k,
                                               w.group_size, cols, out + b * 16,
                                               w.n);
  }
}

}  // namespace weight_only_internal
}  // namespace quantd
