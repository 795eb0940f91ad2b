// The gRPC service over a real server on loopback (in process), real
// SQLite and blob stores, and the generated client stub.
#include "server/grpc_service.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/grpc_test_server.h"
#include "server/server_test_util.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using server_test::ReadTestdata;

using ::testing::HasSubstr;

class GrpcServiceTest : public ::testing::Test,
                        protected server_test::GrpcTestServer {
 protected:
  void SetUp() override { StartServer(); }
  void TearDown() override { StopServer(); }
};

TEST_F(GrpcServiceTest, FullJobWatchedAndDownloaded) {
  v1::Job job;
  auto ctx = Context("tenant-a");
  grpc::Status s = stub_->CreateJob(ctx.get(), MlpJob("tenant-a"), &job);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(job.state(), v1::JOB_STATE_QUEUED);

  grpc::Status ws;
  const std::vector<v1::JobEvent> events =
      Watch("tenant-a", job.name(), 0, &ws);
  ASSERT_TRUE(ws.ok()) << ws.error_message();
  ASSERT_GE(events.size(), 3u);
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].sequence(), static_cast<int64_t>(i) + 1);
  }
  EXPECT_EQ(events.front().state_change(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events.back().state_change(), v1::JOB_STATE_SUCCEEDED);

  // A reconnect from the middle replays exactly the rest.
  const int64_t mid = events[events.size() / 2].sequence();
  const std::vector<v1::JobEvent> rest =
      Watch("tenant-a", job.name(), mid, &ws);
  ASSERT_TRUE(ws.ok());
  ASSERT_EQ(rest.size(), events.size() - static_cast<size_t>(mid));
  EXPECT_EQ(rest.front().sequence(), mid + 1);

  // Download from an offset; the digest in the header covers the whole.
  std::string bytes;
  std::string digest;
  for (int64_t offset : {int64_t{0}, int64_t{5000}}) {
    auto dctx = Context("tenant-a");
    v1::DownloadArtifactRequest req;
    req.set_job(job.name());
    req.set_kind(v1::ARTIFACT_KIND_MODEL);
    req.set_offset(offset);
    auto reader = stub_->DownloadArtifact(dctx.get(), req);
    v1::DownloadArtifactResponse msg;
    std::string got;
    ASSERT_TRUE(reader->Read(&msg));
    ASSERT_TRUE(msg.has_header());
    EXPECT_EQ(msg.header().offset(), offset);
    digest = msg.header().sha256();
    while (reader->Read(&msg)) got += msg.chunk();
    ASSERT_TRUE(reader->Finish().ok());
    if (offset == 0) {
      bytes = got;
    } else {
      EXPECT_EQ(got, bytes.substr(5000));
    }
  }
  EXPECT_EQ(Sha256Hex(bytes), digest);
  EXPECT_GT(bytes.size(), 10000u);
}

TEST_F(GrpcServiceTest, InterruptedUploadResumes) {
  const std::string bytes = ReadTestdata("fmnist_mlp/model.onnx");
  v1::Blob blob;
  grpc::Status s = Upload("tenant-a", "resume-1", bytes, 0, &blob, "", 60000);
  EXPECT_EQ(s.error_code(), grpc::StatusCode::FAILED_PRECONDITION);
  EXPECT_THAT(s.error_message(), HasSubstr("send the rest"));
  auto ctx = Context("tenant-a");
  v1::GetUploadStatusRequest req;
  req.set_upload_id("resume-1");
  v1::UploadStatus status;
  ASSERT_TRUE(stub_->GetUploadStatus(ctx.get(), req, &status).ok());
  EXPECT_EQ(status.committed_size(), 60000);
  // Resuming from the wrong offset is refused with the right one.
  s = Upload("tenant-a", "resume-1", bytes, 10, &blob);
  EXPECT_THAT(s.error_message(), HasSubstr("from offset 60000"));
  s = Upload("tenant-a", "resume-1", bytes, 60000, &blob);
  ASSERT_TRUE(s.ok()) << s.error_message();
  EXPECT_EQ(blob.sha256(), Sha256Hex(bytes));
  // The uploader finds the blob (clients skip re-uploads); others do not.
  v1::GetBlobRequest get;
  get.set_sha256(blob.sha256());
  v1::Blob found;
  auto a2 = Context("tenant-a");
  ASSERT_TRUE(stub_->GetBlob(a2.get(), get, &found).ok());
  EXPECT_EQ(found.size(), static_cast<int64_t>(bytes.size()));
  auto b2 = Context("tenant-b");
  EXPECT_EQ(stub_->GetBlob(b2.get(), get, &found).error_code(),
            grpc::StatusCode::NOT_FOUND);
  // Another tenant cannot see the upload.
  auto other = Context("tenant-b");
  req.set_upload_id("resume-1");
  EXPECT_EQ(stub_->GetUploadStatus(other.get(), req, &status).error_code(),
            grpc::StatusCode::NOT_FOUND);
}

TEST_F(GrpcServiceTest, TenantsAndBadCallsGetCanonicalCodes) {
  v1::Job job;
  auto ctx = Context("tenant-a");
  ASSERT_TRUE(stub_->CreateJob(ctx.get(), MlpJob("tenant-a"), &job).ok());
  v1::GetJobRequest get;
  get.set_name(job.name());
  v1::Job out;
  auto b = Context("tenant-b");
  EXPECT_EQ(stub_->GetJob(b.get(), get, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  auto none = Context("");
  EXPECT_EQ(stub_->GetJob(none.get(), get, &out).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  grpc::Status ws;
  Watch("tenant-b", job.name(), 0, &ws);
  EXPECT_EQ(ws.error_code(), grpc::StatusCode::NOT_FOUND);

  v1::Blob blob;
  EXPECT_EQ(Upload("tenant-a", "bad-digest", "some bytes", 0, &blob,
                   std::string(64, 'f'))
                .error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto c2 = Context("tenant-a");
  v1::CreateJobRequest bad = MlpJob("tenant-a");
  bad.mutable_spec()->mutable_model()->set_path("/etc/passwd");
  EXPECT_EQ(stub_->CreateJob(c2.get(), bad, &out).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  auto c3 = Context("tenant-a");
  get.set_name("jobs/job-doesnotexist");
  EXPECT_EQ(stub_->GetJob(c3.get(), get, &out).error_code(),
            grpc::StatusCode::NOT_FOUND);
  auto c4 = Context("tenant-a");
  v1::ListJobsRequest list;
  list.set_page_token("tampered");
  v1::ListJobsResponse jobs;
  EXPECT_EQ(stub_->ListJobs(c4.get(), list, &jobs).error_code(),
            grpc::StatusCode::INVALID_ARGUMENT);
  // Past the tenant's storage: RESOURCE_EXHAUSTED; re-uploads are free.
  EXPECT_EQ(Upload("tenant-a", "big", std::string(3 << 20, 'x'), 0, &blob)
                .error_code(),
            grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_TRUE(
      Upload("tenant-a", "again", ReadTestdata("fmnist/eval.npz"), 0, &blob)
          .ok());
  // Draining refuses new jobs and uploads.
  const v1::CreateJobRequest late = MlpJob("tenant-a");
  service_->StartDraining();
  auto c5 = Context("tenant-a");
  EXPECT_EQ(stub_->CreateJob(c5.get(), late, &out).error_code(),
            grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(Upload("tenant-a", "late", "bytes", 0, &blob).error_code(),
            grpc::StatusCode::UNAVAILABLE);
}

}  // namespace
}  // namespace quantd
