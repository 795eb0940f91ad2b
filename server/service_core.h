// The service's operations, per tenant, in terms of the API's messages but
// without gRPC (the handlers in grpc_service.h only translate calls and
// statuses, as TF Serving's do): job creation with validation and queue
// limits, reads, listing, cancel, delete, and the job resource view.
//
//   ServiceCore core(&jobs, &blobs, &blob_index, &scheduler, {});
//   absl::StatusOr<v1::Job> job = core.CreateJob("tenant-a", request);
//   absl::StatusOr<v1::Job> same = core.GetJob("tenant-a", job->name());
#ifndef QUANTD_SERVER_SERVICE_CORE_H_
#define QUANTD_SERVER_SERVICE_CORE_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "quantd/v1/service.pb.h"
#include "server/blob_index.h"
#include "server/blob_store.h"
#include "server/job_store.h"
#include "server/resource_names.h"
#include "server/scheduler.h"
#include "server/tenant_s3.h"

namespace quantd {

struct ServiceLimits {
  int64_t max_queued_jobs = 1000;  // all tenants
  int64_t max_queued_jobs_per_tenant = 100;
  int64_t max_upload_bytes = int64_t{4} << 30;
  // Bytes per tenant: committed uploads (each digest once), uploads in
  // progress (their declared size) and job artifacts.
  int64_t max_tenant_storage_bytes = int64_t{50} << 30;
};

class ServiceCore {
 public:
  // `tenant_s3`: whose credentials s3:// references use (null: nobody's,
  // every s3:// reference is refused).
  ServiceCore(JobStore* jobs, BlobStore* blobs, BlobIndex* index,
              Scheduler* scheduler, ServiceLimits limits,
              const TenantS3* tenant_s3 = nullptr)
      : jobs_(jobs),
        blobs_(blobs),
        index_(index),
        scheduler_(scheduler),
        limits_(limits),
        tenant_s3_(tenant_s3 != nullptr ? tenant_s3 : &no_s3_) {}

  // After an upload committed: the tenant may now use and look up the blob.
  absl::Status RecordUpload(const std::string& tenant, const v1::Blob& blob);
  // After a DATASET upload committed: scans the file once (finite values,
  // labels, zip CRCs; engine/data/dataset_scan.h), keeps the verdict with
  // the blob and sets blob->dataset_check. The upload stands either way;
  // CreateJob refuses jobs whose datasets' verdicts are bad.
  void ScanUploadedDataset(v1::Blob* blob);
  absl::StatusOr<v1::Blob> GetBlob(const std::string& tenant,
                                   const std::string& sha256);
  // Starts (or resumes) the upload, reserving its declared size:
  // ResourceExhausted if it would take the tenant past
  // max_tenant_storage_bytes, counting committed uploads, uploads in
  // progress and job artifacts (StoredBytes + the store's reservations).
  absl::Status BeginUpload(const UploadKey& key, int64_t size,
                           const std::string& sha256);
  // The tenant's committed uploads (each digest once) + its job artifacts.
  absl::StatusOr<int64_t> StoredBytes(const std::string& tenant);

  absl::StatusOr<v1::Job> CreateJob(const std::string& tenant,
                                    const v1::CreateJobRequest& request);
  absl::StatusOr<v1::Job> GetJob(const std::string& tenant,
                                 const std::string& name);
  absl::StatusOr<v1::ListJobsResponse> ListJobs(
      const std::string& tenant, const v1::ListJobsRequest& request);
  absl::StatusOr<v1::Job> CancelJob(const std::string& tenant,
                                    const std::string& name);
  absl::Status DeleteJob(const std::string& tenant, const std::string& name);

  // The job's events after `after_sequence` (at most `limit`), after
  // checking that the tenant owns the job.
  absl::StatusOr<std::vector<v1::JobEvent>> EventsAfter(
      const std::string& tenant, const std::string& name,
      int64_t after_sequence, int32_t limit);

  // The artifact's digest and size, for DownloadArtifact.
  absl::StatusOr<v1::Artifact> FindArtifact(const std::string& tenant,
                                            const std::string& job_name,
                                            v1::ArtifactKind kind);

  const ServiceLimits& limits() const { return limits_; }
  BlobStore* blobs() { return blobs_; }

 private:
  absl::StatusOr<v1::Job> ToProto(const JobRecord& r);
  // CreateJob's first step: checks output_uri and copies each s3:// input
  // into the tenant's blobs (within its upload limit and storage quota),
  // pointing the spec at the copies.
  absl::Status ImportS3Inputs(const std::string& tenant, v1::JobSpec& spec);

  JobStore* jobs_;
  BlobStore* blobs_;
  BlobIndex* index_;
  Scheduler* scheduler_;
  ServiceLimits limits_;
  const TenantS3 no_s3_;
  const TenantS3* tenant_s3_;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_SERVICE_CORE_H_
