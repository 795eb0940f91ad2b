#include "engine/qat/training_loss.h"

#include <random>

#include "gtest/gtest.h"

namespace quantd {
namespace {

Tensor Random(Shape shape, uint32_t seed) {
  Tensor t(DataType::kFloat32, shape);
  std::mt19937 rng(seed);
  std::normal_distribution<float> n(0.f, 2.f);
  for (int64_t i = 0; i < t.num_elements(); ++i) {
    t.mutable_data<float>()[i] = n(rng);
  }
  return t;
}

// Central finite differences of the loss against the analytic gradient.
void ExpectGradient(const Tensor& s, const Tensor& t, const Tensor& labels,
                    const LossOptions& o) {
  absl::StatusOr<LossResult> r = TrainingLoss(s, t, labels, o);
  ASSERT_TRUE(r.ok()) << r.status();
  double worst = 0;
  for (int64_t i = 0; i < s.num_elements(); ++i) {
    const double eps = 1e-2;
    Tensor plus = s.Clone(), minus = s.Clone();
    plus.mutable_data<float>()[i] += eps;
    minus.mutable_data<float>()[i] -= eps;
    const double fd = (TrainingLoss(plus, t, labels, o)->loss -
                       TrainingLoss(minus, t, labels, o)->loss) /
                      (2 * eps);
    const double an = r->grad.data<float>()[i];
    worst = std::max(worst, std::fabs(fd - an) / (std::fabs(fd) + 1e-3));
    EXPECT_NEAR(an, fd, 1e-3 + 1e-2 * std::fabs(fd)) << "element " << i;
  }
  ::testing::Test::RecordProperty("max_relative_error", std::to_string(worst));
}

TEST(TrainingLossTest, DistillationGradientMatchesFiniteDifferences) {
  LossOptions o;
  o.temperature = 2.0;
  ExpectGradient(Random({3, 5}, 1), Random({3, 5}, 2), Tensor(), o);
}

TEST(TrainingLossTest, MixedLossWithLabelsOverTokens) {
  LossOptions o;
  o.distillation_weight = 0.3;
  Tensor labels = Tensor::FromVector<int64_t>({2, 3}, {0, 4, 2, 1, 3, 3});
  ExpectGradient(Random({2, 3, 5}, 3), Random({2, 3, 5}, 4), labels, o);
}

TEST(TrainingLossTest, RegressionIsMeanSquaredError) {
  LossOptions o;
  o.kind = OutputKind::kRegression;
  ExpectGradient(Random({4, 2}, 5), Random({4, 2}, 6), Tensor(), o);
  absl::StatusOr<LossResult> same =
      TrainingLoss(Random({4, 2}, 5), Random({4, 2}, 5), Tensor(), o);
  EXPECT_EQ(same->loss, 0);
}

TEST(TrainingLossTest, IdenticalLogitsHaveZeroDistillation) {
  const Tensor s = Random({4, 7}, 7);
  absl::StatusOr<LossResult> r = TrainingLoss(s, s, Tensor(), {});
  ASSERT_TRUE(r.ok());
  EXPECT_NEAR(r->loss, 0, 1e-9);
}

TEST(TrainingLossTest, RejectsMismatches) {
  EXPECT_FALSE(
      TrainingLoss(Random({2, 3}, 1), Random({3, 2}, 1), Tensor(), {}).ok());
  Tensor bad_label = Tensor::FromVector<int64_t>({2}, {0, 9});
  EXPECT_FALSE(
      TrainingLoss(Random({2, 3}, 1), Random({2, 3}, 2), bad_label, {}).ok());
  LossOptions o;
  o.temperature = 0;
  EXPECT_FALSE(
      TrainingLoss(Random({2, 3}, 1), Random({2, 3}, 2), Tensor(), o).ok());
}

}  // namespace
}  // namespace quantd
