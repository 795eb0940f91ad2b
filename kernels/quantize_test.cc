#include "kernels/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

QuantizeOptions Opts(int64_t axis, int64_t block_size = 0,
                     DataType type = DataType::kUInt8) {
  QuantizeOptions opts;
  opts.axis = axis;
  opts.block_size = block_size;
  opts.output_type = type;
  return opts;
}

DequantizeOptions DeOpts(int64_t axis, int64_t block_size = 0) {
  DequantizeOptions opts;
  opts.axis = axis;
  opts.block_size = block_size;
  return opts;
}

template <typename T>
std::vector<T> Quantized(const Tensor& x, const Tensor& scale, const Tensor* zp,
                         const QuantizeOptions& opts) {
  Tensor y;
  absl::Status s = QuantizeLinear(x, scale, zp, opts, &y);
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok()) return {};
  EXPECT_EQ(y.shape(), x.shape());
  return y.ToVector<T>();
}

std::vector<float> Dequantized(const Tensor& x, const Tensor& scale,
                               const Tensor* zp, DequantizeOptions opts = {}) {
  Tensor y;
  absl::Status s = DequantizeLinear(x, scale, zp, opts, &y);
  EXPECT_TRUE(s.ok()) << s;
  if (!s.ok()) return {};
  EXPECT_EQ(y.dtype(), DataType::kFloat32);
  EXPECT_EQ(y.shape(), x.shape());
  return y.ToVector<float>();
}

// The examples below are the ONNX operator documentation's.
TEST(QuantizeLinearTest, OnnxPerTensorExample) {
  Tensor x = Tensor::FromVector<float>({6}, {0, 2, 3, 1000, -254, -1000});
  Tensor zp = Tensor::Scalar<uint8_t>(128);
  EXPECT_THAT(Quantized<uint8_t>(x, Tensor::Scalar<float>(2), &zp, {}),
              ElementsAre(128, 129, 130, 255, 1, 0));
}

TEST(QuantizeLinearTest, OnnxPerAxisExample) {
  Tensor x = Tensor::FromVector<float>(
      {1, 3, 3, 2}, {-162, 10, -100, 232, -20, -50, -76, 0, 0, 252, 32, -44,
                     245, -485, -960, -270, -375, -470});
  Tensor scale = Tensor::FromVector<float>({3}, {2, 4, 5});
  Tensor zp = Tensor::FromVector<uint8_t>({3}, {84, 24, 196});
  EXPECT_THAT(Quantized<uint8_t>(x, scale, &zp, Opts(1)),
              ElementsAre(3, 89, 34, 200, 74, 59, 5, 24, 24, 87, 32, 13, 245,
                          99, 4, 142, 121, 102));
}

TEST(QuantizeLinearTest, OnnxBlockedExample) {
  Tensor x = Tensor::FromVector<float>(
      {3, 4}, {6, 12, 50, 5, 1, 8, 4, 5, 0, 20, 10, 4});
  Tensor scale =
      Tensor::FromVector<float>({3, 2}, {1.5, 2.5, 3.0, 4.9, 5.1, 6.9});
  Tensor zp = Tensor::FromVector<uint8_t>({3, 2}, {0, 1, 1, 0, 2, 3});
  EXPECT_THAT(Quantized<uint8_t>(x, scale, &zp, Opts(1, 2)),
              ElementsAre(4, 8, 21, 3, 1, 4, 1, 1, 2, 6, 4, 4));
}

TEST(QuantizeLinearTest, RoundsHalfToEvenAndSaturates) {
  Tensor x =
      Tensor::FromVector<float>({10}, {0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f,
                                       1000.f, -1000.f, 126.5f, -127.5f});
  QuantizeOptions opts;
  opts.output_type = DataType::kInt8;
  EXPECT_THAT(Quantized<int8_t>(x, Tensor::Scalar<float>(1), nullptr, opts),
              ElementsAre(0, 2, 2, 0, -2, -2, 127, -128, 126, -128));
}

TEST(QuantizeLinearTest, NonFiniteInputs) {
  const float inf = std::numeric_limits<float>::infinity();
  Tensor x = Tensor::FromVector<float>(
      {3}, {std::numeric_limits<float>::quiet_NaN(), inf, -inf});
  Tensor zp = Tensor::Scalar<uint8_t>(10);
  EXPECT_THAT(Quantized<uint8_t>(x, Tensor::Scalar<float>(0.1f), &zp, {}),
              ElementsAre(10, 255, 0));
}

TEST(QuantizeLinearTest, CallerRangeForInt4Groups) {
  // int4 symmetric weights in s8 storage, groups of 3 along the last axis.
  Tensor x = Tensor::FromVector<float>(
      {2, 6}, {-9, -1, 3, 7.4f, 20, 0.2f, 1, 2, 3, -4, -50, 6});
  Tensor scale = Tensor::FromVector<float>({2, 2}, {1, 1, 1, 2});
  QuantizeOptions opts;
  opts.output_type = DataType::kInt8;
  opts.axis = -1;
  opts.block_size = 3;
  opts.qmin = -8;
  opts.qmax = 7;
  EXPECT_THAT(Quantized<int8_t>(x, scale, nullptr, opts),
              ElementsAre(-8, -1, 3, 7, 7, 0, 1, 2, 3, -2, -8, 3));
}

TEST(QuantizeLinearTest, LastBlockMayBeShort) {
  Tensor x = Tensor::FromVector<float>({5}, {1, 2, 3, 4, 5});
  Tensor scale = Tensor::FromVector<float>({3}, {1, 2, 0.5f});
  QuantizeOptions opts;
  opts.axis = 0;
  opts.block_size = 2;
  EXPECT_THAT(Quantized<uint8_t>(x, scale, nullptr, opts),
              ElementsAre(1, 2, 2, 2, 10));
}

TEST(QuantizeLinearTest, ReusesOutputOfTheRightShape) {
  Tensor x = Tensor::FromVector<float>({2}, {1, 2});
  Tensor y(DataType::kUInt8, {2});
  const void* storage = y.raw_data();
  ASSERT_TRUE(
      QuantizeLinear(x, Tensor::Scalar<float>(1), nullptr, {}, &y).ok());
  EXPECT_EQ(y.raw_data(), storage);
  Tensor wrong(DataType::kInt8, {2});
  ASSERT_TRUE(
      QuantizeLinear(x, Tensor::Scalar<float>(1), nullptr, {}, &wrong).ok());
  EXPECT_EQ(wrong.dtype(), DataType::kUInt8);
}

// Against a scalar loop (float division as in ONNX, std::nearbyint), over
// layouts and sizes big enough for the threaded paths.
TEST(QuantizeLinearTest, MatchesScalarLoopOnRandomData) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> value(-300.f, 300.f);
  std::uniform_real_distribution<float> scale_dist(0.05f, 3.f);
  std::uniform_int_distribution<int> zp_dist(-20, 20);
  struct Case {
    Shape shape;
    int64_t axis;
    int64_t block;  // -1: per tensor
  };
  const std::vector<Case> cases = {
      {{100000}, 0, -1},    {{3, 70000}, 0, 0}, {{64, 33, 40}, 1, 0},
      {{64, 33, 40}, 2, 0}, {{16, 128}, 1, 32}, {{17, 100, 9}, 1, 7},
      {{300, 300}, 0, 64},  {{1}, 0, 0},        {{0, 5}, 1, 0},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(ShapeToString(c.shape));
    Tensor x(DataType::kFloat32, c.shape);
    for (float& v : x.mutable_span<float>()) v = value(rng);
    Shape sshape;
    if (c.block < 0) {
      sshape = {};
    } else if (c.block == 0) {
      sshape = {c.shape[c.axis]};
    } else {
      sshape = c.shape;
      sshape[c.axis] = (c.shape[c.axis] + c.block - 1) / c.block;
    }
    Tensor scale(DataType::kFloat32, sshape);
    Tensor zp(DataType::kInt8, sshape);
    for (float& v : scale.mutable_span<float>()) v = scale_dist(rng);
    for (int8_t& v : zp.mutable_span<int8_t>()) v = zp_dist(rng);
    QuantizeOptions opts;
    opts.output_type = DataType::kInt8;
    opts.axis = c.axis;
    opts.block_size = std::max<int64_t>(c.block, 0);
    std::vector<int8_t> got = Quantized<int8_t>(x, scale, &zp, opts);
    ASSERT_EQ(static_cast<int64_t>(got.size()), x.num_elements());

    // Index of the parameters for element (o, d, i) of x seen as
    // [outer, axis, inner].
    int64_t outer = 1, inner = 1;
    for (int i = 0; i < c.axis; ++i) outer *= c.shape[i];
    for (size_t i = c.axis + 1; i < c.shape.size(); ++i) inner *= c.shape[i];
    const int64_t dim = c.shape.empty() ? 1 : c.shape[c.axis];
    std::vector<int8_t> want(got.size());
    std::vector<float> back_want(got.size());
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t d = 0; d < dim; ++d) {
        for (int64_t i = 0; i < inner; ++i) {
          const int64_t idx = (o * dim + d) * inner + i;
          int64_t p = 0;
          if (c.block == 0) p = d;
          if (c.block > 0) {
            p = (o * ((dim + c.block - 1) / c.block) + d / c.block) * inner + i;
          }
          const float s = scale.data<float>()[p];
          const int z = zp.data<int8_t>()[p];
          float r = std::nearbyint(x.data<float>()[idx] / s) + z;
          want[idx] = static_cast<int8_t>(std::clamp(r, -128.f, 127.f));
          back_want[idx] = static_cast<float>(want[idx] - z) * s;
        }
      }
    }
    ASSERT_THAT(got, ElementsAreArray(want));

    Tensor q = Tensor::FromVector<int8_t>(c.shape, got);
    EXPECT_THAT(Dequantized(q, scale, &zp, DeOpts(c.axis, opts.block_size)),
                ElementsAreArray(back_want));
  }
}

TEST(DequantizeLinearTest, OnnxExample) {
  Tensor x = Tensor::FromVector<uint8_t>({4}, {0, 3, 128, 255});
  Tensor zp = Tensor::Scalar<uint8_t>(128);
  EXPECT_THAT(Dequantized(x, Tensor::Scalar<float>(2), &zp),
              ElementsAre(-256, -250, 0, 254));
}

TEST(DequantizeLinearTest, PerAxisS8) {
  Tensor x = Tensor::FromVector<int8_t>({2, 3}, {-128, 0, 127, 1, 2, 3});
  Tensor scale = Tensor::FromVector<float>({3}, {1, 0.5f, 2});
  Tensor zp = Tensor::FromVector<int8_t>({3}, {0, 2, -1});
  EXPECT_THAT(Dequantized(x, scale, &zp, DeOpts(-1)),
              ElementsAre(-128, -1, 256, 1, 0, 8));
}

TEST(DequantizeLinearTest, Int32WithoutZeroPoint) {
  Tensor x = Tensor::FromVector<int32_t>({3}, {-2000000000, 7, 2000000000});
  EXPECT_THAT(Dequantized(x, Tensor::Scalar<float>(0.5f), nullptr),
              ElementsAre(-1e9f, 3.5f, 1e9f));
}

TEST(QuantizeLinearTest, RejectsBadArguments) {
  Tensor x = Tensor::FromVector<float>({2, 3}, {1, 2, 3, 4, 5, 6});
  Tensor y;
  auto expect_invalid = [&](const Tensor& in, const Tensor& scale,
                            const Tensor* zp, const QuantizeOptions& opts,
                            const char* message) {
    absl::Status s = QuantizeLinear(in, scale, zp, opts, &y);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(s.message(), HasSubstr(message));
  };
  Tensor one = Tensor::Scalar<float>(1);
  expect_invalid(Tensor::FromVector<int8_t>({1}, {1}), one, nullptr, {},
                 "expected f32");
  expect_invalid(x, Tensor::Scalar<float>(0), nullptr, {}, "positive finite");
  expect_invalid(x, Tensor::Scalar<float>(-1), nullptr, {}, "positive finite");
  expect_invalid(x, Tensor::FromVector<float>({2}, {1, 1}), nullptr, Opts(1),
                 "per-axis");
  expect_invalid(x, Tensor::FromVector<float>({3}, {1, 1, 1}), nullptr, Opts(2),
                 "out of range");
  expect_invalid(x, Tensor::FromVector<float>({2, 1}, {1, 1}), nullptr,
                 Opts(1, 2), "blocks of 2");
  expect_invalid(x, one, nullptr, Opts(1, -1), "block_size");
  Tensor s8_zp = Tensor::Scalar<int8_t>(0);
  expect_invalid(x, one, &s8_zp, {}, "zero_point is s8, expected u8");
  Tensor zp_shape = Tensor::FromVector<uint8_t>({1}, {0});
  expect_invalid(x, Tensor::FromVector<float>({3}, {1, 1, 1}), &zp_shape,
                 Opts(1), "scale's shape");
  QuantizeOptions narrow;
  narrow.qmin = 0;
  narrow.qmax = 15;
  Tensor big_zp = Tensor::Scalar<uint8_t>(100);
  expect_invalid(x, one, &big_zp, narrow, "outside [0, 15]");
  QuantizeOptions inverted;
  inverted.qmin = 5;
  inverted.qmax = 4;
  expect_invalid(x, one, nullptr, inverted, "is empty");
  QuantizeOptions wide;
  wide.output_type = DataType::kInt8;
  wide.qmax = 200;
  expect_invalid(x, one, nullptr, wide, "outside the s8 range");
  QuantizeOptions s32;
  s32.output_type = DataType::kInt32;
  expect_invalid(x, one, nullptr, s32, "expected u8 or s8");
}

TEST(DequantizeLinearTest, RejectsBadArguments) {
  Tensor y;
  Tensor one = Tensor::Scalar<float>(1);
  EXPECT_EQ(DequantizeLinear(Tensor::FromVector<float>({1}, {1}), one, nullptr,
                             {}, &y)
                .code(),
            absl::StatusCode::kInvalidArgument);
  Tensor x = Tensor::FromVector<uint8_t>({2}, {1, 2});
  Tensor s8_zp = Tensor::Scalar<int8_t>(0);
  EXPECT_EQ(DequantizeLinear(x, one, &s8_zp, {}, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(DequantizeLinear(x, Tensor::FromVector<float>({3}, {1, 1, 1}),
                             nullptr, DeOpts(0), &y)
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// The three examples of ONNX's DynamicQuantizeLinear documentation.
TEST(DynamicQuantizeLinearTest, OnnxExamples) {
  struct Case {
    std::vector<float> x;
    float scale;
    int32_t zero_point;
    std::vector<uint8_t> y;
  };
  const std::vector<Case> cases = {
      {{0, 2, -3, -2.5f, 1.34f, 0.5f},
       5.f / 255,
       153,
       {153, 255, 0, 26, 221, 179}},
      {{-1.f, -2.1f, -1.3f, -2.5f, -3.34f, -4.f},  // max adjusted up to 0
       4.f / 255,
       255,
       {191, 121, 172, 96, 42, 0}},
      {{1, 2.1f, 1.3f, 2.5f, 3.34f, 4, 1.5f, 2.6f, 3.9f, 4, 3, 2.345f},
       4.f / 255,  // min adjusted down to 0
       0,
       {64, 134, 83, 159, 213, 255, 96, 166, 249, 255, 191, 149}},
  };
  for (const Case& c : cases) {
    Tensor x =
        Tensor::FromVector<float>({static_cast<int64_t>(c.x.size())}, c.x);
    for (bool reference : {false, true}) {
      SCOPED_TRACE(reference ? "reference" : "kernel");
      Tensor y;
      DynamicQuantParams p;
      absl::Status s = reference ? DynamicQuantizeLinearReference(x, &y, &p)
                                 : DynamicQuantizeLinear(x, &y, &p);
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(p.scale, c.scale);
      EXPECT_EQ(p.zero_point, c.zero_point);
      EXPECT_THAT(y.ToVector<uint8_t>(), ElementsAreArray(c.y));
    }
  }
}

TEST(DynamicQuantizeLinearTest, ZeroRangeUsesScaleOne) {
  // All zeros, empty, and a range of denormals whose /255 underflows: scale
  // 1 (as ONNX Runtime), zero point 0, y all 0; no division by zero.
  const float tiny = std::numeric_limits<float>::denorm_min();
  for (const Tensor& x : {Tensor::Zeros(DataType::kFloat32, {2, 3}),
                          Tensor(DataType::kFloat32, {0, 4}),
                          Tensor::FromVector<float>({3}, {tiny, -tiny, 0.f})}) {
    for (bool reference : {false, true}) {
      Tensor y;
      DynamicQuantParams p;
      absl::Status s = reference ? DynamicQuantizeLinearReference(x, &y, &p)
                                 : DynamicQuantizeLinear(x, &y, &p);
      ASSERT_TRUE(s.ok()) << s;
      EXPECT_EQ(p.scale, 1.f);
      EXPECT_EQ(p.zero_point, 0);
      EXPECT_EQ(y.shape(), x.shape());
      for (uint8_t v : y.ToVector<uint8_t>()) EXPECT_EQ(v, 0);
    }
  }
}

TEST(DynamicQuantizeLinearTest, NanIsLeftOutOfTheRangeAndQuantizesToZp) {
  Tensor x = Tensor::FromVector<float>(
      {4}, {std::numeric_limits<float>::quiet_NaN(), -1.f, 3.f, 0.f});
  for (bool reference : {false, true}) {
    Tensor y;
    DynamicQuantParams p;
    absl::Status s = reference ? DynamicQuantizeLinearReference(x, &y, &p)
                               : DynamicQuantizeLinear(x, &y, &p);
    ASSERT_TRUE(s.ok()) << s;
    EXPECT_EQ(p.scale, 4.f / 255);
    EXPECT_EQ(p.zero_point, 64);  // 63.75
    EXPECT_THAT(y.ToVector<uint8_t>(), ElementsAre(64, 0, 255, 64));
  }
}

TEST(DynamicQuantizeLinearTest, RejectsNonFiniteRanges) {
  const float inf = std::numeric_limits<float>::infinity();
  const float big = std::numeric_limits<float>::max();
  for (const Tensor& x : {Tensor::FromVector<float>({2}, {1.f, inf}),
                          Tensor::FromVector<float>({2}, {-inf, 1.f}),
                          Tensor::FromVector<float>({2}, {-big, big})}) {
    Tensor y;
    EXPECT_EQ(DynamicQuantizeLinear(x, &y, nullptr).code(),
              absl::StatusCode::kInvalidArgument);
    EXPECT_EQ(DynamicQuantizeLinearReference(x, &y, nullptr).code(),
              absl::StatusCode::kInvalidArgument);
  }
  Tensor y;
  absl::Status s =
      DynamicQuantizeLinear(Tensor::FromVector<int8_t>({1}, {1}), &y, nullptr);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("expected f32"));
}

// Kernel (threaded min/max, QuantizeLinear's rows) against the reference's
// scalar loops: bit-identical parameters and values, over ranges that are
// all positive, all negative or straddle zero, sizes past the threading
// thresholds, and ties (values on exact half steps).
TEST(DynamicQuantizeLinearTest, MatchesReferenceOnRandomData) {
  std::mt19937 rng(11);
  struct Case {
    Shape shape;
    float lo, hi;
  };
  const std::vector<Case> cases = {
      {{1}, -2.f, 3.f},          {{7}, 0.5f, 9.f},
      {{5, 9}, -9.f, -0.25f},    {{64, 33, 40}, -3.f, 11.f},
      {{100000}, -1e-3f, 1e-3f}, {{3, 70000}, -500.f, 20.f},
      {{2, 1, 28, 28}, 0.f, 1.f}};
  for (const Case& c : cases) {
    SCOPED_TRACE(ShapeToString(c.shape));
    std::uniform_real_distribution<float> dist(c.lo, c.hi);
    Tensor x(DataType::kFloat32, c.shape);
    for (float& v : x.mutable_span<float>()) v = dist(rng);
    Tensor y, y_ref;
    DynamicQuantParams p, p_ref;
    ASSERT_TRUE(DynamicQuantizeLinear(x, &y, &p).ok());
    ASSERT_TRUE(DynamicQuantizeLinearReference(x, &y_ref, &p_ref).ok());
    EXPECT_EQ(p.scale, p_ref.scale);
    EXPECT_EQ(p.zero_point, p_ref.zero_point);
    ASSERT_THAT(y.ToVector<uint8_t>(),
                ElementsAreArray(y_ref.ToVector<uint8_t>()));
    absl::StatusOr<DynamicQuantParams> alone = ComputeDynamicQuantParams(x);
    ASSERT_TRUE(alone.ok());
    EXPECT_EQ(alone->scale, p.scale);
    EXPECT_EQ(alone->zero_point, p.zero_point);

    // Values on exact half steps of the chosen scale exercise ties.
    Tensor ties(DataType::kFloat32, c.shape);
    float* t = ties.mutable_data<float>();
    for (int64_t i = 0; i < ties.num_elements(); ++i) {
      t[i] = (static_cast<float>(i % 511) * 0.5f - 127.f) * p.scale;
    }
    ASSERT_TRUE(DynamicQuantizeLinear(ties, &y, &p).ok());
    ASSERT_TRUE(DynamicQuantizeLinearReference(ties, &y_ref, &p_ref).ok());
    EXPECT_EQ(p.scale, p_ref.scale);
    EXPECT_EQ(p.zero_point, p_ref.zero_point);
    ASSERT_THAT(y.ToVector<uint8_t>(),
                ElementsAreArray(y_ref.ToVector<uint8_t>()));
  }
}

}  // namespace
}  // namespace quantd
