#include "server/blob_store.h"

#include <dirent.h>
#include <fcntl.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

constexpr int64_t kMax = 1 << 20;

class BlobStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_blobs_XXXXXX";
    root_ = mkdtemp(tmpl);
    absl::StatusOr<std::unique_ptr<BlobStore>> s = BlobStore::Open(root_);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", root_, "'").c_str());
  }
  // Files under uploads/ (what a failure may leave behind).
  int UploadFiles() {
    return std::system(
               absl::StrCat("test -z \"$(ls -A '", root_, "/uploads')\"")
                   .c_str()) == 0
               ? 0
               : 1;
  }

  std::string root_;
  std::unique_ptr<BlobStore> store_;
};

TEST_F(BlobStoreTest, ChunkedUploadIsVerifiedAndContentAddressed) {
  const std::string bytes(100000, 'q');
  const std::string digest = Sha256Hex(bytes);
  const UploadKey key{"tenant-a", "u1"};
  ASSERT_TRUE(store_->BeginUpload(key, bytes.size(), digest, kMax).ok());
  for (size_t off = 0; off < bytes.size(); off += 30000) {
    ASSERT_TRUE(
        store_->Append(key, off, absl::string_view(bytes).substr(off, 30000))
            .ok());
  }
  absl::StatusOr<std::string> d = store_->Commit(key);
  ASSERT_TRUE(d.ok()) << d.status();
  EXPECT_EQ(*d, digest);
  EXPECT_TRUE(store_->Contains(digest));
  EXPECT_EQ(*store_->Size(digest), 100000);
  absl::StatusOr<std::string> path = store_->PathOf(digest);
  ASSERT_TRUE(path.ok());
  EXPECT_THAT(*path, HasSubstr(absl::StrCat("/blobs/sha256/",
                                            digest.substr(0, 2), "/", digest)));
  EXPECT_EQ(*store_->Read(digest, 99990, 100), std::string(10, 'q'));
  EXPECT_EQ(UploadFiles(), 0);
  // The upload is finished: it cannot be resumed.
  EXPECT_EQ(store_->CommittedSize(key).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BlobStoreTest, InterruptedUploadResumesFromTheCommittedSize) {
  const std::string bytes = "0123456789abcdef";
  const std::string digest = Sha256Hex(bytes);
  const UploadKey key{"t", "resume-me"};
  ASSERT_TRUE(store_->BeginUpload(key, 16, digest, kMax).ok());
  ASSERT_TRUE(store_->Append(key, 0, bytes.substr(0, 6)).ok());
  // A new store object on the same folder: a restarted server.
  absl::StatusOr<std::unique_ptr<BlobStore>> again = BlobStore::Open(root_);
  ASSERT_TRUE(again.ok());
  ASSERT_TRUE((*again)->BeginUpload(key, 16, digest, kMax).ok());
  EXPECT_EQ(*(*again)->CommittedSize(key), 6);
  absl::Status wrong = (*again)->Append(key, 3, bytes.substr(3));
  EXPECT_EQ(wrong.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(wrong.message(), HasSubstr("send from offset 6"));
  ASSERT_TRUE((*again)->Append(key, 6, bytes.substr(6)).ok());
  EXPECT_EQ(*(*again)->Commit(key), digest);
  // Resuming with another digest under the same id is refused.
  ASSERT_TRUE(store_->BeginUpload(key, 3, Sha256Hex("abc"), kMax).ok());
  EXPECT_EQ(store_->BeginUpload(key, 3, Sha256Hex("abd"), kMax).code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(BlobStoreTest, WrongDigestDiscardsTheUploadAndLeavesNothing) {
  const UploadKey key{"t", "bad"};
  ASSERT_TRUE(store_->BeginUpload(key, 3, Sha256Hex("abc"), kMax).ok());
  ASSERT_TRUE(store_->Append(key, 0, "abd").ok());
  absl::StatusOr<std::string> d = store_->Commit(key);
  EXPECT_EQ(d.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(d.status().message(), HasSubstr("send it again"));
  EXPECT_FALSE(store_->Contains(Sha256Hex("abc")));
  EXPECT_FALSE(store_->Contains(Sha256Hex("abd")));
  EXPECT_EQ(UploadFiles(), 0);
}

TEST_F(BlobStoreTest, RefusesBadDeclarationsAndOverruns) {
  const UploadKey key{"t", "x"};
  EXPECT_EQ(store_->BeginUpload(key, 3, "not-a-digest", kMax).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->BeginUpload(key, kMax + 1, Sha256Hex("a"), kMax).code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(store_->BeginUpload(key, 2, Sha256Hex("ab"), kMax).ok());
  EXPECT_EQ(store_->Append(key, 0, "abc").code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store_->Commit(key).status().code(),
            absl::StatusCode::kFailedPrecondition);  // nothing sent yet
  EXPECT_EQ(store_->Append({"t", "never-begun"}, 0, "a").code(),
            absl::StatusCode::kNotFound);
  // Path-like digests and ids never reach the file system.
  EXPECT_FALSE(store_->PathOf("../../etc/passwd").ok());
  EXPECT_TRUE(
      store_->BeginUpload({"t", "../../x"}, 1, Sha256Hex("a"), kMax).ok());
  struct stat st;
  EXPECT_NE(stat(absl::StrCat(root_, "/x.part").c_str(), &st), 0);
}

TEST_F(BlobStoreTest, OwnersDoNotShareUploads) {
  ASSERT_TRUE(store_->BeginUpload({"a", "same"}, 1, Sha256Hex("a"), kMax).ok());
  EXPECT_EQ(store_->CommittedSize({"b", "same"}).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(BlobStoreTest, PutIsIdempotentAndRemoveDeletes) {
  absl::StatusOr<std::string> a = store_->Put("artifact");
  absl::StatusOr<std::string> b = store_->Put("artifact");
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ(*a, *b);
  EXPECT_EQ(*store_->Read(*a, 0, 100), "artifact");
  EXPECT_EQ(store_->Read(*a, 9, 1).status().code(),
            absl::StatusCode::kOutOfRange);
  ASSERT_TRUE(store_->Remove(*a).ok());
  EXPECT_FALSE(store_->Contains(*a));
  EXPECT_EQ(UploadFiles(), 0);
}

TEST_F(BlobStoreTest, ReservationsSurviveARestartAndCheckTheQuota) {
  UploadQuota quota;
  quota.limit = 100;
  const std::string bytes(60, 'r');
  const UploadKey key{"t", "big"};
  ASSERT_TRUE(store_->BeginUpload(key, 60, Sha256Hex(bytes), kMax, quota).ok());
  ASSERT_TRUE(store_->Append(key, 0, bytes.substr(0, 25)).ok());
  // A restarted server counts the upload in progress again, and resumes
  // its digest from the .part (hashed once).
  absl::StatusOr<std::unique_ptr<BlobStore>> again = BlobStore::Open(root_);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ((*again)->ReservedBytes("t"), 60);
  EXPECT_EQ((*again)->ReservedBytes("other"), 0);
  EXPECT_EQ((*again)
                ->BeginUpload({"t", "more"}, 41, Sha256Hex("x"), kMax, quota)
                .code(),
            absl::StatusCode::kResourceExhausted);
  ASSERT_TRUE(
      (*again)->BeginUpload(key, 60, Sha256Hex(bytes), kMax, quota).ok());
  ASSERT_TRUE((*again)->Append(key, 25, bytes.substr(25)).ok());
  ASSERT_TRUE((*again)->Commit(key).ok());
  EXPECT_EQ((*again)->ReservedBytes("t"), 60);  // until released
  const int64_t generation = (*again)->ReleaseGeneration();
  (*again)->ReleaseUpload(key);
  EXPECT_EQ((*again)->ReservedBytes("t"), 0);
  // A quota read before that release is stale: count again.
  quota.release_generation = generation;
  EXPECT_EQ((*again)
                ->BeginUpload({"t", "stale"}, 1, Sha256Hex("x"), kMax, quota)
                .code(),
            absl::StatusCode::kAborted);
  quota.release_generation = (*again)->ReleaseGeneration();
  EXPECT_TRUE((*again)
                  ->BeginUpload({"t", "fresh"}, 1, Sha256Hex("x"), kMax, quota)
                  .ok());
}

// The .part files under uploads/ (names only).
std::vector<std::string> PartFiles(const std::string& root) {
  std::vector<std::string> out;
  DIR* d = opendir((root + "/uploads").c_str());
  while (dirent* e = d == nullptr ? nullptr : readdir(d)) {
    if (absl::EndsWith(e->d_name, ".part")) out.push_back(e->d_name);
  }
  if (d != nullptr) closedir(d);
  return out;
}

// One upload whose disk write cannot finish (its .part is a FIFO with no
// reader yet, so the append blocks in open()) must not hold up another
// upload: no store-wide lock is held across disk I/O.
TEST_F(BlobStoreTest, AnUploadStuckOnDiskDoesNotBlockOtherUploads) {
  const UploadKey stuck{"t", "stuck"};
  ASSERT_TRUE(store_->BeginUpload(stuck, 4, Sha256Hex("abcd"), kMax).ok());
  const std::vector<std::string> parts = PartFiles(root_);
  ASSERT_EQ(parts.size(), 1u);
  const std::string fifo = absl::StrCat(root_, "/uploads/", parts[0]);
  ASSERT_EQ(unlink(fifo.c_str()), 0);
  ASSERT_EQ(mkfifo(fifo.c_str(), 0640), 0);
  absl::Notification stuck_done;
  std::thread writer([&] {
    EXPECT_TRUE(store_->Append(stuck, 0, "abcd").ok());
    stuck_done.Notify();
  });
  // Another tenant's whole upload, while the first append waits on disk.
  absl::Notification other_done;
  std::thread other([&] {
    const UploadKey key{"u", "other"};
    EXPECT_TRUE(store_->BeginUpload(key, 3, Sha256Hex("xyz"), kMax).ok());
    EXPECT_TRUE(store_->Append(key, 0, "xyz").ok());
    EXPECT_TRUE(store_->Commit(key).ok());
    EXPECT_TRUE(store_->Put("an artifact").ok());
    other_done.Notify();
  });
  // Generous: on the old store-wide lock this never finished.
  const bool finished =
      other_done.WaitForNotificationWithTimeout(absl::Seconds(60));
  EXPECT_TRUE(finished) << "another upload waited for a stuck disk write";
  EXPECT_FALSE(stuck_done.HasBeenNotified());
  // Unblock the stuck append: open the FIFO's read end and drain it.
  const int fd = open(fifo.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  char buf[16];
  while (read(fd, buf, sizeof(buf)) > 0) {
  }
  close(fd);
  writer.join();
  other.join();
  EXPECT_TRUE(store_->Contains(Sha256Hex("xyz")));
}

}  // namespace
}  // namespace quantd
