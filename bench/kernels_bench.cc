// int8 vs fp32 kernel throughput on the GEMM and convolution shapes of the
// fixture models, plus larger reference shapes. Counters report GFLOP/s
// (2 * MACs); bench/README.md turns pairs into int8/fp32 ratios.
//
//   build/bench/kernels_bench --benchmark_filter=MatMul
#include <random>

#include "benchmark/benchmark.h"
#include "kernels/convolution.h"
#include "kernels/layout.h"
#include "kernels/matmul.h"
#include "kernels/post_ops.h"
#include "kernels/weight_only_matmul.h"

namespace quantd {
namespace {

template <typename T>
Tensor RandomTensor(DataType type, Shape shape, int lo, int hi) {
  std::mt19937 rng(42);
  std::uniform_int_distribution<int> d(lo, hi);
  Tensor t(type, std::move(shape));
  for (T& v : t.mutable_span<T>()) v = static_cast<T>(d(rng));
  return t;
}

Tensor RandomFloat(Shape shape) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> d(-1, 1);
  Tensor t(DataType::kFloat32, std::move(shape));
  for (float& v : t.mutable_span<float>()) v = d(rng);
  return t;
}

void SetFlops(benchmark::State& state, double flops) {
  state.counters["GFLOPs"] =
      benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate,
                         benchmark::Counter::kIs1000);
}

// Args: M, K, N.
void BM_MatMulF32(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  Tensor a = RandomFloat({m, k}), b = RandomFloat({k, n}), c;
  MatMulKernel mm;
  for (auto _ : state) {
    if (!mm.Forward(a, b, nullptr, &c).ok()) state.SkipWithError("failed");
  }
  SetFlops(state, 2.0 * m * k * n);
}

void BM_MatMulInt8(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  // u8 activations, s8 weights in the range the kernels compute exactly on
  // this CPU (7-bit without VNNI).
  const int w = MaxExactInt8WeightMagnitude();
  Tensor a = RandomTensor<uint8_t>(DataType::kUInt8, {m, k}, 0, 255);
  Tensor b = RandomTensor<int8_t>(DataType::kInt8, {k, n}, -w, w);
  Tensor c;
  QuantizedOpParams q;
  q.src_scale = 0.02f;
  q.src_zero_point = 128;
  q.weight_scales = std::vector<float>(n, 0.01f);
  QuantizedMatMulKernel mm(q);
  for (auto _ : state) {
    if (!mm.Forward(a, b, nullptr, &c).ok()) state.SkipWithError("failed");
  }
  SetFlops(state, 2.0 * m * k * n);
}

void MatMulShapes(benchmark::internal::Benchmark* b) {
  b->Args({1024, 1024, 1024});  // the reference GEMM
  b->Args({64, 784, 256});      // MLP fc1, batch 64
  b->Args({64, 256, 128});      // MLP fc2
  b->Args({256, 128, 384});     // tiny GPT qkv, 4 x 64 tokens
  b->Args({256, 128, 512});     // tiny GPT mlp up
  b->Args({256, 512, 128});     // tiny GPT mlp down
  b->Args({256, 128, 256});     // tiny GPT lm head
  b->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_MatMulF32)->Apply(MatMulShapes);
BENCHMARK(BM_MatMulInt8)->Apply(MatMulShapes);

// Weight-only MatMul (f32 activations, packed int4/int8 weights) against the
// f32 GEMM on the same shapes. Args: M, K, N, bits, group size. Batch-1
// token generation is M = 1: bandwidth-bound, so the counter that matters is
// the weights' bytes per second as well as GFLOP/s.
void BM_MatMulWeightOnly(benchmark::State& state) {
  const int64_t m = state.range(0), k = state.range(1), n = state.range(2);
  const int bits = static_cast<int>(state.range(3));
  const int64_t group = state.range(4);
  const int64_t g = (k + group - 1) / group;
  Tensor codes =
      RandomTensor<uint8_t>(DataType::kUInt8, {k, n}, 0, (1 << bits) - 1);
  Tensor scales(DataType::kFloat32, {g, n});
  for (float& v : scales.mutable_span<float>()) v = 0.01f;
  Tensor zero_points = RandomTensor<int32_t>(DataType::kInt32, {g, n},
                                             (1 << bits) / 2, (1 << bits) / 2);
  absl::StatusOr<WeightOnlyPacked> w =
      PackWeightOnly(codes, scales, zero_points, bits, group);
  if (!w.ok()) {
    state.SkipWithError("pack failed");
    return;
  }
  Tensor a = RandomFloat({m, k}), c;
  for (auto _ : state) {
    if (!WeightOnlyMatMul(a, *w, nullptr, &c).ok()) {
      state.SkipWithError("failed");
    }
  }
  SetFlops(state, 2.0 * m * k * n);
  state.SetLabel(WeightOnlyIsa());
}

// GPT-2-small's projections (d 768): attention qkv, MLP up and down, at
// decode batches 1 and 8, tile boundaries and prefill lengths.
void DecoderShapes(benchmark::internal::Benchmark* b, bool quantized) {
  for (int64_t m : {1, 8, 9, 32, 128, 512}) {
    for (auto [k, n] :
         {std::pair<int64_t, int64_t>{768, 2304}, {768, 3072}, {3072, 768}}) {
      if (!quantized) {
        b->Args({m, k, n});
        continue;
      }
      b->Args({m, k, n, 4, 128});
      b->Args({m, k, n, 8, 128});
    }
  }
  b->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_MatMulF32)->Name("BM_MatMulF32/decoder")->Apply([](auto* b) {
  DecoderShapes(b, false);
});
BENCHMARK(BM_MatMulWeightOnly)->Apply([](auto* b) { DecoderShapes(b, true); });

// Args: N, C, H(=W), OC, kernel, groups.
ConvParams Params(int64_t k, int64_t groups) {
  ConvParams p;
  p.pads_begin = {k / 2, k / 2};
  p.pads_end = {k / 2, k / 2};
  p.groups = groups;
  return p;
}

double ConvFlops(const benchmark::State& s) {
  const double n = s.range(0), c = s.range(1), hw = s.range(2), oc = s.range(3),
               k = s.range(4), g = s.range(5);
  return 2.0 * n * oc * hw * hw * (c / g) * k * k;
}

void BM_ConvF32(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1), hw = state.range(2),
                oc = state.range(3), k = state.range(4), g = state.range(5);
  Tensor x = RandomFloat({n, c, hw, hw}), w = RandomFloat({oc, c / g, k, k});
  Tensor y;
  ConvolutionKernel conv(Params(k, g));
  for (auto _ : state) {
    if (!conv.Forward(x, w, nullptr, &y).ok()) state.SkipWithError("failed");
  }
  SetFlops(state, ConvFlops(state));
}

void BM_ConvInt8(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1), hw = state.range(2),
                oc = state.range(3), k = state.range(4), g = state.range(5);
  const int wmax = MaxExactInt8WeightMagnitude();
  Tensor x = RandomTensor<uint8_t>(DataType::kUInt8, {n, c, hw, hw}, 0, 255);
  Tensor w =
      RandomTensor<int8_t>(DataType::kInt8, {oc, c / g, k, k}, -wmax, wmax);
  Tensor y;
  QuantizedOpParams q;
  q.src_scale = 0.02f;
  q.src_zero_point = 128;
  q.weight_scales = std::vector<float>(oc, 0.01f);
  QuantizedConvolutionKernel conv(Params(k, g), q);
  for (auto _ : state) {
    if (!conv.Forward(x, w, nullptr, &y).ok()) state.SkipWithError("failed");
  }
  SetFlops(state, ConvFlops(state));
}

// As a planned graph runs them (executor.h, int8_regions.h): channels-last
// in and out, and the int8 conv reads u8 and requantizes to u8 for the
// next int8 op, so neither side reorders or converts inside the call.
void BM_ConvF32Planned(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1), hw = state.range(2),
                oc = state.range(3), k = state.range(4), g = state.range(5);
  absl::StatusOr<Tensor> x =
      ToLayout(RandomFloat({n, c, hw, hw}), Layout::kChannelsLast);
  Tensor w = RandomFloat({oc, c / g, k, k}), y;
  ConvolutionKernel conv(Params(k, g));
  for (auto _ : state) {
    if (!x.ok() ||
        !conv.Forward(*x, w, nullptr, &y, Layout::kChannelsLast).ok()) {
      state.SkipWithError("failed");
    }
  }
  SetFlops(state, ConvFlops(state));
}

void BM_ConvInt8Planned(benchmark::State& state) {
  const int64_t n = state.range(0), c = state.range(1), hw = state.range(2),
                oc = state.range(3), k = state.range(4), g = state.range(5);
  const int wmax = MaxExactInt8WeightMagnitude();
  absl::StatusOr<Tensor> x =
      ToLayout(RandomTensor<uint8_t>(DataType::kUInt8, {n, c, hw, hw}, 0, 255),
               Layout::kChannelsLast);
  Tensor w =
      RandomTensor<int8_t>(DataType::kInt8, {oc, c / g, k, k}, -wmax, wmax);
  Tensor y;
  QuantizedOpParams q;
  q.src_scale = 0.02f;
  q.src_zero_point = 128;
  q.weight_scales = std::vector<float>(oc, 0.01f);
  q.dst_type = DataType::kUInt8;
  q.dst_scale = 0.05f;
  q.dst_zero_point = 0;
  q.post_ops.relu = true;
  QuantizedConvolutionKernel conv(Params(k, g), q);
  for (auto _ : state) {
    if (!x.ok() ||
        !conv.Forward(*x, w, nullptr, &y, Layout::kChannelsLast).ok()) {
      state.SkipWithError("failed");
    }
  }
  SetFlops(state, ConvFlops(state));
}

void ConvShapes(benchmark::internal::Benchmark* b) {
  b->Args({64, 1, 28, 16, 3, 1});    // fixture CNN conv1, batch 64
  b->Args({64, 16, 14, 32, 3, 1});   // conv2
  b->Args({64, 32, 7, 32, 3, 32});   // depthwise
  b->Args({64, 32, 7, 64, 1, 1});    // pointwise
  b->Args({8, 64, 56, 64, 3, 1});    // ResNet-50 stage 1 3x3, batch 8
  b->Args({8, 256, 14, 256, 3, 1});  // ResNet stage 3 3x3, batch 8
  b->Unit(benchmark::kMicrosecond);
}
BENCHMARK(BM_ConvF32)->Apply(ConvShapes);
BENCHMARK(BM_ConvInt8)->Apply(ConvShapes);
BENCHMARK(BM_ConvF32Planned)->Apply(ConvShapes);
BENCHMARK(BM_ConvInt8Planned)->Apply(ConvShapes);

}  // namespace
}  // namespace quantd

BENCHMARK_MAIN();
