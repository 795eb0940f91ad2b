#include "client/progress.h"

#include "gtest/gtest.h"

namespace quantd::client {
namespace {

TEST(FormatEta, SecondsMinutesHours) {
  EXPECT_EQ(FormatEta(absl::ZeroDuration()), "0s");
  EXPECT_EQ(FormatEta(absl::Milliseconds(7400)), "7s");
  EXPECT_EQ(FormatEta(absl::Milliseconds(59600)), "1m00s");
  EXPECT_EQ(FormatEta(absl::Seconds(65)), "1m05s");
  EXPECT_EQ(FormatEta(absl::Seconds(3599)), "59m59s");
  EXPECT_EQ(FormatEta(absl::Hours(2) + absl::Minutes(3) + absl::Seconds(9)),
            "2h03m");
  EXPECT_EQ(FormatEta(absl::InfiniteDuration()), "--");
  EXPECT_EQ(FormatEta(absl::Seconds(-1)), "--");
}

TEST(ProgressLine, ExtrapolatesTheStageAndRestartsOnANewStage) {
  ProgressLine line;
  const absl::Time t0 = absl::FromUnixSeconds(1000);
  v1::Progress p;
  p.set_stage("calibrate");
  p.set_fraction(0.0);
  EXPECT_EQ(line.Update(p, t0), "calibrate              0.0%  ETA --");
  p.set_fraction(0.25);
  p.set_current_layer("conv1");
  EXPECT_EQ(line.Update(p, t0 + absl::Seconds(10)),
            "calibrate             25.0%  layer conv1  ETA 30s");
  p.set_stage("evaluate_int8");
  p.set_fraction(0.5);
  p.clear_current_layer();
  // A new stage starts its clock now: nothing elapsed, no estimate yet.
  EXPECT_EQ(line.Update(p, t0 + absl::Seconds(20)),
            "evaluate_int8         50.0%  ETA --");
  p.set_fraction(1.0);
  EXPECT_EQ(line.Update(p, t0 + absl::Seconds(25)),
            "evaluate_int8        100.0%  ETA 0s");
}

}  // namespace
}  // namespace quantd::client
