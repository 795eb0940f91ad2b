#include "server/blob_index.h"

#include <stdlib.h>

#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace quantd {
namespace {

TEST(BlobIndexTest, TenantsFindOnlyTheirOwnBlobsAcrossReopen) {
  char tmpl[] = "/tmp/quantd_blobindex_XXXXXX";
  const std::string dir = mkdtemp(tmpl);
  const std::string digest(64, 'a');
  {
    auto index = BlobIndex::Open(dir + "/blobs.db");
    ASSERT_TRUE(index.ok()) << index.status();
    v1::Blob b;
    b.set_sha256(digest);
    b.set_kind(v1::BLOB_KIND_MODEL);
    b.set_name("model.onnx");
    b.set_size(42);
    ASSERT_TRUE((*index)->Record("a", b).ok());
    b.set_sha256("not hex");
    EXPECT_FALSE((*index)->Record("a", b).ok());
  }
  auto index = BlobIndex::Open(dir + "/blobs.db");
  ASSERT_TRUE(index.ok());
  absl::StatusOr<v1::Blob> found = (*index)->Find("a", digest);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->size(), 42);
  EXPECT_EQ(found->name(), "model.onnx");
  EXPECT_EQ(*(*index)->TenantBytes("a"), 42);
  EXPECT_EQ(*(*index)->TenantBytes("b"), 0);
  EXPECT_EQ((*index)->Find("b", digest).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ((*index)->Find("a", "' OR 1=1 --").status().code(),
            absl::StatusCode::kNotFound);
  std::system(absl::StrCat("rm -rf '", dir, "'").c_str());
}

}  // namespace
}  // namespace quantd
