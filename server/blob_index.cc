#include "server/blob_index.h"

#include "absl/strings/str_cat.h"
#include "server/job_store.h"
#include "server/resource_names.h"

namespace quantd {

absl::StatusOr<std::unique_ptr<BlobIndex>> BlobIndex::Open(
    const std::string& where) {
  if (IsPostgresUrl(where)) return OpenPostgresBlobIndex(where);
  return OpenSqliteBlobIndex(where);
}

absl::Status CheckBlobDigest(const std::string& sha256) {
  if (IsSha256Hex(sha256)) return absl::OkStatus();
  return absl::InvalidArgumentError("a blob digest is 64 hex characters");
}

absl::Status NoSuchTenantBlob(const std::string& sha256) {
  return absl::NotFoundError(
      absl::StrCat("no blob with sha256 ", sha256.substr(0, 64),
                   " was uploaded by this tenant; upload it first"));
}

}  // namespace quantd
