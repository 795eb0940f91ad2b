#include "server/upload_session.h"

#include <atomic>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_test_util.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

class UploadSessionTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceLimits limits;
    limits.max_upload_bytes = 1 << 20;
    service_ = std::make_unique<server_test::TestService>(limits);
    blobs_ = service_->blobs.get();
    core_ = service_->core.get();
  }

  static v1::UploadHeader HeaderFor(const std::string& bytes,
                                    const std::string& id = "up-1") {
    v1::UploadHeader h;
    h.set_upload_id(id);
    h.set_kind(v1::BLOB_KIND_DATASET);
    h.set_name("calib.npz");
    h.set_size(static_cast<int64_t>(bytes.size()));
    h.set_sha256(Sha256Hex(bytes));
    return h;
  }

  std::unique_ptr<server_test::TestService> service_;
  BlobStore* blobs_ = nullptr;
  ServiceCore* core_ = nullptr;
};

TEST_F(UploadSessionTest, HeaderChunksCommitRecordTheTenantsBlob) {
  const std::string bytes = "0123456789abcdef";
  UploadSession up(core_, "a");
  ASSERT_TRUE(up.Header(HeaderFor(bytes)).ok());
  ASSERT_TRUE(up.Chunk(bytes.substr(0, 7)).ok());
  ASSERT_TRUE(up.Chunk(bytes.substr(7)).ok());
  absl::StatusOr<v1::Blob> blob = up.Commit();
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->sha256(), Sha256Hex(bytes));
  EXPECT_EQ(blob->name(), "calib.npz");
  EXPECT_TRUE(core_->GetBlob("a", blob->sha256()).ok());
  EXPECT_EQ(core_->GetBlob("b", blob->sha256()).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(UploadSessionTest, ResumesOnlyFromTheCommittedOffset) {
  const std::string bytes(1000, 'x');
  {
    UploadSession up(core_, "a");
    ASSERT_TRUE(up.Header(HeaderFor(bytes)).ok());
    ASSERT_TRUE(up.Chunk(bytes.substr(0, 400)).ok());
  }  // the stream broke
  UploadSession again(core_, "a");
  v1::UploadHeader h = HeaderFor(bytes);
  absl::Status s = again.Header(h);  // offset 0: not where the upload stands
  EXPECT_EQ(s.code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(s.message(), HasSubstr("send the rest from offset 400"));
  UploadSession resumed(core_, "a");
  h.set_offset(400);
  ASSERT_TRUE(resumed.Header(h).ok());
  ASSERT_TRUE(resumed.Chunk(bytes.substr(400)).ok());
  EXPECT_TRUE(resumed.Commit().ok());
}

TEST_F(UploadSessionTest, BadHeadersNameTheField) {
  const std::string bytes = "payload";
  struct Case {
    std::function<void(v1::UploadHeader&)> mutate;
    std::string expected;
  };
  const Case cases[] = {
      {[](v1::UploadHeader& h) { h.set_upload_id("../etc"); }, "upload_id"},
      {[](v1::UploadHeader& h) { h.set_upload_id(""); }, "upload_id"},
      {[](v1::UploadHeader& h) { h.set_kind(static_cast<v1::BlobKind>(77)); },
       "kind is 77"},
      {[](v1::UploadHeader& h) { h.set_kind(v1::BLOB_KIND_UNSPECIFIED); },
       "kind: MODEL or DATASET"},
      {[](v1::UploadHeader& h) { h.set_name(std::string(256, 'n')); },
       "name: at most 255 bytes"},
  };
  for (const Case& c : cases) {
    v1::UploadHeader h = HeaderFor(bytes);
    c.mutate(h);
    UploadSession up(core_, "a");
    absl::Status s = up.Header(h);
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << c.expected;
    EXPECT_THAT(s.message(), HasSubstr(c.expected));
  }
}

TEST_F(UploadSessionTest, OutOfOrderMessagesAreRefused) {
  const std::string bytes = "payload";
  UploadSession none(core_, "a");
  absl::Status s = none.Chunk("x");
  EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(s.message(), HasSubstr("must carry an UploadHeader"));
  EXPECT_THAT(none.Commit().status().message(),
              HasSubstr("ended before an UploadHeader"));
  UploadSession twice(core_, "a");
  ASSERT_TRUE(twice.Header(HeaderFor(bytes)).ok());
  EXPECT_THAT(twice.Header(HeaderFor(bytes)).message(),
              HasSubstr("only the first"));
}

TEST_F(UploadSessionTest, WrongBytesAreNotCommitted) {
  const std::string bytes = "the real bytes";
  UploadSession up(core_, "a");
  ASSERT_TRUE(up.Header(HeaderFor(bytes)).ok());
  ASSERT_TRUE(up.Chunk("the fake bytes").ok());
  absl::StatusOr<v1::Blob> blob = up.Commit();
  EXPECT_FALSE(blob.ok());
  EXPECT_FALSE(blobs_->Contains(Sha256Hex(bytes)));
  EXPECT_EQ(core_->GetBlob("a", Sha256Hex(bytes)).status().code(),
            absl::StatusCode::kNotFound);
}

// Quota tests: a tenant may store 1000 bytes.
class UploadQuotaTest : public UploadSessionTest {
 protected:
  void SetUp() override {
    ServiceLimits limits;
    limits.max_upload_bytes = 1 << 20;
    limits.max_tenant_storage_bytes = 1000;
    service_ = std::make_unique<server_test::TestService>(limits);
    blobs_ = service_->blobs.get();
    core_ = service_->core.get();
  }
};

TEST_F(UploadQuotaTest, UploadsInProgressCountTheirDeclaredSize) {
  const std::string first(600, 'a'), second(600, 'b');
  {
    UploadSession up(core_, "a");
    ASSERT_TRUE(up.Header(HeaderFor(first, "first")).ok());
    ASSERT_TRUE(up.Chunk(first.substr(0, 100)).ok());
  }  // abandoned after 100 bytes: 600 stay reserved
  UploadSession over(core_, "a");
  absl::Status s = over.Header(HeaderFor(second, "second"));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("600 reserved by uploads in progress"));
  EXPECT_THAT(s.message(), HasSubstr("the limit is 1000"));
  // Another tenant has its own quota.
  UploadSession other(core_, "b");
  EXPECT_TRUE(other.Header(HeaderFor(second, "second")).ok());
  // Resuming needs no new room; once committed the blob counts instead.
  UploadSession resumed(core_, "a");
  v1::UploadHeader h = HeaderFor(first, "first");
  h.set_offset(100);
  ASSERT_TRUE(resumed.Header(h).ok());
  ASSERT_TRUE(resumed.Chunk(first.substr(100)).ok());
  ASSERT_TRUE(resumed.Commit().ok());
  EXPECT_EQ(blobs_->ReservedBytes("a"), 0);
  UploadSession fits(core_, "a");
  EXPECT_TRUE(fits.Header(HeaderFor(std::string(400, 'c'), "fits")).ok());
  UploadSession too_big(core_, "a");
  EXPECT_EQ(too_big.Header(HeaderFor(std::string(1, 'd'), "one-more")).code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(UploadQuotaTest, ConcurrentHeadersCannotBothPass) {
  // 12 headers of 300 bytes at once: only 3 fit in 1000.
  std::vector<std::unique_ptr<UploadSession>> sessions;
  for (int i = 0; i < 12; ++i) {
    sessions.push_back(std::make_unique<UploadSession>(core_, "a"));
  }
  std::atomic<int> passed{0}, refused{0};
  std::vector<std::thread> threads;
  for (int i = 0; i < 12; ++i) {
    threads.emplace_back([&, i] {
      const std::string bytes(300, static_cast<char>('a' + i));
      absl::Status s =
          sessions[i]->Header(HeaderFor(bytes, absl::StrCat("up-", i)));
      if (s.ok()) ++passed;
      if (s.code() == absl::StatusCode::kResourceExhausted) ++refused;
    });
  }
  for (std::thread& t : threads) t.join();
  EXPECT_EQ(passed.load(), 3);
  EXPECT_EQ(refused.load(), 9);
  EXPECT_EQ(blobs_->ReservedBytes("a"), 900);
}

TEST_F(UploadQuotaTest, JobArtifactsCount) {
  JobRecord r;
  r.tenant = "a";
  r.spec = "spec";
  const std::string id = service_->jobs->Create(r)->first.id;
  ASSERT_TRUE(
      service_->jobs
          ->SetArtifacts(id, Sha256Hex("model"), 500, Sha256Hex("report"), 200)
          .ok());
  UploadSession over(core_, "a");
  absl::Status s = over.Header(HeaderFor(std::string(301, 'x')));
  EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(s.message(), HasSubstr("700 stored"));
  UploadSession fits(core_, "a");
  EXPECT_TRUE(fits.Header(HeaderFor(std::string(300, 'x'), "fits")).ok());
  EXPECT_TRUE(
      UploadSession(core_, "b").Header(HeaderFor(std::string(1000, 'x'))).ok());
}

TEST_F(UploadQuotaTest, AFailedCommitEndsTheReservation) {
  UploadSession up(core_, "a");
  ASSERT_TRUE(up.Header(HeaderFor(std::string(900, 'a'))).ok());
  ASSERT_TRUE(up.Chunk(std::string(900, 'b')).ok());  // not the declared bytes
  EXPECT_EQ(up.Commit().status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(blobs_->ReservedBytes("a"), 0);
  UploadSession again(core_, "a");
  EXPECT_TRUE(again.Header(HeaderFor(std::string(900, 'a'), "again")).ok());
}

}  // namespace
}  // namespace quantd
