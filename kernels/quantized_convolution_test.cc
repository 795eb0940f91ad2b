// Quantized (u8/s8) convolution kernel against its reference.
#include <omp.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/convolution.h"
#include "kernels/convolution_test_cases.h"
#include "kernels/dnnl_context.h"
#include "kernels/kernel_test_util.h"
#include "kernels/layout.h"

namespace quantd {
namespace {

using conv_test::ConvCase;
using conv_test::ConvCases;
using conv_test::ExpectInvalid;
using conv_test::Params;

using ::testing::HasSubstr;

std::vector<float> RandomScales(int64_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(0.002f, 0.02f);
  std::vector<float> s(n);
  for (float& v : s) v = dist(rng);
  return s;
}

Tensor RandomSrc(DataType type, const Shape& shape, std::mt19937& rng) {
  return type == DataType::kUInt8 ? RandomInt<uint8_t>(shape, rng, 0, 255)
                                  : RandomInt<int8_t>(shape, rng, -128, 127);
}

// Geometries x {u8, s8} src x {f32, u8, s8} dst x 3 variants (per-channel /
// per-tensor scales, zero points, post-ops), with 7-bit weights, where the
// kernel is exact: f32 results to float rounding, int8 results within one
// quantum (ties; see convolution.h). Each geometry runs a third of the 18
// combinations (rotating), so every combination meets several geometries
// without creating 18 primitives per geometry.
TEST(QuantizedConvolutionKernelTest, MatchesReferenceWithSevenBitWeights) {
  std::mt19937 rng(4);
  int combos = 0, runs = 0, differing = 0, total = 0, case_index = 0;
  for (const ConvCase& c : ConvCases()) {
    SCOPED_TRACE(c.name);
    ++case_index;
    const int64_t oc = c.weights[0];
    Tensor w = RandomInt<int8_t>(c.weights, rng, -63, 63);
    Tensor b = RandomFloat({oc}, rng, -0.5f, 0.5f);
    Shape out = *ConvOutputShape(c.params, c.src, c.weights);
    for (DataType src_type : {DataType::kUInt8, DataType::kInt8}) {
      Tensor src = RandomSrc(src_type, c.src, rng);
      for (DataType dst_type :
           {DataType::kFloat32, DataType::kUInt8, DataType::kInt8}) {
        for (int variant = 0; variant < 3; ++variant) {
          if ((combos++ + case_index) % 3 != 0) continue;
          ++runs;
          SCOPED_TRACE(absl::StrCat(DataTypeName(src_type), "->",
                                    DataTypeName(dst_type), " variant ",
                                    variant));
          const int32_t src_zp = variant == 0                   ? 0
                                 : src_type == DataType::kUInt8 ? 128
                                                                : -7;
          std::vector<float> ws =
              variant == 1 ? RandomScales(1, rng) : RandomScales(oc, rng);
          PostOps post = variant == 2   ? Post(true, 0.f, true, 0.75f)
                         : variant == 1 ? Post(true, 0.2f)
                                        : PostOps{};
          int32_t dst_zp = dst_type == DataType::kUInt8  ? 100
                           : dst_type == DataType::kInt8 ? -3
                                                         : 0;
          if (variant == 0) dst_zp = dst_type == DataType::kUInt8 ? 0 : dst_zp;
          QuantizedOpParams q =
              Quant(0.05f, src_zp, ws, dst_type, 0.2f, dst_zp, post);
          Tensor addend;
          if (dst_type == DataType::kFloat32) {
            addend = RandomFloat(out, rng, -5, 5);
          } else {
            addend = RandomSrc(dst_type, out, rng);
          }
          Tensor got = post.sum ? addend.Clone() : Tensor();
          Tensor want = post.sum ? addend.Clone() : Tensor();
          QuantizedConvolutionKernel kernel(c.params, q);
          const Tensor* bias = variant == 1 ? nullptr : &b;
          absl::Status s = kernel.Forward(src, w, bias, &got);
          ASSERT_TRUE(s.ok()) << s;
          ASSERT_TRUE(
              QuantizedConvolutionReference(c.params, q, src, w, bias, &want)
                  .ok());
          if (dst_type == DataType::kFloat32) {
            ExpectClose(got, want, 1e-5);
          } else {
            differing += ExpectWithinQuanta(got, want, 1);
            total += got.num_elements();
          }
        }
      }
    }
  }
  // Off-by-one results come only from ties and float rounding: rare.
  EXPECT_LT(differing, total / 1000 + 1) << "of " << total;
  EXPECT_EQ(runs, static_cast<int>(ConvCases().size()) * 2 * 3);
}

// A strided 1x1 convolution (a ResNet downsample) on channels-last u8 input
// with fewer channels than oneDNN's block: oneDNN 2.7's jit_uni_int8_1x1 on
// AVX2 gave different, wrong results from run to run with two threads (its
// reduce-to-unit-stride step). The kernel takes the strided positions
// itself; every run must match the reference, with any thread count.
TEST(QuantizedConvolutionKernelTest, StridedPointwiseIsExactWithThreads) {
  std::mt19937 rng(11);
  const ConvParams p = Params({2, 2}, {0, 0}, {0, 0});
  const Tensor w = RandomInt<int8_t>({16, 8, 1, 1}, rng, -63, 63);
  const Tensor b = RandomFloat({16}, rng, -0.5f, 0.5f);
  const int threads_before = omp_get_max_threads();
  omp_set_num_threads(2);
  // s8 input also takes the sign flip (after the strided copy).
  for (DataType type : {DataType::kUInt8, DataType::kInt8}) {
    const Tensor plain = RandomSrc(type, {64, 8, 8, 8}, rng);
    absl::StatusOr<Tensor> nhwc = ToLayout(plain, Layout::kChannelsLast);
    ASSERT_TRUE(nhwc.ok()) << nhwc.status();
    const QuantizedOpParams q =
        Quant(0.05f, type == DataType::kUInt8 ? 9 : -7, RandomScales(16, rng),
              DataType::kUInt8, 0.2f, 100, PostOps{});
    Tensor want;
    ASSERT_TRUE(QuantizedConvolutionReference(p, q, plain, w, &b, &want).ok());
    for (int run = 0; run < 4; ++run) {
      for (const Tensor* src : {&plain, static_cast<const Tensor*>(&*nhwc)}) {
        SCOPED_TRACE(absl::StrCat(DataTypeName(type), " run ", run,
                                  src == &plain ? " plain" : " nhwc"));
        QuantizedConvolutionKernel kernel(p, q);
        Tensor got;
        ASSERT_TRUE(kernel.Forward(*src, w, &b, &got).ok());
        absl::StatusOr<Tensor> got_plain = ToLayout(got, Layout::kPlain);
        ASSERT_TRUE(got_plain.ok());
        // Off by one only at ties (see MatchesReferenceWithSevenBitWeights).
        EXPECT_LE(ExpectWithinQuanta(*got_plain, want, 1),
                  want.num_elements() / 1000);
      }
    }
  }
  omp_set_num_threads(threads_before);
}

// With weights beyond [-64, 64] on a CPU without VNNI the kernel takes
// oneDNN's s8 path, which halves the weights (round half to even) when it
// reorders them, to keep vpmaddubsw from saturating. The result is then
// exactly the reference computed with weights 2 * round(w / 2): every odd
// weight is off by one. (The u8 path would instead saturate its int16 pair
// sums and be wrong by tens of thousands of acc units; matmul_test shows
// that.) With VNNI the kernel is exact.
TEST(QuantizedConvolutionKernelTest, FullRangeWeightsLoseTheirLowestBit) {
  std::mt19937 rng(5);
  ConvParams p = Params({}, {1, 1}, {1, 1});
  for (DataType src_type : {DataType::kUInt8, DataType::kInt8}) {
    SCOPED_TRACE(DataTypeName(src_type));
    Tensor src = RandomSrc(src_type, {2, 16, 8, 8}, rng);
    // Not 127: 2 * round(127 / 2) = 128 does not fit the s8 tensor below.
    Tensor w = RandomInt<int8_t>({16, 16, 3, 3}, rng, -126, 126);
    Tensor halved = w.Clone();
    for (int8_t& v : halved.mutable_span<int8_t>()) {
      v = static_cast<int8_t>(2 * std::nearbyint(v / 2.0));
    }
    const int32_t zp = src_type == DataType::kUInt8 ? 120 : 3;
    QuantizedOpParams q = Quant(1.f, zp, {1.f}, DataType::kFloat32);
    QuantizedConvolutionKernel kernel(p, q);
    Tensor got, exact, as_halved;
    ASSERT_TRUE(kernel.Forward(src, w, nullptr, &got).ok());
    ASSERT_TRUE(
        QuantizedConvolutionReference(p, q, src, w, nullptr, &exact).ok());
    ASSERT_TRUE(
        QuantizedConvolutionReference(p, q, src, halved, nullptr, &as_halved)
            .ok());
    if (MaxExactInt8WeightMagnitude() >= 127) {
      ExpectClose(got, exact, 0);
      continue;
    }
    ExpectClose(got, as_halved, 0);
    // The deviation from the exact result is a few quanta of the weights
    // times the activations: at most sum |src - zp| over the window, and
    // typically a small fraction of the result.
    double max_err = 0, max_abs = 0;
    for (int64_t i = 0; i < got.num_elements(); ++i) {
      max_err = std::max<double>(
          max_err, std::fabs(got.data<float>()[i] - exact.data<float>()[i]));
      max_abs = std::max<double>(max_abs, std::fabs(exact.data<float>()[i]));
    }
    EXPECT_GT(max_err, 0);
    EXPECT_LT(max_err, 16 * 9 * 255);
    EXPECT_LT(max_err, 0.1 * max_abs);
  }
}

TEST(QuantizedConvolutionKernelTest,
     RequantizationRoundsHalfToEvenAndSaturates) {
  // 1x1 conv, one channel, weight 1, scales 1: dst = sat(round(x / 2) + 0).
  ConvParams p;
  Tensor src = Tensor::FromVector<uint8_t>({1, 1, 1, 6}, {1, 3, 5, 7, 255, 0});
  Tensor w = Tensor::FromVector<int8_t>({1, 1, 1, 1}, {1});
  QuantizedOpParams q = Quant(1.f, 0, {1.f}, DataType::kInt8, 2.f, 0);
  QuantizedConvolutionKernel kernel(p, q);
  Tensor dst;
  ASSERT_TRUE(kernel.Forward(src, w, nullptr, &dst).ok());
  // 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, 3.5 -> 4, 127.5 -> 127 (saturated), 0.
  EXPECT_EQ(dst.ToVector<int8_t>(), (std::vector<int8_t>{0, 2, 2, 4, 127, 0}));
  // With an odd zero point exact ties differ by one quantum: oneDNN rounds
  // x / scale + zp (1.5 -> 2, 2.5 -> 2, ...) where the definition rounds
  // x / scale first (0.5 -> 0, then + 1).
  Tensor ties = Tensor::FromVector<uint8_t>({1, 1, 1, 4}, {1, 3, 5, 7});
  QuantizedOpParams odd = Quant(1.f, 0, {1.f}, DataType::kUInt8, 2.f, 1);
  QuantizedConvolutionKernel odd_kernel(p, odd);
  Tensor want;
  ASSERT_TRUE(odd_kernel.Forward(ties, w, nullptr, &dst).ok());
  ASSERT_TRUE(
      QuantizedConvolutionReference(p, odd, ties, w, nullptr, &want).ok());
  EXPECT_EQ(want.ToVector<uint8_t>(), (std::vector<uint8_t>{1, 3, 3, 5}));
  EXPECT_EQ(dst.ToVector<uint8_t>(), (std::vector<uint8_t>{2, 2, 4, 4}));
  // Bias in real units, per-channel weight scales, zero points.
  Tensor src2 = Tensor::FromVector<uint8_t>({1, 1, 1, 2}, {10, 20});
  Tensor w2 = Tensor::FromVector<int8_t>({2, 1, 1, 1}, {3, -2});
  Tensor b2 = Tensor::FromVector<float>({2}, {1.f, -0.5f});
  QuantizedOpParams q2 =
      Quant(0.5f, 4, {0.25f, 1.f}, DataType::kUInt8, 0.5f, 10);
  // oc0: 0.5 * 0.25 * 3 * (x - 4) + 1 = {3.25, 7.0} -> /0.5 -> {6.5, 14}
  //      + 10 -> {16 (tie to even 6), 24}.
  // oc1: 0.5 * 1 * -2 * (x - 4) - 0.5 = {-6.5, -16.5} -> {-13, -33} + 10
  //      -> {-3, -23} -> saturate at 0.
  QuantizedConvolutionKernel k2(p, q2);
  ASSERT_TRUE(k2.Forward(src2, w2, &b2, &dst).ok());
  EXPECT_EQ(dst.ToVector<uint8_t>(), (std::vector<uint8_t>{16, 24, 0, 0}));
}

// --- caching, threads, errors ---

TEST(QuantizedConvolutionKernelTest, RejectsBadArguments) {
  std::mt19937 rng(11);
  Tensor src = RandomInt<uint8_t>({1, 4, 8, 8}, rng, 0, 255);
  Tensor w = RandomInt<int8_t>({6, 4, 3, 3}, rng, -10, 10);
  Tensor dst;
  auto run = [&](QuantizedOpParams q, const Tensor& x, const Tensor& weights) {
    QuantizedConvolutionKernel kernel(ConvParams{}, std::move(q));
    Tensor out;
    return kernel.Forward(x, weights, nullptr, &out);
  };
  ExpectInvalid(run(Quant(1, 0, {1, 1}, DataType::kFloat32), src, w),
                "weight_scales has 2 entries, expected 1 or 6");
  ExpectInvalid(run(Quant(0, 0, {1}, DataType::kFloat32), src, w),
                "src_scale is 0");
  ExpectInvalid(run(Quant(1, 300, {1}, DataType::kFloat32), src, w),
                "src_zero_point 300 is outside the u8 range");
  ExpectInvalid(run(Quant(1, 0, {-1}, DataType::kFloat32), src, w),
                "weight_scales[0] is -1");
  ExpectInvalid(run(Quant(1, 0, {1}, DataType::kInt8, 1, 200), src, w),
                "dst_zero_point 200 is outside the s8 range");
  ExpectInvalid(run(Quant(1, 0, {1}, DataType::kInt32), src, w),
                "dst_type is s32");
  ExpectInvalid(run(Quant(1, 0, {1}, DataType::kFloat32),
                    RandomFloat({1, 4, 8, 8}, rng), w),
                "src is f32, expected u8 or s8");
  ExpectInvalid(run(Quant(1, 0, {1}, DataType::kFloat32), src,
                    RandomInt<uint8_t>({6, 4, 3, 3}, rng, 0, 1)),
                "int8 conv weights are u8[6,4,3,3], expected s8");
}

// The int8 path this CPU takes (recorded in the test's XML properties) and
// the claim it rests on: weights up to MaxExactInt8WeightMagnitude() are
// exact even in vpmaddubsw's worst case (every activation at its maximum,
// neighbouring weights of one sign at the limit, so every int16 pair sum is
// as large as it gets), and the limit is tight: one more and the kernel
// leaves the exact path.
TEST(QuantizedConvolutionKernelTest, ExactUpToTheReportedWeightMagnitude) {
  const int32_t m = MaxExactInt8WeightMagnitude();
  RecordProperty("cpu_isa", CpuIsaName());
  RecordProperty("vnni", CpuHasVnni() ? "yes" : "no");
  RecordProperty("max_exact_int8_weight", m);
  // 64: 255 * (64 + 64) fits int16; 127 only with 32-bit accumulation.
  ASSERT_TRUE(m == 64 || m == 127) << m;
  if (m == 127) {
    EXPECT_TRUE(CpuHasVnni()) << CpuIsaName();
  }

  std::mt19937 rng(8);
  const ConvParams p = Params({}, {1, 1}, {1, 1});
  const Shape src_shape = {2, 16, 6, 6}, w_shape = {16, 16, 3, 3};
  const int64_t per_oc = 16 * 3 * 3;
  // Output channel 0 all +m, 1 all -m, 2-7 random signs at m, 8-15 random.
  auto weights = [&](int32_t limit) {
    Tensor w = RandomInt<int8_t>(w_shape, rng, -limit, limit);
    int8_t* d = w.mutable_data<int8_t>();
    std::bernoulli_distribution sign(0.5);
    for (int64_t i = 0; i < 8 * per_oc; ++i) {
      const int oc = i / per_oc;
      const bool positive = oc == 0 || (oc != 1 && sign(rng));
      d[i] = static_cast<int8_t>(positive ? limit : -limit);
    }
    return w;
  };
  for (DataType src_type : {DataType::kUInt8, DataType::kInt8}) {
    SCOPED_TRACE(DataTypeName(src_type));
    // Sample 0 at the type's maximum (255 on the u8 path either way),
    // sample 1 random.
    Tensor src = RandomSrc(src_type, src_shape, rng);
    const int64_t half = src.num_elements() / 2;
    for (int64_t i = 0; i < half; ++i) {
      if (src_type == DataType::kUInt8) {
        src.mutable_data<uint8_t>()[i] = 255;
      } else {
        src.mutable_data<int8_t>()[i] = 127;
      }
    }
    const QuantizedOpParams q = Quant(1.f, 0, {1.f}, DataType::kFloat32);
    const Tensor at_limit = weights(m);
    QuantizedConvolutionKernel kernel(p, q);
    Tensor got, want;
    ASSERT_TRUE(kernel.Forward(src, at_limit, nullptr, &got).ok());
    ASSERT_TRUE(
        QuantizedConvolutionReference(p, q, src, at_limit, nullptr, &want)
            .ok());
    ExpectClose(got, want, 0);  // integers below 2^24: exact in f32
    if (m == 127) continue;     // no larger int8 weight to try

    // One past the limit: the s8 path, which halves odd weights.
    const Tensor beyond = weights(m + 1);
    QuantizedConvolutionKernel beyond_kernel(p, q);
    ASSERT_TRUE(beyond_kernel.Forward(src, beyond, nullptr, &got).ok());
    ASSERT_TRUE(
        QuantizedConvolutionReference(p, q, src, beyond, nullptr, &want).ok());
    double max_err = 0;
    for (int64_t i = 0; i < got.num_elements(); ++i) {
      max_err = std::max<double>(
          max_err, std::fabs(got.data<float>()[i] - want.data<float>()[i]));
    }
    EXPECT_GT(max_err, 0) << "weights of " << m + 1 << " were exact too";
  }
}

}  // namespace
}  // namespace quantd
