#include "engine/passes/mean_preserving_rotation.h"

#include <cmath>

#include "gtest/gtest.h"

namespace quantd {
namespace {

class MeanPreservingRotationTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(MeanPreservingRotationTest, OrthogonalFixesOnesAndSpreadsChannels) {
  const int64_t d = GetParam();
  absl::StatusOr<Tensor> q = MeanPreservingRotation(d, 7);
  ASSERT_TRUE(q.ok()) << q.status();
  ASSERT_EQ(q->shape(), Shape({d, d}));
  const float* v = q->data<float>();
  double worst_gram = 0, worst_ones = 0, largest = 0;
  for (int64_t i = 0; i < d; ++i) {
    double row_sum = 0;
    for (int64_t j = 0; j < d; ++j) {
      row_sum += v[i * d + j];
      largest = std::max(largest, std::fabs(double{v[i * d + j]}));
      double dot = 0;  // column i . column j
      for (int64_t k = 0; k < d; ++k)
        dot += double{v[k * d + i]} * v[k * d + j];
      worst_gram = std::max(worst_gram, std::fabs(dot - (i == j ? 1 : 0)));
    }
    worst_ones = std::max(worst_ones, std::fabs(row_sum - 1));
  }
  EXPECT_LT(worst_gram, 1e-5) << "Q^T Q differs from I";
  EXPECT_LT(worst_ones, 1e-5) << "Q 1 differs from 1";
  // A spike in one channel ends up spread: no entry near 1 (an identity or
  // permutation would have 1s). Random signs give |Q_ij| ~ 1/sqrt(d) with
  // a tail; 6/sqrt(d) is far below 1 for every d tested.
  EXPECT_LT(largest, 6.0 / std::sqrt(static_cast<double>(d))) << largest;
}

INSTANTIATE_TEST_SUITE_P(Dims, MeanPreservingRotationTest,
                         ::testing::Values(64, 128, 96, 768, 200));

TEST(MeanPreservingRotationTest, DeterministicPerSeedAndDifferentAcrossSeeds) {
  Tensor a = *MeanPreservingRotation(64, 1);
  Tensor b = *MeanPreservingRotation(64, 1);
  Tensor c = *MeanPreservingRotation(64, 2);
  EXPECT_EQ(a.ToVector<float>(), b.ToVector<float>());
  EXPECT_NE(a.ToVector<float>(), c.ToVector<float>());
}

TEST(MeanPreservingRotationTest, RejectsDimensionsOutOfRange) {
  EXPECT_FALSE(MeanPreservingRotation(1, 0).ok());
  EXPECT_FALSE(MeanPreservingRotation(kMaxRotationDim + 1, 0).ok());
  EXPECT_EQ(RotationName(768), "Hadamard 256 x DCT 3");
  EXPECT_EQ(RotationName(128), "Hadamard 128");
}

// R = S A: orthogonal, and for a power of two every entry is +-1/sqrt(d),
// at every size, however few signs there are to draw (d = 4 included).
TEST(RandomizedHadamardTest, OrthogonalWithFlatRows) {
  for (int64_t d : {4, 32, 64, 96}) {
    absl::StatusOr<Tensor> r = RandomizedHadamard(d, 5);
    ASSERT_TRUE(r.ok()) << r.status();
    const float* v = r->data<float>();
    double worst_gram = 0, worst_flat = 0;
    for (int64_t i = 0; i < d; ++i) {
      for (int64_t j = 0; j < d; ++j) {
        double dot = 0;  // row i . row j
        for (int64_t k = 0; k < d; ++k)
          dot += double{v[i * d + k]} * v[j * d + k];
        worst_gram = std::max(worst_gram, std::fabs(dot - (i == j ? 1 : 0)));
        worst_flat = std::max(worst_flat,
                              std::fabs(std::fabs(double{v[i * d + j]}) -
                                        1 / std::sqrt(static_cast<double>(d))));
      }
    }
    EXPECT_LT(worst_gram, 1e-5) << d;
    if ((d & (d - 1)) == 0) {
      EXPECT_LT(worst_flat, 1e-6) << d;
    }
  }
  EXPECT_NE(RandomizedHadamard(64, 1)->ToVector<float>(),
            RandomizedHadamard(64, 2)->ToVector<float>());
  EXPECT_FALSE(RandomizedHadamard(1, 0).ok());
}

}  // namespace
}  // namespace quantd
