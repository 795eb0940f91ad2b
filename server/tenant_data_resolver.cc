#include "server/tenant_data_resolver.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"

namespace quantd {

absl::StatusOr<std::string> TenantDataResolver::Resolve(
    const v1::DataRef& ref, absl::string_view field) const {
  if (ref.source_case() != v1::DataRef::kBlobSha256) {
    return absl::InvalidArgumentError(absl::StrCat(
        field,
        " must name an uploaded blob (blob_sha256); the service does not "
        "read local paths"));
  }
  const std::string& digest = ref.blob_sha256();
  if (absl::StatusOr<v1::Blob> owned = index_.Find(tenant_, digest);
      !owned.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".blob_sha256: ", owned.status().message()));
  }
  // The index may outlive a blob removed by hand: trust the store.
  if (!blobs_.Contains(digest)) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".blob_sha256: blob ", digest, " is gone; upload it again"));
  }
  absl::StatusOr<std::string> path = blobs_.PathOf(digest);
  if (path.ok()) shown_.emplace_back(*path, absl::StrCat("blob ", digest));
  return path;
}

std::string TenantDataResolver::Redact(absl::string_view message) const {
  std::string out(message);
  for (const auto& [path, name] : shown_) {
    out = absl::StrReplaceAll(out, {{path, name}});
  }
  if (!blobs_.root().empty()) {
    out = absl::StrReplaceAll(out, {{blobs_.root(), "<data-dir>"}});
  }
  return out;
}

}  // namespace quantd
