#include "engine/calibration/calibrator_histogram.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "gtest/gtest.h"

namespace quantd {
namespace {

// What a histogram of all values on h's final grid would hold.
std::vector<double> Rebinned(const CalibrationHistogram& h,
                             const std::vector<float>& all) {
  std::vector<double> expected(h.num_bins(), 0.0);
  for (float x : all) {
    const double i = (double{x} - h.lo()) * (1.0 / h.bin_width());
    expected[static_cast<int>(std::clamp(i, 0.0, h.num_bins() - 1.0))] += 1;
  }
  return expected;
}

TEST(CalibrationHistogramTest, GrowthMergesBinsExactly) {
  CalibrationHistogram h(128);
  std::mt19937 rng(1);
  std::vector<float> all;
  // Ranges that grow on either side, by small and large steps.
  for (int b = 0; b < 300; ++b) {
    const float lo = -std::pow(1.02f, b % 150) * (b % 3 == 0 ? 2 : 1);
    const float hi = std::pow(1.03f, b) * 0.01f;
    std::uniform_real_distribution<float> d(lo, hi);
    std::vector<float> batch(50);
    for (float& x : batch) x = d(rng);
    batch[0] = lo;
    batch[1] = hi;
    h.Add(batch, lo, hi);
    all.insert(all.end(), batch.begin(), batch.end());
    ASSERT_EQ(h.num_bins(), 128);
    ASSERT_LE(h.lo(), *std::min_element(all.begin(), all.end()));
    ASSERT_GE(h.hi(), *std::max_element(all.begin(), all.end()));
  }
  // Values on a bin edge may fall either side after rounding; nothing else
  // may move.
  const std::vector<double> expected = Rebinned(h, all);
  double moved = 0;
  for (int i = 0; i < 128; ++i) moved += std::fabs(h.counts()[i] - expected[i]);
  EXPECT_LE(moved, 2);
  EXPECT_EQ(h.total(), all.size());
  // At least half of the bins span data.
  const double span = *std::max_element(all.begin(), all.end()) -
                      std::min(0.f, *std::min_element(all.begin(), all.end()));
  EXPECT_LT(h.hi() - h.lo(), 2 * span + 2 * h.bin_width());
}

TEST(CalibrationHistogramTest, StartsFromAllZerosAndAbsoluteValues) {
  CalibrationHistogram h(256);
  std::vector<float> zeros(10, 0.f);
  h.AddAbsolute(zeros, 0.f);
  EXPECT_GT(h.bin_width(), 0);
  std::vector<float> v = {-3.f, 1.f, 2.f};
  h.AddAbsolute(v, 3.f);
  EXPECT_EQ(h.lo(), 0);
  EXPECT_GE(h.hi(), 3);
  EXPECT_EQ(h.counts()[0], 10);
  EXPECT_EQ(h.total(), 13);
  EXPECT_NEAR(h.Quantile(1.0), 3, h.bin_width());
  EXPECT_NEAR(h.Quantile(0.5), 0, h.bin_width());
}

TEST(CalibrationHistogramTest, QuantileInterpolatesWithinBins) {
  CalibrationHistogram h(128);
  std::vector<float> v;
  for (int i = 0; i < 12800; ++i) v.push_back((i + 0.5f) / 12800 * 10);
  h.Add(v, v.front(), v.back());
  for (double f : {0.01, 0.25, 0.5, 0.9, 0.999}) {
    EXPECT_NEAR(h.Quantile(f), 10 * f, 1e-3) << f;
  }
}

TEST(CalibrationHistogramTest, ExpectedErrorMatchesUniformRounding) {
  // Uniform data inside the range: the estimate is scale^2 / 12.
  CalibrationHistogram h(2048);
  std::mt19937 rng(4);
  std::uniform_real_distribution<float> d(0.f, 1.f);
  std::vector<float> v(100000);
  for (float& x : v) x = d(rng);
  h.Add(v, 0.f, 1.f);
  const double scale = 1.0 / 255;
  EXPECT_NEAR(ExpectedQdqError(h, 0, 1, QuantType::kUInt8, false),
              scale * scale / 12, 1e-9);
  // Clipping at 0.5 costs the mean squared distance beyond it: ~1/24.
  EXPECT_NEAR(ExpectedQdqError(h, 0, 0.5, QuantType::kUInt8, false), 1.0 / 24,
              2e-3);
}

}  // namespace
}  // namespace quantd
