#include "server/service_core.h"

#include <algorithm>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/job_spec.h"
#include "engine/pipeline/pipeline.h"
#include "server/dataset_verdicts.h"
#include "server/s3_job_io.h"
#include "server/tenant_data_resolver.h"
#include "util/logging.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

constexpr int32_t kMaxPriority = 100;

void SetTime(int64_t us, google::protobuf::Timestamp* t) {
  if (us <= 0) return;
  t->set_seconds(us / 1000000);
  t->set_nanos(static_cast<int32_t>(us % 1000000) * 1000);
}

}  // namespace

absl::Status ServiceCore::RecordUpload(const std::string& tenant,
                                       const v1::Blob& blob) {
  return index_->Record(tenant, blob);
}

void ServiceCore::ScanUploadedDataset(v1::Blob* blob) {
  DatasetVerdicts(blobs_, index_).Attach(blob);
}

absl::StatusOr<int64_t> ServiceCore::StoredBytes(const std::string& tenant) {
  QUANTD_ASSIGN_OR_RETURN(const int64_t uploads, index_->TenantBytes(tenant));
  QUANTD_ASSIGN_OR_RETURN(const int64_t artifacts,
                          jobs_->ArtifactBytes(tenant));
  return uploads + artifacts;
}

absl::Status ServiceCore::BeginUpload(const UploadKey& key, int64_t size,
                                      const std::string& sha256) {
  // Optimistic: the store refuses the reservation (Aborted) if an upload's
  // reservation ended after StoredBytes was read, since its blob may or may
  // not be counted there yet; then count again.
  for (int attempt = 0; attempt < 100; ++attempt) {
    UploadQuota quota;
    quota.limit = limits_.max_tenant_storage_bytes;
    quota.release_generation = blobs_->ReleaseGeneration();
    QUANTD_ASSIGN_OR_RETURN(quota.used, StoredBytes(key.owner));
    absl::Status s =
        blobs_->BeginUpload(key, size, sha256, limits_.max_upload_bytes, quota);
    if (!absl::IsAborted(s)) return s;
  }
  return absl::UnavailableError(
      "uploads are finishing faster than this one could be counted against "
      "your storage quota; retry it");
}

absl::StatusOr<v1::Blob> ServiceCore::GetBlob(const std::string& tenant,
                                              const std::string& sha256) {
  if (!IsSha256Hex(sha256)) {
    return absl::InvalidArgumentError(
        "sha256 must be 64 lowercase hex characters");
  }
  QUANTD_ASSIGN_OR_RETURN(v1::Blob b, index_->Find(tenant, sha256));
  // The index may outlive a blob removed by hand: trust the store.
  if (!blobs_->Contains(sha256)) {
    return absl::NotFoundError(
        absl::StrCat("blob ", sha256, " is gone; upload it again"));
  }
  QUANTD_ASSIGN_OR_RETURN(std::optional<v1::DatasetCheck> check,
                          index_->FindScan(sha256));
  if (check.has_value()) *b.mutable_dataset_check() = *std::move(check);
  return b;
}

absl::StatusOr<v1::Job> ServiceCore::ToProto(const JobRecord& r) {
  v1::Job job;
  job.set_name(JobName(r.id));
  if (!job.mutable_spec()->ParseFromString(r.spec)) {
    return absl::DataLossError(
        absl::StrCat("the stored spec of ", job.name(), " is unreadable"));
  }
  job.set_state(static_cast<v1::JobState>(static_cast<int>(r.state)));
  job.set_error(r.error);
  SetTime(r.create_time_us, job.mutable_create_time());
  SetTime(r.start_time_us, job.mutable_start_time());
  SetTime(r.end_time_us, job.mutable_end_time());
  job.set_attempts(r.attempts);
  job.set_priority(r.priority);
  job.set_request_id(r.request_id);
  if (!r.model_artifact_sha256.empty()) {
    v1::Artifact* m = job.add_artifacts();
    m->set_kind(v1::ARTIFACT_KIND_MODEL);
    m->set_sha256(r.model_artifact_sha256);
    m->set_size(r.model_artifact_size);
    v1::Artifact* rep = job.add_artifacts();
    rep->set_kind(v1::ARTIFACT_KIND_REPORT);
    rep->set_sha256(r.report_artifact_sha256);
    rep->set_size(r.report_artifact_size);
    // From the job's row: no report file is read per call. A job that
    // finished before summaries were kept (schema 1) answers without it.
    if (!r.report.empty() && !job.mutable_report()->ParseFromString(r.report)) {
      LOG(WARNING) << "job " << r.id << ": its stored report is unreadable; "
                   << "GetJob answers without it";
      job.clear_report();
    }
  }
  // The last progress, for clients that poll GetJob.
  if ((r.state == JobState::kRunning || r.state == JobState::kCancelling) &&
      !r.progress.empty() &&
      !job.mutable_progress()->ParseFromString(r.progress)) {
    job.clear_progress();
  }
  return job;
}

absl::Status ServiceCore::ImportS3Inputs(const std::string& tenant,
                                         v1::JobSpec& spec) {
  if (!spec.output_uri().empty()) {
    QUANTD_RETURN_IF_ERROR(
        CheckS3Output(*tenant_s3_, tenant, spec.output_uri()));
  }
  for (auto& [field, ref] : S3InputRefs(spec)) {
    QUANTD_ASSIGN_OR_RETURN(const int64_t used, StoredBytes(tenant));
    const int64_t room = std::min(limits_.max_upload_bytes,
                                  limits_.max_tenant_storage_bytes - used -
                                      blobs_->ReservedBytes(tenant));
    absl::StatusOr<v1::Blob> blob = ImportS3Object(
        *tenant_s3_, tenant, ref->uri(), KindOfField(field), room, *blobs_);
    if (!blob.ok()) {
      return absl::Status(blob.status().code(),
                          absl::StrCat(field, ".uri ", blob.status().message(),
                                       absl::IsResourceExhausted(blob.status())
                                           ? " (the smaller of the upload "
                                             "limit and your storage left)"
                                           : ""));
    }
    blob->mutable_create_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
    if (blob->kind() == v1::BLOB_KIND_DATASET) ScanUploadedDataset(&*blob);
    QUANTD_RETURN_IF_ERROR(RecordUpload(tenant, *blob));
    ref->set_blob_sha256(blob->sha256());
  }
  return absl::OkStatus();
}

absl::StatusOr<v1::Job> ServiceCore::CreateJob(
    const std::string& tenant, const v1::CreateJobRequest& request) {
  v1::JobSpec spec = request.spec();
  QUANTD_RETURN_IF_ERROR(ImportS3Inputs(tenant, spec));
  // One plan: the spec validated, defaults applied, and every DataRef
  // resolved to a blob this tenant uploaded.
  const TenantDataResolver resolver(*blobs_, *index_, tenant);
  QUANTD_ASSIGN_OR_RETURN(JobPlan plan,
                          PlanJob(spec, SpecOrigin::kService, resolver));
  // Every dataset's values, labels and zip CRCs, from the verdict kept at
  // upload (a dataset uploaded before the server scanned is scanned now).
  DatasetVerdicts verdicts(blobs_, index_);
  QUANTD_RETURN_IF_ERROR(verdicts.CheckJobData(plan.spec));
  // The model loads, the data fits it, the scheme fits every layer: a job
  // that cannot run is refused now, not failed later.
  JobInputFacts facts;
  if (absl::Status s = CheckJobInputs(plan, &facts); !s.ok()) {
    return absl::Status(s.code() == absl::StatusCode::kInternal
                            ? absl::StatusCode::kInternal
                            : absl::StatusCode::kInvalidArgument,
                        resolver.Redact(s.message()));
  }
  // Labels the job will read, against the model's classes.
  QUANTD_RETURN_IF_ERROR(verdicts.CheckLabels(plan.spec, facts.output_classes));
  if (!request.request_id().empty() &&
      !IsIdentifier(request.request_id(), kMaxRequestIdBytes)) {
    return absl::InvalidArgumentError(
        "request_id: at most 128 characters of [A-Za-z0-9._-]");
  }
  if (request.priority() < -kMaxPriority || request.priority() > kMaxPriority) {
    return absl::InvalidArgumentError(absl::StrCat(
        "priority must be in [-100, 100], got ", request.priority()));
  }
  JobRecord r;
  r.tenant = tenant;
  r.request_id = request.request_id();
  r.priority = request.priority();
  r.spec = spec.SerializeAsString();
  r.display_name = spec.display_name();
  r.labels = {spec.labels().begin(), spec.labels().end()};
  // The queue limits are checked in the insert's own transaction.
  absl::StatusOr<std::pair<JobRecord, bool>> created = jobs_->Create(
      r, {limits_.max_queued_jobs, limits_.max_queued_jobs_per_tenant});
  if (!created.ok()) return created.status();
  if (created->second) {
    v1::JobEvent e;
    e.set_state_change(v1::JOB_STATE_QUEUED);
    e.set_job(JobName(created->first.id));
    e.set_state(v1::JOB_STATE_QUEUED);
    // The job exists and will run; a missing QUEUED event costs watchers one
    // line of history, not the job.
    LogIfError(
        jobs_->AppendEvent(created->first.id, e.SerializeAsString()).status(),
        absl::StrCat("recording the QUEUED event of ", created->first.id));
    scheduler_->Notify();
  }
  return ToProto(created->first);
}

absl::StatusOr<v1::Job> ServiceCore::GetJob(const std::string& tenant,
                                            const std::string& name) {
  QUANTD_ASSIGN_OR_RETURN(std::string id, JobIdFromName(name));
  QUANTD_ASSIGN_OR_RETURN(JobRecord r, jobs_->Get(tenant, id));
  return ToProto(r);
}

absl::StatusOr<v1::ListJobsResponse> ServiceCore::ListJobs(
    const std::string& tenant, const v1::ListJobsRequest& request) {
  std::optional<JobState> state;
  if (request.state() != v1::JOB_STATE_UNSPECIFIED) {
    state = static_cast<JobState>(static_cast<int>(request.state()));
  }
  QUANTD_ASSIGN_OR_RETURN(
      JobPage page,
      jobs_->List(tenant, state, request.page_size(), request.page_token()));
  v1::ListJobsResponse out;
  for (const JobRecord& r : page.jobs) {
    QUANTD_ASSIGN_OR_RETURN(v1::Job j, ToProto(r));
    *out.add_jobs() = std::move(j);
  }
  out.set_next_page_token(page.next_page_token);
  return out;
}

absl::StatusOr<v1::Job> ServiceCore::CancelJob(const std::string& tenant,
                                               const std::string& name) {
  QUANTD_ASSIGN_OR_RETURN(std::string id, JobIdFromName(name));
  QUANTD_ASSIGN_OR_RETURN(JobRecord r, scheduler_->Cancel(tenant, id));
  return ToProto(r);
}

absl::Status ServiceCore::DeleteJob(const std::string& tenant,
                                    const std::string& name) {
  QUANTD_ASSIGN_OR_RETURN(std::string id, JobIdFromName(name));
  QUANTD_ASSIGN_OR_RETURN(JobRecord gone, jobs_->Delete(tenant, id));
  // Artifacts nothing else references go too. Blobs are content-addressed:
  // the same bytes can be another job's artifact or any tenant's upload, and
  // then they stay. The job is deleted either way; a blob that could not be
  // checked or removed is logged and left for an operator.
  for (const std::string& digest :
       {gone.model_artifact_sha256, gone.report_artifact_sha256}) {
    if (digest.empty()) continue;
    absl::StatusOr<bool> used = jobs_->ReferencesBlob(digest);
    absl::StatusOr<bool> uploaded = index_->AnyTenantOwns(digest);
    if (!used.ok() || !uploaded.ok()) {
      LogIfError(used.ok() ? uploaded.status() : used.status(),
                 absl::StrCat("checking whether blob ", digest, " is in use"));
      continue;
    }
    if (!*used && !*uploaded) {
      LogIfError(blobs_->Remove(digest),
                 absl::StrCat("removing the artifact ", digest, " of ", id));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<v1::JobEvent>> ServiceCore::EventsAfter(
    const std::string& tenant, const std::string& name, int64_t after_sequence,
    int32_t limit) {
  QUANTD_ASSIGN_OR_RETURN(std::string id, JobIdFromName(name));
  if (absl::StatusOr<JobRecord> r = jobs_->Get(tenant, id); !r.ok()) {
    return r.status();
  }
  QUANTD_ASSIGN_OR_RETURN(std::vector<JobEvent> events,
                          jobs_->EventsAfter(id, after_sequence, limit));
  std::vector<v1::JobEvent> out;
  for (const JobEvent& e : events) {
    v1::JobEvent p;
    if (!p.ParseFromString(e.payload)) {
      return absl::DataLossError("a stored job event is unreadable");
    }
    p.set_sequence(e.sequence);
    out.push_back(std::move(p));
  }
  return out;
}

absl::StatusOr<v1::Artifact> ServiceCore::FindArtifact(
    const std::string& tenant, const std::string& job_name,
    v1::ArtifactKind kind) {
  if (kind != v1::ARTIFACT_KIND_MODEL && kind != v1::ARTIFACT_KIND_REPORT) {
    return absl::InvalidArgumentError(
        absl::StrCat("kind is ", static_cast<int>(kind),
                     "; ask for ARTIFACT_KIND_MODEL (1) or "
                     "ARTIFACT_KIND_REPORT (2)"));
  }
  QUANTD_ASSIGN_OR_RETURN(v1::Job job, GetJob(tenant, job_name));
  for (const v1::Artifact& a : job.artifacts()) {
    if (a.kind() == kind) return a;
  }
  return absl::FailedPreconditionError(absl::StrCat(
      job_name, " has no such artifact (state ", v1::JobState_Name(job.state()),
      "): artifacts exist once a job SUCCEEDED"));
}

}  // namespace quantd
