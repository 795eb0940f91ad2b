#include "kernels/weight_only_matmul.h"

#include <climits>
#include <cmath>
#include <random>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"
#include "kernels/kernel_test_util.h"

namespace quantd {
namespace {

using weight_only_internal::Isa;

// Unpacked weights: codes [K, N], per-group scales and zero points.
struct Unpacked {
  Tensor codes, scales, zero_points;
  int bits = 4;
  int64_t group_size = 0;
};

Unpacked RandomWeights(int64_t k, int64_t n, int bits, int64_t group_size,
                       std::mt19937& rng) {
  Unpacked u;
  u.bits = bits;
  u.group_size = group_size;
  const int code_max = (1 << bits) - 1;
  const int64_t g = group_size > 0 ? (k + group_size - 1) / group_size : 1;
  u.codes = RandomInt<uint8_t>({k, n}, rng, 0, code_max);
  u.scales = RandomFloat({g, n}, rng, 0.001f, 0.05f);
  u.zero_points = Tensor(DataType::kInt32, {g, n});
  std::uniform_int_distribution<int> zp(0, code_max);
  for (int32_t& z : u.zero_points.mutable_span<int32_t>()) z = zp(rng);
  return u;
}

// |got - want| <= 1e-5 * sum_k |x| |w| + 1e-6 per output: f32 accumulation
// in another order than the double reference.
void ExpectMatchesReference(const Tensor& x, const Unpacked& u,
                            const Tensor* bias, const Tensor& got) {
  Tensor want;
  ASSERT_TRUE(WeightOnlyMatMulReference(x, u.codes, u.scales, u.zero_points,
                                        u.group_size, bias, &want)
                  .ok());
  ASSERT_EQ(got.shape(), want.shape());
  const int64_t k = u.codes.dim(0), n = u.codes.dim(1);
  const int64_t gs = u.group_size > 0 ? u.group_size : k;
  int bad = 0;
  for (int64_t i = 0; i < got.num_elements(); ++i) {
    const int64_t row = i / n, col = i % n;
    double bound = 0;
    for (int64_t r = 0; r < k; ++r) {
      const int64_t p = (r / gs) * n + col;
      const double w =
          u.scales.data<float>()[p] * (u.codes.data<uint8_t>()[r * n + col] -
                                       u.zero_points.data<int32_t>()[p]);
      bound += std::fabs(x.data<float>()[row * k + r] * w);
    }
    const double diff =
        std::fabs(double{got.data<float>()[i]} - want.data<float>()[i]);
    if (!(diff <= 1e-5 * bound + 1e-6) && ++bad <= 5) {
      ADD_FAILURE() << "output " << i << ": " << got.data<float>()[i]
                    << " vs reference " << want.data<float>()[i];
    }
  }
  EXPECT_EQ(bad, 0) << "of " << got.num_elements();
}

// (bits, group_size, K, N)
using Geometry = std::tuple<int, int64_t, int64_t, int64_t>;

class WeightOnlyMatMulTest : public ::testing::TestWithParam<Geometry> {};

TEST_P(WeightOnlyMatMulTest, EveryIsaMatchesTheReference) {
  const auto [bits, group_size, k, n] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(bits * 1000 + k + n));
  const Unpacked u = RandomWeights(k, n, bits, group_size, rng);
  absl::StatusOr<WeightOnlyPacked> w =
      PackWeightOnly(u.codes, u.scales, u.zero_points, bits, group_size);
  ASSERT_TRUE(w.ok()) << w.status();
  const Tensor bias = RandomFloat({n}, rng);
  int isas = 0;
  for (Isa isa : {Isa::kPortable, Isa::kAvx2, Isa::kAvx512}) {
    if (!weight_only_internal::CpuSupports(isa)) continue;
    ++isas;
    // Every tile height of every ISA (8 rows max), and rows past a tile.
    for (int64_t m : {1, 2, 3, 4, 5, 7, 8, 9, 13}) {
      SCOPED_TRACE(testing::Message()
                   << "isa " << static_cast<int>(isa) << ", rows " << m);
      const Tensor x = RandomFloat({m, k}, rng);
      Tensor y(DataType::kFloat32, {m, n});
      weight_only_internal::DirectKernel(isa, x.data<float>(), m, *w,
                                         bias.data<float>(),
                                         y.mutable_data<float>());
      ExpectMatchesReference(x, u, &bias, y);
    }
  }
  EXPECT_GE(isas, 1);
}

TEST_P(WeightOnlyMatMulTest, ForwardMatchesTheReference) {
  const auto [bits, group_size, k, n] = GetParam();
  std::mt19937 rng(static_cast<unsigned>(bits * 7 + k * 3 + n));
  const Unpacked u = RandomWeights(k, n, bits, group_size, rng);
  absl::StatusOr<WeightOnlyPacked> w =
      PackWeightOnly(u.codes, u.scales, u.zero_points, bits, group_size);
  ASSERT_TRUE(w.ok()) << w.status();
  for (const Shape& xs : {Shape{k}, Shape{2, 3, k}, Shape{3, 20, k}}) {
    SCOPED_TRACE(ShapeToString(xs));
    const Tensor x = RandomFloat(xs, rng);
    Tensor y;
    ASSERT_TRUE(WeightOnlyMatMul(x, *w, nullptr, &y).ok());
    Shape want = xs;
    want.back() = n;
    EXPECT_EQ(y.shape(), want);
    ExpectMatchesReference(x, u, nullptr, y);
  }
}

TEST_P(WeightOnlyMatMulTest, DequantizeIsTheReferenceWeight) {
  const auto [bits, group_size, k, n] = GetParam();
  std::mt19937 rng(5);
  const Unpacked u = RandomWeights(k, n, bits, group_size, rng);
  absl::StatusOr<WeightOnlyPacked> w =
      PackWeightOnly(u.codes, u.scales, u.zero_points, bits, group_size);
  ASSERT_TRUE(w.ok());
  Tensor deq;
  ASSERT_TRUE(DequantizeWeightOnly(*w, &deq).ok());
  ASSERT_EQ(deq.shape(), (Shape{k, n}));
  const int64_t gs = group_size > 0 ? group_size : k;
  for (int64_t r = 0; r < k; ++r) {
    for (int64_t c = 0; c < n; ++c) {
      const int64_t p = (r / gs) * n + c;
      const float want = u.scales.data<float>()[p] *
                         static_cast<float>(u.codes.data<uint8_t>()[r * n + c] -
                                            u.zero_points.data<int32_t>()[p]);
      ASSERT_EQ(deq.data<float>()[r * n + c], want) << r << "," << c;
    }
  }
}

// N = 600 spans many blocks and both threads; K = 100 with group
// 48 ends in a partial group; N = 37 ends in a partial block; groups of 30
// and K = 37 leave rows after the unrolled steps.
INSTANTIATE_TEST_SUITE_P(
    Shapes, WeightOnlyMatMulTest,
    ::testing::Values(Geometry{4, 0, 64, 16}, Geometry{4, 32, 64, 37},
                      Geometry{4, 48, 100, 600}, Geometry{4, 128, 256, 48},
                      Geometry{8, 0, 100, 37}, Geometry{8, 32, 96, 600},
                      Geometry{4, 1, 3, 1}, Geometry{8, 64, 64, 17},
                      Geometry{4, 30, 90, 40}, Geometry{8, 0, 37, 20}));

TEST(WeightOnlyMatMulErrors, PackRefusesValuesOutsideTheirRange) {
  std::mt19937 rng(1);
  Unpacked u = RandomWeights(8, 4, 4, 0, rng);
  u.codes.mutable_data<uint8_t>()[3] = 16;
  EXPECT_FALSE(PackWeightOnly(u.codes, u.scales, u.zero_points, 4, 0).ok());
  u = RandomWeights(8, 4, 4, 0, rng);
  u.zero_points.mutable_data<int32_t>()[0] = 16;
  EXPECT_FALSE(PackWeightOnly(u.codes, u.scales, u.zero_points, 4, 0).ok());
  u = RandomWeights(8, 4, 4, 0, rng);
  u.scales.mutable_data<float>()[1] = std::nanf("");
  EXPECT_FALSE(PackWeightOnly(u.codes, u.scales, u.zero_points, 4, 0).ok());
  u = RandomWeights(8, 4, 4, 4, rng);  // 2 groups
  EXPECT_FALSE(PackWeightOnly(u.codes, u.scales, u.zero_points, 4, 3).ok());
  EXPECT_FALSE(PackWeightOnly(u.codes, u.scales, u.zero_points, 5, 4).ok());
  EXPECT_TRUE(PackWeightOnly(u.codes, u.scales, u.zero_points, 4, 4).ok());
}

// A group longer than K (a plan with allow_partial_groups on a small layer)
// is one group, and runs.
TEST(WeightOnlyMatMulErrors, AGroupLongerThanKIsOneGroup) {
  std::mt19937 rng(3);
  const Unpacked u = RandomWeights(64, 10, 4, 0, rng);  // one group of 64
  absl::StatusOr<WeightOnlyPacked> w =
      PackWeightOnly(u.codes, u.scales, u.zero_points, 4, 128);
  ASSERT_TRUE(w.ok()) << w.status();
  EXPECT_EQ(w->group_size, 64);
  const Tensor x = RandomFloat({2, 64}, rng);
  Tensor y;
  ASSERT_TRUE(WeightOnlyMatMul(x, *w, nullptr, &y).ok());
  ExpectMatchesReference(x, u, nullptr, y);
}

// Hand-made packed values (a hostile graph's initializers) are refused
// before they reach integer arithmetic.
TEST(WeightOnlyMatMulErrors, ValuesOutOfRangeAreRefused) {
  std::mt19937 rng(4);
  const Unpacked u = RandomWeights(8, 4, 4, 0, rng);
  absl::StatusOr<WeightOnlyPacked> w =
      PackWeightOnly(u.codes, u.scales, u.zero_points, 4, 0);
  ASSERT_TRUE(w.ok());
  EXPECT_TRUE(ValidateWeightOnlyValues(*w).ok());
  WeightOnlyPacked bad = *w;
  bad.zero_points = w->zero_points.Clone();
  bad.zero_points.mutable_data<int32_t>()[2] = INT32_MIN;
  EXPECT_FALSE(ValidateWeightOnlyValues(bad).ok());
  bad = *w;
  bad.scales = w->scales.Clone();
  bad.scales.mutable_data<float>()[0] = -1.f;
  EXPECT_FALSE(ValidateWeightOnlyValues(bad).ok());
}

TEST(WeightOnlyMatMulErrors, ForwardRefusesMismatchedInputs) {
  std::mt19937 rng(2);
  const Unpacked u = RandomWeights(8, 4, 8, 0, rng);
  absl::StatusOr<WeightOnlyPacked> w =
      PackWeightOnly(u.codes, u.scales, u.zero_points, 8, 0);
  ASSERT_TRUE(w.ok());
  Tensor y;
  EXPECT_FALSE(
      WeightOnlyMatMul(RandomFloat({2, 7}, rng), *w, nullptr, &y).ok());
  const Tensor bad_bias = RandomFloat({5}, rng);
  EXPECT_FALSE(
      WeightOnlyMatMul(RandomFloat({2, 8}, rng), *w, &bad_bias, &y).ok());
  // Packed tensors that do not fit together (as a hostile graph could have).
  WeightOnlyPacked broken = *w;
  broken.n = 40;
  EXPECT_FALSE(
      WeightOnlyMatMul(RandomFloat({2, 8}, rng), broken, nullptr, &y).ok());
  broken = *w;
  broken.group_size = 3;  // 3 groups of 3 rows, but 1 group of scales
  EXPECT_FALSE(
      WeightOnlyMatMul(RandomFloat({2, 8}, rng), broken, nullptr, &y).ok());
  broken = *w;
  broken.bits = 4;  // codes are 16 bytes per row, not 8
  EXPECT_FALSE(
      WeightOnlyMatMul(RandomFloat({2, 8}, rng), broken, nullptr, &y).ok());
}

}  // namespace
}  // namespace quantd
