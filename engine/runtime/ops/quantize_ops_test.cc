// quantd.DequantizePackedCodes against DequantizeLinear on the same codes
// one per byte: the packed node must give the same floats.
#include <cstdint>
#include <vector>

#include "engine/ir/weight_codes.h"
#include "engine/testing/op_test_util.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

absl::StatusOr<std::vector<Tensor>> RunPacked(const WeightCodes& codes,
                                              const Tensor& scale,
                                              const Tensor& zp,
                                              AttributeMap attrs) {
  attrs.Set("shape", IntsAttr(codes.shape()));
  SingleOpOptions options;
  options.opset = 21;
  options.domain = kPackedCodesDomain;
  return RunSingleOp(kDequantizePackedCodesOp, {codes.storage(), scale, zp},
                     attrs, options);
}

// int4 [5, 6] (odd element count) per group of 2 along axis 0, and uint4
// per channel along axis 1.
TEST(DequantizePackedCodesTest, MatchesDequantizeLinear) {
  struct Case {
    DataType type;
    AttributeMap attrs;
    Shape scale_shape;
  };
  const std::vector<Case> cases = {
      {DataType::kInt8,
       Attrs({{"axis", IntAttr(0)}, {"block_size", IntAttr(2)}}),
       {3, 7}},
      {DataType::kUInt8, Attrs({{"axis", IntAttr(1)}}), {7}},
  };
  for (const Case& c : cases) {
    Tensor values(c.type, {5, 7});
    for (int64_t i = 0; i < values.num_elements(); ++i) {
      const int v = static_cast<int>((i * 7) % 16);
      if (c.type == DataType::kInt8) {
        values.mutable_data<int8_t>()[i] = static_cast<int8_t>(v - 8);
      } else {
        values.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(v);
      }
    }
    Tensor scale(DataType::kFloat32, c.scale_shape);
    Tensor zp(c.type, c.scale_shape);
    for (int64_t i = 0; i < scale.num_elements(); ++i) {
      scale.mutable_data<float>()[i] = 0.01f * static_cast<float>(i + 1);
      static_cast<uint8_t*>(zp.mutable_raw_data())[i] =
          static_cast<uint8_t>(c.type == DataType::kInt8 ? 0xFF : 3);
    }
    absl::StatusOr<WeightCodes> codes = WeightCodes::FromValues(values, 4);
    ASSERT_TRUE(codes.ok()) << codes.status();
    absl::StatusOr<std::vector<Tensor>> got =
        RunPacked(*codes, scale, zp, c.attrs);
    absl::StatusOr<std::vector<Tensor>> want =
        RunSingleOp("DequantizeLinear", {values, scale, zp}, c.attrs, 21);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_TRUE(want.ok()) << want.status();
    EXPECT_EQ((*got)[0].shape(), (Shape{5, 7}));
    EXPECT_EQ((*got)[0].ToVector<float>(), (*want)[0].ToVector<float>());
  }
}

TEST(DequantizePackedCodesTest, RefusesAShapeTheBytesDoNotHold) {
  const WeightCodes codes = *WeightCodes::FromValues(
      Tensor::Zeros(DataType::kInt8, {4, 4}), 4);  // 8 bytes
  AttributeMap attrs = Attrs({{"axis", IntAttr(0)}});
  attrs.Set("shape", IntsAttr({8, 8}));  // 32 bytes' worth
  SingleOpOptions options;
  options.opset = 21;
  options.domain = kPackedCodesDomain;
  absl::StatusOr<std::vector<Tensor>> out =
      RunSingleOp(kDequantizePackedCodesOp,
                  {codes.storage(),
                   Tensor::FromVector<float>({8}, std::vector<float>(8, 1)),
                   Tensor::Zeros(DataType::kInt8, {8})},
                  attrs, options);
  ASSERT_FALSE(out.ok());
  EXPECT_THAT(out.status().message(), HasSubstr("packed in uint8[32]"));
}

}  // namespace
}  // namespace quantd
