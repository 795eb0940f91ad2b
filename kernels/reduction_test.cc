#include "kernels/reduction.h"

#include <cmath>
#include <cstring>
#include <limits>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

const ReduceOp kFloatOps[] = {ReduceOp::kSum,    ReduceOp::kMean,
                              ReduceOp::kMax,    ReduceOp::kMin,
                              ReduceOp::kProd,   ReduceOp::kL1,
                              ReduceOp::kL2,     ReduceOp::kSumSquare,
                              ReduceOp::kLogSum, ReduceOp::kLogSumExp};
const ReduceOp kIntOps[] = {ReduceOp::kSum, ReduceOp::kMax, ReduceOp::kMin,
                            ReduceOp::kProd};

struct Case {
  Shape shape;
  std::vector<int64_t> axes;
  bool noop = false;
};

const std::vector<Case> kCases = {
    {{}, {}},
    {{5}, {0}},
    {{5}, {}},
    {{5}, {}, true},
    {{3, 4}, {0}},
    {{3, 4}, {1}},
    {{3, 4}, {-1}},
    {{3, 4}, {0, 1}},
    {{2, 3, 4}, {1}},
    {{2, 3, 4}, {0, 2}},
    {{2, 3, 4}, {-1, -3}},
    {{2, 3, 4}, {0, 1}},
    {{2, 3, 4}, {1, 2}},
    {{4, 1, 5}, {1}},  // only a size-1 dim is reduced
    {{4, 1, 5}, {0, 1}},
    {{2, 0, 3}, {1}},     // reduces zero elements
    {{2, 0, 3}, {0, 2}},  // zero-size output
    {{8, 16, 32}, {2}},
    {{8, 16, 32}, {0}},
    {{8, 16, 32}, {1}},
    {{8, 16, 32}, {0, 2}},
    {{2, 3, 4, 5, 6}, {1, 3}},
    {{2, 3, 4, 5, 6}, {0, 2, 4}},
    {{64, 512}, {1}},
    {{512, 64}, {0}},
};

// Sums of up to 4096 f32 values in oneDNN's order vs the double reference:
// inputs are positive for the sum-like ops (no cancellation), so 1e-4
// relative bounds the accumulated rounding (~sqrt(n) * 6e-8 typical).
bool Near(float got, float want) {
  if (std::isnan(want)) return std::isnan(got);
  if (std::isinf(want)) return got == want;
  return std::fabs(got - want) <= 1e-4 * std::fabs(want) + 1e-6;
}

TEST(ReductionTest, FloatMatchesReference) {
  std::mt19937 rng(3);
  int runs = 0;
  for (ReduceOp op : kFloatOps) {
    // Products of thousands of values stay finite near 1; the extremes and
    // norms get signed inputs.
    const bool signed_input = op == ReduceOp::kMax || op == ReduceOp::kMin ||
                              op == ReduceOp::kL1 || op == ReduceOp::kL2 ||
                              op == ReduceOp::kSumSquare ||
                              op == ReduceOp::kLogSumExp;
    std::uniform_real_distribution<float> dist(
        signed_input ? -3.f : (op == ReduceOp::kProd ? 0.99f : 0.5f),
        signed_input ? 3.f : (op == ReduceOp::kProd ? 1.01f : 1.5f));
    for (const Case& c : kCases) {
      for (bool keepdims : {true, false}) {
        Tensor x(DataType::kFloat32, c.shape);
        for (float& v : x.mutable_span<float>()) v = dist(rng);
        ReductionForward kernel(op, c.axes, keepdims, c.noop);
        Tensor got, want;
        ASSERT_TRUE(kernel.Forward(x, &got).ok());
        ASSERT_TRUE(
            ReduceReference(op, x, c.axes, keepdims, c.noop, &want).ok());
        ASSERT_EQ(got.shape(), want.shape());
        for (int64_t i = 0; i < want.num_elements(); ++i) {
          ASSERT_TRUE(Near(got.data<float>()[i], want.data<float>()[i]))
              << ReduceOpName(op) << " " << x.DebugString() << " case "
              << &c - kCases.data() << " at " << i << ": "
              << got.data<float>()[i] << " vs " << want.data<float>()[i];
        }
        ++runs;
      }
    }
  }
  EXPECT_EQ(runs, 10 * 2 * static_cast<int>(kCases.size()));
}

TEST(ReductionTest, IntegersMatchReferenceExactly) {
  std::mt19937 rng(4);
  std::uniform_int_distribution<int> dist(-3, 3);
  int runs = 0;
  for (DataType type : {DataType::kInt32, DataType::kInt64}) {
    for (ReduceOp op : kIntOps) {
      for (const Case& c : kCases) {
        Tensor x(type, c.shape);
        for (int64_t i = 0; i < x.num_elements(); ++i) {
          // Large magnitudes make Sum and Prod wrap around.
          int64_t v = dist(rng) * 1000000007LL;
          if (type == DataType::kInt32) {
            x.mutable_data<int32_t>()[i] = static_cast<int32_t>(v);
          } else {
            x.mutable_data<int64_t>()[i] = v;
          }
        }
        ReductionForward kernel(op, c.axes, true, c.noop);
        Tensor got, want;
        ASSERT_TRUE(kernel.Forward(x, &got).ok());
        ASSERT_TRUE(ReduceReference(op, x, c.axes, true, c.noop, &want).ok());
        ASSERT_EQ(got.shape(), want.shape());
        ASSERT_EQ(std::memcmp(got.raw_data(), want.raw_data(), got.byte_size()),
                  0)
            << ReduceOpName(op) << " " << x.DebugString() << " case "
            << &c - kCases.data() << " got " << got.data<int32_t>()[0]
            << " want " << want.data<int32_t>()[0];
        ++runs;
      }
    }
  }
  EXPECT_EQ(runs, 2 * 4 * static_cast<int>(kCases.size()));
}

TEST(ReductionTest, EmptyReductionsGiveIdentities) {
  Tensor x(DataType::kFloat32, {2, 0});
  Tensor y;
  ReductionForward sum(ReduceOp::kSum, {1}), mean(ReduceOp::kMean, {1}),
      max(ReduceOp::kMax, {1}), prod(ReduceOp::kProd, {1});
  ASSERT_TRUE(sum.Forward(x, &y).ok());
  EXPECT_EQ(y.ToVector<float>(), (std::vector<float>{0, 0}));
  ASSERT_TRUE(prod.Forward(x, &y).ok());
  EXPECT_EQ(y.ToVector<float>(), (std::vector<float>{1, 1}));
  ASSERT_TRUE(max.Forward(x, &y).ok());
  EXPECT_EQ(y.data<float>()[0], -std::numeric_limits<float>::infinity());
  ASSERT_TRUE(mean.Forward(x, &y).ok());
  EXPECT_TRUE(std::isnan(y.data<float>()[0]));
  ReductionForward imax(ReduceOp::kMax, {1});
  ASSERT_TRUE(imax.Forward(Tensor(DataType::kInt64, {1, 0}), &y).ok());
  EXPECT_EQ(y.data<int64_t>()[0], std::numeric_limits<int64_t>::min());
}

TEST(ReductionTest, OutputShapes) {
  EXPECT_EQ(*ReduceOutputShape({2, 3, 4}, {-1}, false), (Shape{2, 3}));
  EXPECT_EQ(*ReduceOutputShape({2, 3, 4}, {0, 2}, true), (Shape{1, 3, 1}));
  EXPECT_EQ(*ReduceOutputShape({2, 3, 4}, {}, false), (Shape{}));
  EXPECT_EQ(*ReduceOutputShape({2, 3, 4}, {}, false, true), (Shape{2, 3, 4}));
  EXPECT_FALSE(ReduceOutputShape({2, 3}, {2}, true).ok());
  EXPECT_FALSE(ReduceOutputShape({2, 3}, {1, -1}, true).ok());
}

TEST(ReductionTest, RejectsBadInputs) {
  Tensor y;
  ReductionForward bad_axis(ReduceOp::kSum, {3}), dup(ReduceOp::kSum, {0, 0}),
      l2(ReduceOp::kL2, {0}), sum(ReduceOp::kSum, {0});
  Tensor x(DataType::kFloat32, {2, 3});
  EXPECT_EQ(bad_axis.Forward(x, &y).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(dup.Forward(x, &y).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(l2.Forward(Tensor(DataType::kInt64, {2}), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sum.Forward(Tensor(DataType::kUInt8, {2}), &y).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(sum.Forward(Tensor(), &y).code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
