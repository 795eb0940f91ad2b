// Jobs whose model and data are s3:// URIs and whose artifacts go to an
// output URI, through ServiceCore and a running scheduler, against a real
// S3-protocol server whose keys are each limited to one bucket (as bucket
// policies would limit tenants' keys).
#include "server/s3_job_io.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/s3_client.h"
#include "server/s3_test_server.h"
#include "server/server_test_util.h"
#include "util/sha256.h"

namespace quantd {
namespace {

using server_test::ReadTestdata;
using ::testing::HasSubstr;

class S3JobIoTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    absl::StatusOr<std::unique_ptr<S3TestServer>> s = S3TestServer::Start(
        {"AKA:SKA:team-a", "AKB:SKB:team-b"}, {"team-a", "team-b"});
    ASSERT_TRUE(s.ok()) << s.status();
    server_ = s->release();
    auto a = *S3Client::Create(server_->Config("team-a", "AKA", "SKA"));
    ASSERT_TRUE(
        a->PutBytes("models/mlp.onnx", ReadTestdata("fmnist_mlp/model.onnx"))
            .ok());
    ASSERT_TRUE(
        a->PutBytes("data/eval.npz", ReadTestdata("fmnist/eval.npz")).ok());
  }
  static void TearDownTestSuite() { delete server_; }

  void SetUp() override {
    ASSERT_NE(server_, nullptr);
    S3Config defaults;
    defaults.endpoint = server_->Endpoint();
    absl::StatusOr<TenantS3> t = TenantS3::FromText(
        "# tenant key secret\na AKA SKA\nb AKB SKB\n", defaults, false);
    ASSERT_TRUE(t.ok()) << t.status();
    tenants_ = *std::move(t);
    Start({});
  }
  void Start(const ServiceLimits& limits) {
    service_.reset();
    service_ = std::make_unique<server_test::TestService>(
        limits, SchedulerOptions{}, &tenants_);
  }

  static v1::CreateJobRequest Request(const std::string& model,
                                      const std::string& output = "") {
    v1::CreateJobRequest r;
    v1::JobSpec* spec = r.mutable_spec();
    spec->mutable_model()->set_uri(model);
    spec->mutable_evaluation_data()->set_uri("s3://team-a/data/eval.npz");
    spec->set_mode(v1::QUANT_MODE_DYNAMIC);
    spec->mutable_sensitivity()->set_disabled(true);
    spec->set_output_uri(output);
    return r;
  }

  v1::Job WaitForEnd(const std::string& tenant, const std::string& name) {
    absl::StatusOr<v1::Job> now;
    for (int i = 0; i < 1200; ++i) {
      now = service_->core->GetJob(tenant, name);
      EXPECT_TRUE(now.ok()) << now.status();
      if (!now.ok() || now->state() == v1::JOB_STATE_SUCCEEDED ||
          now->state() == v1::JOB_STATE_FAILED) {
        break;
      }
      absl::SleepFor(absl::Milliseconds(50));
    }
    return now.ok() ? *now : v1::Job();
  }

  static S3TestServer* server_;
  TenantS3 tenants_;
  std::unique_ptr<server_test::TestService> service_;
};

S3TestServer* S3JobIoTest::server_ = nullptr;

TEST_F(S3JobIoTest, InputsAreCopiedAtCreateAndOutputsWrittenAtTheEnd) {
  ASSERT_TRUE(service_->scheduler->Start().ok());
  absl::StatusOr<v1::Job> job = service_->core->CreateJob(
      "a", Request("s3://team-a/models/mlp.onnx", "s3://team-a/out/run1/"));
  ASSERT_TRUE(job.ok()) << job.status();
  // The job refers to the copies by digest; they are tenant a's blobs,
  // named by their URIs.
  const std::string model = job->spec().model().blob_sha256();
  ASSERT_FALSE(model.empty()) << job->spec().DebugString();
  absl::StatusOr<v1::Blob> blob = service_->core->GetBlob("a", model);
  ASSERT_TRUE(blob.ok()) << blob.status();
  EXPECT_EQ(blob->name(), "s3://team-a/models/mlp.onnx");
  EXPECT_EQ(blob->kind(), v1::BLOB_KIND_MODEL);
  EXPECT_TRUE(absl::IsNotFound(service_->core->GetBlob("b", model).status()));
  absl::StatusOr<v1::Blob> eval =
      service_->core->GetBlob("a", job->spec().evaluation_data().blob_sha256());
  ASSERT_TRUE(eval.ok()) << eval.status();
  EXPECT_TRUE(eval->dataset_check().ok()) << "scanned like an upload";

  const v1::Job done = WaitForEnd("a", job->name());
  ASSERT_EQ(done.state(), v1::JOB_STATE_SUCCEEDED) << done.error();
  absl::StatusOr<v1::Artifact> artifact =
      service_->core->FindArtifact("a", job->name(), v1::ARTIFACT_KIND_MODEL);
  ASSERT_TRUE(artifact.ok());
  auto a = *S3Client::Create(server_->Config("team-a", "AKA", "SKA"));
  std::string written;
  ASSERT_TRUE(a->Get("out/run1/model.onnx", [&](absl::string_view b) {
                 written.append(b.data(), b.size());
                 return absl::OkStatus();
               }).ok());
  EXPECT_EQ(Sha256Hex(written), artifact->sha256());
  EXPECT_TRUE(a->Size("out/run1/report.json").ok());
}

TEST_F(S3JobIoTest, OnlyTheTenantsOwnKeysAreUsed) {
  // b's key may not read team-a's bucket.
  absl::Status s =
      service_->core->CreateJob("b", Request("s3://team-a/models/mlp.onnx"))
          .status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("model.uri s3://team-a/models/mlp.onnx"));
  // c has no keys on this server at all.
  s = service_->core->CreateJob("c", Request("s3://team-a/models/mlp.onnx"))
          .status();
  EXPECT_TRUE(absl::IsFailedPrecondition(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("--tenant-s3-credentials"));
  // An output URI needs keys too, checked before anything is copied.
  v1::CreateJobRequest r =
      Request("s3://team-a/models/mlp.onnx", "s3://out-bucket/y");
  r.mutable_spec()->mutable_model()->set_blob_sha256(std::string(64, 'a'));
  EXPECT_TRUE(
      absl::IsFailedPrecondition(service_->core->CreateJob("c", r).status()));
}

// Whatever a tenant's key can reach, the service's own blob storage is off
// limits: reading there would bypass blob ownership, writing would damage
// other tenants' blobs.
TEST_F(S3JobIoTest, TheServicesOwnStorageIsOffLimits) {
  tenants_.ReserveForService("team-a", "models/");
  Start({});
  absl::Status s =
      service_->core->CreateJob("a", Request("s3://team-a/models/mlp.onnx"))
          .status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("this service's own storage"));
  v1::CreateJobRequest r =
      Request("s3://team-a/models/mlp.onnx", "s3://team-a/models");
  r.mutable_spec()->mutable_model()->set_blob_sha256(std::string(64, 'a'));
  r.mutable_spec()->mutable_evaluation_data()->set_blob_sha256(
      std::string(64, 'b'));
  s = service_->core->CreateJob("a", r).status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("output_uri"));
  tenants_.ReserveForService("team-a", "");  // the whole bucket
  s = service_->core->CreateJob("a", Request("s3://team-a/data/eval.npz"))
          .status();
  EXPECT_TRUE(absl::IsPermissionDenied(s)) << s;
}

TEST_F(S3JobIoTest, HostileUrisAreRefusedBeforeAnyRequest) {
  for (const char* uri :
       {"s3://team-a/../team-b/x", "s3://team-a/a%2F..%2Fb", "s3://team-a/",
        "s3://team-a", "s3://TEAM-A/x", "s3://team-a/x?versionId=1",
        "s3://team-a/a b", "s3://team-a//x", "http://team-a/x"}) {
    const absl::Status s =
        service_->core->CreateJob("a", Request(uri)).status();
    EXPECT_TRUE(absl::IsInvalidArgument(s)) << uri << ": " << s;
  }
}

TEST_F(S3JobIoTest, ObjectsPastTheLimitAreRefusedAndLeaveNothing) {
  ServiceLimits limits;
  limits.max_upload_bytes = 1000;
  Start(limits);
  const absl::Status s =
      service_->core->CreateJob("a", Request("s3://team-a/models/mlp.onnx"))
          .status();
  EXPECT_TRUE(absl::IsResourceExhausted(s)) << s;
  EXPECT_THAT(s.message(), HasSubstr("storage left"));
  EXPECT_EQ(*service_->blobs->CommittedBytes(), 0);
  EXPECT_EQ(service_->blobs->RemoveOrphanFiles(absl::InfiniteFuture()).files,
            0);
}

TEST_F(S3JobIoTest, AnOutputThatCannotBeWrittenFailsTheJobSayingWhy) {
  ASSERT_TRUE(service_->scheduler->Start().ok());
  // a's key may not write team-b: the job runs, then cannot deliver.
  absl::StatusOr<v1::Job> job = service_->core->CreateJob(
      "a", Request("s3://team-a/models/mlp.onnx", "s3://team-b/out"));
  ASSERT_TRUE(job.ok()) << job.status();
  const v1::Job done = WaitForEnd("a", job->name());
  EXPECT_EQ(done.state(), v1::JOB_STATE_FAILED);
  EXPECT_THAT(done.error(), HasSubstr("writing it to output_uri failed"));
  EXPECT_THAT(done.error(), HasSubstr("AccessDenied"));
  EXPECT_TRUE(
      service_->core->FindArtifact("a", job->name(), v1::ARTIFACT_KIND_MODEL)
          .ok())
      << "the model stays downloadable";
}

TEST(TenantS3Test, ParsesLinesAndRefusesBadOnes) {
  S3Config defaults;
  defaults.endpoint = "http://minio:9000";
  absl::StatusOr<TenantS3> t = TenantS3::FromText(
      "a K S\nb K2 S2 https://s3.eu-west-1.amazonaws.com eu-west-1\n", defaults,
      false);
  ASSERT_TRUE(t.ok()) << t.status();
  absl::StatusOr<S3Config> a = t->ConfigFor("a", "bucket", "k");
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->endpoint, "http://minio:9000");
  EXPECT_EQ(a->access_key_id, "K");
  EXPECT_EQ(a->bucket, "bucket");
  EXPECT_EQ(t->ConfigFor("b", "x", "k")->region, "eu-west-1");
  for (const char* bad : {"a K", "a K S http://x r extra", "a/b K S",
                          "a K S ftp://x", "a K S\na K2 S2"}) {
    EXPECT_FALSE(TenantS3::FromText(bad, defaults, false).ok()) << bad;
  }
  defaults.access_key_id = "SERVER";
  defaults.secret_access_key = "SERVERSECRET";
  t = TenantS3::FromText("", defaults, /*server_fallback=*/true);
  EXPECT_EQ(t->ConfigFor("anyone", "b", "k")->access_key_id, "SERVER");
}

}  // namespace
}  // namespace quantd
