#include "server/s3_config.h"

#include <stdlib.h>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/s3_xml.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

TEST(S3ConfigFromUrlTest, SplitsBucketAndPrefix) {
  absl::StatusOr<S3Config> c = S3ConfigFromUrl("s3://models/team-a/quantd/");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->bucket, "models");
  EXPECT_EQ(c->prefix, "team-a/quantd/");
  c = S3ConfigFromUrl("s3://models");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->prefix, "");
}

TEST(S3ConfigFromUrlTest, RefusesWhatCouldEscapeOrIsNotS3) {
  for (const char* bad :
       {"http://models/x", "s3://", "s3://AB", "s3://Models/x", "s3://ab",
        "s3://models/../x", "s3://models/a//b", "s3://models//a",
        "s3://models/a b", "s3://models/a?x=1", "s3://-models"}) {
    EXPECT_FALSE(S3ConfigFromUrl(bad).ok()) << bad;
  }
}

TEST(FillS3ConfigFromEnvTest, FlagsWinOverTheEnvironment) {
  setenv("AWS_ENDPOINT_URL", "http://env:9000/", 1);
  setenv("AWS_REGION", "eu-west-1", 1);
  setenv("AWS_ACCESS_KEY_ID", "ENVKEY", 1);
  setenv("AWS_SECRET_ACCESS_KEY", "ENVSECRET", 1);
  S3Config c = *S3ConfigFromUrl("s3://models/p");
  c.access_key_id = "FLAGKEY";
  c.secret_access_key = "FLAGSECRET";
  ASSERT_TRUE(FillS3ConfigFromEnv(c).ok());
  EXPECT_EQ(c.endpoint, "http://env:9000");
  EXPECT_EQ(c.region, "eu-west-1");
  EXPECT_EQ(c.access_key_id, "FLAGKEY");
  EXPECT_EQ(c.secret_access_key, "FLAGSECRET");
  EXPECT_EQ(DescribeS3(c), "s3://models/p/ at http://env:9000");
  unsetenv("AWS_ENDPOINT_URL");
  unsetenv("AWS_REGION");
  unsetenv("AWS_ACCESS_KEY_ID");
  unsetenv("AWS_SECRET_ACCESS_KEY");
}

TEST(FillS3ConfigFromEnvTest, DefaultsToAwsAndNeedsCredentials) {
  S3Config c = *S3ConfigFromUrl("s3://models");
  const absl::Status s = FillS3ConfigFromEnv(c);
  EXPECT_TRUE(absl::IsInvalidArgument(s));
  EXPECT_THAT(s.message(), HasSubstr("AWS_ACCESS_KEY_ID"));
  c.access_key_id = "K";
  c.secret_access_key = "S";
  ASSERT_TRUE(FillS3ConfigFromEnv(c).ok());
  EXPECT_EQ(c.endpoint, "https://s3.us-east-1.amazonaws.com");
  c.endpoint = "ftp://x";
  EXPECT_FALSE(FillS3ConfigFromEnv(c).ok());
  c.endpoint = "http://x";
  c.part_size = 1 << 20;
  EXPECT_FALSE(FillS3ConfigFromEnv(c).ok()) << "parts under 5 MiB";
}

TEST(S3XmlTest, ReadsErrorsAndUploadIds) {
  const S3Error e = ParseS3Error(
      "<?xml version=\"1.0\"?><Error><Code>NoSuchKey</Code>"
      "<Message>a &amp;&lt;b&gt;</Message></Error>");
  EXPECT_EQ(e.code, "NoSuchKey");
  EXPECT_EQ(e.message, "a &<b>");
  EXPECT_EQ(ParseS3Error("<Result><Code>x</Code></Result>").code, "");
  EXPECT_EQ(XmlElement("<R><UploadId>a&amp;lt;</UploadId></R>", "UploadId"),
            "a&lt;");
  EXPECT_EQ(XmlElement("<R><UploadId>unclosed", "UploadId"), "");
}

TEST(S3XmlTest, ListsPartsInOrder) {
  EXPECT_EQ(CompleteMultipartXml({"\"e1\"", "\"e2\""}),
            "<CompleteMultipartUpload><Part><PartNumber>1</PartNumber>"
            "<ETag>&quot;e1&quot;</ETag></Part><Part><PartNumber>2</"
            "PartNumber><ETag>&quot;e2&quot;</ETag></Part></"
            "CompleteMultipartUpload>");
}

}  // namespace
}  // namespace quantd
