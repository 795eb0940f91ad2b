#include "util/logging.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

TEST(LoggingTest, LogIfErrorLogsFailuresWithWhatWasBeingDone) {
  InitLogging("logging_test");
  InitLogging("logging_test");  // idempotent
  testing::internal::CaptureStderr();
  EXPECT_TRUE(LogIfError(absl::OkStatus(), "nothing"));
  EXPECT_FALSE(LogIfError(absl::NotFoundError("blob ab12 is gone"),
                          "removing an orphaned artifact"));
  const std::string err = testing::internal::GetCapturedStderr();
  EXPECT_THAT(err, HasSubstr("removing an orphaned artifact"));
  EXPECT_THAT(err, HasSubstr("NOT_FOUND: blob ab12 is gone"));
  EXPECT_THAT(err, ::testing::Not(HasSubstr("nothing")));
}

}  // namespace
}  // namespace quantd
