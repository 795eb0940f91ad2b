// The blob store with object storage behind it: two stores (two replicas'
// cache folders) on one bucket of a real S3-protocol server.
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/blob_store.h"
#include "server/file_util.h"
#include "server/s3_test_server.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMax = 64 << 20;

class BlobStoreRemoteTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<S3TestServer>> s =
        S3TestServer::Start({"AK:SK"}, {"quantd"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
  }
  static void TearDownTestSuite() { delete server_; }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    prefix_ = absl::StrCat("t", next_++, "/");
    a_ = Open("a");
    b_ = Open("b");
  }
  void TearDown() override {
    for (const std::string& d : dirs_) {
      std::system(absl::StrCat("rm -rf '", d, "'").c_str());
    }
  }

  std::unique_ptr<S3Client> Client(const std::string& secret = "SK") {
    return std::move(
        *S3Client::Create(server_->Config("quantd", "AK", secret, prefix_)));
  }
  std::unique_ptr<BlobStore> Open(const std::string& name,
                                  const std::string& secret = "SK") {
    char tmpl[] = "/tmp/quantd_remote_XXXXXX";
    dirs_.push_back(mkdtemp(tmpl));
    absl::StatusOr<std::unique_ptr<BlobStore>> s = BlobStore::Open(
        dirs_.back(), std::make_unique<RemoteBlobs>(Client(secret)));
    EXPECT_TRUE(s.ok()) << name << ": " << s.status();
    return s.ok() ? std::move(*s) : nullptr;
  }
  static std::string Slurp(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
  }
  static absl::StatusOr<std::string> Upload(BlobStore& store,
                                            const std::string& id,
                                            const std::string& bytes) {
    const UploadKey key{"tenant", id};
    absl::Status s =
        store.BeginUpload(key, bytes.size(), Sha256Hex(bytes), kMax);
    if (s.ok()) s = store.Append(key, 0, bytes);
    if (!s.ok()) return s;
    return store.Commit(key);
  }

  static S3TestServer* server_;
  static int next_;
  std::string prefix_;
  std::vector<std::string> dirs_;
  std::unique_ptr<BlobStore> a_, b_;
};

S3TestServer* BlobStoreRemoteTest::server_ = nullptr;
int BlobStoreRemoteTest::next_ = 0;

TEST_F(BlobStoreRemoteTest, AnUploadToOneReplicaIsReadOnAnother) {
  const std::string bytes(300000, 'm');
  absl::StatusOr<std::string> digest = Upload(*a_, "u1", bytes);
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*Client()->Size(RemoteBlobs::Key(*digest)), 300000);
  EXPECT_TRUE(b_->Contains(*digest));
  EXPECT_EQ(*b_->Size(*digest), 300000);
  EXPECT_EQ(*b_->CommittedBytes(), 0) << "not cached before it is read";
  absl::StatusOr<std::string> path = b_->PathOf(*digest);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_TRUE(Slurp(*path) == bytes);
  EXPECT_EQ(*b_->CommittedBytes(), 300000) << "cached once read";
  EXPECT_EQ(*b_->Read(*digest, 299990, 100), std::string(10, 'm'));
}

TEST_F(BlobStoreRemoteTest, ArtifactsAndRemovalGoThroughTheBucket) {
  absl::StatusOr<std::string> digest = a_->Put("an artifact");
  ASSERT_TRUE(digest.ok()) << digest.status();
  EXPECT_EQ(*b_->Read(*digest, 0, 100), "an artifact");
  ASSERT_TRUE(b_->Remove(*digest).ok());
  EXPECT_TRUE(
      absl::IsNotFound(Client()->Size(RemoteBlobs::Key(*digest)).status()));
  EXPECT_FALSE(b_->Contains(*digest));
  std::unique_ptr<BlobStore> c = Open("c");
  EXPECT_TRUE(absl::IsNotFound(c->PathOf(*digest).status()));
  EXPECT_TRUE(absl::IsNotFound(c->Size(*digest).status()));
}

TEST_F(BlobStoreRemoteTest, BytesChangedInTheBucketAreRefused) {
  absl::StatusOr<std::string> digest = a_->Put("original bytes");
  ASSERT_TRUE(digest.ok()) << digest.status();
  ASSERT_TRUE(
      Client()->PutBytes(RemoteBlobs::Key(*digest), "tampered bytes").ok());
  const absl::Status s = b_->PathOf(*digest).status();
  EXPECT_TRUE(absl::IsDataLoss(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("changed outside quantd"));
  EXPECT_EQ(*b_->CommittedBytes(), 0) << "nothing half-written in the cache";
  EXPECT_EQ(b_->RemoveOrphanFiles(absl::InfiniteFuture()).files, 0)
      << "no temporary file left behind";
}

TEST_F(BlobStoreRemoteTest, ACommitTheBucketRefusesLeavesTheUploadToRetry) {
  std::unique_ptr<BlobStore> wrong = Open("wrong", "not-the-secret");
  const std::string bytes = "model bytes";
  const absl::StatusOr<std::string> digest = Upload(*wrong, "u2", bytes);
  EXPECT_TRUE(absl::IsPermissionDenied(digest.status())) << digest.status();
  absl::StatusOr<UploadProgress> progress =
      wrong->UploadStatus(UploadKey{"tenant", "u2"});
  ASSERT_TRUE(progress.ok()) << "the upload stays: " << progress.status();
  EXPECT_EQ(progress->committed, static_cast<int64_t>(bytes.size()));
  EXPECT_EQ(*wrong->CommittedBytes(), 0);
  EXPECT_TRUE(absl::IsNotFound(
      Client()->Size(RemoteBlobs::Key(Sha256Hex(bytes))).status()));
}

TEST_F(BlobStoreRemoteTest, AccessIsCheckedUpFront) {
  EXPECT_TRUE(RemoteBlobs(Client()).CheckAccess().ok());
  const absl::Status wrong =
      RemoteBlobs(Client("not-the-secret")).CheckAccess();
  EXPECT_TRUE(absl::IsPermissionDenied(wrong)) << wrong;
  S3Config missing = server_->Config("no-such-bucket", "AK", "SK");
  const absl::Status gone =
      RemoteBlobs(std::move(*S3Client::Create(missing))).CheckAccess();
  EXPECT_FALSE(gone.ok());
  EXPECT_THAT(gone.message(), HasSubstr("NoSuchBucket"));
  EXPECT_THAT(gone.message(), HasSubstr("s3://no-such-bucket/"));
}

TEST_F(BlobStoreRemoteTest, LargeBlobsGoUpInParts) {
  S3Config config = server_->Config("quantd", "AK", "SK", prefix_);
  config.part_size = 5 << 20;
  config.multipart_threshold = 5 << 20;
  char tmpl[] = "/tmp/quantd_remote_XXXXXX";
  dirs_.push_back(mkdtemp(tmpl));
  absl::StatusOr<std::unique_ptr<BlobStore>> store = BlobStore::Open(
      dirs_.back(),
      std::make_unique<RemoteBlobs>(std::move(*S3Client::Create(config))));
  ASSERT_TRUE(store.ok());
  std::string bytes(11 << 20, '\0');
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = char(i * 131 % 251);
  absl::StatusOr<std::string> digest = Upload(**store, "big", bytes);
  ASSERT_TRUE(digest.ok()) << digest.status();
  absl::StatusOr<std::string> path = b_->PathOf(*digest);
  ASSERT_TRUE(path.ok()) << path.status();
  EXPECT_EQ(Sha256Hex(Slurp(*path)), *digest);
}

// Sets a cached blob's "last used" time.
void UsedAt(const std::string& path, absl::Time t) {
  const struct timespec times[2] = {absl::ToTimespec(t), absl::ToTimespec(t)};
  ASSERT_EQ(utimensat(AT_FDCWD, path.c_str(), times, 0), 0);
}

TEST_F(BlobStoreRemoteTest, TheCacheIsCutBackLeastRecentlyUsedFirst) {
  std::vector<std::string> digests, paths;
  for (const char c : {'x', 'y', 'z'}) {
    absl::StatusOr<std::string> d = a_->Put(std::string(1000, c));
    ASSERT_TRUE(d.ok()) << d.status();
    digests.push_back(*d);
    paths.push_back(*b_->PathOf(*d));
  }
  const absl::Time now = absl::Now();
  UsedAt(paths[0], now - absl::Hours(3));
  UsedAt(paths[1], now - absl::Hours(2));
  UsedAt(paths[2], now - absl::Hours(1));
  ASSERT_TRUE(b_->PathOf(digests[0]).ok());  // used again: now the newest
  CleanupCount evicted = b_->EvictCached(1500, now - absl::Minutes(30));
  EXPECT_EQ(evicted.files, 2);
  EXPECT_EQ(evicted.bytes, 2000);
  EXPECT_EQ(*b_->CommittedBytes(), 1000);
  EXPECT_GE(FileSizeOrMinus1(paths[0]), 0) << "the recently used one stays";
  evicted = b_->EvictCached(1, now - absl::Minutes(30));
  EXPECT_EQ(evicted.files, 0) << "used within the grace period: kept";
  EXPECT_EQ(*b_->Read(digests[1], 0, 3), "yyy") << "evicted: fetched again";
  EXPECT_EQ(a_->EvictCached(0, absl::InfiniteFuture()).files, 0)
      << "0 is no limit";
}

}  // namespace
}  // namespace quantd
