#include "server/job_labels.h"

#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(JobLabelsTest, RoundTripsIncludingEmptyValuesAndBinaryBytes) {
  const std::map<std::string, std::string> labels = {
      {"model", "resnet50"}, {"empty", ""}, {"bytes", std::string("a\0b", 3)}};
  std::map<std::string, std::string> back;
  ASSERT_TRUE(DecodeLabels(EncodeLabels(labels), back));
  EXPECT_EQ(back, labels);
  back.clear();
  EXPECT_TRUE(DecodeLabels(EncodeLabels({}), back));
  EXPECT_TRUE(back.empty());
}

TEST(JobLabelsTest, RefusesTruncatedOrInflatedLengths) {
  const std::string good = EncodeLabels({{"k", "v"}});
  std::map<std::string, std::string> out;
  for (size_t cut = 1; cut < good.size(); ++cut) {
    EXPECT_FALSE(DecodeLabels(good.substr(0, cut), out)) << cut;
  }
  std::string huge = good;
  huge[0] = '\xff';  // key length 255 + ... > the bytes that follow
  EXPECT_FALSE(DecodeLabels(huge, out));
}

}  // namespace
}  // namespace quantd
