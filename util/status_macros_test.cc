#include "util/status_macros.h"

#include <memory>
#include <string>

#include "gtest/gtest.h"

namespace quantd {
namespace {

int evaluations = 0;

absl::Status Counted(absl::Status s) {
  ++evaluations;
  return s;
}

absl::StatusOr<std::unique_ptr<int>> MakeInt(int v) {
  ++evaluations;
  if (v < 0) return absl::InvalidArgumentError("negative");
  return std::make_unique<int>(v);
}

absl::Status ReturnIfError(absl::Status s) {
  QUANTD_RETURN_IF_ERROR(Counted(s));
  return absl::InternalError("reached the end");
}

absl::StatusOr<int> AssignOrReturn(int v) {
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<int> p, MakeInt(v));
  int existing = 0;
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<int> q, MakeInt(v + 1));
  existing = *q;
  return *p + existing;
}

TEST(StatusMacrosTest, ReturnIfErrorReturnsTheErrorAndEvaluatesOnce) {
  evaluations = 0;
  absl::Status s = ReturnIfError(absl::NotFoundError("blob 'ab12' not found"));
  EXPECT_EQ(s.code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(s.message(), "blob 'ab12' not found");
  EXPECT_EQ(evaluations, 1);
}

TEST(StatusMacrosTest, ReturnIfErrorFallsThroughOnOk) {
  EXPECT_EQ(ReturnIfError(absl::OkStatus()).message(), "reached the end");
}

TEST(StatusMacrosTest, AssignOrReturnMovesTheValueOrReturnsTheError) {
  evaluations = 0;
  absl::StatusOr<int> ok = AssignOrReturn(2);
  ASSERT_TRUE(ok.ok());
  EXPECT_EQ(*ok, 5);
  EXPECT_EQ(evaluations, 2);
  absl::StatusOr<int> bad = AssignOrReturn(-5);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(bad.status().message(), "negative");
}

}  // namespace
}  // namespace quantd
