#include "engine/quantization/precision_budget.h"

#include <random>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

// Layers with int4 / int8 / float options in the usual proportions (0.5,
// 1 and 4 bytes per weight plus scales) and random losses, int4 losing
// more than int8.
std::vector<LayerChoices> RandomLayers(int n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int64_t> weights(10, 400);
  std::uniform_real_distribution<double> loss(0.0, 1.0);
  std::vector<LayerChoices> layers;
  for (int i = 0; i < n; ++i) {
    const int64_t w = weights(rng);
    const double l8 = 0.1 * loss(rng);
    layers.push_back({"layer" + std::to_string(i),
                      {{LayerPrecision::kInt4, w / 2 + 8, l8 + loss(rng)},
                       {LayerPrecision::kInt8, w + 8, l8},
                       {LayerPrecision::kFloat, 4 * w, 0.0}}});
  }
  return layers;
}

TEST(PrecisionBudgetTest, MatchesExhaustiveSearchByteForByte) {
  for (uint32_t seed = 1; seed <= 40; ++seed) {
    const std::vector<LayerChoices> layers = RandomLayers(6, seed);
    std::mt19937 rng(seed);
    const int64_t budget = 100 + rng() % 4000;
    absl::StatusOr<BudgetSolution> dp =
        SolvePrecisionBudget(layers, 100, budget);
    absl::StatusOr<BudgetSolution> brute =
        SolvePrecisionBudgetExhaustive(layers, 100, budget);
    ASSERT_EQ(dp.ok(), brute.ok())
        << seed << ": " << dp.status() << " vs " << brute.status();
    if (!dp.ok()) {
      EXPECT_TRUE(absl::IsResourceExhausted(dp.status()));
      continue;
    }
    EXPECT_NEAR(dp->loss, brute->loss, 1e-12) << seed;
    EXPECT_LE(dp->bytes, budget) << seed;
  }
}

TEST(PrecisionBudgetTest, CoarseGranulesNeverExceedTheBudget) {
  const std::vector<LayerChoices> layers = RandomLayers(60, 7);
  for (int64_t budget : {20000, 25000, 40000, 60000}) {
    absl::StatusOr<BudgetSolution> s =
        SolvePrecisionBudget(layers, 500, budget, /*max_buckets=*/64);
    ASSERT_TRUE(s.ok()) << s.status();
    EXPECT_LE(s->bytes, budget);
    // Fine granules find at least as good an answer.
    absl::StatusOr<BudgetSolution> fine =
        SolvePrecisionBudget(layers, 500, budget);
    ASSERT_TRUE(fine.ok());
    EXPECT_LE(fine->loss, s->loss + 1e-12);
    EXPECT_LE(fine->bytes, budget);
  }
}

TEST(PrecisionBudgetTest, SaysHowSmallTheModelCanGet) {
  const std::vector<LayerChoices> layers = {
      {"a",
       {{LayerPrecision::kInt8, 100, 0.1}, {LayerPrecision::kFloat, 400, 0}}},
      {"b",
       {{LayerPrecision::kInt8, 50, 0.2}, {LayerPrecision::kFloat, 200, 0}}}};
  absl::StatusOr<BudgetSolution> s = SolvePrecisionBudget(layers, 10, 100);
  EXPECT_TRUE(absl::IsResourceExhausted(s.status())) << s.status();
  EXPECT_THAT(s.status().message(), HasSubstr("the smallest model is 160"));
  s = SolvePrecisionBudget(layers, 10, 309);  // both int8 only
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->bytes, 160);
  EXPECT_NEAR(s->loss, 0.3, 1e-12);
  s = SolvePrecisionBudget(layers, 10, 310);  // room for b in float
  ASSERT_TRUE(s.ok()) << s.status();
  EXPECT_EQ(s->precisions.at("a"), LayerPrecision::kInt8);
  EXPECT_EQ(s->precisions.at("b"), LayerPrecision::kFloat);
  EXPECT_EQ(s->bytes, 310);
  EXPECT_NEAR(s->loss, 0.1, 1e-12);
  EXPECT_FALSE(SolvePrecisionBudget({{"c", {}}}, 0, 100).ok());
  EXPECT_FALSE(
      SolvePrecisionBudget({{"c", {{LayerPrecision::kInt8, -1, 0}}}}, 0, 100)
          .ok());
}

TEST(PrecisionBudgetTest, TheFrontierTradesBytesForLoss) {
  const std::vector<LayerChoices> layers = RandomLayers(12, 3);
  absl::StatusOr<std::vector<BudgetSolution>> f =
      PrecisionParetoFrontier(layers, 0, 9);
  ASSERT_TRUE(f.ok()) << f.status();
  ASSERT_GE(f->size(), 3u);
  for (size_t i = 1; i < f->size(); ++i) {
    EXPECT_GT((*f)[i].bytes, (*f)[i - 1].bytes);
    EXPECT_LT((*f)[i].loss, (*f)[i - 1].loss);
  }
  EXPECT_NEAR(f->back().loss, 0.0, 1e-12) << "all float at the top";
}

}  // namespace
}  // namespace quantd
