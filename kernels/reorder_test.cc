#include "kernels/reorder.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

const DataType kAllTypes[] = {
    DataType::kFloat32, DataType::kFloat16, DataType::kInt8, DataType::kUInt8,
    DataType::kInt32,   DataType::kInt64,   DataType::kBool};

// Random bytes are valid values of every type except bool (0/1 only) and
// floats, where they would be mostly huge or NaN; those get real values.
Tensor RandomTensor(DataType type, const Shape& shape, std::mt19937* rng) {
  Tensor t(type, shape);
  std::uniform_real_distribution<float> real(-300.f, 300.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    switch (type) {
      case DataType::kFloat32:  // with -0.0 to catch sign-losing moves
        t.mutable_data<float>()[i] = i % 7 == 3 ? -0.f : real(*rng);
        break;
      case DataType::kFloat16:
        static_cast<uint16_t*>(t.mutable_raw_data())[i] =
            i % 7 == 3 ? 0x8000 : HalfBitsFromFloat(real(*rng));
        break;
      case DataType::kBool:
        t.mutable_data<uint8_t>()[i] = (*rng)() & 1;
        break;
      default: {
        char* p =
            static_cast<char*>(t.mutable_raw_data()) + i * DataTypeSize(type);
        for (size_t b = 0; b < DataTypeSize(type); ++b) p[b] = (*rng)() & 0xff;
      }
    }
  }
  return t;
}

// Bitwise equality, except that any NaN equals any NaN.
bool SameElement(const Tensor& a, const Tensor& b, int64_t i) {
  size_t size = DataTypeSize(a.dtype());
  if (a.dtype() == DataType::kFloat32 && std::isnan(a.data<float>()[i])) {
    return std::isnan(b.data<float>()[i]);
  }
  if (a.dtype() == DataType::kFloat16) {
    float fa = FloatFromHalfBits(static_cast<const uint16_t*>(a.raw_data())[i]);
    float fb = FloatFromHalfBits(static_cast<const uint16_t*>(b.raw_data())[i]);
    if (std::isnan(fa)) return std::isnan(fb);
  }
  return std::memcmp(static_cast<const char*>(a.raw_data()) + i * size,
                     static_cast<const char*>(b.raw_data()) + i * size,
                     size) == 0;
}

void ExpectSameTensor(const Tensor& got, const Tensor& want,
                      const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    ASSERT_TRUE(SameElement(got, want, i)) << what << " element " << i;
  }
}

TEST(TransposeTest, MatchesReferenceForManyShapesPermsAndTypes) {
  std::mt19937 rng(1234);
  const std::vector<Shape> shapes = {{},
                                     {7},
                                     {1},
                                     {3, 5},
                                     {1, 4},
                                     {5, 1},
                                     {2, 3, 4},
                                     {4, 1, 3},
                                     {0, 3},
                                     {2, 0, 5},
                                     {2, 3, 4, 5},
                                     {3, 1, 8, 16},
                                     {2, 2, 1, 3, 2},
                                     {64, 33},
                                     {3, 2, 2, 3, 2, 2},
                                     {17, 31, 5},
                                     {8, 512},
                                     {8, 8},
                                     {16, 8, 8}};
  int cases = 0;
  for (DataType type : kAllTypes) {
    for (const Shape& shape : shapes) {
      std::vector<int64_t> perm(shape.size());
      std::iota(perm.begin(), perm.end(), 0);
      for (int trial = 0; trial < 4; ++trial) {
        std::shuffle(perm.begin(), perm.end(), rng);
        Tensor x = RandomTensor(type, shape, &rng);
        TransposeForward t(perm);
        Tensor got, want;
        ASSERT_TRUE(t.Forward(x, &got).ok());
        ASSERT_TRUE(TransposeReference(x, perm, &want).ok());
        ExpectSameTensor(
            got, want,
            x.DebugString() + " perm trial " + std::to_string(trial));
        ++cases;
      }
    }
  }
  EXPECT_GT(cases, 400);
}

TEST(TransposeTest, KnownValuesAndDefaultPermReverses) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  TransposeForward t;
  Tensor y;
  ASSERT_TRUE(t.Forward(x, &y).ok());
  EXPECT_EQ(y.shape(), (Shape{3, 2}));
  EXPECT_EQ(y.ToVector<float>(), (std::vector<float>{1, 4, 2, 5, 3, 6}));
}

TEST(TransposeTest, HighRankFallsBackAndStaysCorrect) {
  std::mt19937 rng(7);
  // 13 dims of 2 reversed cannot be merged and exceed oneDNN's 12 dims.
  Shape shape(13, 2);
  std::vector<int64_t> perm(13);
  for (int i = 0; i < 13; ++i) perm[i] = 12 - i;
  for (DataType type : {DataType::kFloat32, DataType::kInt64}) {
    Tensor x = RandomTensor(type, shape, &rng);
    TransposeForward t(perm);
    Tensor got, want;
    ASSERT_TRUE(t.Forward(x, &got).ok());
    ASSERT_TRUE(TransposeReference(x, perm, &want).ok());
    ExpectSameTensor(got, want, "rank 13");
  }
}

TEST(TransposeTest, ReusesOutputButNotTheInputItself) {
  Tensor x = Tensor::FromVector<int32_t>({2, 2}, {1, 2, 3, 4});
  TransposeForward t({1, 0});
  Tensor y(DataType::kInt32, {2, 2});
  const void* storage = y.raw_data();
  ASSERT_TRUE(t.Forward(x, &y).ok());
  EXPECT_EQ(y.raw_data(), storage);
  Tensor alias = x;
  ASSERT_TRUE(t.Forward(x, &alias).ok());
  EXPECT_NE(alias.raw_data(), x.raw_data());
  EXPECT_EQ(alias.ToVector<int32_t>(), (std::vector<int32_t>{1, 3, 2, 4}));
  EXPECT_EQ(x.ToVector<int32_t>(), (std::vector<int32_t>{1, 2, 3, 4}));
}

TEST(TransposeTest, RejectsBadPermutations) {
  Tensor x(DataType::kFloat32, {2, 3, 4});
  Tensor y;
  for (std::vector<int64_t> perm : std::vector<std::vector<int64_t>>{
           {0, 1}, {0, 1, 1}, {0, 1, 3}, {-1, 0, 1}, {0, 1, 2, 3}}) {
    TransposeForward t(perm);
    EXPECT_EQ(t.Forward(x, &y).code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(TransposeOutputShape(x.shape(), perm).ok());
  }
  TransposeForward t;
  EXPECT_EQ(t.Forward(Tensor(), &y).code(), absl::StatusCode::kInvalidArgument);
}

// Values that exercise every rule: rounding, saturation, NaN, inf, f16
// overflow and subnormals, int wrap-around.
Tensor SpecialFloats() {
  const float inf = std::numeric_limits<float>::infinity();
  return Tensor::FromVector<float>({22},
                                   {0.f,
                                    -0.f,
                                    0.5f,
                                    -0.5f,
                                    2.7f,
                                    -2.7f,
                                    127.9f,
                                    -128.9f,
                                    255.9f,
                                    256.f,
                                    3e9f,
                                    -3e9f,
                                    1e20f,
                                    -1e20f,
                                    inf,
                                    -inf,
                                    std::numeric_limits<float>::quiet_NaN(),
                                    65504.f,
                                    65520.f,
                                    1e-8f,
                                    6.1e-5f,
                                    1.00048828125f});
}

TEST(CastTest, MatchesReferenceForEveryTypePair) {
  std::mt19937 rng(99);
  int cases = 0;
  for (DataType from : kAllTypes) {
    for (DataType to : kAllTypes) {
      std::vector<Tensor> inputs = {RandomTensor(from, {1000}, &rng),
                                    RandomTensor(from, {3, 0}, &rng),
                                    RandomTensor(from, {}, &rng)};
      if (from == DataType::kFloat32) inputs.push_back(SpecialFloats());
      for (const Tensor& x : inputs) {
        CastForward cast(to);
        Tensor got, want;
        ASSERT_TRUE(cast.Forward(x, &got).ok());
        ASSERT_TRUE(CastReference(x, to, &want).ok());
        ExpectSameTensor(got, want,
                         std::string(DataTypeName(from)) + "->" +
                             DataTypeName(to) + " " + x.DebugString());
        ++cases;
      }
    }
  }
  EXPECT_EQ(cases, 7 * 7 * 3 + 7);
}

TEST(CastTest, KnownValues) {
  Tensor x = Tensor::FromVector<float>(
      {6}, {2.7f, -2.7f, 300.f, -1.f, std::nanf(""), 0.f});
  CastForward to_u8(DataType::kUInt8), to_s32(DataType::kInt32),
      to_bool(DataType::kBool);
  Tensor y;
  ASSERT_TRUE(to_u8.Forward(x, &y).ok());
  EXPECT_EQ(y.ToVector<uint8_t>(), (std::vector<uint8_t>{2, 0, 255, 0, 0, 0}));
  ASSERT_TRUE(to_s32.Forward(x, &y).ok());
  EXPECT_EQ(y.ToVector<int32_t>(),
            (std::vector<int32_t>{2, -2, 300, -1, 0, 0}));
  ASSERT_TRUE(to_bool.Forward(x, &y).ok());
  EXPECT_EQ(y.ToVector<uint8_t>(), (std::vector<uint8_t>{1, 1, 1, 1, 1, 0}));
  Tensor big = Tensor::FromVector<int64_t>({2}, {300, -129});
  CastForward to_s8(DataType::kInt8);
  ASSERT_TRUE(to_s8.Forward(big, &y).ok());  // integer narrowing wraps
  EXPECT_EQ(y.ToVector<int8_t>(), (std::vector<int8_t>{44, 127}));
}

TEST(CastTest, HalfBitsRoundTripEveryPattern) {
  for (uint32_t h = 0; h < 65536; ++h) {
    float f = FloatFromHalfBits(static_cast<uint16_t>(h));
    if (std::isnan(f)) continue;
    ASSERT_EQ(HalfBitsFromFloat(f), h) << h;
  }
  EXPECT_EQ(HalfBitsFromFloat(1.f), 0x3c00);
  EXPECT_EQ(HalfBitsFromFloat(65520.f), 0x7c00);         // rounds up to inf
  EXPECT_EQ(HalfBitsFromFloat(1.00048828125f), 0x3c00);  // tie to even
  EXPECT_FLOAT_EQ(FloatFromHalfBits(0x0001), 5.9604645e-8f);
}

TEST(CastTest, EveryHalfPatternWidensExactly) {
  Tensor h(DataType::kFloat16, {65536});
  for (uint32_t i = 0; i < 65536; ++i) {
    static_cast<uint16_t*>(h.mutable_raw_data())[i] = static_cast<uint16_t>(i);
  }
  CastForward widen(DataType::kFloat32);
  Tensor f;
  ASSERT_TRUE(widen.Forward(h, &f).ok());
  for (uint32_t i = 0; i < 65536; ++i) {
    const float want = FloatFromHalfBits(static_cast<uint16_t>(i));
    const float got = f.data<float>()[i];
    if (std::isnan(want)) {
      ASSERT_TRUE(std::isnan(got)) << i;
    } else {
      ASSERT_EQ(std::memcmp(&got, &want, 4), 0) << i;  // keeps -0.0
    }
  }
}

TEST(CastTest, RejectsUndefined) {
  Tensor y;
  CastForward bad(DataType::kUndefined);
  EXPECT_EQ(bad.Forward(Tensor::Scalar<float>(1), &y).code(),
            absl::StatusCode::kInvalidArgument);
  CastForward ok(DataType::kFloat32);
  EXPECT_EQ(ok.Forward(Tensor(), &y).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
