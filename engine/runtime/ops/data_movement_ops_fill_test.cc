#include <algorithm>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#include "absl/status/status.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "engine/testing/data_movement_test_util.h"
#include "engine/testing/op_test_util.h"
#include "engine/testing/op_test_util_gtest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {

namespace {

using data_movement_test::F;
using data_movement_test::I64;
using data_movement_test::Iota;
using data_movement_test::kInt64Max;
using data_movement_test::kInt64Min;

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;

// -------------------------------------------------------------------- Pad

Tensor PadInput() { return F({3, 2}, {1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f}); }

AttributeMap Mode(const char* mode) {
  return Attrs({{"mode", StringAttr(mode)}});
}

TEST(PadTest, SpecExamplesForEachMode) {
  Tensor pads = I64({0, 2, 0, 0});
  std::vector<Tensor> y = MustRun("Pad", {PadInput(), pads});
  EXPECT_EQ(y[0].shape(), Shape({3, 4}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(0, 0, 1.0f, 1.2f, 0, 0, 2.3f,
                                                  3.4f, 0, 0, 4.5f, 5.7f));
  y = MustRun("Pad", {PadInput(), pads}, Mode("reflect"));
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(1.0f, 1.2f, 1.0f, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f, 4.5f,
                          5.7f, 4.5f, 5.7f));
  y = MustRun("Pad", {PadInput(), pads}, Mode("edge"));
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(1.0f, 1.0f, 1.0f, 1.2f, 2.3f, 2.3f, 2.3f, 3.4f, 4.5f,
                          4.5f, 4.5f, 5.7f));
}

TEST(PadTest, ConstantValueAndOuterAxes) {
  Tensor x = F({1, 2}, {1, 2});
  std::vector<Tensor> y =
      MustRun("Pad", {x, I64({1, 0, 1, 1}), Tensor::Scalar<float>(9)});
  EXPECT_EQ(y[0].shape(), Shape({3, 3}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(9, 9, 9, 1, 2, 9, 9, 9, 9));
  Tensor b = Tensor::FromVector<int8_t>({2}, {5, 6});
  y = MustRun("Pad", {b, I64({1, 2}), Tensor::Scalar<int8_t>(-1)});
  EXPECT_THAT(y[0].ToVector<int8_t>(), ElementsAre(-1, 5, 6, -1, -1));
}

TEST(PadTest, NegativePadsCrop) {
  Tensor x = Iota({2, 4});
  std::vector<Tensor> y = MustRun("Pad", {x, I64({0, -1, -1, 1})});
  EXPECT_EQ(y[0].shape(), Shape({1, 4}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 2, 3, 0));
  // Cropping happens first: edge pads repeat the cropped border.
  y = MustRun("Pad", {Iota({4}), I64({-2, 1})}, Mode("edge"));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(2, 3, 3));
  y = MustRun("Pad", {Iota({4}), I64({-4, 0})});
  EXPECT_EQ(y[0].shape(), Shape({0}));
}

TEST(PadTest, ReflectBeyondTheAxisKeepsReflecting) {
  // numpy.pad([1, 2, 3], (5, 0), 'reflect').
  std::vector<Tensor> y =
      MustRun("Pad", {F({3}, {1, 2, 3}), I64({5, 2})}, Mode("reflect"));
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(2, 1, 2, 3, 2, 1, 2, 3, 2, 1));
  y = MustRun("Pad", {F({1}, {7}), I64({2, 1})}, Mode("reflect"));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(7, 7, 7, 7));
}

TEST(PadTest, AttributesBeforeOpset11) {
  std::vector<Tensor> y =
      MustRun("Pad", {F({2}, {1, 2})},
              Attrs({{"pads", IntsAttr({1, 1})}, {"value", FloatAttr(-5)}}), 2);
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(-5, 1, 2, -5));
  y = MustRun(
      "Pad", {PadInput()},
      Attrs({{"pads", IntsAttr({0, 2, 0, 0})}, {"mode", StringAttr("edge")}}),
      10);
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(1.0f, 1.0f, 1.0f, 1.2f, 2.3f, 2.3f, 2.3f, 3.4f, 4.5f,
                          4.5f, 4.5f, 5.7f));
}

TEST(PadTest, Errors) {
  EXPECT_THAT(RunStatus("Pad", {Iota({2, 2}), I64({1, 1})}).message(),
              HasSubstr("2 * rank"));
  EXPECT_EQ(
      RunStatus("Pad", {Iota({0, 2}), I64({1, 0, 0, 0})}, Mode("edge")).code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Pad", {Iota({2}), I64({1, 1})}, Mode("wrap")).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Pad", {Iota({2}), I64({-3, 1})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Pad", {Iota({2}), I64({1, 1}), I64({0})}).code(),
            absl::StatusCode::kInvalidArgument);  // constant of another type
  EXPECT_EQ(RunStatus("Pad", {Iota({2}), I64({int64_t{1} << 40, 0})}).code(),
            absl::StatusCode::kResourceExhausted);
}

// ------------------------------------------------------------------- Tile

TEST(TileTest, SpecExample) {
  std::vector<Tensor> y =
      MustRun("Tile", {F({2, 2}, {0, 1, 2, 3}), I64({2, 2})});
  EXPECT_EQ(y[0].shape(), Shape({4, 4}));
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(0, 1, 0, 1, 2, 3, 2, 3, 0, 1, 0, 1, 2, 3, 2, 3));
  y = MustRun("Tile",
              {Tensor::FromVector<uint8_t>({1, 3}, {1, 2, 3}), I64({2, 1})});
  EXPECT_THAT(y[0].ToVector<uint8_t>(), ElementsAre(1, 2, 3, 1, 2, 3));
  y = MustRun("Tile", {Iota({2, 2}), I64({0, 3})});
  EXPECT_EQ(y[0].shape(), Shape({0, 6}));
}

TEST(TileTest, Errors) {
  EXPECT_EQ(RunStatus("Tile", {Iota({2, 2}), I64({2})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Tile", {Iota({2}), I64({-1})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Tile", {Iota({2}), I64({kInt64Max})}).code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RunStatus("Tile", {Iota({2}), I64({int64_t{1} << 31})}).code(),
            absl::StatusCode::kResourceExhausted);
}

// ------------------------------------------------------------------ Trilu

std::vector<float> TriluOf(const Tensor& x, int64_t upper, int64_t k) {
  std::vector<Tensor> y = MustRun("Trilu", {x, Tensor::Scalar<int64_t>(k)},
                                  Attrs({{"upper", IntAttr(upper)}}));
  return y[0].ToVector<float>();
}

TEST(TriluTest, UpperAndLowerWithOffsets) {
  // 3 x 4 with values 1..12.
  Tensor x = F({3, 4}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12});
  EXPECT_THAT(MustRun("Trilu", {x})[0].ToVector<float>(),
              ElementsAre(1, 2, 3, 4, 0, 6, 7, 8, 0, 0, 11, 12));
  EXPECT_THAT(TriluOf(x, 1, 1),
              ElementsAre(0, 2, 3, 4, 0, 0, 7, 8, 0, 0, 0, 12));
  EXPECT_THAT(TriluOf(x, 1, -1),
              ElementsAre(1, 2, 3, 4, 5, 6, 7, 8, 0, 10, 11, 12));
  EXPECT_THAT(TriluOf(x, 0, 0),
              ElementsAre(1, 0, 0, 0, 5, 6, 0, 0, 9, 10, 11, 0));
  EXPECT_THAT(TriluOf(x, 0, -1),
              ElementsAre(0, 0, 0, 0, 5, 0, 0, 0, 9, 10, 0, 0));
  EXPECT_THAT(TriluOf(x, 0, 1),
              ElementsAre(1, 2, 0, 0, 5, 6, 7, 0, 9, 10, 11, 12));
  EXPECT_THAT(TriluOf(x, 1, kInt64Max), ::testing::Each(0.0f));
  EXPECT_THAT(TriluOf(x, 1, kInt64Min), ElementsAreArray(x.ToVector<float>()));
  EXPECT_THAT(TriluOf(x, 0, kInt64Min), ::testing::Each(0.0f));
}

TEST(TriluTest, BatchedAndZeroSize) {
  Tensor x = Tensor::FromVector<int32_t>({2, 2, 2}, {1, 2, 3, 4, 5, 6, 7, 8});
  std::vector<Tensor> y = MustRun("Trilu", {x}, Attrs({{"upper", IntAttr(0)}}));
  EXPECT_THAT(y[0].ToVector<int32_t>(), ElementsAre(1, 0, 3, 4, 5, 0, 7, 8));
  EXPECT_EQ(MustRun("Trilu", {Iota({3, 0})})[0].shape(), Shape({3, 0}));
  EXPECT_EQ(MustRun("Trilu", {Iota({0, 3})})[0].shape(), Shape({0, 3}));
  EXPECT_EQ(RunStatus("Trilu", {Iota({3})}).code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ Where

TEST(WhereTest, SpecExample) {
  Tensor c = Tensor::FromVector<bool>({2, 2}, {true, false, true, true});
  std::vector<Tensor> y =
      MustRun("Where", {c, F({2, 2}, {1, 2, 3, 4}), F({2, 2}, {9, 8, 7, 6})});
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 8, 3, 4));
}

TEST(WhereTest, BroadcastsAllThreeInputs) {
  Tensor c = Tensor::FromVector<bool>({2, 1}, {true, false});
  Tensor x = Tensor::FromVector<int64_t>({1, 3}, {1, 2, 3});
  Tensor y = Tensor::Scalar<int64_t>(-1);
  std::vector<Tensor> out = MustRun("Where", {c, x, y});
  EXPECT_EQ(out[0].shape(), Shape({2, 3}));
  EXPECT_THAT(out[0].ToVector<int64_t>(), ElementsAre(1, 2, 3, -1, -1, -1));
  out = MustRun("Where", {Tensor::Scalar<bool>(true), Tensor::Scalar<float>(1),
                          Tensor::Scalar<float>(2)});
  EXPECT_EQ(out[0].shape(), Shape({}));
  EXPECT_THAT(out[0].ToVector<float>(), ElementsAre(1));
  out = MustRun("Where", {Tensor::FromVector<bool>({0, 1}, {}), x, y});
  EXPECT_EQ(out[0].shape(), Shape({0, 3}));
}

TEST(WhereTest, Errors) {
  Tensor x = Iota({2});
  EXPECT_EQ(RunStatus("Where", {x, x, x}).code(),
            absl::StatusCode::kInvalidArgument);
  Tensor c = Tensor::FromVector<bool>({2}, {true, false});
  EXPECT_EQ(RunStatus("Where", {c, x, I64({1, 2})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Where", {c, x, Iota({3})}).code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------ randomized against naive loops

TEST(RandomizedTest, TileAndWhereMatchNaiveLoops) {
  std::mt19937 rng(11);
  for (int trial = 0; trial < 100; ++trial) {
    const Shape shape = RandomShape(rng, 4, 1, 3);
    const Tensor x = RandomInt32(shape, rng);
    std::vector<int64_t> reps;
    Shape out;
    for (int64_t d : shape) {
      reps.push_back(rng() % 4);
      out.push_back(d * reps.back());
    }
    std::vector<Tensor> y = MustRun("Tile", {x, I64(reps)});
    ASSERT_EQ(y[0].shape(), out);
    std::vector<int32_t> want;
    ForEachIndex(out, [&](const std::vector<int64_t>& idx) {
      std::vector<int64_t> src(idx.size());
      for (size_t a = 0; a < idx.size(); ++a) src[a] = idx[a] % shape[a];
      want.push_back(x.data<int32_t>()[Offset(shape, src)]);
    });
    ASSERT_EQ(y[0].ToVector<int32_t>(), want) << "trial " << trial;

    // Where over three random broadcasts of one full shape.
    auto shrink = [&](const Shape& full) {
      Shape s(full.begin() + rng() % (full.size() + 1), full.end());
      for (int64_t& d : s) d = rng() % 2 ? d : 1;
      return s;
    };
    const Shape cs = shrink(shape), xs = shrink(shape), ys = shrink(shape);
    Tensor c(DataType::kBool, cs);
    for (int64_t i = 0; i < c.num_elements(); ++i) {
      c.mutable_data<uint8_t>()[i] = rng() % 2;
    }
    const Tensor a = RandomInt32(xs, rng), b = RandomInt32(ys, rng);
    y = MustRun("Where", {c, a, b});
    Shape full = y[0].shape();
    std::vector<int32_t> want_where;
    auto at = [&](const Tensor& t, const std::vector<int64_t>& idx) {
      const size_t lead = idx.size() - t.rank();
      std::vector<int64_t> src;
      for (int k = 0; k < t.rank(); ++k) {
        src.push_back(t.dim(k) == 1 ? 0 : idx[lead + k]);
      }
      return Offset(t.shape(), src);
    };
    ForEachIndex(full, [&](const std::vector<int64_t>& idx) {
      want_where.push_back(c.data<uint8_t>()[at(c, idx)]
                               ? a.data<int32_t>()[at(a, idx)]
                               : b.data<int32_t>()[at(b, idx)]);
    });
    ASSERT_EQ(y[0].ToVector<int32_t>(), want_where) << "trial " << trial;
  }
}

TEST(RandomizedTest, PadMatchesNaiveLoops) {
  std::mt19937 rng(5);
  const char* kModes[] = {"constant", "edge", "reflect"};
  for (int trial = 0; trial < 150; ++trial) {
    const Shape shape = RandomShape(rng, 3, 1, 4);
    const Tensor x = RandomInt32(shape, rng);
    const int rank = static_cast<int>(shape.size());
    const char* mode = kModes[rng() % 3];
    std::vector<int64_t> pads(2 * rank);
    for (int64_t& p : pads) p = rng() % 6;
    Shape out(rank);
    for (int a = 0; a < rank; ++a) out[a] = shape[a] + pads[a] + pads[a + rank];
    std::vector<Tensor> y =
        MustRun("Pad", {x, I64(pads), Tensor::Scalar<int32_t>(-7)}, Mode(mode));
    ASSERT_EQ(y[0].shape(), out);
    std::vector<int32_t> want;
    ForEachIndex(out, [&](const std::vector<int64_t>& idx) {
      std::vector<int64_t> src(rank);
      for (int a = 0; a < rank; ++a) {
        int64_t i = idx[a] - pads[a];
        const int64_t n = shape[a];
        if (mode[0] == 'e') i = std::clamp<int64_t>(i, 0, n - 1);
        // Reflect repeatedly about the borders.
        while (mode[0] == 'r' && (i < 0 || i >= n)) {
          if (n == 1) i = 0;
          if (i < 0) i = -i;
          if (i >= n) i = 2 * (n - 1) - i;
        }
        if (i < 0 || i >= n) {
          want.push_back(-7);
          return;
        }
        src[a] = i;
      }
      want.push_back(x.data<int32_t>()[Offset(shape, src)]);
    });
    ASSERT_EQ(y[0].ToVector<int32_t>(), want)
        << "trial " << trial << " mode " << mode;
  }
}

}  // namespace
}  // namespace quantd
