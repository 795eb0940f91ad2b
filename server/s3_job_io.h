// A job spec's s3:// inputs (DataRef.uri) and output (JobSpec.output_uri),
// read and written with the tenant's object-storage credentials
// (tenant_s3.h). CreateJob copies each input into the blob store, so that
// the job is validated and runs on one fixed set of bytes, named by digest
// like an upload; a job that succeeds writes its model and report under
// the output URI.
//
//   for (auto& [field, ref] : S3InputRefs(spec)) {
//     absl::StatusOr<v1::Blob> blob = ImportS3Object(
//         tenants, "team-a", ref->uri(), KindOfField(field), room, blobs);
//     ref->set_blob_sha256(blob->sha256());
//   }
//   WriteS3Outputs(tenants, "team-a", spec.output_uri(), blobs, model, report);
#ifndef QUANTD_SERVER_S3_JOB_IO_H_
#define QUANTD_SERVER_S3_JOB_IO_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "quantd/v1/service.pb.h"
#include "server/blob_store.h"
#include "server/tenant_s3.h"

namespace quantd {

// The spec's DataRefs that name s3:// objects, with their field names
// ("model", "calibration_data", "evaluation_data", "qat.train_data").
std::vector<std::pair<std::string, v1::DataRef*>> S3InputRefs(
    v1::JobSpec& spec);

// MODEL for "model", DATASET for the others.
v1::BlobKind KindOfField(const std::string& field);

// Copies the object at `uri` into `blobs` with `tenant`'s credentials;
// ResourceExhausted past `max_bytes`. The blob (digest, size, kind, the URI
// as its name) is not yet recorded as the tenant's: the caller does that.
absl::StatusOr<v1::Blob> ImportS3Object(const TenantS3& tenants,
                                        const std::string& tenant,
                                        const std::string& uri,
                                        v1::BlobKind kind, int64_t max_bytes,
                                        BlobStore& blobs);

// At CreateJob: the output URI parses and the tenant has credentials.
absl::Status CheckS3Output(const TenantS3& tenants, const std::string& tenant,
                           const std::string& uri);

// Writes blob `model_sha256` as PREFIX/model.onnx and `report_sha256` as
// PREFIX/report.json under `uri`.
absl::Status WriteS3Outputs(const TenantS3& tenants, const std::string& tenant,
                            const std::string& uri, BlobStore& blobs,
                            const std::string& model_sha256,
                            const std::string& report_sha256);

}  // namespace quantd

#endif  // QUANTD_SERVER_S3_JOB_IO_H_
