#include "engine/pipeline/artifacts.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>

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

}  // namespace
}  // namespace quantd
