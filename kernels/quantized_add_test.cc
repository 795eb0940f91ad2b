#include "kernels/quantized_add.h"

#include <random>

#include "gtest/gtest.h"
#include "kernels/kernel_test_util.h"
#include "kernels/layout.h"

namespace quantd {
namespace {

QuantizedAddParams Params(bool relu, bool u8_out) {
  QuantizedAddParams p;
  p.a = {0.0213f, 3};
  p.b = {0.0571f, 131};
  p.relu = relu;
  if (u8_out) p.y = U8Params{0.0449f, relu ? 0 : 97};
  return p;
}

void ExpectSame(const Tensor& got, const Tensor& want) {
  ASSERT_EQ(got.dtype(), want.dtype());
  ASSERT_EQ(got.shape(), want.shape());
  if (got.dtype() == DataType::kUInt8) {
    EXPECT_EQ(got.ToVector<uint8_t>(), want.ToVector<uint8_t>());
  } else {
    EXPECT_EQ(got.ToVector<float>(), want.ToVector<float>());
  }
}

// The vectorized pass equals the reference bit for bit, with and without
// relu and u8 output, on sizes around the parallel chunk (65536).
TEST(QuantizedAddTest, MatchesTheReferenceExactly) {
  std::mt19937 rng(7);
  for (const Shape& shape : {Shape{3}, Shape{2, 5, 7, 9}, Shape{1, 64, 33, 32},
                             Shape{2, 3, 130, 171}}) {
    const Tensor a = RandomInt<uint8_t>(shape, rng, 0, 255);
    const Tensor b = RandomInt<uint8_t>(shape, rng, 0, 255);
    for (bool relu : {false, true}) {
      for (bool u8_out : {false, true}) {
        SCOPED_TRACE(ShapeToString(shape) + (relu ? " relu" : "") +
                     (u8_out ? " u8" : " f32"));
        Tensor got, want;
        ASSERT_TRUE(QuantizedAdd(a, b, Params(relu, u8_out), &got).ok());
        ASSERT_TRUE(
            QuantizedAddReference(a, b, Params(relu, u8_out), &want).ok());
        ExpectSame(got, want);
      }
    }
  }
}

// Every path the CPU has (AVX-512, AVX2, portable) equals the reference,
// including the scalar tails after the last full vector.
TEST(QuantizedAddTest, EveryIsaMatchesTheReference) {
  std::mt19937 rng(11);
  const int64_t n = 16 * 37 + 13;
  const Tensor a = RandomInt<uint8_t>({n}, rng, 0, 255);
  const Tensor b = RandomInt<uint8_t>({n}, rng, 0, 255);
  for (CpuIsa isa : {CpuIsa::kPortable, CpuIsa::kAvx2, CpuIsa::kAvx512}) {
    if (!CpuSupports(isa)) continue;
    for (bool relu : {false, true}) {
      SCOPED_TRACE(std::string(CpuIsaName(isa)) + (relu ? " relu" : ""));
      const QuantizedAddParams p = Params(relu, true);
      Tensor want;
      ASSERT_TRUE(QuantizedAddReference(a, b, p, &want).ok());
      std::vector<uint8_t> got(n);
      quantized_add_internal::AddSpanU8(isa, a.data<uint8_t>(),
                                        b.data<uint8_t>(), n, p, got.data());
      EXPECT_EQ(got, want.ToVector<uint8_t>());
    }
  }
}

// Hand-computed: (10 - 3) * 0.5 + (4 - 8) * 0.25 = 2.5 -> 2.5 / 1 rounds
// half to even to 2; with zero point 100 -> 102. Relu clamps the negative.
TEST(QuantizedAddTest, RoundsHalfToEvenAndSaturates) {
  QuantizedAddParams p;
  p.a = {0.5f, 3};
  p.b = {0.25f, 8};
  p.y = U8Params{1.f, 100};
  const Tensor a = Tensor::FromVector<uint8_t>({4}, {10, 0, 255, 3});
  const Tensor b = Tensor::FromVector<uint8_t>({4}, {4, 0, 255, 8});
  Tensor y;
  ASSERT_TRUE(QuantizedAdd(a, b, p, &y).ok());
  // 0: -1.5 - 2 = -3.5 -> -4 + 100; 255: 126 + 61.75 -> saturates at 255.
  EXPECT_EQ(y.ToVector<uint8_t>(), (std::vector<uint8_t>{102, 96, 255, 100}));
  p.relu = true;
  ASSERT_TRUE(QuantizedAdd(a, b, p, &y).ok());
  EXPECT_EQ(y.ToVector<uint8_t>(), (std::vector<uint8_t>{102, 100, 255, 100}));
}

// Channels-last inputs give a channels-last output with the same values.
TEST(QuantizedAddTest, KeepsTheChannelsLastLayout) {
  std::mt19937 rng(3);
  const Tensor a = RandomInt<uint8_t>({2, 16, 5, 6}, rng, 0, 255);
  const Tensor b = RandomInt<uint8_t>({2, 16, 5, 6}, rng, 0, 255);
  const QuantizedAddParams p = Params(true, true);
  Tensor plain, cl;
  ASSERT_TRUE(QuantizedAdd(a, b, p, &plain).ok());
  ASSERT_TRUE(QuantizedAdd(*ToLayout(a, Layout::kChannelsLast),
                           *ToLayout(b, Layout::kChannelsLast), p, &cl)
                  .ok());
  EXPECT_TRUE(cl.channels_last());
  ExpectSame(*ToLayout(cl, Layout::kPlain), plain);
  // Mixed layouts take the plain path and still agree.
  Tensor mixed;
  ASSERT_TRUE(
      QuantizedAdd(*ToLayout(a, Layout::kChannelsLast), b, p, &mixed).ok());
  ExpectSame(mixed, plain);
}

// Numpy broadcasting: [2,3,1] + [3,4] -> [2,3,4].
TEST(QuantizedAddTest, Broadcasts) {
  QuantizedAddParams p;
  p.a = {1.f, 0};
  p.b = {1.f, 0};
  const Tensor a = Tensor::FromVector<uint8_t>({2, 3, 1}, {1, 2, 3, 4, 5, 6});
  std::vector<uint8_t> bv(12);
  for (int i = 0; i < 12; ++i) bv[i] = static_cast<uint8_t>(10 * i);
  const Tensor b = Tensor::FromVector<uint8_t>({3, 4}, bv);
  Tensor y;
  ASSERT_TRUE(QuantizedAdd(a, b, p, &y).ok());
  ASSERT_EQ(y.shape(), (Shape{2, 3, 4}));
  EXPECT_EQ(y.data<float>()[0], 1.f);           // a[0,0] + b[0,0]
  EXPECT_EQ(y.data<float>()[5], 2.f + 50.f);    // a[0,1] + b[1,1]
  EXPECT_EQ(y.data<float>()[23], 6.f + 110.f);  // a[1,2] + b[2,3]
  EXPECT_FALSE(QuantizedAdd(a, Tensor(DataType::kUInt8, {2, 5}), p, &y).ok());
}

TEST(QuantizedAddTest, RefusesBadParametersAndTypes) {
  const Tensor a(DataType::kUInt8, {4});
  Tensor y;
  QuantizedAddParams p;
  p.a = {0.f, 0};
  EXPECT_FALSE(QuantizedAdd(a, a, p, &y).ok());
  p.a = {1.f, 256};
  EXPECT_FALSE(QuantizedAdd(a, a, p, &y).ok());
  p.a = {1.f, 0};
  p.y = U8Params{NAN, 0};
  EXPECT_FALSE(QuantizedAdd(a, a, p, &y).ok());
  p.y.reset();
  EXPECT_TRUE(QuantizedAdd(a, a, p, &y).ok());
  // Scales whose dequantized sums overflow to inf (and inf - inf to NaN).
  p.a = {3e38f, 0};
  p.b = {3e38f, 0};
  EXPECT_FALSE(QuantizedAdd(a, a, p, &y).ok());
  // A broadcast a hostile model can ask for: 46341^2 > 2^28 elements.
  p.a = p.b = {1.f, 0};
  absl::Status big = QuantizedAdd(Tensor(DataType::kUInt8, {46341, 1}),
                                  Tensor(DataType::kUInt8, {1, 46341}), p, &y);
  EXPECT_FALSE(big.ok());
  EXPECT_FALSE(QuantizedAdd(Tensor(DataType::kFloat32, {4}), a, p, &y).ok());
}

}  // namespace
}  // namespace quantd
