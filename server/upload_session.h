// One UploadBlob stream's protocol, without gRPC: the header (checked, quota
// reserved, resumable upload opened at its committed offset), then chunks
// appended in order, then the commit (size and digest verified, the blob
// recorded as the tenant's upload). The gRPC reactor only moves messages
// in and out; a fuzz target or a test drives the same steps directly.
//
//   UploadSession upload(&core, "tenant-a");
//   QUANTD_RETURN_IF_ERROR(upload.Header(header));
//   QUANTD_RETURN_IF_ERROR(upload.Chunk(bytes));       // any number of times
//   QUANTD_ASSIGN_OR_RETURN(v1::Blob blob, upload.Commit());
#ifndef QUANTD_SERVER_UPLOAD_SESSION_H_
#define QUANTD_SERVER_UPLOAD_SESSION_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "quantd/v1/service.pb.h"
#include "server/blob_store.h"
#include "server/service_core.h"

namespace quantd {

inline constexpr size_t kMaxUploadNameBytes = 255;

class UploadSession {
 public:
  UploadSession(ServiceCore* core, std::string tenant)
      : core_(core), key_{std::move(tenant), ""} {}

  // The stream's first message. InvalidArgument for a bad header (naming
  // the field), ResourceExhausted over a limit, FailedPrecondition when
  // `offset` is not where the resumable upload stands (the message says
  // where to resume).
  absl::Status Header(const v1::UploadHeader& header);
  // Every later message: the next bytes, at the current offset.
  absl::Status Chunk(const std::string& bytes);
  // The stream ended: verify, store and record the blob.
  absl::StatusOr<v1::Blob> Commit();
  // Where the upload stands: the offset the next chunk goes to.
  int64_t offset() const { return offset_; }

 private:
  ServiceCore* core_;
  UploadKey key_;
  v1::UploadHeader header_;
  bool header_seen_ = false;
  int64_t offset_ = 0;
};

}  // namespace quantd

#endif  // QUANTD_SERVER_UPLOAD_SESSION_H_
