#include "kernels/pooling.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor Range(const Shape& shape) {
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = static_cast<float>(i + 1);
  }
  return t;
}

std::vector<float> RunPool(const PoolParams& p, const Tensor& x) {
  PoolingForward pool(p);
  Tensor y;
  absl::Status s = pool.Forward(x, &y);
  EXPECT_TRUE(s.ok()) << s;
  return s.ok() ? y.ToVector<float>() : std::vector<float>();
}

// The ONNX backend test "maxpool_2d_ceil".
TEST(PoolingTest, OnnxMaxPoolCeil) {
  PoolParams p;
  p.kernel = {3, 3};
  p.strides = {2, 2};
  p.ceil_mode = true;
  EXPECT_EQ(RunPool(p, Range({1, 1, 4, 4})),
            (std::vector<float>{11, 12, 15, 16}));
}

TEST(PoolingTest, AveragePaddingRules) {
  PoolParams p;
  p.kind = PoolKind::kAverage;
  p.kernel = {3};
  p.pads = {1, 1};
  const Tensor x = Range({1, 1, 5});
  EXPECT_EQ(RunPool(p, x), (std::vector<float>{1.5f, 2, 3, 4, 4.5f}));
  p.count_include_pad = true;
  EXPECT_EQ(RunPool(p, x), (std::vector<float>{1, 2, 3, 4, 3}));
  // ceil_mode adds a window past the (zero) end padding; only the taps
  // inside the padded input count, even with count_include_pad.
  PoolParams c;
  c.kind = PoolKind::kAverage;
  c.kernel = {2};
  c.strides = {2};
  c.ceil_mode = true;
  c.count_include_pad = true;
  EXPECT_EQ(RunPool(c, x), (std::vector<float>{1.5f, 3.5f, 5}));
  c.pads = {0, 1};  // now the last window's second tap is padding
  EXPECT_EQ(RunPool(c, x), (std::vector<float>{1.5f, 3.5f, 2.5f}));
}

TEST(PoolingTest, OutputShapeRules) {
  PoolParams p;
  p.kernel = {2};
  p.strides = {2};
  p.pads = {1, 1};
  EXPECT_EQ(*PoolOutputShape(p, {1, 1, 5}), (Shape{1, 1, 3}));
  p.ceil_mode = true;  // the 4th window would start in the end padding
  EXPECT_EQ(*PoolOutputShape(p, {1, 1, 5}), (Shape{1, 1, 3}));
  p.pads = {0, 0};
  EXPECT_EQ(*PoolOutputShape(p, {1, 1, 5}), (Shape{1, 1, 3}));
  p.ceil_mode = false;
  EXPECT_EQ(*PoolOutputShape(p, {1, 1, 5}), (Shape{1, 1, 2}));
  p.kernel = {3};
  p.strides = {2};
  p.auto_pad = AutoPad::kSameUpper;
  absl::StatusOr<PoolGeometry> g = ResolvePoolGeometry(p, {1, 1, 6});
  ASSERT_TRUE(g.ok());
  EXPECT_EQ(g->output_shape, (Shape{1, 1, 3}));
  EXPECT_EQ(g->pad_begin[0], 0);
  EXPECT_EQ(g->pad_end[0], 1);
  p.auto_pad = AutoPad::kSameLower;
  g = ResolvePoolGeometry(p, {1, 1, 6});
  EXPECT_EQ(g->pad_begin[0], 1);
  p.auto_pad = AutoPad::kValid;
  EXPECT_EQ(*PoolOutputShape(p, {1, 1, 6}), (Shape{1, 1, 2}));
  EXPECT_EQ(*PoolOutputShape(GlobalPoolParams(PoolKind::kMax), {2, 3, 7, 5}),
            (Shape{2, 3, 1, 1}));
}

// Random configurations, each compared with the reference.
TEST(PoolingTest, MatchesReferenceOnRandomConfigurations) {
  std::mt19937 rng(42);
  auto uniform = [&](int lo, int hi) {
    return std::uniform_int_distribution<int>(lo, hi)(rng);
  };
  std::normal_distribution<float> normal(0.f, 3.f);
  int compared = 0;
  for (int trial = 0; trial < 600; ++trial) {
    PoolParams p;
    const int n = trial % 4 == 3 ? 4 : 1 + trial % 3;  // 4-D runs the loop
    p.kind = uniform(0, 1) ? PoolKind::kMax : PoolKind::kAverage;
    p.count_include_pad = uniform(0, 1);
    p.ceil_mode = uniform(0, 1);
    p.auto_pad = static_cast<AutoPad>(uniform(0, 5) < 3 ? 0 : uniform(0, 3));
    p.global = uniform(0, 15) == 0;
    Shape shape = {uniform(1, 2), uniform(1, 3)};
    for (int d = 0; d < n; ++d) {
      shape.push_back(uniform(1, n == 4 ? 4 : 9));
      p.kernel.push_back(uniform(1, 4));
      p.strides.push_back(uniform(1, 3));
      p.dilations.push_back(uniform(1, 2));
    }
    for (int d = 0; d < 2 * n; ++d) {
      const int k = d % n;
      p.pads.push_back(uniform(0, (p.kernel[k] - 1) * p.dilations[k]));
    }
    DataType type = DataType::kFloat32;
    if (p.kind == PoolKind::kMax && uniform(0, 3) == 0) {
      type = uniform(0, 1) ? DataType::kInt8 : DataType::kUInt8;
    }
    if (!PoolOutputShape(p, shape).ok()) continue;  // e.g. kernel too big
    Tensor x(type, shape);
    for (int64_t i = 0; i < x.num_elements(); ++i) {
      const float v = normal(rng);
      if (type == DataType::kFloat32) x.mutable_data<float>()[i] = v;
      // Clamped: a float outside the integer type's range converts with
      // undefined behaviour (UBSan: float-cast-overflow).
      if (type == DataType::kInt8) {
        x.mutable_data<int8_t>()[i] =
            static_cast<int8_t>(std::clamp(v * 30.f, -128.f, 127.f));
      }
      if (type == DataType::kUInt8) {
        x.mutable_data<uint8_t>()[i] =
            static_cast<uint8_t>(std::clamp(v * 30.f + 128.f, 0.f, 255.f));
      }
    }
    PoolingForward pool(p);
    Tensor got, want;
    absl::Status st = pool.Forward(x, &got);
    ASSERT_TRUE(st.ok()) << trial << " " << st << " " << x.DebugString();
    ASSERT_TRUE(PoolReference(p, x, &want).ok()) << trial;
    ASSERT_EQ(got.shape(), want.shape()) << trial;
    for (int64_t i = 0; i < want.num_elements(); ++i) {
      if (type != DataType::kFloat32) {
        ASSERT_EQ(std::memcmp(got.raw_data(), want.raw_data(), got.byte_size()),
                  0)
            << trial;
        break;
      }
      // Sums of at most 64 taps in a different order: 1e-5 relative.
      const float g = got.data<float>()[i], w = want.data<float>()[i];
      if (std::isnan(w)) {  // a dilated window that misses the input
        ASSERT_TRUE(std::isnan(g)) << trial;
        continue;
      }
      ASSERT_NEAR(g, w, 1e-5 * std::fabs(w) + 1e-6)
          << "trial " << trial << " " << x.DebugString() << " at " << i;
    }
    ++compared;
  }
  EXPECT_GT(compared, 300);
}

TEST(PoolingTest, GlobalPoolingAndEmptyBatches) {
  std::mt19937 rng(8);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const Shape& shape : std::vector<Shape>{
           {2, 3, 7}, {2, 3, 5, 6}, {1, 4, 2, 3, 4}, {1, 2, 2, 2, 2, 2}}) {
    for (PoolKind kind : {PoolKind::kMax, PoolKind::kAverage}) {
      Tensor x(DataType::kFloat32, shape);
      for (float& v : x.mutable_span<float>()) v = dist(rng);
      PoolingForward pool(GlobalPoolParams(kind));
      Tensor got, want;
      ASSERT_TRUE(pool.Forward(x, &got).ok());
      ASSERT_TRUE(PoolReference(GlobalPoolParams(kind), x, &want).ok());
      ASSERT_EQ(got.shape()[2], 1);
      for (int64_t i = 0; i < want.num_elements(); ++i) {
        ASSERT_NEAR(got.data<float>()[i], want.data<float>()[i], 1e-6);
      }
    }
  }
  PoolParams p;
  p.kernel = {2, 2};
  PoolingForward pool(p);
  Tensor y;
  ASSERT_TRUE(pool.Forward(Tensor(DataType::kFloat32, {0, 3, 4, 4}), &y).ok());
  EXPECT_EQ(y.shape(), (Shape{0, 3, 3, 3}));
}

TEST(PoolingTest, RejectsBadParameters) {
  const Tensor x(DataType::kFloat32, {1, 1, 4, 4});
  Tensor y;
  auto code = [&](PoolParams p, const Tensor& in) {
    PoolingForward pool(p);
    return pool.Forward(in, &y).code();
  };
  PoolParams p;
  p.kernel = {2, 2};
  const auto kBad = absl::StatusCode::kInvalidArgument;
  EXPECT_EQ(code(p, Tensor(DataType::kFloat32, {4, 4})), kBad);  // rank 2
  EXPECT_EQ(code(p, Tensor(DataType::kInt64, {1, 1, 4, 4})), kBad);
  PoolParams avg = p;
  avg.kind = PoolKind::kAverage;
  EXPECT_EQ(code(avg, Tensor(DataType::kInt8, {1, 1, 4, 4})), kBad);
  PoolParams q = p;
  q.kernel = {2};
  EXPECT_EQ(code(q, x), kBad);
  q = p;
  q.kernel = {};
  EXPECT_EQ(code(q, x), kBad);
  q = p;
  q.strides = {0, 1};
  EXPECT_EQ(code(q, x), kBad);
  q = p;
  q.pads = {0, 0, -1, 0};
  EXPECT_EQ(code(q, x), kBad);
  q = p;
  q.pads = {2, 0, 0, 0};  // not smaller than the kernel
  EXPECT_EQ(code(q, x), kBad);
  q = p;
  q.kernel = {5, 5};  // larger than the input
  EXPECT_EQ(code(q, x), kBad);
  EXPECT_EQ(code(GlobalPoolParams(PoolKind::kMax),
                 Tensor(DataType::kFloat32, {1, 1, 0})),
            kBad);
  PoolingForward pool(p);
  EXPECT_EQ(pool.Forward(x, nullptr).code(), kBad);
}

}  // namespace
}  // namespace quantd

namespace quantd {
namespace {

// Plain u8 pools channels-last (oneDNN's plain int8 pooling is its slow
// reference) with the same values; an empty u8 input takes the loop and
// returns (it once recursed between the two layouts until the stack ran
// out).
TEST(PoolingTest, PlainU8PoolsLikeChannelsLastAndEmptyInputsReturn) {
  PoolParams p;
  p.kind = PoolKind::kMax;
  p.kernel = {3, 3};
  p.strides = {2, 2};
  p.pads = {1, 1, 1, 1};
  Tensor x(DataType::kUInt8, {2, 5, 9, 7});
  for (int64_t i = 0; i < x.num_elements(); ++i) {
    x.mutable_data<uint8_t>()[i] = static_cast<uint8_t>((i * 37) % 251);
  }
  Tensor y, want;
  PoolingForward pool(p);
  ASSERT_TRUE(pool.Forward(x, &y).ok());
  EXPECT_FALSE(y.channels_last());
  ASSERT_TRUE(PoolReference(p, x, &want).ok());
  EXPECT_EQ(y.ToVector<uint8_t>(), want.ToVector<uint8_t>());
  Tensor empty(DataType::kUInt8, {0, 5, 9, 7});
  absl::Status s = pool.Forward(empty, &y);
  EXPECT_TRUE(s.ok()) << s;
  EXPECT_EQ(y.num_elements(), 0);
}

}  // namespace
}  // namespace quantd
