#include "kernels/binary.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

const BinaryOp kAllOps[] = {
    BinaryOp::kAdd,     BinaryOp::kSub,         BinaryOp::kMul,
    BinaryOp::kDiv,     BinaryOp::kMax,         BinaryOp::kMin,
    BinaryOp::kPow,     BinaryOp::kEqual,       BinaryOp::kLess,
    BinaryOp::kGreater, BinaryOp::kLessOrEqual, BinaryOp::kGreaterOrEqual};

std::vector<std::pair<Shape, Shape>> ShapePairs() {
  std::vector<std::pair<Shape, Shape>> pairs = {
      {{}, {}},
      {{5}, {}},
      {{}, {5}},
      {{3, 4}, {3, 4}},
      {{3, 4}, {4}},
      {{4}, {3, 4}},
      {{3, 1}, {1, 4}},
      {{2, 3, 4}, {3, 1}},
      {{1, 3, 1}, {2, 1, 4}},
      {{0, 3}, {1, 3}},
      {{0}, {}},
      {{2, 0, 3}, {1, 1, 3}},
      // Large enough for oneDNN (>= 256 outputs).
      {{16, 32, 8}, {16, 32, 8}},
      {{16, 32, 8}, {32, 1}},
      {{32, 1}, {16, 32, 8}},
      {{8, 16, 5, 5}, {1, 16, 1, 1}},
      {{1, 16, 1, 1}, {8, 16, 5, 5}},
      {{64, 100}, {100}},
      {{100}, {64, 100}},
      {{64, 1}, {1, 100}},
      {{4, 1, 8, 1, 9}, {1, 5, 1, 7, 1}},
      {{1000}, {1}},
      {{1}, {1000}},
  };
  // 14 alternating dims cannot merge: more than oneDNN's 12 dims.
  Shape a, b;
  for (int i = 0; i < 14; ++i) {
    a.push_back(i % 2 ? 1 : 2);
    b.push_back(i % 2 ? 2 : 1);
  }
  pairs.push_back({a, b});
  pairs.push_back({Shape(14, 2), b});
  return pairs;
}

// Half-integers in [-4, 4]: arithmetic on them is exact and comparisons are
// often equal, so the kernels must match the reference bit for bit.
Tensor RandomInput(DataType type, const Shape& shape, bool nonzero,
                   std::mt19937* rng) {
  Tensor t(type, shape);
  std::uniform_int_distribution<int> dist(-8, 8);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    int v = dist(*rng);
    if (nonzero && v == 0) v = 3;
    switch (type) {
      case DataType::kFloat32:
        t.mutable_data<float>()[i] = v / 2.f;
        break;
      case DataType::kInt32:
        t.mutable_data<int32_t>()[i] = v * 1000003;  // overflows in Mul
        break;
      case DataType::kInt64:
        t.mutable_data<int64_t>()[i] = v * 3037000493LL;  // likewise
        break;
      default:
        t.mutable_data<uint8_t>()[i] = v & 1;
    }
  }
  return t;
}

void ExpectSame(const Tensor& got, const Tensor& want,
                const std::string& what) {
  ASSERT_EQ(got.dtype(), want.dtype()) << what;
  ASSERT_EQ(got.shape(), want.shape()) << what;
  for (int64_t i = 0; i < want.num_elements(); ++i) {
    if (want.dtype() == DataType::kFloat32) {
      float g = got.data<float>()[i], w = want.data<float>()[i];
      if (std::isnan(w)) {
        ASSERT_TRUE(std::isnan(g)) << what << " at " << i;
      } else {
        ASSERT_EQ(g, w) << what << " at " << i;
      }
    } else {
      size_t size = DataTypeSize(want.dtype());
      ASSERT_EQ(std::memcmp(
                    static_cast<const char*>(got.raw_data()) + i * size,
                    static_cast<const char*>(want.raw_data()) + i * size, size),
                0)
          << what << " at " << i;
    }
  }
}

TEST(BinaryTest, MatchesReferenceForAllOpsTypesAndBroadcasts) {
  std::mt19937 rng(77);
  int cases = 0;
  for (BinaryOp op : kAllOps) {
    for (DataType type : {DataType::kFloat32, DataType::kInt32,
                          DataType::kInt64, DataType::kBool}) {
      if (op == BinaryOp::kPow && type != DataType::kFloat32) continue;
      if (type == DataType::kBool && op != BinaryOp::kEqual) continue;
      BinaryForward kernel(op);
      for (const auto& [sa, sb] : ShapePairs()) {
        Tensor a = RandomInput(type, sa, false, &rng);
        Tensor b = RandomInput(type, sb, op == BinaryOp::kDiv, &rng);
        Tensor got, want;
        std::string what = std::string(BinaryOpName(op)) + " " +
                           a.DebugString() + " " + b.DebugString();
        ASSERT_TRUE(kernel.Forward(a, b, &got).ok()) << what;
        ASSERT_TRUE(BinaryReference(op, a, b, &want).ok()) << what;
        ExpectSame(got, want, what);
        ++cases;
      }
    }
  }
  // f32 runs all 12 ops, s32 and s64 all but pow, bool only equal.
  EXPECT_EQ(cases, (12 + 11 + 11 + 1) * 25);
}

TEST(BinaryTest, PowTakesIntegerExponents) {
  std::mt19937 rng(5);
  BinaryForward pow(BinaryOp::kPow);
  for (DataType e : {DataType::kInt32, DataType::kInt64}) {
    Tensor a = RandomInput(DataType::kFloat32, {4, 70}, false, &rng);
    Tensor b = RandomInput(e, {70}, false, &rng);
    Tensor got, want;
    ASSERT_TRUE(pow.Forward(a, b, &got).ok());
    ASSERT_TRUE(BinaryReference(BinaryOp::kPow, a, b, &want).ok());
    ExpectSame(got, want, "pow with integer exponent");
  }
}

TEST(BinaryTest, BroadcastShapes) {
  EXPECT_EQ(*BroadcastShapes({2, 1, 4}, {3, 1}), (Shape{2, 3, 4}));
  EXPECT_EQ(*BroadcastShapes({}, {}), (Shape{}));
  EXPECT_EQ(*BroadcastShapes({0, 1}, {1, 5}), (Shape{0, 5}));
  EXPECT_EQ(*BroadcastShapes({5}, {}), (Shape{5}));
  EXPECT_EQ(BroadcastShapes({2, 3}, {3, 2}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(BroadcastShapes({0}, {2}).ok());
  EXPECT_FALSE(BroadcastShapes({1LL << 40, 1}, {1, 1LL << 40}).ok());
}

TEST(BinaryTest, IntegerDivisionTruncatesAndChecksZero) {
  BinaryForward div(BinaryOp::kDiv);
  Tensor a = Tensor::FromVector<int64_t>(
      {4}, {-7, 7, std::numeric_limits<int64_t>::min(), 6});
  Tensor b = Tensor::FromVector<int64_t>({4}, {2, -2, -1, 3});
  Tensor y;
  ASSERT_TRUE(div.Forward(a, b, &y).ok());
  EXPECT_EQ(
      y.ToVector<int64_t>(),
      (std::vector<int64_t>{-3, -3, std::numeric_limits<int64_t>::min(), 2}));
  Tensor zero = Tensor::FromVector<int32_t>({2}, {1, 0});
  EXPECT_EQ(div.Forward(zero, zero, &y).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor f = Tensor::FromVector<float>({2}, {1, -1});
  Tensor fz = Tensor::Scalar<float>(0);
  ASSERT_TRUE(div.Forward(f, fz, &y).ok());
  EXPECT_EQ(y.data<float>()[0], std::numeric_limits<float>::infinity());
}

TEST(BinaryTest, ComparisonsProduceBool) {
  BinaryForward less(BinaryOp::kLess);
  Tensor a(DataType::kFloat32, {300});
  for (int i = 0; i < 300; ++i) a.mutable_data<float>()[i] = i;
  Tensor y;
  ASSERT_TRUE(less.Forward(Tensor::Scalar<float>(150.f), a, &y).ok());
  ASSERT_EQ(y.dtype(), DataType::kBool);
  for (int i = 0; i < 300; ++i) ASSERT_EQ(y.data<uint8_t>()[i], 150 < i) << i;
}

TEST(BinaryTest, InPlaceOnFirstInput) {
  BinaryForward add(BinaryOp::kAdd);
  Tensor a = Tensor::FromVector<float>({2, 300}, std::vector<float>(600, 1.f));
  Tensor b = Tensor::FromVector<float>({300}, std::vector<float>(300, 2.f));
  const void* storage = a.raw_data();
  ASSERT_TRUE(add.Forward(a, b, &a).ok());
  EXPECT_EQ(a.raw_data(), storage);
  EXPECT_EQ(a.data<float>()[599], 3.f);
}

TEST(BinaryTest, RejectsBadInputs) {
  BinaryForward add(BinaryOp::kAdd), pow(BinaryOp::kPow);
  Tensor y;
  Tensor f(DataType::kFloat32, {2, 3});
  EXPECT_EQ(add.Forward(f, Tensor(DataType::kFloat32, {3, 2}), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(add.Forward(f, Tensor(DataType::kInt64, {2, 3}), &y).code(),
            absl::StatusCode::kInvalidArgument);
  // Types the kernel does not implement are a coverage gap, not bad input.
  EXPECT_EQ(add.Forward(Tensor(DataType::kInt8, {2}),
                        Tensor(DataType::kInt8, {2}), &y)
                .code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(add.Forward(Tensor(DataType::kBool, {2}),
                        Tensor(DataType::kBool, {2}), &y)
                .code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(pow.Forward(Tensor(DataType::kInt64, {2}), f, &y).code(),
            absl::StatusCode::kUnimplemented);
  EXPECT_EQ(add.Forward(Tensor(), f, &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(add.Forward(f, f, nullptr).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
