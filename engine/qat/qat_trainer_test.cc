// TrainQat on LinearLayersGraph (three MatMuls, int4/int8 weights, u8
// activations) with data written by the test: small enough that every test
// takes well under a second.
#include "engine/qat/qat_trainer.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <atomic>
#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "engine/quantization/weight_quantization.h"
#include "engine/runtime/executor.h"
#include "engine/testing/test_graphs.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::AnyOf;
using ::testing::HasSubstr;

// int4 per group of 4 for q and k, int8 per channel for out, u8 on h and r.
QuantizationPlan Plan(const Graph& g) {
  QuantizationPlan plan;
  absl::StatusOr<std::vector<WeightSlot>> slots = FindQuantizableWeights(g, {});
  EXPECT_TRUE(slots.ok()) << slots.status();
  for (const WeightSlot& s : *slots) {
    WeightScheme scheme;
    scheme.int8_max_magnitude = 100;
    if (s.node != "out") {
      scheme.type = QuantType::kInt4;
      scheme.granularity = WeightGranularity::kPerGroup;
      scheme.group_size = 4;
    }
    plan.weights[s.initializer] =
        *ComputeWeightParams(*g.FindInitializer(s.initializer), s, scheme);
  }
  for (const char* a : {"h", "r"}) {
    QuantParams p;
    p.type = QuantType::kUInt8;
    p.qmin = 0;
    p.qmax = 255;
    p.scales = {0.2f};
    p.zero_points = {100};
    plan.activations[a] = p;
  }
  return plan;
}

class QatTrainerTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_qat_trainer_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
    std::mt19937 rng(5);
    std::normal_distribution<float> n(0.f, 1.f);
    x_ = Tensor(DataType::kFloat32, {40, 8});
    for (float& v : x_.mutable_span<float>()) v = n(rng);
    ASSERT_TRUE(WriteNpz(Path("data.npz"), {{"x", x_}}).ok());
    absl::StatusOr<TrainingGraph> t = BuildTrainingGraph(graph_, Plan(graph_));
    ASSERT_TRUE(t.ok()) << t.status();
    training_ = std::move(*t);
    // One batch of 32 trains; the last 8 samples are held out.
    train_ = Open(0, 32);
    held_out_ = Open(32, 8);
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
  }
  std::string Path(const std::string& name) const {
    return absl::StrCat(dir_, "/", name);
  }
  std::unique_ptr<Dataset> Open(int64_t first, int64_t count) {
    DatasetOptions o;
    o.batch_size = 32;
    o.first_sample = first;
    o.max_samples = count;
    absl::StatusOr<std::unique_ptr<Dataset>> d =
        Dataset::Open(Path("data.npz"), graph_, o);
    EXPECT_TRUE(d.ok()) << d.status();
    return d.ok() ? std::move(*d) : nullptr;
  }
  static QatOptions Options(int64_t steps) {
    QatOptions o;
    o.max_steps = steps;
    o.time_budget_seconds = 600;  // never reached: steps stop first
    o.optimizer.learning_rate = 1e-2;
    o.optimizer.cosine = false;
    return o;
  }
  absl::StatusOr<QatOutcome> Train(const QatOptions& o,
                                   const std::atomic<bool>* cancel = nullptr,
                                   const TrainingPointCallback& cb = nullptr,
                                   bool with_held_out = false) {
    return TrainQat(graph_, &training_, train_.get(),
                    with_held_out ? held_out_.get() : nullptr, o, cb, cancel);
  }
  // The distillation loss of `t` on samples [first, first + count), as the
  // trainer computes it (one batch, no labels).
  double Loss(const TrainingGraph& t, int64_t first = 0,
              int64_t count = 32) const {
    const float* x = x_.data<float>() + first * 8;
    const Tensor batch = Tensor::FromVector<float>(
        {count, 8}, std::vector<float>(x, x + count * 8));
    absl::StatusOr<std::unique_ptr<Executor>> teacher =
        Executor::Create(graph_);
    absl::StatusOr<std::unique_ptr<Executor>> student =
        Executor::Create(t.graph);
    if (!teacher.ok() || !student.ok()) return NAN;
    absl::StatusOr<std::vector<Tensor>> want =
        (*teacher)->RunOutputs({{"x", batch}});
    absl::StatusOr<std::vector<Tensor>> got =
        (*student)->RunOutputs({{"x", batch}});
    if (!want.ok() || !got.ok()) return NAN;
    absl::StatusOr<LossResult> l =
        TrainingLoss((*got)[0], (*want)[0], Tensor(), LossOptions());
    return l.ok() ? l->loss : NAN;
  }

  const Graph graph_ = LinearLayersGraph();
  std::string dir_;
  Tensor x_;
  TrainingGraph training_;
  std::unique_ptr<Dataset> train_, held_out_;
};

TEST_F(QatTrainerTest, LossDecreasesOverTheSteps) {
  const double before = Loss(training_);
  ASSERT_GT(before, 0);
  std::vector<v1::TrainingPoint> seen;
  absl::StatusOr<QatOutcome> r =
      Train(Options(40), nullptr,
            [&](const v1::TrainingPoint& p) { seen.push_back(p); });
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 40);
  EXPECT_EQ(r->stop_reason, "max_steps");
  EXPECT_EQ(r->resumed_from, 0);
  const double after = Loss(training_);
  EXPECT_LT(after, 0.5 * before) << "before " << before << ", after " << after;
  // Without held-out data a point is recorded every 10 steps.
  ASSERT_EQ(r->curve.size(), 4u);
  EXPECT_EQ(r->curve.front().step(), 10);
  EXPECT_EQ(r->curve.back().step(), 40);
  EXPECT_LT(r->curve.back().loss(), r->curve.front().loss());
  EXPECT_FLOAT_EQ(r->curve.back().learning_rate(), 1e-2);
  ASSERT_EQ(seen.size(), r->curve.size());
  EXPECT_EQ(seen.back().step(), 40);
}

TEST_F(QatTrainerTest, HeldOutDataPicksTheWeightsAndIsReported) {
  QatOptions o = Options(10);
  o.eval_every_steps = 5;
  absl::StatusOr<QatOutcome> r = Train(o, nullptr, nullptr, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 10);
  ASSERT_EQ(r->curve.size(), 2u);  // steps 5 and 10
  EXPECT_EQ(r->curve[0].step(), 5);
  // The weights kept are those whose held-out loss was reported as best.
  EXPECT_GT(r->best_held_out, 0);
  EXPECT_NEAR(Loss(training_, 32, 8), r->best_held_out,
              1e-6 * r->best_held_out);
}

TEST_F(QatTrainerTest, StopsAtTheTimeBudget) {
  QatOptions o = Options(1000);
  o.time_budget_seconds = 1e-9;  // over before the first step
  absl::StatusOr<QatOutcome> r = Train(o);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stop_reason, "time_budget");
  EXPECT_LT(r->steps, 1000);
}

// A budget that cannot fit max_steps: the cosine schedule is planned for the
// steps that fit, so training ends near a learning rate of 0 instead of
// being cut off at a high one (the outside run stopped at 37% of the peak).
TEST_F(QatTrainerTest, PlansTheScheduleForTheStepsTheBudgetAllows) {
  QatOptions o = Options(1000000);
  o.optimizer.cosine = true;
  // 2 s: the schedule is planned after 10 timed steps, which stay well
  // inside it even on a busy machine (~3 ms per step here when idle).
  o.time_budget_seconds = 2;
  o.eval_every_steps = 5;
  absl::StatusOr<QatOutcome> r = Train(o, nullptr, nullptr, true);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->stop_reason, "time_budget");
  EXPECT_LT(r->planned_steps, 1000000);
  EXPECT_GE(r->steps, r->planned_steps - 1);
  ASSERT_FALSE(r->curve.empty());
  EXPECT_LT(r->curve.back().learning_rate(), 0.25 * 1e-2);
}

// A non-finite loss stops training with the reason and the weights from
// before it. (The student cannot produce one: every value on its path is
// fake-quantized. A teacher whose outputs overflow can, with the mean
// squared error loss.)
TEST_F(QatTrainerTest, StopsOnANonFiniteLoss) {
  Graph teacher = graph_;
  Tensor wo = teacher.initializers.at("wo").Clone();
  for (float& v : wo.mutable_span<float>()) v *= 1e38f;
  teacher.initializers["wo"] = wo;
  const std::vector<float> wq =
      training_.graph.initializers.at("wq").ToVector<float>();
  QatOptions o = Options(20);
  o.loss.kind = OutputKind::kRegression;
  absl::StatusOr<QatOutcome> r =
      TrainQat(teacher, &training_, train_.get(), nullptr, o, nullptr, nullptr);
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->steps, 0);
  EXPECT_THAT(r->stop_reason,
              HasSubstr("the loss became non-finite at step 1"));
  EXPECT_EQ(training_.graph.initializers.at("wq").ToVector<float>(), wq);
}

TEST_F(QatTrainerTest, RefusesInvalidOptions) {
  for (QatOptions o : {Options(0), Options(-3)}) {
    absl::StatusOr<QatOutcome> r = Train(o);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(r.status().message()), HasSubstr("max_steps > 0"));
  }
  for (double budget : {0.0, -1.0, double(NAN)}) {
    QatOptions o = Options(5);
    o.time_budget_seconds = budget;
    absl::StatusOr<QatOutcome> r = Train(o);
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << budget;
    EXPECT_THAT(std::string(r.status().message()),
                HasSubstr("positive time budget"));
  }
}

// eval_every_steps is a divisor of the step count: 0 must be refused rather
// than divide by zero. Run in a child process (which sets up its own
// fixture and folder) so that a crash fails this test only.
TEST_F(QatTrainerTest, RefusesAZeroEvaluationInterval) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  QatOptions o = Options(5);
  o.eval_every_steps = 0;
  EXPECT_EXIT(
      {
        absl::StatusOr<QatOutcome> r = Train(o, nullptr, nullptr, true);
        const bool refused =
            r.status().code() == absl::StatusCode::kInvalidArgument &&
            absl::StrContains(r.status().message(), "eval_every_steps");
        TearDown();
        std::exit(refused ? 0 : 1);
      },
      ::testing::ExitedWithCode(0), "");
}

TEST_F(QatTrainerTest, CancellationStopsTraining) {
  std::atomic<bool> cancel{true};
  absl::StatusOr<QatOutcome> r = Train(Options(20), &cancel);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_THAT(std::string(r.status().message()),
              HasSubstr("the job was cancelled"));

  // Cancelled from the progress callback, between steps.
  cancel = false;
  int64_t last = 0;
  r = Train(Options(100), &cancel, [&](const v1::TrainingPoint& p) {
    last = p.step();
    if (p.step() == 20) cancel = true;
  });
  EXPECT_EQ(r.status().code(), absl::StatusCode::kCancelled);
  EXPECT_EQ(last, 20);
}

TEST_F(QatTrainerTest, ResumesFromItsCheckpoint) {
  QatOptions o = Options(6);
  o.checkpoint_every_steps = 3;
  o.checkpoint_path = Path("checkpoint.npz");
  absl::StatusOr<QatOutcome> first = Train(o);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(first->resumed_from, 0);
  struct stat st;
  ASSERT_EQ(stat(o.checkpoint_path.c_str(), &st), 0);
  std::map<std::string, std::vector<float>> trained;
  for (const std::string& w : training_.weights) {
    trained[w] = training_.graph.initializers.at(w).ToVector<float>();
  }

  // A fresh training graph picks up the weights and step of the checkpoint
  // written at step 6, then trains on to step 9.
  absl::StatusOr<TrainingGraph> fresh =
      BuildTrainingGraph(graph_, Plan(graph_));
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  training_ = *fresh;
  absl::StatusOr<QatOutcome> same = Train(o);
  ASSERT_TRUE(same.ok()) << same.status();
  EXPECT_EQ(same->resumed_from, 6);
  EXPECT_EQ(same->steps, 6);
  for (const auto& [w, values] : trained) {
    EXPECT_EQ(training_.graph.initializers.at(w).ToVector<float>(), values)
        << w;
  }
  o.max_steps = 9;
  absl::StatusOr<QatOutcome> more = Train(o);
  ASSERT_TRUE(more.ok()) << more.status();
  EXPECT_EQ(more->resumed_from, 6);
  EXPECT_EQ(more->steps, 9);
}

TEST_F(QatTrainerTest, ReportsAnUnreadableCheckpoint) {
  QatOptions o = Options(3);
  o.checkpoint_path = Path("checkpoint.npz");
  std::system(absl::StrCat("echo garbage > '", o.checkpoint_path, "'").c_str());
  absl::StatusOr<QatOutcome> r = Train(o);
  EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("checkpoint.npz"));
}

// A checkpoint left by a different model at the same path (run-job reuses
// DIR/.quantd-qat-checkpoint.npz) must be refused naming the checkpoint,
// not loaded into the wrong tensors.
TEST_F(QatTrainerTest, RefusesACheckpointOfAnotherModel) {
  QatOptions o = Options(3);
  o.checkpoint_every_steps = 3;
  o.checkpoint_path = Path("checkpoint.npz");
  ASSERT_TRUE(Train(o).ok());
  Graph wider = LinearLayersGraph();  // q, k and out 12 channels wide
  std::mt19937 rng(1);
  std::normal_distribution<float> n(0.f, 0.5f);
  for (auto [name, shape] : std::vector<std::pair<std::string, Shape>>{
           {"wq", {8, 12}}, {"wk", {8, 12}}, {"wo", {12, 4}}}) {
    Tensor t(DataType::kFloat32, shape);
    for (float& v : t.mutable_span<float>()) v = n(rng);
    wider.initializers[name] = t;
  }
  absl::StatusOr<TrainingGraph> t = BuildTrainingGraph(wider, Plan(wider));
  ASSERT_TRUE(t.ok()) << t.status();
  o.max_steps = 6;
  absl::StatusOr<QatOutcome> r =
      TrainQat(wider, &*t, train_.get(), nullptr, o, nullptr, nullptr);
  EXPECT_THAT(r.status().code(), AnyOf(absl::StatusCode::kInvalidArgument,
                                       absl::StatusCode::kFailedPrecondition));
  EXPECT_THAT(std::string(r.status().message()), HasSubstr("checkpoint"));
}

}  // namespace
}  // namespace quantd
