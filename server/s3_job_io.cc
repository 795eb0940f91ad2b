#include "server/s3_job_io.h"

#include "absl/strings/str_cat.h"
#include "engine/pipeline/job_plan.h"
#include "server/file_util.h"
#include "server/remote_blobs.h"
#include "server/s3_client.h"
#include "util/status_macros.h"

namespace quantd {
namespace {

v1::DataRef* MutableRef(v1::JobSpec& spec, const std::string& field) {
  if (field == "model") return spec.mutable_model();
  if (field == "calibration_data") return spec.mutable_calibration_data();
  if (field == "evaluation_data") return spec.mutable_evaluation_data();
  if (field == "qat.train_data")
    return spec.mutable_qat()->mutable_train_data();
  return nullptr;
}

// A client for `tenant`'s requests to these keys of the bucket.
absl::StatusOr<std::unique_ptr<S3Client>> ClientFor(
    const TenantS3& tenants, const std::string& tenant,
    const std::string& bucket, const std::vector<std::string>& keys) {
  absl::StatusOr<S3Config> config = absl::InternalError("no keys");
  for (const std::string& key : keys) {
    config = tenants.ConfigFor(tenant, bucket, key);
    if (!config.ok()) return config.status();
  }
  return S3Client::Create(*std::move(config));
}

// The keys a job's outputs get under `prefix` ("" is the bucket's top).
std::vector<std::string> OutputKeys(const std::string& prefix) {
  const std::string base = prefix.empty() ? "" : prefix + "/";
  return {base + "model.onnx", base + "report.json"};
}

// "s3://...: <what went wrong>", keeping the code.
absl::Status About(const std::string& uri, const absl::Status& s) {
  return absl::Status(s.code(), absl::StrCat(uri, ": ", s.message()));
}

}  // namespace

std::vector<std::pair<std::string, v1::DataRef*>> S3InputRefs(
    v1::JobSpec& spec) {
  std::vector<std::pair<std::string, v1::DataRef*>> out;
  for (const auto& [field, ref] : SetDataRefs(spec)) {
    if (ref->source_case() != v1::DataRef::kUri) continue;
    // A DataRef field without a slot here is refused by PlanJob later
    // ("not supported"), uri or not.
    if (v1::DataRef* r = MutableRef(spec, field)) out.emplace_back(field, r);
  }
  return out;
}

v1::BlobKind KindOfField(const std::string& field) {
  return field == "model" ? v1::BLOB_KIND_MODEL : v1::BLOB_KIND_DATASET;
}

absl::StatusOr<v1::Blob> ImportS3Object(const TenantS3& tenants,
                                        const std::string& tenant,
                                        const std::string& uri,
                                        v1::BlobKind kind, int64_t max_bytes,
                                        BlobStore& blobs) {
  QUANTD_ASSIGN_OR_RETURN(const S3Location loc, ParseS3ObjectUri(uri));
  absl::StatusOr<std::unique_ptr<S3Client>> s3 =
      ClientFor(tenants, tenant, loc.bucket, {loc.key});
  if (!s3.ok()) return About(uri, s3.status());
  absl::StatusOr<DownloadedFile> file =
      DownloadToTemp(**s3, loc.key, blobs.temp_dir(), max_bytes);
  if (!file.ok()) return About(uri, file.status());
  QUANTD_ASSIGN_OR_RETURN(const std::string digest,
                          blobs.Adopt(file->path, file->sha256));
  v1::Blob blob;
  blob.set_sha256(digest);
  blob.set_size(file->size);
  blob.set_kind(kind);
  blob.set_name(uri);
  return blob;
}

absl::Status CheckS3Output(const TenantS3& tenants, const std::string& tenant,
                           const std::string& uri) {
  absl::StatusOr<S3Location> loc = ParseS3PrefixUri(uri);
  if (!loc.ok()) return About("output_uri", loc.status());
  const absl::Status s =
      ClientFor(tenants, tenant, loc->bucket, OutputKeys(loc->key)).status();
  return s.ok() ? s : About("output_uri " + uri, s);
}

absl::Status WriteS3Outputs(const TenantS3& tenants, const std::string& tenant,
                            const std::string& uri, BlobStore& blobs,
                            const std::string& model_sha256,
                            const std::string& report_sha256) {
  QUANTD_ASSIGN_OR_RETURN(const S3Location loc, ParseS3PrefixUri(uri));
  const std::vector<std::string> keys = OutputKeys(loc.key);
  QUANTD_ASSIGN_OR_RETURN(std::unique_ptr<S3Client> s3,
                          ClientFor(tenants, tenant, loc.bucket, keys));
  const std::string digests[] = {model_sha256, report_sha256};
  for (size_t i = 0; i < keys.size(); ++i) {
    QUANTD_ASSIGN_OR_RETURN(const std::string path, blobs.PathOf(digests[i]));
    const absl::Status s =
        s3->PutFile(keys[i], path, digests[i], FileSizeOrMinus1(path));
    if (!s.ok())
      return About(absl::StrCat("s3://", loc.bucket, "/", keys[i]), s);
  }
  return absl::OkStatus();
}

}  // namespace quantd
