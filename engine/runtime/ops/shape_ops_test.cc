#include <cstdint>
#include <limits>
#include <vector>

#include "absl/status/status.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "engine/testing/op_test_util.h"
#include "engine/testing/op_test_util_gtest.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kernels/reorder.h"

namespace quantd {

const OpRegistry& TestRegistry() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterShapeOps(*r);
    return r;
  }();
  return *registry;
}

namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

Tensor Iota(const Shape& shape) { return FloatIota(shape); }

Tensor I64(std::vector<int64_t> v) { return Int64Vector(v); }

// ---------------------------------------------------------------- Reshape

TEST(ReshapeTest, KeepsDataInRowMajorOrder) {
  std::vector<Tensor> y = MustRun("Reshape", {Iota({2, 3, 4}), I64({4, 2, 3})});
  EXPECT_EQ(y[0].shape(), Shape({4, 2, 3}));
  EXPECT_EQ(y[0].ToVector<float>(), Iota({24}).ToVector<float>());
}

TEST(ReshapeTest, ZeroCopiesInputDimAndMinusOneIsInferred) {
  EXPECT_EQ(MustRun("Reshape", {Iota({2, 3, 4}), I64({0, -1})})[0].shape(),
            Shape({2, 12}));
  EXPECT_EQ(MustRun("Reshape", {Iota({2, 3, 4}), I64({-1})})[0].shape(),
            Shape({24}));
  EXPECT_EQ(MustRun("Reshape", {Iota({2, 3, 4}), I64({2, -1, 2})})[0].shape(),
            Shape({2, 6, 2}));
  // ONNX's reshape_reordered_all_dims / reshape_zero_and_negative_dim.
  EXPECT_EQ(
      MustRun("Reshape", {Iota({2, 3, 4}), I64({2, 0, 1, -1})})[0].shape(),
      Shape({2, 3, 1, 4}));
}

TEST(ReshapeTest, AllowZeroMakesZeroALiteralDim) {
  AttributeMap allow = Attrs({{"allowzero", IntAttr(1)}});
  std::vector<Tensor> y =
      MustRun("Reshape", {Iota({0, 3, 4}), I64({3, 4, 0})}, allow);
  EXPECT_EQ(y[0].shape(), Shape({3, 4, 0}));
  // Before opset 14 the attribute does not exist: 0 copies.
  y = MustRun("Reshape", {Iota({2, 3}), I64({0, 3})}, allow, 13);
  EXPECT_EQ(y[0].shape(), Shape({2, 3}));
  absl::Status s = RunStatus("Reshape", {Iota({0, 3}), I64({0, -1})}, allow);
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("both 0 and -1"));
}

TEST(ReshapeTest, ZeroSizeInput) {
  EXPECT_EQ(MustRun("Reshape", {Iota({0, 4}), I64({-1, 2})})[0].shape(),
            Shape({0, 2}));
  // 0 copied from the input leaves -1 undeterminable.
  EXPECT_EQ(RunStatus("Reshape", {Iota({0, 4}), I64({0, -1})}).code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ReshapeTest, WorksOnAnyElementType) {
  Tensor x = Tensor::FromVector<int8_t>({2, 2}, {1, -2, 3, -4});
  std::vector<Tensor> y = MustRun("Reshape", {x, I64({4})});
  EXPECT_EQ(y[0].dtype(), DataType::kInt8);
  EXPECT_THAT(y[0].ToVector<int8_t>(), ElementsAre(1, -2, 3, -4));
}

TEST(ReshapeTest, Errors) {
  absl::Status s = RunStatus("Reshape", {Iota({2, 3}), I64({4, 2})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cannot reshape"));
  EXPECT_THAT(s.message(), HasSubstr("Reshape node"));
  EXPECT_THAT(RunStatus("Reshape", {Iota({2, 3}), I64({-1, -1})}).message(),
              HasSubstr("more than one -1"));
  EXPECT_EQ(RunStatus("Reshape", {Iota({2, 3}), I64({-2, -3})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Reshape", {Iota({6}), I64({2, 0})}).code(),
            absl::StatusCode::kInvalidArgument);  // 0 past the input rank
  EXPECT_EQ(RunStatus("Reshape", {Iota({6}), I64({4, -1})}).code(),
            absl::StatusCode::kInvalidArgument);  // 6 not divisible by 4
  EXPECT_EQ(RunStatus("Reshape", {Iota({6})}).code(),
            absl::StatusCode::kInvalidArgument);  // missing shape
}

// ---------------------------------------------------------------- Flatten

TEST(FlattenTest, Axes) {
  Tensor x = Iota({2, 3, 4, 5});
  EXPECT_EQ(MustRun("Flatten", {x})[0].shape(), Shape({2, 60}));
  EXPECT_EQ(MustRun("Flatten", {x}, Attrs({{"axis", IntAttr(0)}}))[0].shape(),
            Shape({1, 120}));
  EXPECT_EQ(MustRun("Flatten", {x}, Attrs({{"axis", IntAttr(4)}}))[0].shape(),
            Shape({120, 1}));
  EXPECT_EQ(MustRun("Flatten", {x}, Attrs({{"axis", IntAttr(-1)}}))[0].shape(),
            Shape({24, 5}));
  EXPECT_EQ(MustRun("Flatten", {x}, Attrs({{"axis", IntAttr(-4)}}))[0].shape(),
            Shape({1, 120}));
  EXPECT_EQ(MustRun("Flatten", {Iota({0, 3})}, Attrs({{"axis", IntAttr(1)}}))[0]
                .shape(),
            Shape({0, 3}));
  EXPECT_EQ(RunStatus("Flatten", {x}, Attrs({{"axis", IntAttr(5)}})).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Flatten", {x}, Attrs({{"axis", IntAttr(-5)}})).code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------ Squeeze/Unsqueeze

TEST(SqueezeTest, AxesInputFromOpset13) {
  Tensor x = Iota({1, 3, 1, 5});
  EXPECT_EQ(MustRun("Squeeze", {x, I64({0})})[0].shape(), Shape({3, 1, 5}));
  EXPECT_EQ(MustRun("Squeeze", {x, I64({-2, 0})})[0].shape(), Shape({3, 5}));
  EXPECT_EQ(MustRun("Squeeze", {x})[0].shape(), Shape({3, 5}));
  EXPECT_EQ(MustRun("Squeeze", {Iota({1, 1})})[0].shape(), Shape({}));
}

TEST(SqueezeTest, AxesAttributeBeforeOpset13) {
  Tensor x = Iota({1, 3, 1, 5});
  EXPECT_EQ(
      MustRun("Squeeze", {x}, Attrs({{"axes", IntsAttr({2})}}), 11)[0].shape(),
      Shape({1, 3, 5}));
  EXPECT_EQ(MustRun("Squeeze", {x}, {}, 11)[0].shape(), Shape({3, 5}));
}

TEST(SqueezeTest, Errors) {
  Tensor x = Iota({1, 3, 1, 5});
  absl::Status s = RunStatus("Squeeze", {x, I64({1})});
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("cannot squeeze axis 1 of size 3"));
  EXPECT_EQ(RunStatus("Squeeze", {x, I64({4})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Squeeze", {x, I64({0, -4})}).code(),
            absl::StatusCode::kInvalidArgument);  // duplicate
}

TEST(UnsqueezeTest, AxesIndexTheOutput) {
  Tensor x = Iota({3, 4, 5});
  EXPECT_EQ(MustRun("Unsqueeze", {x, I64({0, 4})})[0].shape(),
            Shape({1, 3, 4, 5, 1}));
  // ONNX's unsqueeze_unsorted_axes.
  EXPECT_EQ(MustRun("Unsqueeze", {x, I64({5, 4, 2})})[0].shape(),
            Shape({3, 4, 1, 5, 1, 1}));
  EXPECT_EQ(MustRun("Unsqueeze", {x, I64({-1})})[0].shape(),
            Shape({3, 4, 5, 1}));
  EXPECT_EQ(
      MustRun("Unsqueeze", {Tensor::Scalar<float>(2), I64({0})})[0].shape(),
      Shape({1}));
  std::vector<Tensor> y =
      MustRun("Unsqueeze", {x}, Attrs({{"axes", IntsAttr({1})}}), 11);
  EXPECT_EQ(y[0].shape(), Shape({3, 1, 4, 5}));
  EXPECT_EQ(y[0].ToVector<float>(), x.ToVector<float>());
}

TEST(UnsqueezeTest, Errors) {
  Tensor x = Iota({3, 4});
  EXPECT_EQ(RunStatus("Unsqueeze", {x, I64({3})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(RunStatus("Unsqueeze", {x, I64({1, 1})}).message(),
              HasSubstr("more than once"));
  EXPECT_EQ(RunStatus("Unsqueeze", {x}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Unsqueeze", {x}, {}, 11).code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ Shape

std::vector<int64_t> ShapeOf(const Tensor& x, const AttributeMap& attrs,
                             int64_t opset = 17) {
  std::vector<Tensor> y = MustRun("Shape", {x}, attrs, opset);
  EXPECT_EQ(y[0].dtype(), DataType::kInt64);
  EXPECT_EQ(y[0].rank(), 1);
  return y[0].ToVector<int64_t>();
}

TEST(ShapeTest, StartAndEnd) {
  Tensor x = Iota({3, 4, 5});
  EXPECT_THAT(ShapeOf(x, {}), ElementsAre(3, 4, 5));
  EXPECT_THAT(ShapeOf(x, Attrs({{"start", IntAttr(1)}})), ElementsAre(4, 5));
  EXPECT_THAT(ShapeOf(x, Attrs({{"end", IntAttr(1)}})), ElementsAre(3));
  EXPECT_THAT(ShapeOf(x, Attrs({{"start", IntAttr(-1)}})), ElementsAre(5));
  EXPECT_THAT(ShapeOf(x, Attrs({{"end", IntAttr(-1)}})), ElementsAre(3, 4));
  EXPECT_THAT(ShapeOf(x, Attrs({{"start", IntAttr(1)}, {"end", IntAttr(2)}})),
              ElementsAre(4));
  // Out-of-range values clamp to [0, rank].
  EXPECT_THAT(ShapeOf(x, Attrs({{"start", IntAttr(-10)}})),
              ElementsAre(3, 4, 5));
  EXPECT_THAT(ShapeOf(x, Attrs({{"end", IntAttr(10)}})), ElementsAre(3, 4, 5));
  EXPECT_THAT(ShapeOf(x, Attrs({{"start", IntAttr(2)}, {"end", IntAttr(1)}})),
              ElementsAre());
  EXPECT_THAT(ShapeOf(Tensor::Scalar<float>(1), {}), ElementsAre());
  EXPECT_THAT(ShapeOf(Iota({0, 7}), {}), ElementsAre(0, 7));
}

TEST(ShapeTest, OldOpsetIgnoresSliceAttributes) {
  EXPECT_THAT(ShapeOf(Iota({3, 4}), Attrs({{"start", IntAttr(1)}}), 13),
              ElementsAre(3, 4));
}

// ------------------------------------------------------- Identity/Dropout

TEST(IdentityTest, PassesAnyType) {
  Tensor x = Tensor::FromVector<int64_t>({2}, {5, -6});
  std::vector<Tensor> y = MustRun("Identity", {x});
  EXPECT_EQ(y[0].dtype(), DataType::kInt64);
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(5, -6));
}

TEST(DropoutTest, InferenceIsIdentityWithAllTrueMask) {
  Tensor x = Iota({2, 3});
  std::vector<Tensor> y = MustRun("Dropout", {x}, {}, 17, 2);
  EXPECT_EQ(y[0].ToVector<float>(), x.ToVector<float>());
  EXPECT_EQ(y[1].dtype(), DataType::kBool);
  EXPECT_EQ(y[1].shape(), Shape({2, 3}));
  EXPECT_THAT(y[1].ToVector<bool>(), ::testing::Each(true));
  // An explicit ratio is ignored outside training.
  y = MustRun("Dropout",
              {x, Tensor::Scalar<float>(0.7f), Tensor::Scalar<bool>(false)});
  EXPECT_EQ(y[0].ToVector<float>(), x.ToVector<float>());
}

TEST(DropoutTest, TrainingModeWithZeroRatioIsIdentity) {
  Tensor x = Iota({4});
  std::vector<Tensor> y = MustRun(
      "Dropout", {x, Tensor::Scalar<float>(0.0f), Tensor::Scalar<bool>(true)},
      {}, 17, 2);
  EXPECT_EQ(y[0].ToVector<float>(), x.ToVector<float>());
  EXPECT_THAT(y[1].ToVector<bool>(), ::testing::Each(true));
}

TEST(DropoutTest, TrainingModeIsRefused) {
  absl::Status s = RunStatus("Dropout", {Iota({4}), Tensor::Scalar<float>(0.5f),
                                         Tensor::Scalar<bool>(true)});
  EXPECT_EQ(s.code(), absl::StatusCode::kUnimplemented);
  EXPECT_THAT(s.message(), HasSubstr("training mode"));
  // Omitted ratio defaults to 0.5.
  EXPECT_EQ(
      RunStatus("Dropout", {Iota({4}), Tensor(), Tensor::Scalar<bool>(true)})
          .code(),
      absl::StatusCode::kUnimplemented);
}

TEST(DropoutTest, OldOpsets) {
  Tensor x = Iota({3});
  // Opset 7 to 9: ratio attribute, mask of the input's type.
  std::vector<Tensor> y =
      MustRun("Dropout", {x}, Attrs({{"ratio", FloatAttr(0.2f)}}), 7, 2);
  EXPECT_EQ(y[0].ToVector<float>(), x.ToVector<float>());
  EXPECT_EQ(y[1].dtype(), DataType::kFloat32);
  EXPECT_THAT(y[1].ToVector<float>(), ElementsAre(1, 1, 1));
  y = MustRun("Dropout", {x}, {}, 10, 2);
  EXPECT_EQ(y[1].dtype(), DataType::kBool);
}

// ----------------------------------------------------------------- Expand

TEST(ExpandTest, SpecExamples) {
  // expand_dim_changed: [3,1] to [2,1,6] gives [2,3,6].
  Tensor x = Tensor::FromVector<float>({3, 1}, {1, 2, 3});
  std::vector<Tensor> y = MustRun("Expand", {x, I64({2, 1, 6})});
  ASSERT_EQ(y[0].shape(), Shape({2, 3, 6}));
  std::vector<float> v = y[0].ToVector<float>();
  for (int b = 0; b < 2; ++b) {
    for (int i = 0; i < 3; ++i) {
      for (int j = 0; j < 6; ++j) EXPECT_EQ(v[(b * 3 + i) * 6 + j], i + 1);
    }
  }
  // expand_dim_unchanged: [3,1] to [3,4].
  y = MustRun("Expand", {x, I64({3, 4})});
  EXPECT_THAT(y[0].ToVector<float>(),
              ElementsAre(1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3));
}

TEST(ExpandTest, BidirectionalAndTypes) {
  // A 1 in the shape keeps the input's dim; a shorter shape is fine.
  Tensor x = Tensor::FromVector<int64_t>({2, 3}, {1, 2, 3, 4, 5, 6});
  std::vector<Tensor> y = MustRun("Expand", {x, I64({1, 1})});
  EXPECT_EQ(y[0].shape(), Shape({2, 3}));
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(1, 2, 3, 4, 5, 6));
  y = MustRun("Expand", {x, I64({2, 1, 1})});
  EXPECT_EQ(y[0].shape(), Shape({2, 2, 3}));
  EXPECT_THAT(y[0].ToVector<int64_t>(),
              ElementsAre(1, 2, 3, 4, 5, 6, 1, 2, 3, 4, 5, 6));
  y = MustRun("Expand", {Tensor::Scalar<uint8_t>(7), I64({3})});
  EXPECT_THAT(y[0].ToVector<uint8_t>(), ElementsAre(7, 7, 7));
  y = MustRun("Expand", {Iota({1, 3}), I64({0, 3})});
  EXPECT_EQ(y[0].shape(), Shape({0, 3}));
}

TEST(ExpandTest, Errors) {
  EXPECT_EQ(RunStatus("Expand", {Iota({3}), I64({2})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Expand", {Iota({1}), I64({-1})}).code(),
            absl::StatusCode::kInvalidArgument);
  absl::Status s =
      RunStatus("Expand", {Iota({1}), I64({int64_t{1} << 20, 1 << 20})});
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
}

// --------------------------------------------------------------- Constant

TEST(ConstantTest, EachValueAttribute) {
  Tensor t = Tensor::FromVector<int32_t>({2}, {4, 5});
  std::vector<Tensor> y =
      MustRun("Constant", {}, Attrs({{"value", TensorAttr(t)}}));
  EXPECT_EQ(y[0].dtype(), DataType::kInt32);
  EXPECT_THAT(y[0].ToVector<int32_t>(), ElementsAre(4, 5));

  y = MustRun("Constant", {}, Attrs({{"value_float", FloatAttr(1.5f)}}));
  EXPECT_EQ(y[0].shape(), Shape({}));
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1.5f));
  y = MustRun("Constant", {}, Attrs({{"value_floats", FloatsAttr({1, 2})}}));
  EXPECT_EQ(y[0].shape(), Shape({2}));
  y = MustRun("Constant", {}, Attrs({{"value_int", IntAttr(-3)}}));
  EXPECT_EQ(y[0].dtype(), DataType::kInt64);
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(-3));
  y = MustRun("Constant", {}, Attrs({{"value_ints", IntsAttr({7, 8, 9})}}));
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(7, 8, 9));
}

TEST(ConstantTest, Errors) {
  EXPECT_EQ(RunStatus("Constant", {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Constant", {},
                      Attrs({{"value_int", IntAttr(1)},
                             {"value_float", FloatAttr(1)}}))
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      RunStatus("Constant", {}, Attrs({{"value_string", StringAttr("a")}}))
          .code(),
      absl::StatusCode::kUnimplemented);
}

// -------------------------------------------------------- ConstantOfShape

TEST(ConstantOfShapeTest, DefaultAndExplicitValues) {
  std::vector<Tensor> y = MustRun("ConstantOfShape", {I64({2, 3})});
  EXPECT_EQ(y[0].dtype(), DataType::kFloat32);
  EXPECT_EQ(y[0].shape(), Shape({2, 3}));
  EXPECT_THAT(y[0].ToVector<float>(), ::testing::Each(0.0f));

  AttributeMap seven =
      Attrs({{"value", TensorAttr(Tensor::FromVector<int64_t>({1}, {7}))}});
  y = MustRun("ConstantOfShape", {I64({4})}, seven);
  EXPECT_EQ(y[0].dtype(), DataType::kInt64);
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(7, 7, 7, 7));
  // An empty shape makes a scalar; a zero dim an empty tensor.
  y = MustRun("ConstantOfShape", {I64({})}, seven);
  EXPECT_EQ(y[0].shape(), Shape({}));
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(7));
  y = MustRun("ConstantOfShape", {I64({0, 3})}, seven);
  EXPECT_EQ(y[0].shape(), Shape({0, 3}));
}

TEST(ConstantOfShapeTest, Errors) {
  EXPECT_EQ(RunStatus("ConstantOfShape", {I64({2, -1})}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("ConstantOfShape", {I64({1 << 20, 1 << 20})}).code(),
            absl::StatusCode::kResourceExhausted);
  AttributeMap two =
      Attrs({{"value", TensorAttr(Tensor::FromVector<float>({2}, {1, 2}))}});
  EXPECT_EQ(RunStatus("ConstantOfShape", {I64({2})}, two).code(),
            absl::StatusCode::kInvalidArgument);
}

// ------------------------------------------------------------------ Range

TEST(RangeTest, SpecExamples) {
  std::vector<Tensor> y =
      MustRun("Range", {Tensor::Scalar<float>(1), Tensor::Scalar<float>(5),
                        Tensor::Scalar<float>(2)});
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(1, 3));
  y = MustRun("Range", {Tensor::Scalar<int32_t>(10), Tensor::Scalar<int32_t>(6),
                        Tensor::Scalar<int32_t>(-3)});
  EXPECT_EQ(y[0].dtype(), DataType::kInt32);
  EXPECT_THAT(y[0].ToVector<int32_t>(), ElementsAre(10, 7));
}

TEST(RangeTest, FloatAndEmpty) {
  std::vector<Tensor> y =
      MustRun("Range", {Tensor::Scalar<float>(0), Tensor::Scalar<float>(1),
                        Tensor::Scalar<float>(0.25f)});
  EXPECT_THAT(y[0].ToVector<float>(), ElementsAre(0, 0.25f, 0.5f, 0.75f));
  y = MustRun("Range", {Tensor::Scalar<int64_t>(5), Tensor::Scalar<int64_t>(1),
                        Tensor::Scalar<int64_t>(1)});
  EXPECT_EQ(y[0].shape(), Shape({0}));
}

TEST(RangeTest, Int64ExtremesDoNotOverflow) {
  constexpr int64_t kMin = std::numeric_limits<int64_t>::min();
  constexpr int64_t kMax = std::numeric_limits<int64_t>::max();
  std::vector<Tensor> y = MustRun(
      "Range", {Tensor::Scalar<int64_t>(kMin), Tensor::Scalar<int64_t>(kMax),
                Tensor::Scalar<int64_t>(kMax)});
  EXPECT_THAT(y[0].ToVector<int64_t>(), ElementsAre(kMin, -1, kMax - 1));
}

TEST(RangeTest, Errors) {
  EXPECT_EQ(RunStatus("Range",
                      {Tensor::Scalar<int64_t>(0), Tensor::Scalar<int64_t>(5),
                       Tensor::Scalar<int64_t>(0)})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(RunStatus("Range", {Tensor::Scalar<int64_t>(0),
                                Tensor::Scalar<int64_t>(int64_t{1} << 40),
                                Tensor::Scalar<int64_t>(1)})
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RunStatus("Range",
                      {Tensor::Scalar<float>(0), Tensor::Scalar<float>(1e12f),
                       Tensor::Scalar<float>(1)})
                .code(),
            absl::StatusCode::kResourceExhausted);
  EXPECT_EQ(RunStatus("Range",
                      {Tensor::Scalar<int64_t>(0), Tensor::Scalar<int32_t>(5),
                       Tensor::Scalar<int64_t>(1)})
                .code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      RunStatus("Range", {Tensor::Scalar<float>(0), Tensor::Scalar<float>(5),
                          Tensor::Scalar<float>(0)})
          .code(),
      absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace quantd
