#include "kernels/tensor.h"

#include <cstdint>

#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(TensorTest, AllocatesAlignedStorageOfTheRightSize) {
  Tensor t(DataType::kFloat32, {2, 3, 5});
  EXPECT_EQ(t.num_elements(), 30);
  EXPECT_EQ(t.byte_size(), 120u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(t.raw_data()) % Tensor::kAlignment, 0u);
}

TEST(TensorTest, ScalarHasOneElement) {
  Tensor t = Tensor::Scalar<int64_t>(7);
  EXPECT_EQ(t.rank(), 0);
  EXPECT_EQ(t.num_elements(), 1);
  EXPECT_EQ(t.data<int64_t>()[0], 7);
}

TEST(TensorTest, ReshapeSharesStorageAndChecksCount) {
  Tensor t = Tensor::FromVector<float>({2, 2}, {1, 2, 3, 4});
  absl::StatusOr<Tensor> r = t.Reshaped({4});
  ASSERT_TRUE(r.ok());
  EXPECT_EQ(r->raw_data(), t.raw_data());
  EXPECT_FALSE(t.Reshaped({3}).ok());
}

TEST(TensorTest, CloneIsDeep) {
  Tensor t = Tensor::FromVector<float>({2}, {1, 2});
  Tensor c = t.Clone();
  c.mutable_data<float>()[0] = 9;
  EXPECT_EQ(t.data<float>()[0], 1);
}

TEST(TensorTest, CreateRejectsHostileShapes) {
  EXPECT_FALSE(Tensor::Create(DataType::kFloat32, {-1, 3}, 100).ok());
  EXPECT_FALSE(
      Tensor::Create(DataType::kFloat32, {1LL << 40, 1LL << 40}, 100).ok());
  EXPECT_EQ(
      Tensor::Create(DataType::kFloat32, {1000, 1000}, 100).status().code(),
      absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(Tensor::Create(DataType::kFloat32, {10, 10}, 100).ok());
}

TEST(TensorTest, ZeroSizedTensorIsValid) {
  Tensor t(DataType::kFloat32, {0, 4});
  EXPECT_EQ(t.num_elements(), 0);
  EXPECT_NE(t.raw_data(), nullptr);
}

}  // namespace
}  // namespace quantd
