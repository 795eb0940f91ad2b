#include "server/janitor.h"

#include <stdlib.h>
#include <sys/stat.h>

#include <cstdlib>
#include <fstream>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"
#include "server/file_util.h"
#include "util/sha256.h"

namespace quantd {
namespace {

constexpr int64_t kMax = 1 << 20;

class JanitorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/quantd_janitor_XXXXXX";
    root_ = mkdtemp(tmpl);
    blobs_ = std::move(*BlobStore::Open(root_));
    jobs_ = std::move(*JobStore::Open(root_ + "/jobs.db", "0123456789abcdef"));
    checkpoints_ = root_ + "/checkpoints";
    ASSERT_TRUE(MakeDirs(checkpoints_).ok());
  }
  void TearDown() override {
    std::system(absl::StrCat("rm -rf '", root_, "'").c_str());
  }

  // A janitor whose clock reads `now_` (tests move it instead of waiting).
  Janitor MakeJanitor() {
    JanitorOptions o;
    o.upload_retention = absl::Hours(24);
    o.checkpoint_dir = checkpoints_;
    o.now = [this] { return now_; };
    return Janitor(blobs_.get(), jobs_.get(), o);
  }

  void Touch(const std::string& path, const std::string& bytes = "x") {
    std::ofstream(path, std::ios::binary) << bytes;
  }

  std::string JobIn(JobState state) {
    JobRecord r;
    r.tenant = "t";
    r.spec = "spec";
    const std::string id = jobs_->Create(r)->first.id;
    if (state == JobState::kQueued) return id;
    EXPECT_TRUE(
        jobs_->Transition(id, {JobState::kQueued}, JobState::kRunning).ok());
    if (state != JobState::kRunning) {
      EXPECT_TRUE(jobs_->Transition(id, {JobState::kRunning}, state).ok());
    }
    return id;
  }

  std::string root_, checkpoints_;
  std::unique_ptr<BlobStore> blobs_;
  std::unique_ptr<JobStore> jobs_;
  absl::Time now_ = absl::Now();
};

TEST_F(JanitorTest, StaleUploadsGoAndTheirReservationEnds) {
  const UploadKey stale{"t", "stale"};
  ASSERT_TRUE(
      blobs_->BeginUpload(stale, 10, Sha256Hex("0123456789"), kMax).ok());
  ASSERT_TRUE(blobs_->Append(stale, 0, "01234").ok());
  EXPECT_EQ(blobs_->ReservedBytes("t"), 10);
  Janitor janitor = MakeJanitor();
  // Within the retention nothing goes.
  now_ = absl::Now() + absl::Hours(23);
  JanitorPass pass = janitor.RunOnce();
  EXPECT_EQ(pass.uploads.files, 0);
  EXPECT_EQ(blobs_->ReservedBytes("t"), 10);
  // A day after its last byte the abandoned upload goes.
  now_ = absl::Now() + absl::Hours(24) + absl::Minutes(1);
  pass = janitor.RunOnce();
  EXPECT_EQ(pass.uploads.files, 1);
  EXPECT_EQ(pass.uploads.bytes, 5);
  EXPECT_EQ(blobs_->ReservedBytes("t"), 0);
  EXPECT_EQ(blobs_->CommittedSize(stale).status().code(),
            absl::StatusCode::kNotFound);
  int files = 0;
  ForEachFile(root_ + "/uploads",
              [&](const std::string&, const struct stat&) { ++files; });
  EXPECT_EQ(files, 0);
}

TEST_F(JanitorTest, UploadsLoadedAfterARestartExpireToo) {
  const UploadKey key{"t", "before-restart"};
  ASSERT_TRUE(blobs_->BeginUpload(key, 4, Sha256Hex("abcd"), kMax).ok());
  ASSERT_TRUE(blobs_->Append(key, 0, "ab").ok());
  blobs_ = std::move(*BlobStore::Open(root_));  // a restarted server
  EXPECT_EQ(blobs_->ReservedBytes("t"), 4);
  now_ = absl::Now() + absl::Hours(25);
  EXPECT_EQ(MakeJanitor().RunOnce().uploads.files, 1);
  EXPECT_EQ(blobs_->ReservedBytes("t"), 0);
}

TEST_F(JanitorTest, OrphanTempFilesGoOnlyWhenOld) {
  const std::string dir = root_ + "/uploads";
  Touch(dir + "/put-AbC123", "partial artifact");  // Put interrupted
  Touch(dir + "/0123456789abcdef0123456789abcdef01234567.meta.tmp");
  Touch(dir + "/89abcdef0123456789abcdef0123456789abcdef.part");  // no .meta
  const UploadKey live{"t", "live"};
  ASSERT_TRUE(blobs_->BeginUpload(live, 3, Sha256Hex("abc"), kMax).ok());
  Janitor janitor = MakeJanitor();
  EXPECT_EQ(janitor.RunOnce().temp_files.files, 0);  // young: may be in use
  now_ = absl::Now() + absl::Hours(25);
  const JanitorPass pass = janitor.RunOnce();
  EXPECT_EQ(pass.temp_files.files, 3);
  EXPECT_EQ(pass.uploads.files, 1);  // the live one, idle by this clock
}

TEST_F(JanitorTest, CheckpointsOfTerminalAndDeletedJobsGo) {
  const std::string running = JobIn(JobState::kRunning);
  const std::string queued = JobIn(JobState::kQueued);
  const std::string failed = JobIn(JobState::kFailed);
  const std::string deleted = JobIn(JobState::kCancelled);
  ASSERT_TRUE(jobs_->Delete("t", deleted).ok());
  for (const std::string& id : {running, queued, failed, deleted}) {
    Touch(absl::StrCat(checkpoints_, "/", id, ".npz"), "0123456789");
  }
  Touch(absl::StrCat(checkpoints_, "/", failed, ".npz.tmp"));  // after kill -9
  Touch(checkpoints_ + "/README");  // not a checkpoint: left alone
  absl::StatusOr<StorageUsage> before = MakeJanitor().Usage();
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->checkpoints, 42);
  const JanitorPass pass = MakeJanitor().RunOnce();
  EXPECT_EQ(pass.checkpoints.files, 3);
  EXPECT_EQ(pass.checkpoints.bytes, 21);
  for (const std::string& id : {running, queued}) {
    EXPECT_GE(FileSizeOrMinus1(absl::StrCat(checkpoints_, "/", id, ".npz")), 0);
  }
  EXPECT_GE(FileSizeOrMinus1(checkpoints_ + "/README"), 0);
}

TEST_F(JanitorTest, UsageCountsBytesPerState) {
  ASSERT_TRUE(blobs_->Put("0123456789").ok());
  const UploadKey key{"t", "u"};
  ASSERT_TRUE(blobs_->BeginUpload(key, 8, Sha256Hex("abcdefgh"), kMax).ok());
  ASSERT_TRUE(blobs_->Append(key, 0, "abc").ok());
  const std::string id = JobIn(JobState::kRunning);
  ASSERT_TRUE(
      jobs_->SetArtifacts(id, Sha256Hex("m"), 100, Sha256Hex("r"), 20, "")
          .ok());
  absl::StatusOr<StorageUsage> u = MakeJanitor().Usage();
  ASSERT_TRUE(u.ok()) << u.status();
  EXPECT_EQ(u->committed, 10);
  EXPECT_EQ(u->artifacts, 120);
  EXPECT_EQ(u->uploading, 3);
  EXPECT_EQ(u->reserved, 8);
}

}  // namespace
}  // namespace quantd
