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
#include "onnx/onnx_pb.h"

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

AttributeMap Axis(int64_t axis) { return Attrs({{"axis", IntAttr(axis)}}); }

// ----------------------------------------------------------------- Concat

TEST(ConcatTest, AlongEachAxis) {
  Tensor a = F({2, 2}, {1, 2, 3, 4}), b = F({2, 2}, {5, 6, 7, 8});
  std::vector<Tensor> y = MustRun("Concat", {a, b}, Axis(0));
  EXPECT_EQ(y[0].shape(), Shape({4, 2}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  y = MustRun("Concat", {a, b, F({2, 1}, {9, 10})}, Axis(-1));
  EXPECT_EQ(y[0].shape(), Shape({2, 5}));
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(1, 2, 5, 6, 9, 3, 4, 7, 8, 10));
}

TEST(ConcatTest, ZeroSizeInputsAndOtherTypes) {
  Tensor a = Tensor::FromVector<int8_t>({1, 2}, {1, -1});
  Tensor empty = Tensor::FromVector<int8_t>({0, 2}, {});
  std::vector<Tensor> y = MustRun("Concat", {empty, a, empty, a}, Axis(0));
  EXPECT_EQ(y[0].shape(), Shape({2, 2}));
  EXPECT_THAT(y[0].ToVector<int8_t>(), ElementsAre(1, -1, 1, -1));
  y = MustRun("Concat",
              {Tensor::FromVector<bool>({1}, {true}),
               Tensor::FromVector<bool>({2}, {false, true})},
              Axis(0));
  EXPECT_THAT(y[0].ToVector<bool>(), ElementsAre(true, false, true));
}

TEST(ConcatTest, Errors) {
  absl::Status s = RunStatus("Concat", {Iota({2, 2}), Iota({3, 3})}, Axis(0));
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("input #1"));
  EXPECT_EQ(RunStatus("Concat", {Iota({2}), I64({1})}, Axis(0)).code(),
            absl::StatusCode::kInvalidArgument);  // types differ
  EXPECT_EQ(RunStatus("Concat", {Iota({2}), Iota({2})}, Axis(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Concat", {Iota({2}), Iota({2})}).code(),
            absl::StatusCode::kInvalidArgument);  // axis is required
}

// ------------------------------------------------------------------ Split

TEST(SplitTest, SplitInputFromOpset13) {
  Tensor x = F({6}, {1, 2, 3, 4, 5, 6});
  std::vector<Tensor> y = MustRun("Split", {x, I64({2, 4})}, {}, 13, 2);
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 2));
  EXPECT_THAT(y[1].ToVector<float>(), ElementsAre(3, 4, 5, 6));
  // Equal split when `split` is absent.
  y = MustRun("Split", {x}, {}, 13, 3);
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 2));
  EXPECT_THAT(y[2].ToVector<float>(), ElementsAre(5, 6));
}

TEST(SplitTest, SplitAttributeBeforeOpset13) {
  Tensor x = Iota({2, 6});
  std::vector<Tensor> y = MustRun(
      "Split", {x}, Attrs({{"axis", IntAttr(1)}, {"split", IntsAttr({2, 4})}}),
      11, 2);
  EXPECT_EQ(y[0].shape(), Shape({2, 2}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(0, 1, 6, 7));
  EXPECT_THAT(y[1].ToVector<float>(), ElementsAre(2, 3, 4, 5, 8, 9, 10, 11));
  y = MustRun("Split", {x}, Axis(-1), 11, 2);
  EXPECT_THAT(y[1].ToVector<float>(), ElementsAre(3, 4, 5, 9, 10, 11));
}

TEST(SplitTest, ZeroSizedParts) {
  std::vector<Tensor> y = MustRun("Split", {Iota({3}), I64({0, 3})}, {}, 13, 2);
  EXPECT_EQ(y[0].shape(), Shape({0}));
  EXPECT_EQ(y[1].shape(), Shape({3}));
}

TEST(SplitTest, Errors) {
  EXPECT_THAT(RunStatus("Split", {Iota({5})}, {}, 13, 2).message(),
              HasSubstr("does not split evenly"));
  EXPECT_EQ(RunStatus("Split", {Iota({5}), I64({2, 2})}, {}, 13, 2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Split", {Iota({5}), I64({5})}, {}, 13, 2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Split", {Iota({5}), I64({-1, 6})}, {}, 13, 2).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Split", {Iota({4})}, Axis(1), 13, 2).code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ Slice

std::vector<float> SliceValues(const Tensor& x, std::vector<int64_t> starts,
                               std::vector<int64_t> ends,
                               std::vector<int64_t> axes = {},
                               std::vector<int64_t> steps = {},
                               Shape* shape = nullptr) {
  std::vector<Tensor> in = {x, I64(starts), I64(ends)};
  if (!axes.empty() || !steps.empty()) {
    in.push_back(axes.empty() ? Tensor() : I64(axes));
  }
  if (!steps.empty()) in.push_back(I64(steps));
  std::vector<Tensor> y = MustRun("Slice", in);
  if (shape != nullptr) *shape = y[0].shape();
  return y[0].ToVector<float>();
}

TEST(SliceTest, SpecExamples) {
  Tensor x = F({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  Shape shape;
  EXPECT_THAT(SliceValues(x, {1, 0}, {2, 3}, {0, 1}, {1, 2}, &shape),
              ElementsAre(5, 7));
  EXPECT_EQ(shape, Shape({1, 2}));
  EXPECT_THAT(SliceValues(x, {0, 1}, {-1, 1000}, {}, {}, &shape),
              ElementsAre(2, 3, 4));
  EXPECT_EQ(shape, Shape({1, 3}));
}

TEST(SliceTest, NegativeStepsAndClamping) {
  Tensor x = Iota({10});
  // INT64_MIN as end with a backward step runs through index 0.
  EXPECT_THAT(SliceValues(x, {-1}, {kInt64Min}, {0}, {-1}),
              ElementsAre(9, 8, 7, 6, 5, 4, 3, 2, 1, 0));
  EXPECT_THAT(SliceValues(x, {8}, {1}, {0}, {-3}), ElementsAre(8, 5, 2));
  EXPECT_THAT(SliceValues(x, {20}, {0}, {0}, {-3}), ElementsAre(9, 6, 3));
  EXPECT_THAT(SliceValues(x, {kInt64Max}, {kInt64Min}, {0}, {kInt64Min}),
              ElementsAre(9));
  EXPECT_THAT(SliceValues(x, {2}, {kInt64Max}),
              ElementsAre(2, 3, 4, 5, 6, 7, 8, 9));
  EXPECT_THAT(SliceValues(x, {-100}, {3}), ElementsAre(0, 1, 2));
  EXPECT_THAT(SliceValues(x, {0}, {10}, {0}, {20}), ElementsAre(0));
  EXPECT_THAT(SliceValues(x, {1}, {8}, {0}, {3}), ElementsAre(1, 4, 7));
  // The spec clamps a backward start into [0, d-1], so a start before the
  // beginning still yields element 0 (numpy would give nothing).
  EXPECT_THAT(SliceValues(x, {-100}, {kInt64Min}, {0}, {-1}), ElementsAre(0));
  // Omitted axes with steps given.
  EXPECT_THAT(SliceValues(x, {9}, {0}, {}, {-4}), ElementsAre(9, 5, 1));
  EXPECT_THAT(SliceValues(x, {5}, {2}), ElementsAre());
  EXPECT_THAT(SliceValues(x, {2}, {5}, {0}, {-1}), ElementsAre());
}

TEST(SliceTest, MultiAxisStridedOnOtherTypes) {
  // x[i][j] = 10 * i + j, 3 x 4, int64.
  std::vector<int64_t> v;
  for (int i = 0; i < 3; ++i) {
    for (int j = 0; j < 4; ++j) v.push_back(10 * i + j);
  }
  Tensor x = Tensor::FromVector<int64_t>({3, 4}, v);
  // x[::-2, 3:0:-2]
  std::vector<Tensor> y = MustRun(
      "Slice",
      {x, I64({-1, 3}), I64({kInt64Min, 0}), I64({0, -1}), I64({-2, -2})});
  EXPECT_EQ(y[0].shape(), Shape({2, 2}));
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(23, 21, 3, 1));
  // int32 starts/ends, only some axes, omitted steps.
  Tensor starts = Tensor::FromVector<int32_t>({1}, {1});
  Tensor ends = Tensor::FromVector<int32_t>({1}, {3});
  y = MustRun("Slice",
              {x, starts, ends, Tensor::FromVector<int32_t>({1}, {-1})});
  EXPECT_EQ(y[0].shape(), Shape({3, 2}));
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(1, 2, 11, 12, 21, 22));
}

TEST(SliceTest, ZeroSizeResults) {
  // ONNX's slice_start_out_of_bounds.
  Shape shape;
  SliceValues(Iota({20, 10, 5}), {1000}, {1000}, {1}, {1}, &shape);
  EXPECT_EQ(shape, Shape({20, 0, 5}));
  SliceValues(Iota({0, 3}), {0}, {2}, {1}, {-1}, &shape);
  EXPECT_EQ(shape, Shape({0, 0}));
  SliceValues(Iota({0, 3}), {0}, {2}, {0}, {-1}, &shape);
  EXPECT_EQ(shape, Shape({0, 3}));
}

TEST(SliceTest, AttributesBeforeOpset10) {
  Tensor x = F({2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  std::vector<Tensor> y = MustRun(
      "Slice", {x},
      Attrs({{"starts", IntsAttr({0, 1})}, {"ends", IntsAttr({-1, 3})}}), 9);
  EXPECT_EQ(y[0].shape(), Shape({1, 2}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(2, 3));
  y = MustRun("Slice", {x},
              Attrs({{"starts", IntsAttr({2})},
                     {"ends", IntsAttr({kInt64Max})},
                     {"axes", IntsAttr({1})}}),
              7);
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(3, 4, 7, 8));
  EXPECT_EQ(RunStatus("Slice", {x}, {}, 9).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(SliceTest, Errors) {
  Tensor x = Iota({4, 4});
  EXPECT_THAT(
      RunStatus("Slice", {x, I64({0}), I64({2}), I64({0}), I64({0})}).message(),
      HasSubstr("is 0"));
  EXPECT_EQ(
      RunStatus("Slice", {x, I64({0, 0}), I64({2, 2}), I64({1, -1})}).code(),
      absl::StatusCode::kInvalidArgument);  // axis repeated
  EXPECT_EQ(RunStatus("Slice", {x, I64({0}), I64({2, 2})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Slice", {x, I64({0}), I64({2}), I64({2})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Slice", {x, I64({0})}).code(),
            absl::StatusCode::kInvalidArgument);
}

// ----------------------------------------------------------------- Gather

TEST(GatherTest, SpecExamples) {
  Tensor data = F({3, 2}, {1.0f, 1.2f, 2.3f, 3.4f, 4.5f, 5.7f});
  Tensor idx = Tensor::FromVector<int64_t>({2, 2}, {0, 1, 1, 2});
  std::vector<Tensor> y = MustRun("Gather", {data, idx});
  EXPECT_EQ(y[0].shape(), Shape({2, 2, 2}));
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(1.0f, 1.2f, 2.3f, 3.4f, 2.3f, 3.4f, 4.5f, 5.7f));

  data = F({3, 3}, {1.0f, 1.2f, 1.9f, 2.3f, 3.4f, 3.9f, 4.5f, 5.7f, 5.9f});
  idx = Tensor::FromVector<int64_t>({1, 2}, {0, 2});
  y = MustRun("Gather", {data, idx}, Axis(1));
  EXPECT_EQ(y[0].shape(), Shape({3, 1, 2}));
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(1.0f, 1.9f, 2.3f, 3.9f, 4.5f, 5.9f));
}

TEST(GatherTest, NegativeIndicesScalarIndexAndInt32) {
  Tensor data = Iota({3, 2});
  std::vector<Tensor> y =
      MustRun("Gather", {data, Tensor::FromVector<int32_t>({2}, {-1, -3})});
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(4, 5, 0, 1));
  y = MustRun("Gather", {data, Tensor::Scalar<int64_t>(1)}, Axis(-1));
  EXPECT_EQ(y[0].shape(), Shape({3}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 3, 5));
  y = MustRun("Gather", {data, I64({})});
  EXPECT_EQ(y[0].shape(), Shape({0, 2}));
}

TEST(GatherTest, OutOfRangeIndexIsAnError) {
  absl::Status s = RunStatus("Gather", {Iota({3, 2}), I64({0, 3})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("index 3"));
  EXPECT_THAT(s.message(), HasSubstr("size 3"));
  EXPECT_THAT(RunStatus("Gather", {Iota({3, 2}), I64({-4})}).message(),
              HasSubstr("index -4"));
  EXPECT_EQ(RunStatus("Gather", {Iota({0}), I64({0})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Gather", {Iota({3}), I64({0})}, Axis(1)).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Gather", {Iota({3}), Iota({1})}).code(),
            absl::StatusCode::kInvalidArgument);  // float indices
}

// -------------------------------------------------------------- Transpose

TEST(TransposeTest, DefaultReversesDims) {
  std::vector<Tensor> y = MustRun("Transpose", {Iota({2, 3})});
  EXPECT_EQ(y[0].shape(), Shape({3, 2}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(0, 3, 1, 4, 2, 5));
}

TEST(TransposeTest, PermOnOtherTypes) {
  std::vector<int64_t> v(24);
  for (int i = 0; i < 24; ++i) v[i] = i;
  Tensor x = Tensor::FromVector<int64_t>({2, 3, 4}, v);
  std::vector<Tensor> y =
      MustRun("Transpose", {x}, Attrs({{"perm", IntsAttr({1, 0, 2})}}));
  EXPECT_EQ(y[0].shape(), Shape({3, 2, 4}));
  std::vector<int64_t> got = y[0].ToVector<int64_t>();
  for (int j = 0; j < 3; ++j) {
    for (int i = 0; i < 2; ++i) {
      for (int k = 0; k < 4; ++k) {
        EXPECT_EQ(got[(j * 2 + i) * 4 + k], (i * 3 + j) * 4 + k);
      }
    }
  }
  Tensor b = Tensor::FromVector<bool>({1, 2}, {true, false});
  y = MustRun("Transpose", {b});
  EXPECT_EQ(y[0].shape(), Shape({2, 1}));
  EXPECT_THAT(y[0].ToVector<bool>(), ElementsAre(true, false));
}

TEST(TransposeTest, InvalidPerm) {
  EXPECT_EQ(RunStatus("Transpose", {Iota({2, 3})},
                      Attrs({{"perm", IntsAttr({0, 0})}}))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Transpose", {Iota({2, 3})},
                      Attrs({{"perm", IntsAttr({1, 0, 2})}}))
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------- Cast

AttributeMap To(int64_t onnx_type) {
  return Attrs({{"to", IntAttr(onnx_type)}});
}

TEST(CastTest, FloatToIntegersTruncatesTowardZero) {
  Tensor x = F({5}, {1.7f, -1.7f, 2.5f, -0.5f, 0.0f});
  std::vector<Tensor> y = MustRun("Cast", {x}, To(onnx::TensorProto::INT32));
  EXPECT_EQ(y[0].dtype(), DataType::kInt32);
  EXPECT_THAT(y[0].ToVector<int32_t>(), ElementsAre(1, -1, 2, 0, 0));
  y = MustRun("Cast", {x}, To(onnx::TensorProto::INT64));
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(1, -1, 2, 0, 0));
  y = MustRun("Cast", {x}, To(onnx::TensorProto::INT8));
  EXPECT_THAT(y[0].ToVector<int8_t>(), ElementsAre(1, -1, 2, 0, 0));
  y = MustRun("Cast", {F({2}, {3.9f, 200.2f})}, To(onnx::TensorProto::UINT8));
  EXPECT_THAT(y[0].ToVector<uint8_t>(), ElementsAre(3, 200));
}

TEST(CastTest, BoolConversions) {
  std::vector<Tensor> y = MustRun("Cast", {F({3}, {0.0f, 0.5f, -2.0f})},
                                  To(onnx::TensorProto::BOOL));
  EXPECT_EQ(y[0].dtype(), DataType::kBool);
  EXPECT_THAT(y[0].ToVector<bool>(), ElementsAre(false, true, true));
  y = MustRun("Cast", {Tensor::FromVector<bool>({2}, {true, false})},
              To(onnx::TensorProto::FLOAT));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 0));
}

TEST(CastTest, IntegersAndHalfToFloat) {
  std::vector<Tensor> y =
      MustRun("Cast", {Tensor::FromVector<int64_t>({3}, {-3, 0, 1 << 20})},
              To(onnx::TensorProto::FLOAT));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(-3, 0, 1 << 20));
  // Through float16 and back: exactly representable values survive.
  Tensor x = F({4}, {1.5f, -2.0f, 0.25f, 1024.0f});
  y = MustRun("Cast", {x}, To(onnx::TensorProto::FLOAT16));
  EXPECT_EQ(y[0].dtype(), DataType::kFloat16);
  y = MustRun("Cast", {y[0]}, To(onnx::TensorProto::FLOAT));
  EXPECT_EQ(y[0].ToVector<float>(), x.ToVector<float>());
}

TEST(CastTest, SameTypeAndZeroSize) {
  Tensor x = Tensor::FromVector<int32_t>({2}, {1, 2});
  EXPECT_THAT(
      MustRun("Cast", {x}, To(onnx::TensorProto::INT32))[0].ToVector<int32_t>(),
      ElementsAre(1, 2));
  EXPECT_EQ(
      MustRun("Cast", {Iota({0, 2})}, To(onnx::TensorProto::INT64))[0].shape(),
      Shape({0, 2}));
}

TEST(CastTest, Errors) {
  EXPECT_EQ(
      RunStatus("Cast", {Iota({2})}, To(onnx::TensorProto::DOUBLE)).code(),
      absl::StatusCode::kUnimplemented);
  EXPECT_THAT(
      RunStatus("Cast", {Iota({2})}, To(onnx::TensorProto::DOUBLE)).message(),
      HasSubstr("DOUBLE"));
  EXPECT_EQ(RunStatus("Cast", {Iota({2})}).code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------ randomized against naive loops

TEST(RandomizedTest, SliceMatchesTheSpecDefinition) {
  std::mt19937 rng(7);
  const int64_t kEnds[] = {kInt64Min, -9, -3, -1, 0, 1, 2, 4, 9, kInt64Max};
  for (int trial = 0; trial < 300; ++trial) {
    const Shape shape = RandomShape(rng, 4, 0, 5);
    const Tensor x = RandomInt32(shape, rng);
    std::vector<int64_t> starts, ends, axes, steps;
    std::vector<std::vector<int64_t>> picks(shape.size());
    for (size_t a = 0; a < shape.size(); ++a) {
      const int64_t d = shape[a];
      if (rng() % 4 == 0) {  // axis left alone
        for (int64_t i = 0; i < d; ++i) picks[a].push_back(i);
        continue;
      }
      int64_t s = kEnds[rng() % 10], e = kEnds[rng() % 10];
      const int64_t st = (rng() % 2 ? 1 : -1) * (1 + rng() % 3);
      starts.push_back(s);
      ends.push_back(e);
      steps.push_back(st);
      // Negative axes half of the time.
      axes.push_back(rng() % 2
                         ? static_cast<int64_t>(a)
                         : static_cast<int64_t>(a) - int64_t(shape.size()));
      // The spec's effective start/end, then a plain walk.
      if (s < 0) s += d;
      if (e < 0) e += d;
      if (st > 0) {
        s = std::clamp<int64_t>(s, 0, d);
        e = std::clamp<int64_t>(e, 0, d);
        for (int64_t i = s; i < e; i += st) picks[a].push_back(i);
      } else if (d > 0) {
        s = std::clamp<int64_t>(s, 0, d - 1);
        e = std::clamp<int64_t>(e, -1, d - 1);
        for (int64_t i = s; i > e; i += st) picks[a].push_back(i);
      }
    }
    if (starts.empty()) continue;
    std::vector<Tensor> y =
        MustRun("Slice", {x, I64(starts), I64(ends), I64(axes), I64(steps)});
    Shape want_shape;
    for (const auto& p : picks) want_shape.push_back(p.size());
    ASSERT_EQ(y[0].shape(), want_shape) << "trial " << trial;
    std::vector<int32_t> want;
    ForEachIndex(want_shape, [&](const std::vector<int64_t>& idx) {
      std::vector<int64_t> src(idx.size());
      for (size_t a = 0; a < idx.size(); ++a) src[a] = picks[a][idx[a]];
      want.push_back(x.data<int32_t>()[Offset(shape, src)]);
    });
    ASSERT_EQ(y[0].ToVector<int32_t>(), want) << "trial " << trial;
  }
}

}  // namespace
}  // namespace quantd
