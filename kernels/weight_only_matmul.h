// Weight-only quantized MatMul: f32 activations times 4- or 8-bit weights,
// dequantized in registers, for models whose weights are quantized and whose
// activations stay float (int4/int8 weight-only LLM quantization: RTN, GPTQ,
// AWQ). oneDNN 2.6 has no such kernel; this one is written for x86 with
// AVX-512 and AVX2 paths picked at run time, a portable path for other CPUs,
// and a plain reference beside them (WeightOnlyMatMulReference).
//
//   // codes: u8 [K, N], each in [0, 2^bits); scales f32 [G, N];
//   // zero_points s32 [G, N]; G = ceil(K / group_size) (1 when 0).
//   // dequantized w[k][n] = scales[k / group][n] * (codes[k][n] -
//   //                                               zero_points[k / group][n])
//   absl::StatusOr<WeightOnlyPacked> w =
//       PackWeightOnly(codes, scales, zero_points, /*bits=*/4,
//                      /*group_size=*/128);
//   Tensor y;
//   absl::Status s = WeightOnlyMatMul(x, *w, &bias, &y);  // x [..., K]
//                                                        // y [..., N]
//
// Signed types map onto codes by an offset: int4 q in [-8, 7] is code q + 8
// with zero point zp + 8; int8 q is code q + 128 with zero point zp + 128.
//
// Packed format (what a lowered graph stores as initializers): columns in
// blocks of 16 (N padded; padded columns have scale 0), and per block the K
// rows one after the other, so a block's weights are one contiguous run.
//   codes        u8  [ceil(N/16), K, 16 * bits / 8]. 8-bit: one byte per
//                column.
//                4-bit: byte j holds column j in its low nibble and column
//                j + 8 in its high nibble (two masks and a shift give the
//                16 codes in column order).
//   scales       f32 [ceil(N/16), G, 16]
//   zero_points  s32 [ceil(N/16), G, 16]
// int4 codes are 8x fewer bytes than f32 weights, int8 4x: batch-1 token
// generation reads every weight once per token, so its time is the weights'
// bytes over memory bandwidth, which is what this kernel reduces.
//
// Execution: a tile is up to 8 rows (AVX2: 4) times one block; each k
// decodes the block's 16 codes once for all of the tile's rows. Every row
// count takes this path: on this project's VNNI machine it runs at 0.9x
// oneDNN's f32 GEMM at 128-512 rows with the weights in cache, and faster
// below 8 rows (bench/kernels_bench --benchmark_filter=decoder|WeightOnly,
// figures in bench/README.md), so a dequantize-then-GEMM path for prefill was
// tried and dropped (1.1 ms vs 0.5 ms at 17 x 768 x 3072: writing the f32
// scratch cost more than the GEMM saved).
#ifndef QUANTD_KERNELS_WEIGHT_ONLY_MATMUL_H_
#define QUANTD_KERNELS_WEIGHT_ONLY_MATMUL_H_

#include <cstdint>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "kernels/cpu_isa.h"
#include "kernels/tensor.h"

namespace quantd {

inline constexpr int64_t kWeightOnlyBlock = 16;  // columns per packed block

struct WeightOnlyPacked {
  Tensor codes;
  Tensor scales;
  Tensor zero_points;
  int64_t n = 0;           // true column count (codes are padded to 16)
  int64_t group_size = 0;  // rows per group; K when per channel
  int bits = 4;

  int64_t k() const { return codes.defined() ? codes.dim(1) : 0; }
  int64_t groups() const { return scales.defined() ? scales.dim(1) : 0; }
  // Bytes the packed weights occupy (codes, scales and zero points).
  int64_t byte_size() const;
};

// Checks the packed tensors' dtypes and shapes against n, group_size and
// bits (a lowered graph's initializers arrive through the executor).
absl::Status ValidateWeightOnlyPacked(const WeightOnlyPacked& w);

// Also checks every scale (finite, >= 0) and zero point (in [0, 2^bits)):
// O(G * N), for a graph's initializers once, not per call.
absl::Status ValidateWeightOnlyValues(const WeightOnlyPacked& w);

// codes u8 [K, N] (every value < 2^bits), scales f32 [G, N] (finite, >= 0),
// zero_points s32 [G, N] (in [0, 2^bits)), bits 4 or 8, group_size 0 (one
// group: per column) or > 0 with G = ceil(K / group_size); a group_size
// above K is one group.
absl::StatusOr<WeightOnlyPacked> PackWeightOnly(const Tensor& codes,
                                                const Tensor& scales,
                                                const Tensor& zero_points,
                                                int bits, int64_t group_size);

// y [..., N] = x [..., K] (f32) times the dequantized weights, plus bias
// (f32 [N], optional). y is allocated.
absl::Status WeightOnlyMatMul(const Tensor& x, const WeightOnlyPacked& w,
                              const Tensor* bias, Tensor* y);

// The dequantized f32 weights [K, N].
absl::Status DequantizeWeightOnly(const WeightOnlyPacked& w, Tensor* out);

// The instruction set the direct kernel runs with on this CPU: "avx512",
// "avx2" or "portable".
const char* WeightOnlyIsa();

// Plain loops from the unpacked inputs of PackWeightOnly (accumulating in
// double): what WeightOnlyMatMul must compute.
absl::Status WeightOnlyMatMulReference(const Tensor& x, const Tensor& codes,
                                       const Tensor& scales,
                                       const Tensor& zero_points,
                                       int64_t group_size, const Tensor* bias,
                                       Tensor* y);

namespace weight_only_internal {
using Isa = CpuIsa;  // kernels/cpu_isa.h
using ::quantd::CpuSupports;
// The direct kernel on rows [0, m) of x (f32 [m, K]) into y (f32 [m, N]),
// with a chosen ISA (tests run every one the CPU has).
void DirectKernel(Isa isa, const float* x, int64_t m, const WeightOnlyPacked& w,
                  const float* bias, float* y);
// The dequantized weights into out (f32 [K, N], row-major).
void Dequantize(const WeightOnlyPacked& w, float* out);
}  // namespace weight_only_internal

}  // namespace quantd

#endif  // QUANTD_KERNELS_WEIGHT_ONLY_MATMUL_H_
