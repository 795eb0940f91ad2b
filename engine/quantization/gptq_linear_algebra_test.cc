#include "engine/quantization/gptq_linear_algebra.h"

#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd::gptq_la {
namespace {

// X^T X / rows + damping for rows of correlated inputs: a Hessian like the
// ones GPTQ sees (positive definite, condition number in the thousands).
std::vector<double> RandomHessian(int64_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  const int64_t rows = 2 * k;
  std::vector<double> x(rows * k);
  for (int64_t r = 0; r < rows; ++r) {
    const double shared = normal(rng);
    for (int64_t j = 0; j < k; ++j)
      x[r * k + j] = shared * (j % 3) + normal(rng) * (1 + j % 5);
  }
  std::vector<double> h(k * k, 0.0);
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t i = 0; i < k; ++i)
      for (int64_t j = 0; j < k; ++j)
        h[i * k + j] += x[r * k + i] * x[r * k + j];
  }
  for (double& v : h) v /= rows;
  for (int64_t i = 0; i < k; ++i) h[i * k + i] += 0.01;
  return h;
}

std::vector<double> RandomMatrix(int64_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<double> normal;
  std::vector<double> m(n);
  for (double& v : m) v = normal(rng);
  return m;
}

double MaxAbs(const std::vector<double>& v) {
  double m = 0;
  for (double x : v) m = std::max(m, std::fabs(x));
  return m;
}

// tools/install-deps.sh installs OpenBLAS: without it the comparisons
// below would compare the references with themselves.
TEST(OpenBlasTest, IsAvailable) { ASSERT_TRUE(OpenBlasAvailable()); }

// Sizes on both sides of OpenBLAS's blocking (and odd ones).
class InverseHessianFactorTest : public ::testing::TestWithParam<int64_t> {};

TEST_P(InverseHessianFactorTest, MatchesReferenceAndInvertsH) {
  const int64_t k = GetParam();
  const std::vector<double> h = RandomHessian(k, 7 + k);
  std::vector<double> fast = h, ref = h;
  ASSERT_TRUE(InverseHessianFactor(fast, k));
  ASSERT_TRUE(InverseHessianFactorReference(ref, k));
  const double scale = MaxAbs(ref);
  for (int64_t i = 0; i < k * k; ++i) {
    ASSERT_NEAR(fast[i], ref[i], 1e-9 * scale) << "entry " << i;
  }
  for (int64_t i = 0; i < k; ++i) {
    for (int64_t j = 0; j < i; ++j) ASSERT_EQ(fast[i * k + j], 0.0);
  }
  // U^T U H = I, independently of either implementation.
  for (int64_t i = 0; i < k; i += std::max<int64_t>(1, k / 7)) {
    for (int64_t j = 0; j < k; ++j) {
      double v = 0;
      for (int64_t a = 0; a < k; ++a) {
        double inv = 0;  // (U^T U)[i][a]
        for (int64_t t = 0; t <= std::min(i, a); ++t)
          inv += fast[t * k + i] * fast[t * k + a];
        v += inv * h[a * k + j];
      }
      ASSERT_NEAR(v, i == j ? 1.0 : 0.0, 1e-8) << i << "," << j;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Sizes, InverseHessianFactorTest,
                         ::testing::Values(1, 2, 17, 64, 129, 300));

TEST(InverseHessianFactorTest, NotPositiveDefiniteIsFalse) {
  std::vector<double> h = {1, 2, 2, 1};  // eigenvalues 3 and -1
  std::vector<double> ref = h;
  EXPECT_FALSE(InverseHessianFactor(h, 2));
  EXPECT_FALSE(InverseHessianFactorReference(ref, 2));
  std::vector<double> zero(9, 0.0);
  EXPECT_FALSE(InverseHessianFactor(zero, 3));
}

TEST(SubtractProductTest, MatchesReferenceOnAStridedBlock) {
  const int64_t rows = 37, ldw = 300, nb = 19, ldu = 250, cols = 201;
  const std::vector<double> w0 = RandomMatrix(rows * ldw, 1);
  const std::vector<double> e = RandomMatrix(rows * nb, 2);
  const std::vector<double> u = RandomMatrix(nb * ldu, 3);
  std::vector<double> fast = w0, ref = w0;
  SubtractProduct(&fast[50], ldw, e.data(), rows, nb, &u[40], ldu, cols);
  SubtractProductReference(&ref[50], ldw, e.data(), rows, nb, &u[40], ldu,
                           cols);
  for (int64_t i = 0; i < rows * ldw; ++i) ASSERT_NEAR(fast[i], ref[i], 1e-12);
  // Outside the block nothing moved.
  for (int64_t r = 0; r < rows; ++r) {
    EXPECT_EQ(fast[r * ldw + 10], w0[r * ldw + 10]);
    EXPECT_EQ(fast[r * ldw + 50 + cols], w0[r * ldw + 50 + cols]);
  }
}

TEST(QuadraticFormSumTest, MatchesReference) {
  const int64_t rows = 45, k = 70;
  const std::vector<double> h = RandomHessian(k, 5);
  const std::vector<double> d = RandomMatrix(rows * k, 6);
  const double ref = QuadraticFormSumReference(d.data(), rows, h, k);
  EXPECT_GT(ref, 0);
  EXPECT_NEAR(QuadraticFormSum(d.data(), rows, h, k), ref, 1e-11 * ref);
  EXPECT_EQ(QuadraticFormSum(d.data(), 0, h, k), 0.0);
}

}  // namespace
}  // namespace quantd::gptq_la
