#include "server/upload_session.h"

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "engine/pipeline/enum_checks.h"
#include "util/status_macros.h"

namespace quantd {

absl::Status UploadSession::Header(const v1::UploadHeader& h) {
  if (header_seen_) {
    return absl::InvalidArgumentError(
        "only the first UploadBlobRequest carries a header");
  }
  if (!IsIdentifier(h.upload_id(), kMaxUploadIdBytes)) {
    return absl::InvalidArgumentError(
        "upload_id: 1 to 64 characters of [A-Za-z0-9._-]");
  }
  QUANTD_RETURN_IF_ERROR(CheckEnumFields(h));
  if (h.kind() == v1::BLOB_KIND_UNSPECIFIED) {
    return absl::InvalidArgumentError("kind: MODEL or DATASET");
  }
  if (h.name().size() > kMaxUploadNameBytes) {
    return absl::InvalidArgumentError("name: at most 255 bytes");
  }
  key_.upload_id = h.upload_id();
  QUANTD_RETURN_IF_ERROR(core_->BeginUpload(key_, h.size(), h.sha256()));
  QUANTD_ASSIGN_OR_RETURN(const int64_t committed,
                          core_->blobs()->CommittedSize(key_));
  if (h.offset() != committed) {
    return absl::FailedPreconditionError(
        absl::StrCat("upload '", h.upload_id(), "' has ", committed,
                     " bytes; send the rest from offset ", committed));
  }
  offset_ = committed;
  header_ = h;
  header_seen_ = true;
  return absl::OkStatus();
}

absl::Status UploadSession::Chunk(const std::string& bytes) {
  if (!header_seen_) {
    return absl::InvalidArgumentError(
        "the first UploadBlobRequest must carry an UploadHeader");
  }
  QUANTD_RETURN_IF_ERROR(core_->blobs()->Append(key_, offset_, bytes));
  offset_ += static_cast<int64_t>(bytes.size());
  return absl::OkStatus();
}

absl::StatusOr<v1::Blob> UploadSession::Commit() {
  if (!header_seen_) {
    return absl::InvalidArgumentError(
        "the stream ended before an UploadHeader");
  }
  QUANTD_ASSIGN_OR_RETURN(const std::string digest,
                          core_->blobs()->Commit(key_));
  v1::Blob blob;
  blob.set_sha256(digest);
  blob.set_size(header_.size());
  blob.set_kind(header_.kind());
  blob.set_name(header_.name());
  blob.mutable_create_time()->set_seconds(absl::ToUnixSeconds(absl::Now()));
  if (blob.kind() == v1::BLOB_KIND_DATASET) core_->ScanUploadedDataset(&blob);
  const absl::Status recorded = core_->RecordUpload(key_.owner, blob);
  // The blob now counts as the tenant's: its reservation ends.
  core_->blobs()->ReleaseUpload(key_);
  QUANTD_RETURN_IF_ERROR(recorded);
  return blob;
}

}  // namespace quantd
