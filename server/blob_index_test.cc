#include "server/blob_index.h"

#include <stdlib.h>

#include <cstdlib>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/postgres_test_server.h"

namespace quantd {
namespace {

// Each test runs on SQLite (a file) and on PostgreSQL (a fresh database on
// a server this binary starts).
class BlobIndexTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    if (GetParam()) {
      PostgresTestServer* server = PostgresTestServer::Shared();
      ASSERT_NE(server, nullptr) << "PostgreSQL did not start";
      absl::StatusOr<std::string> url = server->CreateDatabase();
      ASSERT_TRUE(url.ok()) << url.status();
      where_ = *url;
    } else {
      char tmpl[] = "/tmp/quantd_blobindex_XXXXXX";
      dir_ = mkdtemp(tmpl);
      where_ = dir_ + "/blobs.db";
    }
  }
  void TearDown() override {
    if (!dir_.empty()) {
      std::system(absl::StrCat("rm -rf '", dir_, "'").c_str());
    }
  }
  std::unique_ptr<BlobIndex> Open() {
    absl::StatusOr<std::unique_ptr<BlobIndex>> index = BlobIndex::Open(where_);
    EXPECT_TRUE(index.ok()) << index.status();
    return index.ok() ? std::move(*index) : nullptr;
  }
  static v1::Blob Model(const std::string& digest, int64_t size) {
    v1::Blob b;
    b.set_sha256(digest);
    b.set_kind(v1::BLOB_KIND_MODEL);
    b.set_name("model.onnx");
    b.set_size(size);
    b.mutable_create_time()->set_seconds(1700000000);
    return b;
  }

  std::string dir_, where_;
};

TEST_P(BlobIndexTest, TenantsFindOnlyTheirOwnBlobsAcrossReopen) {
  const std::string digest(64, 'a');
  {
    std::unique_ptr<BlobIndex> index = Open();
    ASSERT_NE(index, nullptr);
    ASSERT_TRUE(index->Record("a", Model(digest, 42)).ok());
    EXPECT_FALSE(index->Record("a", Model("not hex", 1)).ok());
  }
  std::unique_ptr<BlobIndex> index = Open();
  ASSERT_NE(index, nullptr);
  absl::StatusOr<v1::Blob> found = index->Find("a", digest);
  ASSERT_TRUE(found.ok()) << found.status();
  EXPECT_EQ(found->size(), 42);
  EXPECT_EQ(found->name(), "model.onnx");
  EXPECT_EQ(found->kind(), v1::BLOB_KIND_MODEL);
  EXPECT_EQ(found->create_time().seconds(), 1700000000);
  EXPECT_EQ(*index->TenantBytes("a"), 42);
  EXPECT_EQ(*index->TenantBytes("b"), 0);
  EXPECT_TRUE(*index->AnyTenantOwns(digest));
  EXPECT_FALSE(*index->AnyTenantOwns(std::string(64, 'b')));
  EXPECT_EQ(index->Find("b", digest).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(index->Find("a", "' OR 1=1 --").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_P(BlobIndexTest, RecordingAgainRefreshesAndCountsOnce) {
  std::unique_ptr<BlobIndex> index = Open();
  ASSERT_NE(index, nullptr);
  const std::string digest(64, 'c');
  ASSERT_TRUE(index->Record("a", Model(digest, 10)).ok());
  v1::Blob again = Model(digest, 10);
  again.set_name("renamed.onnx");
  ASSERT_TRUE(index->Record("a", again).ok());
  ASSERT_TRUE(index->Record("b", Model(digest, 10)).ok());
  EXPECT_EQ(*index->TenantBytes("a"), 10);
  EXPECT_EQ(index->Find("a", digest)->name(), "renamed.onnx");
}

TEST_P(BlobIndexTest, ScansRoundTripPerDigest) {
  std::unique_ptr<BlobIndex> index = Open();
  ASSERT_NE(index, nullptr);
  const std::string digest(64, 'd');
  EXPECT_FALSE(index->FindScan(digest)->has_value());
  v1::DatasetCheck check;
  check.set_ok(false);
  check.set_reason("label 12 is outside 0..9");
  check.set_label_max(12);
  ASSERT_TRUE(index->RecordScan(digest, check).ok());
  check.set_reason("rescanned");
  ASSERT_TRUE(index->RecordScan(digest, check).ok());
  absl::StatusOr<std::optional<v1::DatasetCheck>> found =
      index->FindScan(digest);
  ASSERT_TRUE(found.ok() && found->has_value()) << found.status();
  EXPECT_EQ((*found)->reason(), "rescanned");
  EXPECT_EQ((*found)->label_max(), 12);
  EXPECT_FALSE(index->RecordScan("xyz", check).ok());
}

// Replicas: what one records, another (its own connection) finds; several
// opening a fresh database at once create the tables once.
TEST_P(BlobIndexTest, ReplicasShareOneIndex) {
  if (!GetParam()) GTEST_SKIP() << "one SQLite file serves one replica";
  std::vector<std::unique_ptr<BlobIndex>> replicas(4);
  std::vector<std::thread> threads;
  for (auto& r : replicas) {
    threads.emplace_back([&] { r = Open(); });
  }
  for (std::thread& t : threads) t.join();
  for (auto& r : replicas) ASSERT_NE(r, nullptr);
  const std::string digest(64, 'e');
  ASSERT_TRUE(replicas[0]->Record("a", Model(digest, 7)).ok());
  EXPECT_EQ(replicas[3]->Find("a", digest)->size(), 7);
  EXPECT_EQ(*replicas[2]->TenantBytes("a"), 7);
}

INSTANTIATE_TEST_SUITE_P(Backends, BlobIndexTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Postgres" : "Sqlite";
                         });

}  // namespace
}  // namespace quantd
