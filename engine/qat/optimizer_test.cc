#include "engine/qat/optimizer.h"

#include <cmath>

#include "gtest/gtest.h"

namespace quantd {
namespace {

// Minimizes f(w) = sum (w - target)^2; both optimizers converge.
double Minimize(OptimizerOptions o, int steps) {
  Tensor w = Tensor::FromVector<float>({3}, {5.f, -3.f, 0.5f});
  const float target[] = {1.f, 2.f, -1.f};
  Optimizer opt(o);
  for (int s = 0; s < steps; ++s) {
    Tensor g(DataType::kFloat32, {3});
    for (int i = 0; i < 3; ++i) {
      g.mutable_data<float>()[i] = 2 * (w.data<float>()[i] - target[i]);
    }
    EXPECT_TRUE(opt.Step({{"w", &w}}, {{"w", &g}}).ok());
  }
  double err = 0;
  for (int i = 0; i < 3; ++i) err += std::fabs(w.data<float>()[i] - target[i]);
  return err;
}

TEST(OptimizerTest, AdamAndSgdConverge) {
  OptimizerOptions adam;
  adam.learning_rate = 0.1;
  adam.cosine = false;
  EXPECT_LT(Minimize(adam, 500), 1e-2);
  OptimizerOptions sgd;
  sgd.kind = OptimizerKind::kSgd;
  sgd.learning_rate = 0.05;
  sgd.cosine = false;
  EXPECT_LT(Minimize(sgd, 300), 1e-3);
}

TEST(OptimizerTest, ScheduleWarmsUpThenDecaysToZero) {
  OptimizerOptions o;
  o.learning_rate = 1.0;
  o.warmup_steps = 10;
  o.total_steps = 110;
  Optimizer opt(o);
  EXPECT_NEAR(opt.LearningRate(0), 0.1, 1e-12);
  EXPECT_NEAR(opt.LearningRate(9), 1.0, 1e-12);
  EXPECT_NEAR(opt.LearningRate(60), 0.5, 1e-12);
  EXPECT_NEAR(opt.LearningRate(110), 0.0, 1e-12);
}

TEST(OptimizerTest, ClipsTheGlobalNormAndRefusesNonFiniteGradients) {
  OptimizerOptions o;
  o.kind = OptimizerKind::kSgd;
  o.momentum = 0;
  o.cosine = false;
  o.learning_rate = 1;
  o.gradient_clip_norm = 1;
  Optimizer opt(o);
  Tensor w = Tensor::FromVector<float>({2}, {0.f, 0.f});
  Tensor g = Tensor::FromVector<float>({2}, {30.f, 40.f});  // norm 50
  absl::StatusOr<StepInfo> info = opt.Step({{"w", &w}}, {{"w", &g}});
  ASSERT_TRUE(info.ok());
  EXPECT_NEAR(info->gradient_norm, 50, 1e-9);
  EXPECT_NEAR(w.data<float>()[0], -0.6, 1e-6);  // clipped to norm 1
  EXPECT_NEAR(w.data<float>()[1], -0.8, 1e-6);
  Tensor bad = Tensor::FromVector<float>({2}, {NAN, 1.f});
  EXPECT_EQ(opt.Step({{"w", &w}}, {{"w", &bad}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_NEAR(w.data<float>()[0], -0.6, 1e-6);  // unchanged
  EXPECT_EQ(opt.step(), 1);
}

TEST(OptimizerTest, StateRoundTripsSoResumedRunsContinueExactly) {
  OptimizerOptions o;
  o.learning_rate = 0.05;
  o.total_steps = 20;
  Tensor a = Tensor::FromVector<float>({2}, {1.f, 2.f});
  Tensor b = a.Clone();
  Optimizer first(o), resumed(o);
  Tensor g = Tensor::FromVector<float>({2}, {0.5f, -1.f});
  for (int i = 0; i < 5; ++i)
    ASSERT_TRUE(first.Step({{"w", &a}}, {{"w", &g}}).ok());
  Optimizer copy(o);
  ASSERT_TRUE(copy.RestoreState(first.SaveState()).ok());
  b = a.Clone();
  ASSERT_TRUE(first.Step({{"w", &a}}, {{"w", &g}}).ok());
  ASSERT_TRUE(copy.Step({{"w", &b}}, {{"w", &g}}).ok());
  EXPECT_EQ(a.data<float>()[0], b.data<float>()[0]);
  EXPECT_EQ(a.data<float>()[1], b.data<float>()[1]);
  EXPECT_FALSE(copy.RestoreState({{"junk", a}}).ok());
}

TEST(OptimizerTest, WeightDecayOnlyWhereAsked) {
  OptimizerOptions o;
  o.kind = OptimizerKind::kSgd;
  o.momentum = 0;
  o.cosine = false;
  o.learning_rate = 0.1;
  o.weight_decay = 0.5;
  Optimizer opt(o);
  Tensor w = Tensor::FromVector<float>({1}, {2.f});
  Tensor s = Tensor::FromVector<float>({1}, {2.f});
  Tensor zero = Tensor::FromVector<float>({1}, {0.f});
  ASSERT_TRUE(opt.Step({{"w", &w}, {"s", &s}}, {{"w", &zero}, {"s", &zero}},
                       {{"w", true}})
                  .ok());
  EXPECT_NEAR(w.data<float>()[0], 2 - 0.1 * 0.5 * 2, 1e-6);
  EXPECT_EQ(s.data<float>()[0], 2.f);
}

}  // namespace
}  // namespace quantd
