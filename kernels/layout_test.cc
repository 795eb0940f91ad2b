#include "kernels/layout.h"

#include <cstring>
#include <random>

#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor RandomBytes(DataType type, const Shape& shape, std::mt19937& rng) {
  Tensor t(type, shape);
  auto* p = static_cast<unsigned char*>(t.mutable_raw_data());
  for (size_t i = 0; i < t.byte_size(); ++i) p[i] = rng() & 0x7f;
  return t;
}

bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() &&
         a.layout() == b.layout() &&
         std::memcmp(a.raw_data(), b.raw_data(), a.byte_size()) == 0;
}

TEST(LayoutTest, ChannelsLastStoresChannelsInnermost) {
  // [1, 2, 1, 3]: plain c0: 0 1 2, c1: 3 4 5 -> nhwc 0 3 1 4 2 5.
  Tensor x = Tensor::FromVector<float>({1, 2, 1, 3}, {0, 1, 2, 3, 4, 5});
  absl::StatusOr<Tensor> nhwc = ToLayout(x, Layout::kChannelsLast);
  ASSERT_TRUE(nhwc.ok()) << nhwc.status();
  EXPECT_TRUE(nhwc->channels_last());
  EXPECT_EQ(nhwc->shape(), x.shape());
  EXPECT_EQ(nhwc->ToVector<float>(), (std::vector<float>{0, 3, 1, 4, 2, 5}));
}

TEST(LayoutTest, MatchesTheReferenceForEveryRankAndType) {
  std::mt19937 rng(7);
  const Shape shapes[] = {
      {2, 5, 7}, {3, 4, 5, 6}, {2, 3, 2, 3, 4}, {1, 17, 1, 1}, {0, 3, 4, 4}};
  for (DataType type : {DataType::kFloat32, DataType::kUInt8, DataType::kInt8,
                        DataType::kInt32, DataType::kInt64}) {
    for (const Shape& shape : shapes) {
      SCOPED_TRACE(ShapeToString(shape));
      Tensor x = RandomBytes(type, shape, rng);
      absl::StatusOr<Tensor> fast = ToLayout(x, Layout::kChannelsLast);
      absl::StatusOr<Tensor> ref = ToLayoutReference(x, Layout::kChannelsLast);
      ASSERT_TRUE(fast.ok()) << fast.status();
      ASSERT_TRUE(ref.ok()) << ref.status();
      EXPECT_TRUE(SameBytes(*fast, *ref)) << DataTypeName(type);
      absl::StatusOr<Tensor> back = ToLayout(*fast, Layout::kPlain);
      absl::StatusOr<Tensor> back_ref = ToLayoutReference(*ref, Layout::kPlain);
      ASSERT_TRUE(back.ok()) << back.status();
      ASSERT_TRUE(back_ref.ok()) << back_ref.status();
      EXPECT_TRUE(SameBytes(*back, x));
      EXPECT_TRUE(SameBytes(*back_ref, x));
    }
  }
}

TEST(LayoutTest, SameLayoutSharesStorage) {
  Tensor x(DataType::kFloat32, {1, 2, 3, 4});
  absl::StatusOr<Tensor> same = ToLayout(x, Layout::kPlain);
  ASSERT_TRUE(same.ok());
  EXPECT_EQ(same->raw_data(), x.raw_data());
}

TEST(LayoutTest, ChannelsLastNeedsRankThree) {
  Tensor x(DataType::kFloat32, {4, 5});
  EXPECT_EQ(ToLayout(x, Layout::kChannelsLast).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_FALSE(x.set_layout(Layout::kChannelsLast).ok());
}

TEST(LayoutTest, AChannelsLastTensorCannotBeReshaped) {
  Tensor x(DataType::kFloat32, {1, 2, 3, 4});
  ASSERT_TRUE(x.set_layout(Layout::kChannelsLast).ok());
  EXPECT_EQ(x.Reshaped({2, 12}).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(x.Clone().channels_last());
}

TEST(LayoutTest, DescribesChannelsLastStrides) {
  dnnl::memory::desc d =
      LayoutDesc(DataType::kFloat32, {2, 3, 4, 5}, Layout::kChannelsLast);
  const dnnl::memory::desc nhwc({2, 3, 4, 5}, dnnl::memory::data_type::f32,
                                dnnl::memory::format_tag::nhwc);
  EXPECT_TRUE(d == nhwc);
  EXPECT_TRUE(LayoutDesc(DataType::kFloat32, {2, 3}, Layout::kChannelsLast) ==
              dnnl::memory::desc({2, 3}, dnnl::memory::data_type::f32,
                                 dnnl::memory::format_tag::ab));
}

}  // namespace
}  // namespace quantd
