#include "server/upload_session.h"

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

}  // namespace
}  // namespace quantd
