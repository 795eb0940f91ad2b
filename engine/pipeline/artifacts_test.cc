#include "engine/pipeline/artifacts.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <iterator>
#include <string>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(WriteArtifactsTest, WritesBothFilesAndNothingElse) {
  char tmpl[] = "/tmp/quantd_artifacts_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  PipelineResult result;
  result.model_bytes = "onnx bytes";
  result.report.mutable_size()->set_float_bytes(10);
  // Missing parent folders are created.
  ASSERT_TRUE(WriteArtifacts(dir + "/a/b/out", result).ok());
  struct stat st;
  EXPECT_EQ(stat((dir + "/a/b/out/" + kModelArtifact).c_str(), &st), 0);
  EXPECT_EQ(stat((dir + "/a/b/out/" + kReportArtifact).c_str(), &st), 0);
  EXPECT_FALSE(WriteArtifacts("/proc/quantd_cannot_write_here", result).ok());
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
}

std::string ReadAll(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(f), {});
}

TEST(WriteArtifactsTest, ExternalDataGoesBesideTheModelAndStaleDataGoes) {
  char tmpl[] = "/tmp/quantd_artifacts_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  PipelineResult result;
  result.model_bytes = "onnx bytes";
  result.model_external_data = std::string(5000, '\x7f');
  ASSERT_TRUE(WriteArtifacts(dir, result).ok());
  EXPECT_EQ(ReadAll(dir + "/" + kModelArtifact), result.model_bytes);
  EXPECT_EQ(ReadAll(dir + "/" + kModelDataArtifact),
            result.model_external_data);

  // A later self-contained model in the same folder: the old data file
  // belonged to the old model and must not look like this one's.
  result.model_external_data.clear();
  ASSERT_TRUE(WriteArtifacts(dir, result).ok());
  struct stat st;
  EXPECT_NE(stat((dir + "/" + kModelDataArtifact).c_str(), &st), 0);
  EXPECT_EQ(stat((dir + "/" + kModelArtifact).c_str(), &st), 0);
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
}

}  // namespace
}  // namespace quantd
