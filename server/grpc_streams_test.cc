// The UploadBlob reactor over real gRPC (loopback, in process): a stalled
// stream is ended with a message saying where to resume.
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "server/auth.h"
#include "server/event_hub.h"
#include "server/grpc_service.h"
#include "server/server_test_util.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using ::testing::HasSubstr;

class UploadStreamTest : public ::testing::Test {
 protected:
  void SetUp() override {
    service_ = std::make_unique<server_test::TestService>();
    GrpcServiceOptions options;
    options.upload_idle_timeout = absl::Seconds(5);
    grpc_ = std::make_unique<GrpcService>(service_->core.get(), &auth_, &hub_,
                                          options);
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort("127.0.0.1:0", grpc::InsecureServerCredentials(),
                             &port);
    builder.RegisterService(grpc_.get());
    server_ = builder.BuildAndStart();
    ASSERT_NE(port, 0);
    stub_ = v1::QuantizationService::NewStub(grpc::CreateChannel(
        absl::StrCat("127.0.0.1:", port), grpc::InsecureChannelCredentials()));
  }
  void TearDown() override {
    hub_.CloseAll();
    server_->Shutdown();
  }

  static v1::UploadBlobRequest Header(const std::string& bytes,
                                      int64_t offset) {
    v1::UploadBlobRequest req;
    v1::UploadHeader* h = req.mutable_header();
    h->set_kind(v1::BLOB_KIND_MODEL);
    h->set_upload_id("stalled");
    h->set_size(static_cast<int64_t>(bytes.size()));
    h->set_sha256(Sha256Hex(bytes));
    h->set_offset(offset);
    return req;
  }
  static v1::UploadBlobRequest Chunk(const std::string& bytes) {
    v1::UploadBlobRequest req;
    req.set_chunk(bytes);
    return req;
  }

  std::unique_ptr<server_test::TestService> service_;
  Authenticator auth_ = Authenticator::SingleTenant();
  EventHub hub_;
  std::unique_ptr<GrpcService> grpc_;
  std::unique_ptr<grpc::Server> server_;
  std::unique_ptr<v1::QuantizationService::Stub> stub_;
};

TEST_F(UploadStreamTest, AStalledStreamIsEndedAndTheUploadResumes) {
  const std::string bytes(300, 'z');
  grpc::ClientContext ctx;
  // Generous: the server ends the stream after 5 s without a message.
  ctx.set_deadline(absl::ToChronoTime(absl::Now() + absl::Minutes(2)));
  v1::Blob blob;
  auto writer = stub_->UploadBlob(&ctx, &blob);
  ASSERT_TRUE(writer->Write(Header(bytes, 0)));
  ASSERT_TRUE(writer->Write(Chunk(bytes.substr(0, 100))));
  // ... and then nothing: no more chunks, no WritesDone.
  const grpc::Status s = writer->Finish();
  EXPECT_EQ(s.error_code(), grpc::StatusCode::ABORTED) << s.error_message();
  EXPECT_THAT(s.error_message(), HasSubstr("no upload message for 5s"));
  EXPECT_THAT(s.error_message(), HasSubstr("Resume the upload"));
  // The bytes that arrived are kept; the upload resumes where it stands.
  absl::StatusOr<int64_t> committed =
      service_->blobs->CommittedSize({"default", "stalled"});
  ASSERT_TRUE(committed.ok()) << committed.status();
  EXPECT_EQ(*committed, 100);
  grpc::ClientContext resume_ctx;
  auto resume = stub_->UploadBlob(&resume_ctx, &blob);
  ASSERT_TRUE(resume->Write(Header(bytes, 100)));
  ASSERT_TRUE(resume->Write(Chunk(bytes.substr(100))));
  resume->WritesDone();
  const grpc::Status done = resume->Finish();
  ASSERT_TRUE(done.ok()) << done.error_message();
  EXPECT_EQ(blob.sha256(), Sha256Hex(bytes));
}

}  // namespace
}  // namespace quantd
