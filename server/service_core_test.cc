#include "server/service_core.h"

#include <stdlib.h>

#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "server/server_test_util.h"

namespace quantd {
namespace {

using server_test::ReadTestdata;

using ::testing::HasSubstr;

class ServiceCoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ServiceLimits limits;
    limits.max_queued_jobs_per_tenant = 2;
    service_ = std::make_unique<server_test::TestService>(limits);
    blobs_ = service_->blobs.get();
    scheduler_ = service_->scheduler.get();
    core_ = service_->core.get();
  }

  // Stores a blob as an upload by `tenant` would.
  std::string Uploaded(const std::string& tenant, const std::string& rel) {
    v1::Blob b;
    b.set_sha256(*blobs_->Put(ReadTestdata(rel)));
    EXPECT_TRUE(core_->RecordUpload(tenant, b).ok());
    return b.sha256();
  }

  v1::CreateJobRequest Request(const std::string& tenant = "a") {
    v1::CreateJobRequest r;
    v1::JobSpec* spec = r.mutable_spec();
    spec->mutable_model()->set_blob_sha256(
        Uploaded(tenant, "fmnist_mlp/model.onnx"));
    spec->mutable_evaluation_data()->set_blob_sha256(
        Uploaded(tenant, "fmnist/eval.npz"));
    spec->set_mode(v1::QUANT_MODE_DYNAMIC);
    spec->mutable_sensitivity()->set_disabled(true);
    (*spec->mutable_labels())["model"] = "fmnist-mlp";
    return r;
  }

  std::unique_ptr<server_test::TestService> service_;
  BlobStore* blobs_ = nullptr;
  Scheduler* scheduler_ = nullptr;
  ServiceCore* core_ = nullptr;
};

TEST_F(ServiceCoreTest, CreatedJobRunsAndShowsItsReport) {
  ASSERT_TRUE(scheduler_->Start().ok());
  absl::StatusOr<v1::Job> job = core_->CreateJob("a", Request());
  ASSERT_TRUE(job.ok()) << job.status();
  EXPECT_EQ(job->state(), v1::JOB_STATE_QUEUED);
  EXPECT_THAT(job->name(), HasSubstr("jobs/job-"));
  absl::StatusOr<v1::Job> now;
  for (int i = 0; i < 600; ++i) {
    now = core_->GetJob("a", job->name());
    ASSERT_TRUE(now.ok()) << now.status();
    if (now->state() == v1::JOB_STATE_SUCCEEDED) break;
    absl::SleepFor(absl::Milliseconds(50));
  }
  ASSERT_EQ(now->state(), v1::JOB_STATE_SUCCEEDED) << now->error();
  EXPECT_EQ(now->artifacts_size(), 2);
  EXPECT_TRUE(now->report().fake_quant().has_labels());
  EXPECT_EQ(now->attempts(), 1);
  // Events: QUEUED first, SUCCEEDED last, sequences without gaps.
  absl::StatusOr<std::vector<v1::JobEvent>> events =
      core_->EventsAfter("a", job->name(), 0, 1000);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->front().state_change(), v1::JOB_STATE_QUEUED);
  EXPECT_EQ(events->back().state_change(), v1::JOB_STATE_SUCCEEDED);
  for (size_t i = 0; i < events->size(); ++i) {
    EXPECT_EQ((*events)[i].sequence(), static_cast<int64_t>(i) + 1);
  }
  absl::StatusOr<v1::Artifact> model =
      core_->FindArtifact("a", job->name(), v1::ARTIFACT_KIND_MODEL);
  ASSERT_TRUE(model.ok());
  EXPECT_TRUE(blobs_->Contains(model->sha256()));
  absl::StatusOr<v1::Artifact> report =
      core_->FindArtifact("a", job->name(), v1::ARTIFACT_KIND_REPORT);
  ASSERT_TRUE(report.ok());
  // Tenant b uploads bytes identical to the report artifact (content
  // addressing makes them the same blob).
  v1::Blob same;
  same.set_sha256(report->sha256());
  ASSERT_TRUE(core_->RecordUpload("b", same).ok());
  // Deleting removes the job and its artifacts nothing else refers to; the
  // report stays, because tenant b's upload is the same blob.
  ASSERT_TRUE(core_->DeleteJob("a", job->name()).ok());
  EXPECT_EQ(core_->GetJob("a", job->name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_FALSE(blobs_->Contains(model->sha256()));
  EXPECT_TRUE(blobs_->Contains(report->sha256()));
  EXPECT_TRUE(core_->GetBlob("b", report->sha256()).ok());
}

// Every DataRef goes through the tenant's resolver, qat.train_data too.
TEST_F(ServiceCoreTest, QatTrainDataMustBeTheTenantsOwnUpload) {
  v1::CreateJobRequest r = Request();
  r.mutable_spec()->set_method(v1::METHOD_QAT);
  r.mutable_spec()->set_mode(v1::QUANT_MODE_STATIC);
  r.mutable_spec()->mutable_calibration_data()->set_blob_sha256(
      Uploaded("a", "fmnist/calib.npz"));
  r.mutable_spec()->mutable_qat()->mutable_train_data()->set_blob_sha256(
      std::string(64, 'c'));
  absl::StatusOr<v1::Job> missing = core_->CreateJob("a", r);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("qat.train_data.blob_sha256: no blob"));
  v1::Blob only_b;
  only_b.set_sha256(*blobs_->Put("training rows only tenant b uploaded"));
  ASSERT_TRUE(core_->RecordUpload("b", only_b).ok());
  r.mutable_spec()->mutable_qat()->mutable_train_data()->set_blob_sha256(
      only_b.sha256());
  absl::StatusOr<v1::Job> stolen = core_->CreateJob("a", r);
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stolen.status().message(), HasSubstr("qat.train_data"));
}

TEST_F(ServiceCoreTest, OutOfRangeEnumsAreRefusedNamingTheField) {
  v1::CreateJobRequest r = Request();
  r.mutable_spec()->set_mode(static_cast<v1::QuantMode>(99));
  absl::StatusOr<v1::Job> bad = core_->CreateJob("a", r);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("mode is 99"));
  r = Request();
  r.mutable_spec()->mutable_calibration()->set_method(
      static_cast<v1::CalibrationMethod>(42));
  bad = core_->CreateJob("a", r);
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(bad.status().message(), HasSubstr("calibration.method is 42"));
}

TEST_F(ServiceCoreTest, TenantsSeeOnlyTheirOwnJobs) {
  absl::StatusOr<v1::Job> job = core_->CreateJob("a", Request());
  ASSERT_TRUE(job.ok());
  EXPECT_EQ(core_->GetJob("b", job->name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->CancelJob("b", job->name()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->EventsAfter("b", job->name(), 0, 10).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(core_->ListJobs("b", {})->jobs_size(), 0);
  EXPECT_EQ(core_->ListJobs("a", {})->jobs_size(), 1);
}

TEST_F(ServiceCoreTest, FullQueueIsResourceExhaustedAndRequestIdIsIdempotent) {
  v1::CreateJobRequest r = Request();
  r.set_request_id("retry-1");
  absl::StatusOr<v1::Job> first = core_->CreateJob("a", r);
  absl::StatusOr<v1::Job> again = core_->CreateJob("a", r);
  ASSERT_TRUE(first.ok() && again.ok());
  EXPECT_EQ(first->name(), again->name());
  ASSERT_TRUE(core_->CreateJob("a", Request()).ok());
  absl::StatusOr<v1::Job> third = core_->CreateJob("a", Request());
  EXPECT_EQ(third.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_THAT(third.status().message(), HasSubstr("queue is full"));
  // Another tenant still has room.
  EXPECT_TRUE(core_->CreateJob("b", Request("b")).ok());
  // Cancelling a queued job frees its place.
  ASSERT_TRUE(core_->CancelJob("a", first->name()).ok());
  EXPECT_TRUE(core_->CreateJob("a", Request()).ok());
}

TEST_F(ServiceCoreTest, BadRequestsSayWhatToFix) {
  v1::CreateJobRequest r = Request();
  r.mutable_spec()->mutable_model()->set_path("/etc/passwd");
  EXPECT_EQ(core_->CreateJob("a", r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = Request();
  r.mutable_spec()->mutable_model()->set_blob_sha256(std::string(64, 'b'));
  absl::StatusOr<v1::Job> missing = core_->CreateJob("a", r);
  EXPECT_THAT(missing.status().message(),
              HasSubstr("model.blob_sha256: no blob with sha256"));

  // Another tenant's blob, though it exists, is not usable.
  v1::Blob foreign;
  foreign.set_sha256(*blobs_->Put("bytes only tenant b uploaded"));
  ASSERT_TRUE(core_->RecordUpload("b", foreign).ok());
  r = Request();
  r.mutable_spec()->mutable_model()->set_blob_sha256(foreign.sha256());
  absl::StatusOr<v1::Job> stolen = core_->CreateJob("a", r);
  EXPECT_EQ(stolen.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(stolen.status().message(),
              HasSubstr("was uploaded by this tenant"));
  EXPECT_EQ(core_->GetBlob("a", foreign.sha256()).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(core_->GetBlob("b", foreign.sha256()).ok());
  // Uploaded garbage as a model, and data that does not fit the model:
  // refused at creation with the reason, not failed later.
  v1::Blob garbage;
  garbage.set_sha256(*blobs_->Put("this is not an ONNX model"));
  ASSERT_TRUE(core_->RecordUpload("a", garbage).ok());
  r = Request();
  r.mutable_spec()->mutable_model()->set_blob_sha256(garbage.sha256());
  absl::StatusOr<v1::Job> not_onnx = core_->CreateJob("a", r);
  EXPECT_EQ(not_onnx.status().code(), absl::StatusCode::kInvalidArgument);
  // The message names the blob, not where the server keeps it.
  EXPECT_THAT(not_onnx.status().message(),
              HasSubstr("blob " + garbage.sha256()));
  EXPECT_THAT(std::string(not_onnx.status().message()),
              ::testing::Not(HasSubstr(service_->root)));
  r = Request();
  r.mutable_spec()->mutable_evaluation_data()->set_blob_sha256(
      Uploaded("a", "tiny_gpt/eval.npz"));
  absl::StatusOr<v1::Job> misfit = core_->CreateJob("a", r);
  EXPECT_EQ(misfit.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(misfit.status().message(), HasSubstr("input"));
  r = Request();
  r.set_request_id("has spaces");
  EXPECT_EQ(core_->CreateJob("a", r).status().code(),
            absl::StatusCode::kInvalidArgument);
  r = Request();
  r.set_priority(1000);
  EXPECT_EQ(core_->CreateJob("a", r).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->GetJob("a", "jobs/../../x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(core_->GetJob("a", "nojobs").status().code(),
            absl::StatusCode::kInvalidArgument);
  v1::ListJobsRequest list;
  list.set_page_token("forged");
  EXPECT_EQ(core_->ListJobs("a", list).status().code(),
            absl::StatusCode::kInvalidArgument);
  // Nothing was created by any of them.
  EXPECT_EQ(core_->ListJobs("a", {})->jobs_size(), 0);
}

}  // namespace
}  // namespace quantd
