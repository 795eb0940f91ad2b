#include "client/exit_codes.h"

#include "gtest/gtest.h"

namespace quantd::client {
namespace {

TEST(ExitCodes, StatusCodesMapToTheDocumentedExitCodes) {
  EXPECT_EQ(ExitCodeFor(absl::StatusCode::kOk), 0);
  for (absl::StatusCode c :
       {absl::StatusCode::kInvalidArgument, absl::StatusCode::kNotFound,
        absl::StatusCode::kFailedPrecondition, absl::StatusCode::kAlreadyExists,
        absl::StatusCode::kOutOfRange, absl::StatusCode::kUnauthenticated,
        absl::StatusCode::kPermissionDenied}) {
    EXPECT_EQ(ExitCodeFor(c), 2) << absl::StatusCodeToString(c);
  }
  EXPECT_EQ(ExitCodeFor(absl::StatusCode::kUnavailable), 3);
  EXPECT_EQ(ExitCodeFor(absl::StatusCode::kDeadlineExceeded), 3);
  EXPECT_EQ(ExitCodeFor(absl::StatusCode::kResourceExhausted), 4);
  for (absl::StatusCode c :
       {absl::StatusCode::kInternal, absl::StatusCode::kUnknown,
        absl::StatusCode::kDataLoss, absl::StatusCode::kUnimplemented,
        absl::StatusCode::kCancelled, absl::StatusCode::kAborted}) {
    EXPECT_EQ(ExitCodeFor(c), 5) << absl::StatusCodeToString(c);
  }
}

TEST(ExitCodes, JobStates) {
  EXPECT_EQ(ExitCodeForJob(v1::JOB_STATE_SUCCEEDED), 0);
  EXPECT_EQ(ExitCodeForJob(v1::JOB_STATE_FAILED), 1);
  EXPECT_EQ(ExitCodeForJob(v1::JOB_STATE_CANCELLED), 1);
  EXPECT_EQ(ExitCodeForJob(v1::JOB_STATE_RUNNING), 5);
}

TEST(ExitCodes, HelpListsEveryCode) {
  const std::string help = ExitCodesHelp();
  for (const char* c : {"0  ", "1  ", "2  ", "3  ", "4  ", "5  "}) {
    EXPECT_NE(help.find(c), std::string::npos) << c;
  }
}

}  // namespace
}  // namespace quantd::client
