#include "server/resource_names.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

TEST(ResourceNamesTest, JobNamesRoundTrip) {
  EXPECT_EQ(JobName("job-0123456789abcdef"), "jobs/job-0123456789abcdef");
  absl::StatusOr<std::string> id = JobIdFromName("jobs/job-0123456789abcdef");
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "job-0123456789abcdef");
  EXPECT_EQ(JobIdOfOwnName("jobs/job-1"), "job-1");
}

TEST(ResourceNamesTest, RefusesMalformedJobNamesSayingWhatTheyLookLike) {
  for (const char* bad : {"", "jobs/", "job-1", "jobs/a/b", "jobs/../x",
                          "JOBS/job-1", "jobs/job 1", "jobs/\xff"}) {
    absl::StatusOr<std::string> id = JobIdFromName(bad);
    ASSERT_FALSE(id.ok()) << bad;
    EXPECT_EQ(id.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(id.status().message(), HasSubstr("jobs/job-0123456789abcdef"));
  }
  EXPECT_FALSE(JobIdFromName("jobs/" + std::string(129, 'a')).ok());
  EXPECT_TRUE(JobIdFromName("jobs/" + std::string(128, 'a')).ok());
}

TEST(ResourceNamesTest, IdentifiersAreBoundedAndPlain) {
  EXPECT_TRUE(IsIdentifier("upload-1.part_2", kMaxUploadIdBytes));
  EXPECT_FALSE(IsIdentifier("", kMaxUploadIdBytes));
  EXPECT_FALSE(IsIdentifier("a/b", kMaxUploadIdBytes));
  EXPECT_FALSE(IsIdentifier("a b", kMaxUploadIdBytes));
  EXPECT_FALSE(IsIdentifier(std::string(65, 'a'), kMaxUploadIdBytes));
  EXPECT_TRUE(IsIdentifier(std::string(64, 'a'), kMaxUploadIdBytes));
}

TEST(ResourceNamesTest, DigestsAreSixtyFourLowercaseHex) {
  EXPECT_TRUE(IsSha256Hex(std::string(64, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(64, 'A')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'a') + "g"));
}

}  // namespace
}  // namespace quantd
