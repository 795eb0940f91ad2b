#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "engine/runtime/ops/op_util.h"
#include "engine/runtime/ops/register_ops.h"
#include "engine/testing/op_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::FloatNear;
using ::testing::HasSubstr;
using ::testing::Pointwise;

const OpRegistry& ResizeRegistry() {
  static const OpRegistry* registry = [] {
    auto* r = new OpRegistry();
    RegisterResizeOps(*r);
    return r;
  }();
  return *registry;
}

absl::StatusOr<std::vector<Tensor>> RunOp(const char* op,
                                          const std::vector<Tensor>& inputs,
                                          const AttributeMap& attrs,
                                          int64_t opset) {
  SingleOpOptions options;
  options.opset = opset;
  options.registry = &ResizeRegistry();
  return RunSingleOp(op, inputs, attrs, options);
}

// Runs and expects success; returns the single output (undefined on
// failure, so the caller's expectations fail without crashing).
Tensor RunOk(const char* op, const std::vector<Tensor>& inputs,
             const AttributeMap& attrs, int64_t opset) {
  absl::StatusOr<std::vector<Tensor>> out = RunOp(op, inputs, attrs, opset);
  EXPECT_TRUE(out.ok()) << out.status();
  if (!out.ok()) return Tensor();
  return (*out)[0];
}

std::vector<float> Values(const Tensor& t) {
  return t.defined() ? t.ToVector<float>() : std::vector<float>();
}

Tensor Floats(Shape shape, std::vector<float> v) {
  return Tensor::FromVector<float>(std::move(shape), v);
}

Tensor Iota(Shape shape) {
  Tensor t(DataType::kFloat32, shape);
  for (int64_t i = 0; i < t.num_elements(); ++i)
    t.mutable_data<float>()[i] = static_cast<float>(i + 1);
  return t;
}

Tensor Scales(std::vector<float> v) {
  return Floats({static_cast<int64_t>(v.size())}, v);
}

const Tensor kEmptyFloats = Tensor(DataType::kFloat32, {0});

TEST(ResizeOpsTest, Resize13NearestWithScales) {
  // ONNX test_resize_upsample_scales_nearest; roi omitted.
  Tensor y = RunOk(
      "Resize",
      {Floats({1, 1, 2, 2}, {1, 2, 3, 4}), Tensor(), Scales({1, 1, 2, 3})},
      Attrs({{"mode", StringAttr("nearest")}}), 13);
  EXPECT_EQ(y.shape(), Shape({1, 1, 4, 6}));
  EXPECT_THAT(Values(y),
              ElementsAreArray({1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,  //
                                3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}));
}

TEST(ResizeOpsTest, Resize13LinearWithSizes) {
  // ONNX test_resize_downsample_sizes_linear_pytorch_half_pixel.
  Tensor y =
      RunOk("Resize",
            {Iota({1, 1, 4, 4}), Tensor(), Tensor(), Int64Vector({1, 1, 3, 1})},
            Attrs({{"mode", StringAttr("linear")},
                   {"coordinate_transformation_mode",
                    StringAttr("pytorch_half_pixel")}}),
            13);
  EXPECT_EQ(y.shape(), Shape({1, 1, 3, 1}));
  EXPECT_THAT(Values(y),
              Pointwise(FloatNear(1e-5), {1.6666666f, 7.f, 12.333333f}));
}

TEST(ResizeOpsTest, Resize11EmptyScalesMeanSizes) {
  // ONNX test_resize_downsample_sizes_nearest_tf_half_pixel_for_nn: roi and
  // scales are empty tensors.
  Tensor y = RunOk("Resize",
                   {Iota({1, 1, 4, 4}), kEmptyFloats, kEmptyFloats,
                    Int64Vector({1, 1, 3, 2})},
                   Attrs({{"coordinate_transformation_mode",
                           StringAttr("tf_half_pixel_for_nn")}}),
                   11);
  EXPECT_EQ(y.shape(), Shape({1, 1, 3, 2}));
  EXPECT_THAT(Values(y), ElementsAre(6, 8, 10, 12, 14, 16));
}

TEST(ResizeOpsTest, CubicExcludeOutsideMatchesOnnxReference) {
  // Values from onnx/backend/test/case/node/resize.py (interpolate_nd with
  // cubic_coeffs(A=-0.5), exclude_outside) for sizes [1, 1, 3, 5].
  Tensor y = RunOk("Resize",
                   {Floats({1, 1, 2, 3}, {1, 2, 4, 3, -1, 0.5f}), Tensor(),
                    Tensor(), Int64Vector({1, 1, 3, 5})},
                   Attrs({{"mode", StringAttr("cubic")},
                          {"cubic_coeff_a", FloatAttr(-0.5f)},
                          {"exclude_outside", IntAttr(1)}}),
                   13);
  EXPECT_EQ(y.shape(), Shape({1, 1, 3, 5}));
  EXPECT_THAT(Values(y),
              Pointwise(FloatNear(1e-5),
                        {0.76812315f, 1.2435192f, 2.1973684f, 3.576738f,
                         4.3836894f, 2.1132076f, 1.3955224f, 0.5f, 1.5690298f,
                         2.3820755f, 3.458292f, 1.5475255f, -1.1973684f,
                         -0.43867832f, 0.38046178f}));
}

TEST(ResizeOpsTest, ScalesGiveFloorOfScaledDims) {
  // 2 * 1.5 = 3, 3 * 1.5 = 4.5 -> 4; align_corners divides by 4.5 - 1.
  Tensor y = RunOk(
      "Resize",
      {Floats({1, 1, 2, 3}, {1, 2, 4, 3, -1, 0.5f}), Tensor(),
       Scales({1, 1, 1.5f, 1.5f})},
      Attrs({{"mode", StringAttr("linear")},
             {"coordinate_transformation_mode", StringAttr("align_corners")}}),
      13);
  EXPECT_EQ(y.shape(), Shape({1, 1, 3, 4}));
  EXPECT_THAT(Values(y), Pointwise(FloatNear(1e-5),
                                   {1.f, 1.5714285f, 2.2857144f, 3.4285715f,
                                    2.f, 1.1428572f, 0.75f, 1.75f, 3.f,
                                    0.71428573f, -0.78571427f, 0.071428575f}));
  // floor is taken in float, as ONNX's shape inference does: 10 * 0.7f is
  // 7 in float (6.9999999 in double).
  y = RunOk("Resize", {Iota({10}), Tensor(), Scales({0.7f})}, {}, 13);
  EXPECT_EQ(y.shape(), Shape({7}));
}

TEST(ResizeOpsTest, TfCropAndResize) {
  // ONNX test_resize_tf_crop_and_resize.
  Tensor y = RunOk(
      "Resize",
      {Iota({1, 1, 4, 4}), Floats({8}, {0, 0, 0.4f, 0.6f, 1, 1, 1.2f, 1.7f}),
       Tensor(), Int64Vector({1, 1, 3, 3})},
      Attrs(
          {{"mode", StringAttr("linear")},
           {"coordinate_transformation_mode", StringAttr("tf_crop_and_resize")},
           {"extrapolation_value", FloatAttr(10)}}),
      13);
  EXPECT_THAT(Values(y),
              Pointwise(FloatNear(1e-5), {7.6f, 10.f, 10.f, 12.4f, 10.f, 10.f,
                                          10.f, 10.f, 10.f}));
}

TEST(ResizeOpsTest, Resize10IsAsymmetricWithLegacyRounding) {
  // ONNX 1.5's Resize-10 test data.
  Tensor x = Floats({1, 1, 2, 4}, {1, 2, 3, 4, 5, 6, 7, 8});
  Tensor y = RunOk("Resize", {x, Scales({1, 1, 0.6f, 0.6f})},
                   Attrs({{"mode", StringAttr("nearest")}}), 10);
  EXPECT_EQ(y.shape(), Shape({1, 1, 1, 2}));
  EXPECT_THAT(Values(y), ElementsAre(1, 3));
  y = RunOk("Resize", {x, Scales({1, 1, 0.6f, 0.6f})},
            Attrs({{"mode", StringAttr("linear")}}), 10);
  EXPECT_THAT(Values(y), Pointwise(FloatNear(1e-6), {1.f, 2.6666665f}));
  y = RunOk("Resize",
            {Floats({1, 1, 2, 2}, {1, 2, 3, 4}), Scales({1, 1, 2, 2})},
            Attrs({{"mode", StringAttr("linear")}}), 10);
  EXPECT_THAT(Values(y), Pointwise(FloatNear(1e-6),
                                   {1.f, 1.5f, 2.f, 2.f, 2.f, 2.5f, 3.f, 3.f,
                                    3.f, 3.5f, 4.f, 4.f, 3.f, 3.5f, 4.f, 4.f}));
}

TEST(ResizeOpsTest, Upsample9And7) {
  Tensor x = Floats({1, 1, 2, 2}, {1, 2, 3, 4});
  // ONNX test_upsample_nearest (opset 9, scales input).
  Tensor y = RunOk("Upsample", {x, Scales({1, 1, 2, 3})},
                   Attrs({{"mode", StringAttr("nearest")}}), 9);
  EXPECT_EQ(y.shape(), Shape({1, 1, 4, 6}));
  EXPECT_THAT(Values(y),
              ElementsAreArray({1, 1, 1, 2, 2, 2, 1, 1, 1, 2, 2, 2,  //
                                3, 3, 3, 4, 4, 4, 3, 3, 3, 4, 4, 4}));
  // Opset 7: scales attribute; linear is asymmetric.
  y = RunOk("Upsample", {x},
            Attrs({{"mode", StringAttr("linear")},
                   {"scales", FloatsAttr({1, 1, 2, 2})}}),
            7);
  EXPECT_THAT(Values(y), Pointwise(FloatNear(1e-6),
                                   {1.f, 1.5f, 2.f, 2.f, 2.f, 2.5f, 3.f, 3.f,
                                    3.f, 3.5f, 4.f, 4.f, 3.f, 3.5f, 4.f, 4.f}));
}

absl::Status ResizeError(const std::vector<Tensor>& inputs,
                         const AttributeMap& attrs = {}, int64_t opset = 13,
                         const char* op = "Resize") {
  absl::StatusOr<std::vector<Tensor>> out = RunOp(op, inputs, attrs, opset);
  return out.ok() ? absl::OkStatus() : out.status();
}

TEST(ResizeOpsTest, RejectsBadAttributes) {
  Tensor x = Iota({1, 1, 2, 2});
  Tensor s = Scales({1, 1, 2, 2});
  absl::Status st =
      ResizeError({x, Tensor(), s}, Attrs({{"mode", StringAttr("bicubic")}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("'bicubic'"));
  st = ResizeError({x, Tensor(), s},
                   Attrs({{"coordinate_transformation_mode",
                           StringAttr("tf_half_pixel_for_centers")}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("'tf_half_pixel_for_centers'"));
  st = ResizeError({x, Tensor(), s},
                   Attrs({{"nearest_mode", StringAttr("round")}}));
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("'round'"));
  st = ResizeError({x, s}, Attrs({{"mode", StringAttr("cubic")}}), 10);
  EXPECT_THAT(st.message(), HasSubstr("'cubic'"));
  st = ResizeError({x, s}, Attrs({{"mode", StringAttr("cubic")}}), 9,
                   "Upsample");
  EXPECT_THAT(st.message(), HasSubstr("'cubic'"));
  st = ResizeError({x}, {}, 7, "Upsample");
  EXPECT_THAT(st.message(), HasSubstr("'scales' attribute"));
}

TEST(ResizeOpsTest, RejectsBadScalesAndSizes) {
  Tensor x = Iota({1, 1, 2, 2});
  absl::Status st = ResizeError({x, Tensor(), Scales({2, 2})});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(st.message(), HasSubstr("scales has 2 values"));
  st = ResizeError({x, Tensor(), Scales({1, 1, -2, 2})});
  EXPECT_THAT(st.message(), HasSubstr("positive"));
  st = ResizeError({x, Tensor(), Tensor(), Int64Vector({4, 4})});
  EXPECT_THAT(st.message(), HasSubstr("sizes has 2 values"));
  st = ResizeError({x, Tensor(), Tensor(), Int64Vector({1, 1, -1, 4})});
  EXPECT_EQ(st.code(), absl::StatusCode::kInvalidArgument);
  st = ResizeError(
      {x, Tensor(), Scales({1, 1, 2, 2}), Int64Vector({1, 1, 4, 4})});
  EXPECT_THAT(st.message(), HasSubstr("both are"));
  st = ResizeError({x, kEmptyFloats, kEmptyFloats});
  EXPECT_THAT(st.message(), HasSubstr("neither is"));
  st = ResizeError({x}, {}, 10);
  EXPECT_THAT(st.message(), HasSubstr("scales input"));
  st = ResizeError({x, Tensor(), Tensor(), Int64Vector({1, 1, 4, 4})},
                   Attrs({{"coordinate_transformation_mode",
                           StringAttr("tf_crop_and_resize")}}));
  EXPECT_THAT(st.message(), HasSubstr("roi"));
  st = ResizeError({x, Tensor(), Scales({1, 1, 1e9f, 1e9f})});
  EXPECT_EQ(st.code(), absl::StatusCode::kResourceExhausted);
  st = ResizeError(
      {Tensor::FromVector<int64_t>({2}, {1, 2}), Tensor(), Scales({2})});
  EXPECT_EQ(st.code(), absl::StatusCode::kUnimplemented);
  // Upsample only grows.
  st = ResizeError({x, Scales({1, 1, 0.5f, 2})}, {}, 9, "Upsample");
  EXPECT_THAT(st.message(), HasSubstr(">= 1"));
}

}  // namespace
}  // namespace quantd
