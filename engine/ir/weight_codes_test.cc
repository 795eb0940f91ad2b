#include "engine/ir/weight_codes.h"

#include <cstdint>
#include <cstring>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

// Every int4 value, in an odd count so the last byte is half used.
Tensor AllInt4(int64_t n) {
  Tensor t(DataType::kInt8, {n});
  for (int64_t i = 0; i < n; ++i) {
    t.mutable_data<int8_t>()[i] = static_cast<int8_t>(i % 16 - 8);
  }
  return t;
}

TEST(WeightCodesTest, FourBitValuesArePackedLowNibbleFirst) {
  Tensor v = Tensor::FromVector<int8_t>({2, 3}, {-8, 7, -1, 0, 3, -5});
  absl::StatusOr<WeightCodes> c = WeightCodes::FromValues(v, 4);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->shape(), (Shape{2, 3}));
  EXPECT_EQ(c->bits(), 4);
  EXPECT_EQ(c->dtype(), DataType::kInt8);
  // -8 = 0x8, 7 = 0x7 -> 0x78; -1 = 0xF, 0 -> 0x0F; 3, -5 = 0xB -> 0xB3.
  EXPECT_EQ(c->storage().ToVector<uint8_t>(),
            (std::vector<uint8_t>{0x78, 0x0F, 0xB3}));
  EXPECT_EQ(c->byte_size(), 3);
  EXPECT_EQ(c->Values().ToVector<int8_t>(), v.ToVector<int8_t>());
  EXPECT_EQ(PackFourBit(v), std::string("\x78\x0F\xB3", 3));
  EXPECT_EQ(c->DebugString(), "int4 [2,3]");
}

TEST(WeightCodesTest, RoundTripsEveryValueAndSlice) {
  for (DataType type : {DataType::kInt8, DataType::kUInt8}) {
    Tensor v = AllInt4(10001);
    if (type == DataType::kUInt8) {
      v = Tensor(DataType::kUInt8, {10001});
      for (int64_t i = 0; i < v.num_elements(); ++i) {
        v.mutable_data<uint8_t>()[i] = static_cast<uint8_t>(i % 16);
      }
    }
    absl::StatusOr<WeightCodes> c = WeightCodes::FromValues(v, 4);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->byte_size(), 5001);
    const Tensor back = c->Values();
    ASSERT_EQ(back.dtype(), type);
    EXPECT_EQ(0, std::memcmp(back.raw_data(), v.raw_data(), 10001));
    // A slice starting on a high nibble.
    std::vector<uint8_t> slice(7);
    c->ValuesInto(4999, 7, slice.data());
    EXPECT_EQ(0,
              std::memcmp(slice.data(),
                          static_cast<const uint8_t*>(v.raw_data()) + 4999, 7));
    // ForEachValue crosses its chunk boundary (4096) in order.
    int64_t expected = 0;
    bool in_order = true;
    c->ForEachValue([&](int64_t i, int32_t q) {
      const int32_t want = type == DataType::kInt8
                               ? int32_t{v.data<int8_t>()[i]}
                               : int32_t{v.data<uint8_t>()[i]};
      in_order = in_order && i == expected++ && q == want;
    });
    EXPECT_TRUE(in_order);
    EXPECT_EQ(expected, 10001);
  }
}

TEST(WeightCodesTest, EightBitValuesAreShared) {
  Tensor v = Tensor::FromVector<int8_t>({4}, {-128, 127, 0, -1});
  absl::StatusOr<WeightCodes> c = WeightCodes::FromValues(v, 8);
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->storage().raw_data(), v.raw_data());
  EXPECT_EQ(c->Values().raw_data(), v.raw_data());
  std::vector<int32_t> seen;
  c->ForEachValue([&](int64_t, int32_t q) { seen.push_back(q); });
  EXPECT_EQ(seen, (std::vector<int32_t>{-128, 127, 0, -1}));
}

TEST(WeightCodesTest, RefusesValuesThatDoNotFit) {
  absl::StatusOr<WeightCodes> c =
      WeightCodes::FromValues(Tensor::FromVector<int8_t>({2}, {7, 8}), 4);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("[-8, 7]"));
  c = WeightCodes::FromValues(Tensor::FromVector<uint8_t>({1}, {16}), 4);
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(c.status().message(), HasSubstr("[0, 15]"));
  c = WeightCodes::FromValues(Tensor::FromVector<float>({1}, {1.f}), 8);
  ASSERT_FALSE(c.ok());
  c = WeightCodes::FromValues(Tensor::FromVector<int8_t>({1}, {1}), 3);
  ASSERT_FALSE(c.ok());
}

TEST(WeightCodesTest, FromStorageChecksSizes) {
  const WeightCodes c = *WeightCodes::FromValues(AllInt4(5), 4);
  absl::StatusOr<WeightCodes> same =
      WeightCodes::FromStorage(c.storage(), DataType::kInt8, {5}, 4);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->Values().ToVector<int8_t>(), AllInt4(5).ToVector<int8_t>());
  // Five codes need three bytes; a shape claiming more is refused, not read
  // past the end.
  absl::StatusOr<WeightCodes> bad =
      WeightCodes::FromStorage(c.storage(), DataType::kInt8, {2, 4}, 4);
  ASSERT_FALSE(bad.ok());
  EXPECT_THAT(bad.status().message(), HasSubstr("uint8[4]"));
  bad = WeightCodes::FromStorage(c.storage(), DataType::kFloat32, {5}, 4);
  EXPECT_FALSE(bad.ok());
  bad = WeightCodes::FromStorage(c.storage(), DataType::kInt8, {-1, 2}, 4);
  EXPECT_FALSE(bad.ok());
  bad = WeightCodes::FromStorage(AllInt4(5), DataType::kInt8, {6}, 8);
  EXPECT_FALSE(bad.ok());
}

}  // namespace
}  // namespace quantd
